//! QEMU with its serial console on stdio, driven like `expect`.
//!
//! Invariants:
//! - QEMU runs in a process group of its own and is always killed and reaped
//!   (on drop, on interrupt, when waiting for its exit times out);
//! - every byte QEMU writes (stdout and stderr) is appended to the console log
//!   as soon as it is read, and the log is complete once `kill`, `wait_exit`
//!   or drop has returned;
//! - memory stays bounded: consumed console output is discarded, and the
//!   transcript kept for error messages holds only the last few MiB.

use crate::interrupt::{self, Interrupt};
use camino::{Utf8Path, Utf8PathBuf};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a waiting console looks at the interrupt flag and QEMU's state.
const POLL: Duration = Duration::from_millis(50);

/// How many console lines an error shows.
pub const TAIL_LINES: usize = 40;

/// The transcript kept for `tail` is trimmed to this size once it grows to
/// twice as much.
const TRANSCRIPT_KEEP: usize = 2 * 1024 * 1024;

/// How to start QEMU.
#[derive(Clone, Debug, Default)]
pub struct QemuSpec {
    /// Program name (looked up in `PATH`) or path, e.g. `qemu-system-sh4`.
    pub binary: String,
    /// Arguments: board, kernel, disks, append line, `-nographic`, ...
    pub args: Vec<String>,
    /// Where the console output is appended (created with its parent
    /// directories if missing).
    pub console_log: Utf8PathBuf,
    /// The Debian package that provides `binary`, for the message when it
    /// is missing (a target's `QEMU_PACKAGE`).
    pub package: Option<String>,
}

/// User networking must be restricted: a guest may reach only the host's
/// loopback through explicit forwards (`guestfwd`, `hostfwd`). Refuses a
/// `-netdev user` or `-nic user` without `restrict=on`, and `-net user`.
pub fn check_network(args: &[String]) -> Result<(), String> {
    for (i, a) in args.iter().enumerate() {
        let is_netdev = i > 0 && (args[i - 1] == "-netdev" || args[i - 1] == "-nic");
        if is_netdev
            && a.starts_with("user")
            && !a
                .split(',')
                .any(|o| o == "restrict=on" || o == "restrict=yes")
        {
            return Err(format!(
                "QEMU user networking `{a}` must say `restrict=on`: the guest may reach only the host's loopback through explicit guestfwd/hostfwd rules"
            ));
        }
        if a == "-net" && args.get(i + 1).is_some_and(|n| n.starts_with("user")) {
            return Err("use `-netdev user,...,restrict=on` rather than `-net user`".into());
        }
    }
    Ok(())
}

impl QemuSpec {
    /// The command line, shell-quoted, for logs and messages.
    pub fn command_line(&self) -> String {
        let mut argv = vec![self.binary.clone()];
        argv.extend(self.args.iter().cloned());
        crate::airlock::shell_join(&argv)
    }
}

/// What went wrong with a QEMU run.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error(
        "`{binary}` is not installed: expected it {where_}; {}",
        match package {
            Some(p) => format!("it comes with the Debian package `{p}`, install it with `apt-get install {p}`"),
            None => "install QEMU for this target (the target's QEMU_PACKAGE names its Debian package)".to_string(),
        },
        where_ = if binary.contains('/') { "at that path" } else { "on PATH" }
    )]
    NotInstalled {
        binary: String,
        package: Option<String>,
    },

    #[error("could not start `{binary}`: {source}")]
    Spawn { binary: String, source: io::Error },

    #[error("could not write the console log {log}: {source}")]
    Log { log: Utf8PathBuf, source: io::Error },

    #[error(
        "timed out after {} waiting for `{pattern}` on the QEMU console; console log: {log}{}",
        seconds(timeout),
        crate::airlock::render_tail(tail, " (the console printed nothing)")
    )]
    Timeout {
        pattern: String,
        timeout: Duration,
        log: Utf8PathBuf,
        tail: String,
    },

    #[error(
        "QEMU {} while waiting for `{pattern}` on its console; console log: {log}{}",
        describe_end(status),
        crate::airlock::render_tail(tail, " (the console printed nothing)")
    )]
    Exited {
        pattern: String,
        status: Option<ExitStatus>,
        log: Utf8PathBuf,
        tail: String,
    },

    #[error(
        "could not type on the QEMU console ({source}); QEMU {}; console log: {log}{}",
        describe_end(status),
        crate::airlock::render_tail(tail, " (the console printed nothing)")
    )]
    Send {
        source: io::Error,
        status: Option<ExitStatus>,
        log: Utf8PathBuf,
        tail: String,
    },

    #[error(
        "QEMU did not exit within {}, so it was killed; console log: {log}{}",
        seconds(timeout),
        crate::airlock::render_tail(tail, " (the console printed nothing)")
    )]
    ExitTimeout {
        timeout: Duration,
        log: Utf8PathBuf,
        tail: String,
    },

    #[error("interrupted; QEMU was killed (console log: {log})")]
    Interrupted { log: Utf8PathBuf },
}

fn seconds(d: &Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn describe_end(status: &Option<ExitStatus>) -> String {
    match status {
        Some(s) => format!("exited with {}", crate::airlock::describe_status(s)),
        None => "closed its console".to_string(),
    }
}

/// Output shared between the reader threads and the console.
struct Stream {
    /// Console output (QEMU's stdout) not consumed yet; `pending[0]` is at
    /// absolute offset `base` of the stream.
    pending: Vec<u8>,
    base: u64,
    /// Everything QEMU wrote, stdout and stderr in arrival order, bounded.
    transcript: Vec<u8>,
    /// Reader threads still running; 0 means QEMU closed its output.
    open_readers: usize,
    log: File,
    log_error: Option<io::Error>,
}

impl Stream {
    fn end(&self) -> u64 {
        self.base + self.pending.len() as u64
    }

    /// Drop everything before absolute offset `to`.
    fn consume_to(&mut self, to: u64) {
        let n = (to.saturating_sub(self.base) as usize).min(self.pending.len());
        self.pending.drain(..n);
        self.base += n as u64;
    }
}

struct Shared {
    stream: Mutex<Stream>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Stream> {
        self.stream.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Copy one of QEMU's output pipes into the log and the shared buffers.
fn pump(mut from: impl Read, shared: Arc<Shared>, is_console: bool) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let mut s = shared.lock();
        if let Err(e) = s.log.write_all(chunk) {
            s.log_error.get_or_insert(e);
        }
        if is_console {
            s.pending.extend_from_slice(chunk);
        }
        s.transcript.extend_from_slice(chunk);
        if s.transcript.len() > 2 * TRANSCRIPT_KEEP {
            let cut = s.transcript.len() - TRANSCRIPT_KEEP;
            s.transcript.drain(..cut);
        }
        drop(s);
        shared.changed.notify_all();
    }
    let mut s = shared.lock();
    s.open_readers -= 1;
    let _ = s.log.flush();
    drop(s);
    shared.changed.notify_all();
}

/// Text for humans: ANSI escape sequences and carriage returns removed.
pub fn clean_console_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // CSI: parameters and intermediates up to a final byte.
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A running QEMU whose serial console is its stdin and stdout.
pub struct QemuConsole {
    child: Child,
    stdin: Option<ChildStdin>,
    status: Option<ExitStatus>,
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    interrupt: Interrupt,
    log: Utf8PathBuf,
    /// How long `send_line` waits for each character's echo before typing
    /// the next one anyway. Zero sends the line without waiting.
    pub echo_timeout: Duration,
    /// What `send_line` types after the line: `"\r"` by default, which is what
    /// a terminal's Enter key sends; a tty with `ICRNL` (the default) turns it
    /// into `\n`, and busybox's line editor and QEMU's monitor accept both.
    pub line_ending: String,
    /// Absolute stream offset just after the echo of the last character
    /// `send_line` typed, when that echo was seen.
    last_echo_end: Option<u64>,
}

impl QemuConsole {
    /// Start QEMU with stdin and stdout piped (stderr goes to the log too), in
    /// a process group of its own. A missing binary is reported with the
    /// Debian package that provides it.
    pub fn spawn(spec: &QemuSpec, interrupt: Interrupt) -> Result<Self, QemuError> {
        let log_path = spec.console_log.clone();
        let log_error = |source| QemuError::Log {
            log: log_path.clone(),
            source,
        };
        if let Some(parent) = log_path.parent().filter(|p| !p.as_str().is_empty()) {
            fs::create_dir_all(parent).map_err(log_error)?;
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&log_path)
            .map_err(log_error)?;
        writeln!(log, "=== {}", spec.command_line()).map_err(log_error)?;

        let mut child = std::process::Command::new(&spec.binary)
            .args(&spec.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| spawn_error(spec, source))?;

        let shared = Arc::new(Shared {
            stream: Mutex::new(Stream {
                pending: Vec::new(),
                base: 0,
                transcript: Vec::new(),
                open_readers: 2,
                log,
                log_error: None,
            }),
            changed: Condvar::new(),
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let readers = vec![
            {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || pump(stdout, shared, true))
            },
            {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || pump(stderr, shared, false))
            },
        ];
        Ok(QemuConsole {
            stdin: child.stdin.take(),
            child,
            status: None,
            shared,
            readers,
            interrupt,
            log: log_path,
            echo_timeout: Duration::from_secs(2),
            line_ending: "\r".to_string(),
            last_echo_end: None,
        })
    }

    /// QEMU's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The console log this run appends to.
    pub fn log_path(&self) -> &Utf8Path {
        &self.log
    }

    /// Wait until `pattern` (a plain substring) appears in console output not
    /// consumed yet; return the text up to and including it, and consume it.
    /// Fails when `timeout` passes, QEMU exits first, or the interrupt flag is
    /// set (QEMU is then killed); the error carries the console's last lines
    /// and the log's path.
    pub fn expect(&mut self, pattern: &str, timeout: Duration) -> Result<String, QemuError> {
        let deadline = Instant::now() + timeout;
        let shared = Arc::clone(&self.shared);
        let mut s = shared.lock();
        loop {
            if let Some(pos) = find(&s.pending, pattern.as_bytes()) {
                let end = pos + pattern.len();
                let text = String::from_utf8_lossy(&s.pending[..end]).into_owned();
                let to = s.base + end as u64;
                s.consume_to(to);
                return Ok(text);
            }
            if self.interrupt.is_set() {
                drop(s);
                self.kill();
                return Err(QemuError::Interrupted {
                    log: self.log.clone(),
                });
            }
            if s.open_readers == 0 {
                drop(s);
                let status = self.reap_within(Duration::from_secs(5));
                return Err(QemuError::Exited {
                    pattern: pattern.to_string(),
                    status,
                    log: self.log.clone(),
                    tail: self.tail(TAIL_LINES),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                drop(s);
                return Err(QemuError::Timeout {
                    pattern: pattern.to_string(),
                    timeout,
                    log: self.log.clone(),
                    tail: self.tail(TAIL_LINES),
                });
            }
            let wait = POLL.min(deadline - now);
            s = shared
                .changed
                .wait_timeout(s, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Type `line` followed by `line_ending`, one character at a time, waiting
    /// (up to `echo_timeout`) for each character's echo before the next: some
    /// boards' serial ports have small receive FIFOs and drop characters when
    /// a whole line arrives at once. A missing echo only slows typing down.
    /// Output is not consumed.
    pub fn send_line(&mut self, line: &str) -> Result<(), QemuError> {
        self.last_echo_end = None;
        let shared = Arc::clone(&self.shared);
        let mut utf8 = [0u8; 4];
        for c in line.chars() {
            let bytes = c.encode_utf8(&mut utf8).as_bytes();
            let mark = shared.lock().end();
            self.write(bytes)?;
            if self.echo_timeout.is_zero() {
                continue;
            }
            let deadline = Instant::now() + self.echo_timeout;
            let mut s = shared.lock();
            loop {
                let from = (mark - s.base) as usize;
                if let Some(pos) = find(&s.pending[from..], bytes) {
                    self.last_echo_end = Some(mark + (pos + bytes.len()) as u64);
                    break;
                }
                if self.interrupt.is_set() {
                    drop(s);
                    self.kill();
                    return Err(QemuError::Interrupted {
                        log: self.log.clone(),
                    });
                }
                let now = Instant::now();
                if s.open_readers == 0 || now >= deadline {
                    break;
                }
                s = shared
                    .changed
                    .wait_timeout(s, POLL.min(deadline - now))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        let ending = self.line_ending.clone();
        self.write(ending.as_bytes())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), QemuError> {
        let result = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(bytes).and_then(|()| stdin.flush()),
            None => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the console's input is closed",
            )),
        };
        result.map_err(|source| {
            let status = self.reap_within(Duration::from_secs(1));
            QemuError::Send {
                source,
                status,
                log: self.log.clone(),
                tail: self.tail(TAIL_LINES),
            }
        })
    }

    /// Type `line` at a shell (or monitor) prompt and return what the command
    /// printed: the text after the echoed line, up to but excluding `prompt`,
    /// with carriage returns removed. Output that arrived before the line was
    /// typed is discarded. Assumes the guest echoes what it is sent, as an
    /// interactive shell on a serial console does.
    pub fn run(
        &mut self,
        line: &str,
        prompt: &str,
        timeout: Duration,
    ) -> Result<String, QemuError> {
        let deadline = Instant::now() + timeout;
        {
            let mut s = self.shared.lock();
            let end = s.end();
            s.consume_to(end);
        }
        self.send_line(line)?;
        if let Some(echo_end) = self.last_echo_end {
            self.shared.lock().consume_to(echo_end);
        }
        let left = |d: Instant| d.saturating_duration_since(Instant::now());
        self.expect("\n", left(deadline))?;
        let out = self.expect(prompt, left(deadline))?;
        let out = out.strip_suffix(prompt).unwrap_or(&out);
        Ok(out.replace('\r', ""))
    }

    /// Wait for QEMU to exit by itself (after `poweroff` in the guest, or the
    /// monitor's `quit`) and return its exit status. If it has not exited
    /// within `timeout`, or the interrupt flag is set, it is killed and an
    /// error returned.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, QemuError> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if self.interrupt.is_set() {
                self.kill();
                return Err(QemuError::Interrupted {
                    log: self.log.clone(),
                });
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                self.finish();
                return Ok(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(QemuError::ExitTimeout {
                    timeout,
                    log: self.log.clone(),
                    tail: self.tail(TAIL_LINES),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The last `lines` lines QEMU printed (console and stderr, in arrival
    /// order), with terminal escape sequences removed.
    pub fn tail(&self, lines: usize) -> String {
        let s = self.shared.lock();
        crate::fsutil::last_lines(&clean_console_text(&s.transcript), lines)
    }

    /// Kill QEMU's process group (unless QEMU already exited), reap it and
    /// wait until everything it wrote is in the log. Idempotent.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => self.status = Some(status),
                _ => {
                    // Not reaped yet, so the group id still belongs to QEMU.
                    interrupt::kill_group(self.child.id());
                    self.status = self.child.wait().ok();
                }
            }
        }
        self.finish();
    }

    /// After QEMU is reaped: close its input and let the readers drain its
    /// output into the log.
    fn finish(&mut self) {
        self.stdin = None;
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let mut s = self.shared.lock();
        let _ = s.log.flush();
        let _ = s.log.sync_data();
    }

    /// Reap QEMU if it exits within `limit`, returning its status.
    fn reap_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                self.finish();
                return self.status;
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for QemuConsole {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_error(spec: &QemuSpec, source: io::Error) -> QemuError {
    let binary = &spec.binary;
    if source.kind() == io::ErrorKind::NotFound {
        QemuError::NotInstalled {
            binary: binary.to_string(),
            package: spec.package.clone().filter(|p| !p.is_empty()),
        }
    } else {
        QemuError::Spawn {
            binary: binary.to_string(),
            source,
        }
    }
}

/// Run QEMU attached to the user's terminal (stdin, stdout and stderr
/// inherited, same process group so it can read the terminal) and wait for
/// it. The console log is not written: the terminal shows everything.
pub fn interactive(spec: &QemuSpec) -> Result<ExitStatus, QemuError> {
    std::process::Command::new(&spec.binary)
        .args(&spec.args)
        .status()
        .map_err(|source| spawn_error(spec, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_networking_must_be_restricted() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_network(&a(&["-nic", "user,model=rtl8139,restrict=on"])).is_ok());
        assert!(check_network(&a(&["-netdev", "user,id=n,restrict=yes"])).is_ok());
        let e = check_network(&a(&["-nic", "user,model=rtl8139"])).unwrap_err();
        assert!(e.contains("restrict=on"), "{e}");
        assert!(check_network(&a(&["-netdev", "user,id=n,restrict=off"])).is_err());
        assert!(check_network(&a(&["-net", "user"])).is_err());
        assert!(check_network(&a(&["-nic", "none"])).is_ok());
    }

    #[test]
    fn escape_sequences_are_removed() {
        assert_eq!(
            clean_console_text(b"(qemu) i\x1b[K\x1b[Din\x1b[K\r\nok\x1bc"),
            "(qemu) iin\nok"
        );
    }

    #[test]
    fn find_substring() {
        assert_eq!(find(b"abc(qemu) ", b"(qemu)"), Some(3));
        assert_eq!(find(b"abc", b"abcd"), None);
        assert_eq!(find(b"abc", b""), Some(0));
    }
}
