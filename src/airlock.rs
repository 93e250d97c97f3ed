//! The airlock: every build command runs with a cleared environment and a
//! `PATH` that holds only the airlock's directories (`build/<arch>/host/bin`,
//! filled with symlinks to an allow-list of host tools, and the cross
//! compiler's directory). A program the host has but the list lacks cannot be
//! found, by the airlock itself or by anything the command starts.
//!
//! Invariants:
//! - the child sees exactly `PATH`, `LANG=C`, `LC_ALL=C`, `HOME` and the
//!   variables the caller names; nothing of the host's environment; a
//!   command cannot set `PATH` itself;
//! - a program named by path runs only from beneath the build directory or
//!   the project (resolved by the kernel, links included); host programs
//!   come only through the allow-list in `PATH`;
//! - with a `sandbox`, the command runs inside it (see `sandbox`): writes
//!   confined to the build directory, no network, nothing left running;
//! - stdin is `/dev/null`; stdout and stderr go to the package's log (which is
//!   only ever appended to), each command preceded by a `$ command` header;
//! - the child runs in a process group of its own; when it exits, or when the
//!   interrupt flag is set, nothing it started is left running.

use crate::confine::AccessPolicy;
use crate::interrupt::{self, Interrupt};
use crate::sandbox::Sandbox;
use camino::{Utf8Path, Utf8PathBuf};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// How often a waiting airlock looks at the interrupt flag.
const POLL: Duration = Duration::from_millis(50);

/// How many lines of the log a failure shows.
pub const TAIL_LINES: usize = 20;

/// A sealed environment for build commands.
#[derive(Clone, Debug, Default)]
pub struct Airlock {
    /// The only directories searched for programs, in order: `PATH` inside
    /// the airlock is exactly these, joined with `:`.
    pub path: Vec<Utf8PathBuf>,
    /// Variables every command gets (the target's `CC`, `CROSS_COMPILE`, ...).
    /// `HOME` and `TMPDIR` may be given here too: without `HOME`, a command's
    /// `HOME` is its working directory, so nothing reads the user's dotfiles;
    /// without `TMPDIR`, tools use their default (`/tmp`).
    pub env: BTreeMap<String, String>,
    /// Checked while a command runs; when set, the command's whole process
    /// group is killed.
    pub interrupt: Interrupt,
    /// The kernel-enforced sandbox commands run in (`None`: none, for
    /// library use and tests of the airlock alone).
    pub sandbox: Option<Arc<Sandbox>>,
    /// Where programs named by path may come from (the build directory and
    /// the project) and where logs are written (`None`: anywhere).
    pub policy: Option<Arc<AccessPolicy>>,
    /// The run's job budget: each command holds a slot while it runs, and
    /// every `make` shares the rest (`None`: no budget).
    pub jobserver: Option<Arc<crate::jobserver::Jobserver>>,
    /// `-v`: the command's output goes to the terminal (stderr) too, as it
    /// comes, besides the log.
    pub verbose: bool,
}

/// One command to run in the airlock.
#[derive(Clone, Debug, Default)]
pub struct Command {
    /// Program and arguments. A program without a `/` is looked up only in
    /// the airlock's `path`; one with a `/` is taken relative to `cwd`.
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: Utf8PathBuf,
    /// Variables for this command only, applied after the airlock's.
    pub env: BTreeMap<String, String>,
    /// The log the command's output is appended to (created with its parent
    /// directories if missing).
    pub log: Utf8PathBuf,
    /// The package the command builds, for messages.
    pub package: String,
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "`{program}` not found for package `{package}`: it is not on the host-tools allow-list or not installed (searched {searched}); add it to the allow-list or build it as a host tool"
    )]
    NotFound {
        program: String,
        package: String,
        searched: String,
    },

    #[error("package `{package}` gave an empty command; expected at least a program name")]
    EmptyCommand { package: String },

    #[error(
        "`{program}` is named by path for package `{package}`, but it is not beneath the build directory or the project ({why}); run host programs by their bare name (the host-tools allow-list), or build them"
    )]
    NotAllowed {
        program: String,
        package: String,
        why: String,
    },

    #[error(
        "package `{package}` sets `PATH` for `{command}`; the airlock's PATH is fixed (its host tools, the cross compiler): add the program to the host-tools list instead"
    )]
    PathOverride { package: String, command: String },

    #[error("cannot sandbox `{command}` for package `{package}`: {message}")]
    Sandbox {
        package: String,
        command: String,
        message: String,
    },

    #[error("could not start `{command}` for package `{package}` in {cwd}: {source}")]
    Spawn {
        package: String,
        command: String,
        cwd: Utf8PathBuf,
        source: io::Error,
    },

    #[error("could not write the log {log} for package `{package}`: {source}")]
    Log {
        package: String,
        log: Utf8PathBuf,
        source: io::Error,
    },

    #[error(
        "`{command}` failed for package `{package}`: expected exit status 0, got {}; full log: {log}{}",
        describe_status(status),
        render_tail(tail, " (empty)")
    )]
    Failed {
        package: String,
        command: String,
        status: ExitStatus,
        log: Utf8PathBuf,
        tail: String,
    },

    #[error(
        "`{command}` for package `{package}` was interrupted; its process group was killed (log: {log})"
    )]
    Interrupted {
        package: String,
        command: String,
        log: Utf8PathBuf,
    },
}

/// ", which ends:" and the tail's lines indented, or `empty` when there
/// is nothing to show; the ending of every "...; full log: PATH" message.
pub fn render_tail(tail: &str, empty: &str) -> String {
    if tail.is_empty() {
        empty.to_string()
    } else {
        let mut out = String::from(", which ends:");
        for line in tail.lines() {
            out.push_str("\n    ");
            out.push_str(line);
        }
        out
    }
}

/// "exit status 2" or "signal 9 (killed)".
pub fn describe_status(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exit status {code}")
    } else if let Some(sig) = status.signal() {
        format!("signal {sig}")
    } else {
        status.to_string()
    }
}

/// Quote one word for a POSIX shell, leaving plain words untouched.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command line as a shell would accept it.
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_executable_file(path: &Utf8Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Where stdout goes.
enum Capture {
    Log,
    Pipe,
    /// The user's terminal: standard input, output and error inherited,
    /// in rhbuild's own process group (so the terminal's foreground).
    Terminal,
}

impl Airlock {
    /// Run `cmd` to completion. Succeeds only on exit status 0.
    pub fn run(&self, cmd: &Command) -> Result<(), RunError> {
        self.execute(cmd, Capture::Log).map(|_| ())
    }

    /// Run `cmd` to completion, as `run`, and return the CPU time it and
    /// the processes it waited for spent, in seconds (user and system).
    pub fn run_measured(&self, cmd: &Command) -> Result<f64, RunError> {
        self.execute(cmd, Capture::Log).map(|(_, cpu)| cpu)
    }

    /// Run `cmd` and return its stdout (lossily decoded as UTF-8); stderr goes
    /// to the log. For probes such as `gcc -print-file-name=libc.a`.
    pub fn output(&self, cmd: &Command) -> Result<String, RunError> {
        self.execute(cmd, Capture::Pipe).map(|(out, _)| out)
    }

    /// Run `cmd` on the user's terminal (a configuration menu): still in
    /// the airlock and its sandbox, with `TERM` passed through.
    pub fn run_on_terminal(&self, cmd: &Command) -> Result<(), RunError> {
        self.execute(cmd, Capture::Terminal).map(|_| ())
    }

    /// The `PATH` value inside the airlock.
    pub fn path_var(&self) -> String {
        self.path
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Resolve a program name the way the airlock does: a name with a `/` is
    /// taken relative to `cwd`; a bare name is searched only in `self.path`.
    pub fn resolve(&self, program: &str, cwd: &Utf8Path) -> Option<Utf8PathBuf> {
        if program.contains('/') {
            Some(cwd.join(program))
        } else {
            self.path
                .iter()
                .map(|dir| dir.join(program))
                .find(|p| is_executable_file(p))
        }
    }

    /// A program named by path: its directory is resolved by the kernel
    /// beneath the build directory or the project, and the file must be
    /// there. A link there may lead to a host program: that is how the
    /// host-tools allow-list works (links in `build/<arch>/host/bin`), and
    /// the compiler wrapper is a link to rhbuild itself. Returns the path
    /// to execute, or why it is refused.
    fn program_by_path(&self, path: &Utf8Path) -> Result<Utf8PathBuf, String> {
        let Some(policy) = &self.policy else {
            return Ok(path.to_owned());
        };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err("it names no file".to_string());
        };
        for root in [policy.build(), policy.project()] {
            if let Some(rel) = root.relative(parent) {
                let dir = root.real_path(&rel).map_err(|e| e.to_string())?;
                let rel_file = rel.join(name);
                return match root.exists(&rel_file) {
                    Ok(true) => Ok(dir.join(name)),
                    Ok(false) => Err("it does not exist".to_string()),
                    Err(e) => Err(e.to_string()),
                };
            }
        }
        Err("it lies elsewhere".to_string())
    }

    /// The complete environment a command gets.
    pub fn environment(&self, cmd: &Command) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), self.path_var());
        env.insert("LANG".to_string(), "C".to_string());
        env.insert("LC_ALL".to_string(), "C".to_string());
        env.insert("HOME".to_string(), cmd.cwd.to_string());
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.extend(cmd.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    fn execute(&self, cmd: &Command, capture: Capture) -> Result<(String, f64), RunError> {
        let package = cmd.package.clone();
        let command = shell_join(&cmd.argv);
        let program = cmd.argv.first().ok_or_else(|| RunError::EmptyCommand {
            package: package.clone(),
        })?;
        if cmd.env.contains_key("PATH") {
            return Err(RunError::PathOverride { package, command });
        }
        let resolved = self
            .resolve(program, &cmd.cwd)
            .ok_or_else(|| RunError::NotFound {
                program: program.clone(),
                package: package.clone(),
                searched: if self.path.is_empty() {
                    "an empty PATH".to_string()
                } else {
                    self.path_var()
                },
            })?;
        let resolved = if program.contains('/') {
            self.program_by_path(&resolved)
                .map_err(|why| RunError::NotAllowed {
                    program: program.clone(),
                    package: package.clone(),
                    why,
                })?
        } else {
            resolved
        };
        if let Some(sandbox) = &self.sandbox {
            sandbox.status().map_err(|message| RunError::Sandbox {
                package: package.clone(),
                command: command.clone(),
                message,
            })?;
        }

        // A slot of the run's job budget for as long as the command runs.
        let _slot = match &self.jobserver {
            Some(js) => Some(
                js.acquire(&self.interrupt)
                    .map_err(|_| RunError::Interrupted {
                        package: package.clone(),
                        command: command.clone(),
                        log: cmd.log.clone(),
                    })?,
            ),
            None => None,
        };
        let log_error = |source| RunError::Log {
            package: package.clone(),
            log: cmd.log.clone(),
            source,
        };
        let mut log = self.open_log(&cmd.log).map_err(log_error)?;
        writeln!(log, "$ {command}    # in {}", cmd.cwd).map_err(log_error)?;

        let mut child_cmd = match &self.sandbox {
            Some(sandbox) => sandbox.command(program, &resolved, &cmd.argv[1..]),
            None => {
                let mut c = std::process::Command::new(resolved.as_std_path());
                c.arg0(program).args(&cmd.argv[1..]);
                c
            }
        };
        let mut env = self.environment(cmd);
        if let Some(js) = &self.jobserver {
            env.entry("MAKEFLAGS".into())
                .or_insert_with(|| js.makeflags());
            let fds = js.fds();
            // SAFETY: between fork and exec only fcntl(2), which is
            // async-signal-safe, on two descriptors the child inherits.
            unsafe {
                child_cmd.pre_exec(move || {
                    for fd in fds {
                        let flags = libc::fcntl(fd, libc::F_GETFD);
                        if flags >= 0 {
                            libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                        }
                    }
                    Ok(())
                });
            }
        }
        // With -v the output passes through a pipe that a thread copies to
        // the log and the terminal; otherwise straight into the log.
        let (sink, tee): (File, Option<std::thread::JoinHandle<()>>) = if self.verbose {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| log_error(e.into()))?;
            let mut to_log = log.try_clone().map_err(log_error)?;
            let t = std::thread::spawn(move || {
                let mut r = File::from(r);
                let mut buf = [0u8; 8192];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let _ = to_log.write_all(&buf[..n]);
                    let _ = io::stderr().write_all(&buf[..n]);
                }
            });
            (File::from(w), Some(t))
        } else {
            (log.try_clone().map_err(log_error)?, None)
        };
        if matches!(capture, Capture::Terminal)
            && let Ok(term) = std::env::var("TERM")
        {
            env.insert("TERM".into(), term);
        }
        child_cmd.current_dir(&cmd.cwd).env_clear().envs(env);
        match capture {
            Capture::Terminal => child_cmd
                .stdin(Stdio::inherit())
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit()),
            _ => child_cmd
                .stdin(Stdio::null())
                .stderr(sink.try_clone().map_err(log_error)?)
                .process_group(0),
        };
        match capture {
            Capture::Log => child_cmd.stdout(sink.try_clone().map_err(log_error)?),
            Capture::Pipe => child_cmd.stdout(Stdio::piped()),
            Capture::Terminal => &mut child_cmd,
        };
        let mut child = child_cmd.spawn().map_err(|source| RunError::Spawn {
            package: package.clone(),
            command: command.clone(),
            cwd: cmd.cwd.clone(),
            source,
        })?;
        drop(child_cmd);

        let reader = child.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = out.read_to_end(&mut buf);
                buf
            })
        });

        drop(sink);
        let started = std::time::Instant::now();
        let outcome = if matches!(capture, Capture::Terminal) {
            // Ctrl-C reaches it with rhbuild: it shares the terminal's group.
            child.wait().map(|s| (s, 0.0)).map_err(Waited::Io)
        } else {
            wait_group(&mut child, &self.interrupt)
        };
        let captured = reader
            .map(|r| r.join().unwrap_or_default())
            .unwrap_or_default();
        if let Some(t) = tee {
            let _ = t.join();
        }
        // Each command's time in the log, to see where a build's time went
        // (after the tail an error shows is taken).
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok((status, cpu)) if status.success() => {
                let _ = writeln!(log, "# done in {seconds:.1} s, CPU {cpu:.1} s");
                Ok((String::from_utf8_lossy(&captured).into_owned(), cpu))
            }
            Ok((status, _)) => {
                let tail = crate::fsutil::tail_of_file(&cmd.log, TAIL_LINES).unwrap_or_default();
                let _ = writeln!(log, "# {status} after {seconds:.1} s");
                Err(RunError::Failed {
                    package,
                    command,
                    status,
                    log: cmd.log.clone(),
                    tail,
                })
            }
            Err(Waited::Interrupted) => {
                let _ = writeln!(log, "*** interrupted: process group killed");
                Err(RunError::Interrupted {
                    package,
                    command,
                    log: cmd.log.clone(),
                })
            }
            Err(Waited::Io(source)) => Err(RunError::Spawn {
                package,
                command,
                cwd: cmd.cwd.clone(),
                source,
            }),
        }
    }
}

impl Airlock {
    /// Open a log for appending: beneath the build directory through the
    /// access policy (never through a link), elsewhere as given.
    fn open_log(&self, path: &Utf8Path) -> io::Result<File> {
        if let Some(policy) = &self.policy {
            return policy.append(path);
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        OpenOptions::new().create(true).append(true).open(path)
    }
}

enum Waited {
    Interrupted,
    Io(io::Error),
}

/// True when `pid` has exited but is not reaped yet (so its pid, and the
/// process group id it leads, cannot be reused while we act on them).
fn exited_unreaped(pid: u32) -> io::Result<bool> {
    // SAFETY: waitid writes only into `info`, which we own; WNOWAIT leaves the
    // child waitable for std's wait().
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(info.si_pid() != 0)
    }
}

/// The CPU time, in seconds, of the exited but unreaped process `pid` and
/// of the children it waited for (`/proc/<pid>/stat`: utime, stime,
/// cutime, cstime); 0 when it cannot be read.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name, which may hold spaces and ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        0.0
    } else {
        ticks as f64 / hz as f64
    }
}

/// Wait for a child that leads its own process group, polling `interrupt`.
/// Whatever way it ends, the rest of its group is killed before the leader is
/// reaped, so no stray process keeps running or holds a pipe open. Returns
/// its status and CPU time (see `cpu_seconds`).
fn wait_group(child: &mut Child, interrupt: &Interrupt) -> Result<(ExitStatus, f64), Waited> {
    let pid = child.id();
    loop {
        if interrupt.is_set() {
            interrupt::kill_group(pid);
            let _ = child.wait();
            return Err(Waited::Interrupted);
        }
        match exited_unreaped(pid) {
            Ok(true) => {
                let cpu = cpu_seconds(pid);
                // SAFETY: kill(2) on the group the unreaped leader still owns.
                unsafe {
                    libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
                }
                return child.wait().map(|s| (s, cpu)).map_err(Waited::Io);
            }
            Ok(false) => std::thread::sleep(POLL),
            Err(e) => return Err(Waited::Io(e)),
        }
    }
}

// ---------------------------------------------------------------------------
// Host programs: the one place the host's PATH is searched.

/// The absolute directories of a `PATH` value, in order.
pub fn path_dirs(path_var: &str) -> Vec<Utf8PathBuf> {
    path_var
        .split(':')
        .map(Utf8PathBuf::from)
        .filter(|d| d.is_absolute())
        .collect()
}

/// The host's `PATH` directories, then the system directories a normal
/// user's `PATH` lacks (`/usr/sbin`, `/sbin`).
pub fn host_dirs() -> Vec<Utf8PathBuf> {
    let mut dirs = path_dirs(&std::env::var("PATH").unwrap_or_default());
    for extra in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let e = Utf8PathBuf::from(extra);
        if !dirs.contains(&e) {
            dirs.push(e);
        }
    }
    dirs
}

/// A host program: `name` when it is a path to a file, else the first
/// executable file of that name in `dirs`.
pub fn host_program_in(name: &str, dirs: &[Utf8PathBuf]) -> Option<Utf8PathBuf> {
    if name.contains('/') {
        let p = Utf8PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| is_executable_file(p))
}

/// A host program through the host's `PATH` (and the sbin directories).
pub fn host_program(name: &str) -> Option<Utf8PathBuf> {
    host_program_in(name, &host_dirs())
}

/// Host programs in `dirs` whose names start with `prefix`; the first
/// directory holding a name wins.
pub fn host_programs_with_prefix(prefix: &str, dirs: &[Utf8PathBuf]) -> Vec<(String, Utf8PathBuf)> {
    let mut found: BTreeMap<String, Utf8PathBuf> = BTreeMap::new();
    for dir in dirs {
        let Ok(rd) = fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let p = dir.join(&name);
            if name.starts_with(prefix) && is_executable_file(&p) {
                found.entry(name).or_insert(p);
            }
        }
    }
    found.into_iter().collect()
}

/// What identifies a host program for a rebuild decision: the file its
/// path leads to, with that file's size and modification time (an
/// upgraded compiler differs in one of them).
pub fn program_identity(path: &Utf8Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let real = fs::canonicalize(path).ok()?;
    let m = fs::metadata(&real).ok()?;
    Some(format!(
        "{} size={} mtime={}.{}",
        real.display(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// The host-tools list resolved: `name=/path` entries for
/// `populate_host_bin`, and the optional names not found. Names may end
/// in `*` to take every program with that prefix; `name=/path` links under
/// another name. The required names not found are the error.
pub fn resolve_host_tools(
    names: &[String],
    optional: &[String],
    dirs: &[Utf8PathBuf],
) -> Result<(Vec<String>, Vec<String>), Vec<String>> {
    let mut tools: Vec<String> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    let mut optional_missing: Vec<String> = Vec::new();
    for (list, is_optional) in [(names, false), (optional, true)] {
        for n in list {
            let found: Vec<(String, Utf8PathBuf)> = if let Some(prefix) = n.strip_suffix('*') {
                host_programs_with_prefix(prefix, dirs)
            } else {
                match n.split_once('=') {
                    Some((a, b)) => vec![(a.to_string(), Utf8PathBuf::from(b))],
                    None => host_program_in(n, dirs)
                        .map(|p| (n.clone(), p))
                        .into_iter()
                        .collect(),
                }
            };
            if found.is_empty() {
                if is_optional {
                    optional_missing.push(n.clone());
                } else {
                    missing.push(n.clone());
                }
            }
            tools.extend(found.into_iter().map(|(name, p)| format!("{name}={p}")));
        }
    }
    if missing.is_empty() {
        Ok((tools, optional_missing))
    } else {
        Err(missing)
    }
}

/// Fill `bin` with symlinks to host programs, for use as an airlock `path`
/// entry.
///
/// Each entry of `tools` is either `name` (resolved in `host_path`, the host's
/// `PATH`, to the first executable file of that name) or `name=/abs/path`
/// (linked under `name` whatever the target is called). The directory is
/// built as `bin` + `.part` and then swapped into place, replacing an older
/// `bin`, so a half-filled `bin` is never visible.
///
/// Returns the names that could not be found (the caller decides whether that
/// is fatal). A malformed or repeated entry is an `InvalidInput` error.
pub fn populate_host_bin(
    bin: &Utf8Path,
    tools: &[String],
    host_path: &str,
) -> io::Result<Vec<String>> {
    let part = Utf8PathBuf::from(format!("{bin}.part"));
    let own = [bin.to_path_buf(), part.clone()];
    let dirs: Vec<&Utf8Path> = host_path
        .split(':')
        .map(Utf8Path::new)
        .filter(|d| d.is_absolute() && !own.iter().any(|o| o == d))
        .collect();

    let mut wanted: Vec<(&str, Option<&Utf8Path>)> = Vec::new();
    for tool in tools {
        let (name, target) = match tool.split_once('=') {
            Some((name, target)) => (name, Some(Utf8Path::new(target))),
            None => (tool.as_str(), None),
        };
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(invalid(format!(
                "host tool `{tool}`: expected a program name without `/`, optionally followed by `=/absolute/path`"
            )));
        }
        if target.is_some_and(|t| !t.is_absolute()) {
            return Err(invalid(format!(
                "host tool `{tool}`: expected an absolute path after `=`"
            )));
        }
        if wanted.iter().any(|(n, _)| *n == name) {
            return Err(invalid(format!(
                "host tool `{name}` is listed twice; expected each name once"
            )));
        }
        wanted.push((name, target));
    }

    // Everything below happens beneath `bin`'s parent, resolved by the
    // kernel (see `confine`): no link there carries a write elsewhere.
    let (Some(parent), Some(name)) = (bin.parent(), bin.file_name()) else {
        return Err(invalid(format!("`{bin}` names no directory")));
    };
    let root = crate::confine::Root::create(parent)?;
    let part_rel = Utf8PathBuf::from(format!("{name}.part"));
    root.remove_all(&part_rel, None)?;
    root.mkdir(&part_rel, 0o755)?;
    let mut missing = Vec::new();
    for (name, target) in wanted {
        let found = match target {
            Some(t) => Some(t.to_path_buf()).filter(|t| is_executable_file(t)),
            None => dirs
                .iter()
                .map(|d| d.join(name))
                .find(|p| is_executable_file(p)),
        };
        match found {
            Some(target) => root.symlink(target.as_str(), &part_rel.join(name))?,
            None => missing.push(name.to_string()),
        }
    }
    root.replace_dir(&part_rel, Utf8Path::new(name))?;
    Ok(missing)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("make"), "make");
        assert_eq!(shell_quote("CC=sh4-gcc -O2"), "'CC=sh4-gcc -O2'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(
            shell_join(&["sh".into(), "-c".into(), "echo $HOME".into()]),
            "sh -c 'echo $HOME'"
        );
    }

    #[test]
    fn environment_is_built_from_scratch() {
        let airlock = Airlock {
            path: vec!["/b/host/bin".into(), "/cross/bin".into()],
            env: [("CC".to_string(), "sh4-gcc".to_string())].into(),
            ..Airlock::default()
        };
        let cmd = Command {
            argv: vec!["make".into()],
            cwd: "/b/src".into(),
            env: [("LANG".to_string(), "C.UTF-8".to_string())].into(),
            ..Command::default()
        };
        let env = airlock.environment(&cmd);
        let expected: BTreeMap<String, String> = [
            ("PATH", "/b/host/bin:/cross/bin"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C"),
            ("HOME", "/b/src"),
            ("CC", "sh4-gcc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, expected);
    }
}
