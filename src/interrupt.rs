//! Ctrl-C and friends. Build commands and QEMU run in process groups of
//! their own, so the terminal's SIGINT reaches only rhbuild; whoever waits on
//! a child polls this flag and kills the child's whole group when it is set.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag that SIGINT, SIGTERM and SIGHUP set. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
}

impl Interrupt {
    /// A flag no signal sets (for tests and library use).
    pub fn new() -> Self {
        Self::default()
    }

    /// A flag wired to SIGINT, SIGTERM and SIGHUP.
    pub fn from_signals() -> std::io::Result<Self> {
        let me = Self::new();
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            signal_hook::flag::register(sig, Arc::clone(&me.flag))?;
        }
        Ok(me)
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub fn set(&self) {
        self.flag.store(true, Ordering::SeqCst)
    }
}

/// Kill a process group: SIGTERM, a short grace period, then SIGKILL.
pub fn kill_group(pgid: u32) {
    let pgid = pgid as libc::pid_t;
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
    unsafe {
        libc::kill(-pgid, libc::SIGTERM);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// A reader that fails once the interrupt flag is set, so that hashing or
/// copying a large file stops promptly on Ctrl-C. (The error is not
/// `ErrorKind::Interrupted`, which readers retry.)
pub struct Checked<R> {
    pub inner: R,
    pub interrupt: Interrupt,
}

impl<R: std::io::Read> std::io::Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.interrupt.is_set() {
            return Err(std::io::Error::other("interrupted"));
        }
        self.inner.read(buf)
    }
}

/// What a captured child left.
pub struct Captured {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a captured child did not finish.
#[derive(Debug)]
pub enum Stopped {
    /// The interrupt flag was set; the child's process group was killed.
    Interrupted,
    /// The deadline passed; the child's process group was killed.
    Deadline,
    Io(std::io::Error),
}

/// Run `cmd` in a process group of its own with stdout and stderr
/// captured, polling `interrupt` and `deadline`: on either, the whole group
/// is killed. stdin is /dev/null.
pub fn run_captured(
    cmd: &mut std::process::Command,
    interrupt: Option<&Interrupt>,
    deadline: Option<std::time::Instant>,
) -> Result<Captured, Stopped> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(Stopped::Io)?;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let status = loop {
        if let Some(status) = child.try_wait().map_err(Stopped::Io)? {
            break status;
        }
        let why = if interrupt.is_some_and(Interrupt::is_set) {
            Some(Stopped::Interrupted)
        } else if deadline.is_some_and(|d| std::time::Instant::now() > d) {
            Some(Stopped::Deadline)
        } else {
            None
        };
        if let Some(why) = why {
            kill_group(child.id());
            let _ = child.wait();
            return Err(why);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Ok(Captured {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}
