//! The sandbox every build command runs in, enforced by the kernel.
//!
//! A command runs through `rhbuild __sandbox OPTIONS -- PROGRAM ARGS`: the
//! binary itself, started under that hidden name, confines itself and then
//! executes the program. Confining a fresh, single-threaded process is
//! simpler and safer than doing it between `fork` and `exec` of a
//! multi-threaded one. What it sets up, each part best effort unless the
//! run demands all of it (`--sandbox require`):
//!
//! - **Landlock**: the whole system readable and executable; writes, file
//!   creation, removal, renames and truncation only beneath the directories
//!   given (a stage's output, its side's work and temporary directories,
//!   `TMPDIR` naming the latter, and ccache's: see `stage::Run::frame_sandbox`;
//!   `/tmp` itself is not writable); `/dev/null` and a
//!   few harmless devices writable; no TCP bind or connect (ABI 4); no
//!   signal to, or abstract socket of, anything outside (ABI 6).
//! - **Namespaces** (a user namespace first where the caller is not root):
//!   an empty network namespace (not even loopback is up), a mount
//!   namespace where `/run` is an empty tmpfs (the host's daemons' sockets
//!   live there: Landlock before ABI 9 does not confine connecting to a
//!   socket by its path), and a
//!   PID namespace whose first process reaps the command's children: when
//!   the command ends, nothing it started is left running.
//!
//! Landlock ABI 1 cannot allow renames across directories, which every
//! `make install` does, so it is not used below ABI 2. What the kernel does
//! not grant is reported by `Sandbox::status` (probed once per run by
//! running the same set-up with `--probe`) and recorded in each manifest.
//!
//! `RHBUILD_SANDBOX_DENY=landlock,userns,netns,mountns,pidns` pretends the
//! kernel lacks those features, and `RHBUILD_SANDBOX_ABI=N` pretends its
//! Landlock ABI is N (the run reads them and passes them to the helper as
//! `--deny` and `--abi`): test aids that can only weaken the sandbox,
//! which the run then says and records like any other gap.
//!
//! Tests: the sandbox rows of `tests/faults.rs` (a package that writes
//! /tmp and outside, connects to 127.0.0.1, leaves a daemon behind, runs on
//! a pretended older kernel) and the unit tests below.

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

/// The hidden subcommand name.
pub const SUBCOMMAND: &str = "__sandbox";

/// How much confinement a run asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Level {
    /// Everything the kernel offers; what it lacks is said once and recorded.
    #[default]
    Auto,
    /// Everything, or the run fails before the first command.
    Require,
    /// No sandbox (said on every run and recorded in each manifest).
    Off,
}

/// What the set-up achieved, as the probe reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The Landlock ABI the kernel offers (0: none).
    pub landlock_abi: i32,
    /// Whether the Landlock ruleset was enforced (ABI 2 or later).
    pub landlock: bool,
    pub user_ns: bool,
    pub net_ns: bool,
    pub mount_ns: bool,
    pub pid_ns: bool,
    /// Set when the sandbox is off altogether.
    #[serde(default)]
    pub off: bool,
    /// The TCP servers commands may reach (`DISTCC_HOSTS`), as
    /// `address:port`.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Whether they are reached through ports forwarded into the network
    /// namespace (else directly, when there is no namespace).
    #[serde(default)]
    pub forwarded: bool,
}

impl Status {
    /// The protections missing, in words, for the run's warning.
    pub fn gaps(&self) -> Vec<String> {
        if self.off {
            return vec!["the sandbox is off (--sandbox off): build commands can write anywhere the user can and reach the network".into()];
        }
        let mut gaps = Vec::new();
        if !self.landlock {
            gaps.push(match self.landlock_abi {
                0 => "writes are not confined to the build directory: the kernel has no Landlock".to_string(),
                1 => "writes are not confined to the build directory: Landlock ABI 1 cannot allow renames across directories, which builds need".to_string(),
                _ => "writes are not confined to the build directory: Landlock could not be enforced".to_string(),
            });
        } else if self.landlock_abi < 3 {
            gaps.push(format!(
                "truncate(2) of files outside the build directory is not confined (Landlock ABI {} < 3)",
                self.landlock_abi
            ));
        }
        if !self.net_ns {
            if self.landlock && self.landlock_abi >= 4 && !self.servers.is_empty() {
                let ports: Vec<&str> = self
                    .servers
                    .iter()
                    .filter_map(|s| s.rsplit(':').next())
                    .collect();
                gaps.push(format!(
                    "no network namespace: build commands reach the distcc servers directly, and Landlock lets them connect to TCP port {} on any address; UDP and unix sockets are not confined",
                    ports.join(", ")
                ));
            } else if self.landlock && self.landlock_abi >= 4 {
                gaps.push("no network namespace: TCP is denied by Landlock, but UDP and unix sockets are not".into());
            } else {
                gaps.push("no network namespace: build commands can reach the network".into());
            }
        } else if !self.servers.is_empty() && !self.forwarded {
            gaps.push("the distcc servers are not forwarded into the network namespace: compiles stay here".into());
        }
        if !self.mount_ns {
            gaps.push("no mount namespace: the host's sockets under /run are reachable".into());
        }
        if !self.pid_ns {
            gaps.push("no PID namespace: a process a command leaves running in another session can outlive it".into());
        }
        gaps
    }

    /// What a server's sandbox (`Sandbox::serving`) lacks here, in words:
    /// it has no network namespace by design, so its network confinement
    /// is Landlock's alone.
    pub fn server_gaps(&self) -> Vec<String> {
        if self.off {
            return vec!["the sandbox is off (--sandbox off)".into()];
        }
        let mut gaps = Vec::new();
        if !self.landlock {
            gaps.push("its writes are not confined: no Landlock".to_string());
        }
        if !self.landlock || self.landlock_abi < 4 {
            gaps.push(format!(
                "it can connect anywhere over TCP (Landlock ABI {} < 4)",
                self.landlock_abi
            ));
        }
        gaps
    }

    /// One line for manifests and `rhbuild` output.
    pub fn summary(&self) -> String {
        if self.off {
            return "off".into();
        }
        let mut parts = Vec::new();
        if self.landlock {
            parts.push(format!("landlock abi {}", self.landlock_abi));
        } else {
            parts.push(format!("no landlock (abi {})", self.landlock_abi));
        }
        for (on, name) in [
            (self.user_ns, "userns"),
            (self.net_ns, "netns"),
            (self.mount_ns, "mountns"),
            (self.pid_ns, "pidns"),
        ] {
            if on {
                parts.push(name.to_string());
            }
        }
        if !self.servers.is_empty() {
            let how = if self.forwarded {
                "forwarded"
            } else {
                "direct"
            };
            parts.push(format!("tcp to {} ({how})", self.servers.join(" ")));
        }
        let verdict = if self.gaps().is_empty() {
            "full"
        } else {
            "partial"
        };
        format!("{verdict}: {}", parts.join(", "))
    }
}

/// The sandbox of one run: where commands may write, and how strict it is.
#[derive(Debug)]
pub struct Sandbox {
    pub level: Level,
    /// Directories commands may write beneath (see
    /// `stage::Run::frame_sandbox`).
    pub writable: Vec<Utf8PathBuf>,
    /// The rhbuild binary that sets the sandbox up.
    pub exe: Utf8PathBuf,
    /// Features to pretend the kernel lacks (`RHBUILD_SANDBOX_DENY`).
    deny: Option<String>,
    /// A Landlock ABI to pretend (`RHBUILD_SANDBOX_ABI`).
    abi: Option<String>,
    /// The TCP servers commands may reach, each through a port on the
    /// network namespace's loopback (`DISTCC_HOSTS`).
    forwards: Vec<Forward>,
    /// A server's sandbox (`serving`): the TCP port it listens on, in the
    /// host's network namespace; it connects nowhere.
    listen: Option<u16>,
    /// What the kernel grants, probed once and shared by the narrower
    /// sandboxes made from this one (`writing`).
    status: Arc<OnceLock<Result<Status, String>>>,
}

/// A server build commands may reach: inside the sandbox's network
/// namespace it listens on `127.0.0.1:local`; a process outside the
/// namespace accepts those connections and connects to `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub local: u16,
    pub target: std::net::SocketAddrV4,
}

impl Forward {
    /// `LOCAL=ADDRESS:PORT`, as the helper's `--forward` takes it.
    pub fn arg(&self) -> String {
        format!("{}={}", self.local, self.target)
    }

    pub fn parse(arg: &str) -> Result<Forward, String> {
        let bad = || format!("--forward `{arg}`: expected LOCALPORT=IPV4:PORT");
        let (local, target) = arg.split_once('=').ok_or_else(bad)?;
        Ok(Forward {
            local: local.parse().map_err(|_| bad())?,
            target: target.parse().map_err(|_| bad())?,
        })
    }
}

impl Sandbox {
    pub fn new(level: Level, writable: Vec<Utf8PathBuf>) -> std::io::Result<Sandbox> {
        let exe = std::env::current_exe()?;
        let exe = Utf8PathBuf::from_path_buf(exe)
            .map_err(|p| std::io::Error::other(format!("`{}` is not UTF-8", p.display())))?;
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(Sandbox {
            level,
            writable,
            exe,
            deny: var("RHBUILD_SANDBOX_DENY"),
            abi: var("RHBUILD_SANDBOX_ABI"),
            forwards: Vec::new(),
            listen: None,
            status: Arc::new(OnceLock::new()),
        })
    }

    /// Let commands reach these servers (and no other), each through its
    /// port on the namespace's loopback (see `Forward`).
    pub fn with_forwards(mut self, forwards: Vec<Forward>) -> Sandbox {
        self.forwards = forwards;
        self
    }

    /// The same sandbox with commands writing beneath `writable` only
    /// (one target's directory, say, rather than the whole build
    /// directory). The kernel is not probed again.
    pub fn writing(&self, writable: Vec<Utf8PathBuf>) -> Sandbox {
        Sandbox {
            level: self.level,
            writable,
            exe: self.exe.clone(),
            deny: self.deny.clone(),
            abi: self.abi.clone(),
            forwards: self.forwards.clone(),
            listen: self.listen,
            status: self.status.clone(),
        }
    }

    /// The sandbox of a server for guests (distccd): it writes beneath
    /// `writable` only, listens on TCP `port` in the host's network
    /// namespace (where the guest's forwarded connections arrive) and
    /// connects nowhere; no servers are forwarded to it.
    pub fn serving(&self, writable: Vec<Utf8PathBuf>, port: u16) -> Sandbox {
        Sandbox {
            forwards: Vec::new(),
            listen: Some(port),
            ..self.writing(writable)
        }
    }

    /// What the kernel grants, probed once (by running the set-up with
    /// `--probe`). With `--sandbox require`, any gap is an error.
    pub fn status(&self) -> Result<Status, String> {
        self.status
            .get_or_init(|| {
                if self.level == Level::Off {
                    let status = Status {
                        off: true,
                        ..Status::default()
                    };
                    eprintln!("warning: {} (recorded in each manifest)", status.gaps().join("; "));
                    return Ok(status);
                }
                let out = std::process::Command::new(&self.exe)
                    .args(self.helper_args(true))
                    .env_clear()
                    .stdin(std::process::Stdio::null())
                    .output()
                    .map_err(|e| format!("cannot start `{}` to set up the sandbox: {e}", self.exe))?;
                let text = String::from_utf8_lossy(&out.stdout);
                let status: Status = serde_json::from_str(text.trim()).map_err(|_| {
                    format!(
                        "the sandbox probe failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )
                })?;
                let gaps = status.gaps();
                if self.level == Level::Require && !gaps.is_empty() {
                    return Err(format!(
                        "the sandbox cannot be fully enforced on this machine (--sandbox require):\n  - {}\nrun with `--sandbox auto` to build with what the kernel offers",
                        gaps.join("\n  - ")
                    ));
                }
                if !gaps.is_empty() {
                    eprintln!(
                        "warning: build commands run in a partial sandbox on this machine (recorded in each manifest):\n  - {}",
                        gaps.join("\n  - ")
                    );
                }
                Ok(status)
            })
            .clone()
    }

    fn helper_args(&self, probe: bool) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![SUBCOMMAND.into()];
        for w in &self.writable {
            args.push("--write".into());
            args.push(w.as_str().into());
        }
        if self.level == Level::Require {
            args.push("--require".into());
        }
        if let Some(d) = &self.deny {
            args.push("--deny".into());
            args.push(d.into());
        }
        if let Some(a) = &self.abi {
            args.push("--abi".into());
            args.push(a.into());
        }
        for f in &self.forwards {
            args.push("--forward".into());
            args.push(f.arg().into());
        }
        if let Some(port) = self.listen {
            args.push("--listen".into());
            args.push(port.to_string().into());
        }
        if probe {
            args.push("--probe".into());
        }
        args
    }

    /// The status, when a command already asked for it.
    pub fn probed(&self) -> Option<Status> {
        self.status.get().and_then(|r| r.as_ref().ok()).cloned()
    }

    /// A command that runs `program` (an absolute path) with `args` inside
    /// the sandbox; `arg0` is what the program sees as its name. With the
    /// sandbox off, the program itself.
    pub fn command(
        &self,
        arg0: &str,
        program: &Utf8Path,
        args: &[String],
    ) -> std::process::Command {
        if self.level == Level::Off {
            let mut c = std::process::Command::new(program.as_std_path());
            std::os::unix::process::CommandExt::arg0(&mut c, arg0);
            c.args(args);
            return c;
        }
        let mut c = std::process::Command::new(&self.exe);
        c.args(self.helper_args(false));
        c.arg("--arg0")
            .arg(arg0)
            .arg("--")
            .arg(program.as_str())
            .args(args);
        c
    }
}

/// `rhbuild __sandbox ARGS`: set up the sandbox and run the program
/// (never returns then, except on error).
pub fn helper_main(args: Vec<OsString>) -> ExitCode {
    match helper::main(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rhbuild sandbox: {e}");
            ExitCode::from(126)
        }
    }
}

/// The running kernel's Landlock ABI (0: none).
fn kernel_landlock_abi() -> i32 {
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns a number.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    } as i32;
    abi.max(0)
}

mod forward {
    //! The forwarder: a process in the host's network namespace that
    //! accepts connections on the listening sockets the helper made on the
    //! sandbox's loopback (a socket belongs to the namespace it was created
    //! in, so accepting from outside works) and joins each to its server.
    //! It connects only to the servers it was started with: nothing it is
    //! sent chooses an address. It ends with the command: the end of its
    //! socket pair closing (with a PID namespace), its parent-death signal,
    //! and the command's process group being killed (it is in that group).

    use super::Forward;
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Connections one forwarder carries at once (more wait in the
    /// listener's backlog).
    const MAX_CONNECTIONS: usize = 64;

    /// The first byte of the hand-over.
    const HOLD: u8 = b'H';

    pub struct Forwarder {
        pid: libc::pid_t,
        ctl: OwnedFd,
    }

    fn last_error(what: &str) -> String {
        format!("{what}: {}", std::io::Error::last_os_error())
    }

    /// Fork the forwarder (the helper is single-threaded here).
    pub fn spawn(forwards: &[Forward]) -> Result<Forwarder, String> {
        let mut pair = [-1; 2];
        // SAFETY: socketpair writes two descriptors into `pair`.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        } != 0
        {
            return Err(last_error("socketpair"));
        }
        // SAFETY: both descriptors are fresh and ours.
        let (mine, theirs) =
            unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        // SAFETY: getpid has no arguments.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the helper is single-threaded; the child runs `main`
        // below and never returns.
        match unsafe { libc::fork() } {
            -1 => Err(last_error("fork")),
            0 => {
                drop(mine);
                main(theirs, parent, forwards);
                // SAFETY: leaving the forked process without running the
                // parent's exit handlers.
                unsafe { libc::_exit(0) }
            }
            pid => Ok(Forwarder { pid, ctl: mine }),
        }
    }

    impl Forwarder {
        /// In the new network namespace: bring loopback up, listen on each
        /// forward's port, and pass the listeners to the forwarder. It ends
        /// when every copy of our end of the pair is closed (this process
        /// keeps one until `finish`; children close theirs when they
        /// execute a program or end), or when its parent ends.
        pub fn hand_over(&self, forwards: &[Forward]) -> Result<(), String> {
            loopback_up()?;
            let mut listeners = Vec::new();
            for f in forwards {
                let l =
                    TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, f.local)).map_err(|e| {
                        format!("cannot listen on 127.0.0.1:{} in the sandbox: {e}", f.local)
                    })?;
                listeners.push(l);
            }
            let fds: Vec<RawFd> = listeners.iter().map(|l| l.as_raw_fd()).collect();
            send(&self.ctl, HOLD, &fds)
                .map_err(|e| format!("cannot pass the listeners to the forwarder: {e}"))
        }

        /// The command ended (with a PID namespace, whose first process
        /// has exited): close our end and reap the forwarder.
        pub fn finish(self) {
            self.abandon();
        }

        /// No network namespace: the forwarder is not needed. It ends
        /// when the pair closes before anything was handed over.
        pub fn abandon(self) {
            drop(self.ctl);
            let mut status = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
    }

    /// `ip link set lo up`, by ioctl: the helper holds CAP_NET_ADMIN over
    /// the namespace it just made (root, or in its own user namespace).
    fn loopback_up() -> Result<(), String> {
        // SAFETY: a plain socket for the interface ioctls, closed below;
        // `ifr` is a zeroed ifreq naming "lo".
        unsafe {
            let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if s < 0 {
                return Err(last_error("socket"));
            }
            let s = OwnedFd::from_raw_fd(s);
            let mut ifr: libc::ifreq = std::mem::zeroed();
            for (d, c) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
                *d = *c as libc::c_char;
            }
            if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) != 0 {
                return Err(last_error("cannot read the sandbox's loopback flags"));
            }
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) != 0 {
                return Err(last_error("cannot bring the sandbox's loopback up"));
            }
        }
        Ok(())
    }

    /// A one-byte message (`tag`) with room for `count` descriptors,
    /// handed to `f`, which sends or receives it; `f`'s result and the
    /// message's byte afterwards.
    fn with_message<R>(tag: u8, count: usize, f: impl FnOnce(&mut libc::msghdr) -> R) -> (R, u8) {
        let payload = count * std::mem::size_of::<RawFd>();
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
        let mut control = vec![0u64; space.div_ceil(8)];
        let mut byte = [tag];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        // SAFETY: an all-zero msghdr is valid; its pointers are set to the
        // buffers above, which outlive `f`.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let r = f(&mut msg);
        (r, byte[0])
    }

    /// One message: `tag` and the descriptors `fds` (SCM_RIGHTS).
    fn send(sock: &OwnedFd, tag: u8, fds: &[RawFd]) -> std::io::Result<()> {
        let payload = std::mem::size_of_val(fds);
        let (sent, _) = with_message(tag, fds.len(), |msg| {
            // SAFETY: the control buffer has room for the header and
            // `payload` bytes (CMSG_SPACE); sendmsg only reads.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(payload as u32) as usize;
                std::ptr::copy_nonoverlapping(
                    fds.as_ptr().cast::<u8>(),
                    libc::CMSG_DATA(cmsg),
                    payload,
                );
                libc::sendmsg(sock.as_raw_fd(), msg, 0)
            }
        });
        if sent != 1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The hand-over: its tag and `count` descriptors, or `None` when the
    /// pair closed first.
    fn receive(sock: &OwnedFd, count: usize) -> Option<(u8, Vec<OwnedFd>)> {
        let ((n, fds), tag) = with_message(0, count, |msg| {
            let mut fds = Vec::new();
            // SAFETY: recvmsg writes within the buffers `msg` points to;
            // each descriptor taken from the control data is new and ours.
            unsafe {
                let n = libc::recvmsg(sock.as_raw_fd(), msg, libc::MSG_CMSG_CLOEXEC);
                let mut cmsg = libc::CMSG_FIRSTHDR(msg);
                while n == 1 && !cmsg.is_null() {
                    if (*cmsg).cmsg_level == libc::SOL_SOCKET
                        && (*cmsg).cmsg_type == libc::SCM_RIGHTS
                    {
                        let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                        let len = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                            / std::mem::size_of::<RawFd>();
                        for i in 0..len {
                            fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                        }
                    }
                    cmsg = libc::CMSG_NXTHDR(msg, cmsg);
                }
                (n, fds)
            }
        });
        (n == 1 && fds.len() == count).then_some((tag, fds))
    }

    /// The forwarder's life, in the forked child.
    fn main(ctl: OwnedFd, parent: libc::pid_t, forwards: &[Forward]) {
        // SAFETY: prctl and getppid with plain arguments; close_range on
        // descriptors this process does not use (all but stdio and `ctl`).
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                return;
            }
            libc::prctl(libc::PR_SET_NAME, c"rhbuild-forward".as_ptr());
            let keep = ctl.as_raw_fd() as libc::c_uint;
            if keep > 3 {
                libc::syscall(libc::SYS_close_range, 3u32, keep - 1, 0u32);
            }
            libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
        }
        // A descriptor that becomes readable when the parent ends (Linux
        // 5.3); without it, the loop below looks at the parent's pid.
        // SAFETY: pidfd_open returns a new descriptor or -1.
        let pidfd = unsafe {
            let fd = libc::syscall(libc::SYS_pidfd_open, parent, 0u32) as RawFd;
            (fd >= 0).then(|| OwnedFd::from_raw_fd(fd))
        };
        // SAFETY: getppid has no arguments.
        if unsafe { libc::getppid() } != parent {
            return;
        }
        let Some((tag, fds)) = receive(&ctl, forwards.len()) else {
            return;
        };
        confine(forwards);
        let active = Arc::new(AtomicUsize::new(0));
        for (fd, f) in fds.into_iter().zip(forwards) {
            let listener = TcpListener::from(fd);
            let target = SocketAddr::V4(f.target);
            let active = active.clone();
            std::thread::spawn(move || accept(listener, target, active));
        }
        // Until the parent ends or the pair's other ends close. The parent-death signal alone does not do: a parent
        // that is the command, Landlocked with scoped signals, cannot
        // signal the forwarder outside its domain, even by dying.
        if tag != HOLD {
            return;
        }
        let mut fds = vec![
            libc::pollfd {
                fd: pidfd.as_ref().map_or(-1, |p| p.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: ctl.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            // SAFETY: poll reads and writes only the array given; getppid
            // has no arguments.
            let ended = unsafe {
                let n = libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 200);
                (n > 0 && fds.iter().any(|f| f.revents != 0)) || libc::getppid() != parent
            };
            if ended {
                return;
            }
        }
    }

    /// Landlock for the forwarder itself: no file access at all, TCP
    /// connections only to its servers' ports, no bind. Best effort: the
    /// addresses it connects to are fixed before it reads anything.
    fn confine(forwards: &[Forward]) {
        use landlock::{
            ABI, Access, AccessFs, AccessNet, NetPort, Ruleset, RulesetAttr, RulesetCreatedAttr,
            Scope,
        };
        let abi_n = super::kernel_landlock_abi();
        if abi_n < 1 {
            return;
        }
        let abi = ABI::from(abi_n.min(7));
        let confined = (|| -> Result<(), landlock::RulesetError> {
            let mut rs = Ruleset::default().handle_access(AccessFs::from_all(abi))?;
            if abi_n >= 4 {
                rs = rs.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
            }
            if abi_n >= 6 {
                rs = rs.scope(Scope::from_all(abi))?;
            }
            let mut created = rs.create()?;
            if abi_n >= 4 {
                for f in forwards {
                    created =
                        created.add_rule(NetPort::new(f.target.port(), AccessNet::ConnectTcp))?;
                }
            }
            created.restrict_self()?;
            Ok(())
        })();
        if let Err(e) = confined {
            eprintln!("rhbuild sandbox: the distcc forwarder is not confined: {e}");
        }
    }

    fn accept(listener: TcpListener, target: SocketAddr, active: Arc<AtomicUsize>) {
        for conn in listener.incoming() {
            let Ok(inner) = conn else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                active.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            let active = active.clone();
            std::thread::spawn(move || {
                relay(inner, target);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }

    /// Join one connection from inside to the server, both ways.
    fn relay(inner: TcpStream, target: SocketAddr) {
        let outer = match TcpStream::connect_timeout(&target, Duration::from_secs(10)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("rhbuild sandbox: cannot reach the distcc server {target}: {e}");
                return;
            }
        };
        let (Ok(mut inner_r), Ok(mut outer_w)) = (inner.try_clone(), outer.try_clone()) else {
            return;
        };
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut inner_r, &mut outer_w);
            let _ = outer_w.shutdown(Shutdown::Write);
        });
        let (mut outer_r, mut inner_w) = (outer, inner);
        let _ = std::io::copy(&mut outer_r, &mut inner_w);
        let _ = inner_w.shutdown(Shutdown::Write);
        let _ = up.join();
    }
}

mod helper {
    //! The sandboxed side: runs in the freshly started helper process.

    use super::{Forward, Status};
    use landlock::{
        ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
        Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
    };
    use std::ffi::{CString, OsString};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::process::ExitCode;

    struct Options {
        write: Vec<OsString>,
        deny: Vec<String>,
        abi: Option<i32>,
        require: bool,
        probe: bool,
        forwards: Vec<Forward>,
        /// A server's port: no network namespace, TCP bind to it only.
        listen: Option<u16>,
        arg0: Option<OsString>,
        argv: Vec<OsString>,
    }

    fn parse(args: Vec<OsString>) -> Result<Options, String> {
        let mut o = Options {
            write: Vec::new(),
            deny: Vec::new(),
            abi: None,
            require: false,
            probe: false,
            forwards: Vec::new(),
            listen: None,
            arg0: None,
            argv: Vec::new(),
        };
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            match a.to_str() {
                Some("--write") => o.write.push(it.next().ok_or("--write needs a directory")?),
                Some("--arg0") => o.arg0 = Some(it.next().ok_or("--arg0 needs a name")?),
                Some("--deny") => {
                    let v = it.next().ok_or("--deny needs a list")?;
                    o.deny = v
                        .to_string_lossy()
                        .split(',')
                        .map(|f| f.trim().to_string())
                        .collect();
                }
                Some("--abi") => o.abi = Some(number(it.next(), "--abi needs a number")?),
                Some("--forward") => {
                    let v = it.next().ok_or("--forward needs LOCALPORT=IPV4:PORT")?;
                    o.forwards.push(Forward::parse(&v.to_string_lossy())?);
                }
                Some("--listen") => o.listen = Some(number(it.next(), "--listen needs a port")?),
                Some("--require") => o.require = true,
                Some("--probe") => o.probe = true,
                Some("--") => {
                    o.argv = it.collect();
                    break;
                }
                _ => return Err(format!("unexpected argument {a:?}")),
            }
        }
        if !o.probe && o.argv.is_empty() {
            return Err("no program to run after `--`".into());
        }
        Ok(o)
    }

    /// An option's numeric value, or `what` as the error.
    fn number<T: std::str::FromStr>(v: Option<OsString>, what: &str) -> Result<T, String> {
        v.and_then(|v| v.to_string_lossy().parse().ok())
            .ok_or_else(|| what.to_string())
    }

    fn denied(o: &Options, feature: &str) -> bool {
        o.deny.iter().any(|f| f == feature)
    }

    /// The kernel's Landlock ABI (0: none), or what `--abi` pretends.
    fn landlock_abi(o: &Options) -> i32 {
        if denied(o, "landlock") {
            return 0;
        }
        let real = super::kernel_landlock_abi();
        match o.abi {
            Some(n) => n.clamp(0, real),
            None => real,
        }
    }

    fn write_file(path: &str, text: &str) -> std::io::Result<()> {
        std::fs::write(path, text)
    }

    fn last_error(what: &str) -> String {
        format!("{what}: {}", std::io::Error::last_os_error())
    }

    fn mount(
        src: &str,
        target: &str,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> Result<(), String> {
        let c = |s: &str| CString::new(s).unwrap();
        let (src_c, target_c) = (c(src), c(target));
        let fstype_c = fstype.map(c);
        let data_c = data.map(c);
        // SAFETY: every pointer is a NUL-terminated string or null.
        let rc = unsafe {
            libc::mount(
                src_c.as_ptr(),
                target_c.as_ptr(),
                fstype_c.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                flags,
                data_c
                    .as_ref()
                    .map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(last_error(&format!("mount {target}")))
        }
    }

    /// The namespaces: returns what was achieved.
    fn namespaces(o: &Options, st: &mut Status) -> Result<(), String> {
        // SAFETY: plain syscalls without memory arguments.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let want_user = uid != 0 && !denied(o, "userns");
        let mut flags = 0;
        // A server listens where its clients are: the host's network.
        if !denied(o, "netns") && o.listen.is_none() {
            flags |= libc::CLONE_NEWNET;
        }
        if !denied(o, "mountns") {
            flags |= libc::CLONE_NEWNS;
        }
        if !denied(o, "pidns") {
            flags |= libc::CLONE_NEWPID | libc::CLONE_NEWIPC;
        }
        if flags == 0 || (uid != 0 && !want_user) {
            return Ok(());
        }
        if want_user {
            flags |= libc::CLONE_NEWUSER;
        }
        // SAFETY: unshare takes flags only.
        if unsafe { libc::unshare(flags) } != 0 {
            if o.require {
                return Err(last_error("cannot create namespaces"));
            }
            return Ok(());
        }
        if want_user {
            write_file("/proc/self/setgroups", "deny").map_err(|e| format!("setgroups: {e}"))?;
            write_file("/proc/self/uid_map", &format!("{uid} {uid} 1"))
                .map_err(|e| format!("uid_map: {e}"))?;
            write_file("/proc/self/gid_map", &format!("{gid} {gid} 1"))
                .map_err(|e| format!("gid_map: {e}"))?;
            st.user_ns = true;
        }
        st.net_ns = flags & libc::CLONE_NEWNET != 0;
        st.pid_ns = flags & libc::CLONE_NEWPID != 0;
        if flags & libc::CLONE_NEWNS != 0 {
            mount("none", "/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
            // The host's daemons listen on sockets under /run; a build has
            // no business there (unless its own directory lies there).
            let under_run = o
                .write
                .iter()
                .any(|w| std::path::Path::new(w).starts_with("/run"));
            if std::path::Path::new("/run").is_dir() && !under_run {
                mount(
                    "tmpfs",
                    "/run",
                    Some("tmpfs"),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    Some("size=1m,mode=755"),
                )?;
            }
            st.mount_ns = true;
        }
        Ok(())
    }

    /// Landlock: read and execute everywhere, write only where allowed.
    fn landlock(o: &Options, st: &mut Status) -> Result<(), String> {
        let abi_n = landlock_abi(o);
        st.landlock_abi = abi_n;
        if abi_n < 2 {
            return Ok(());
        }
        // The rights of the ABI we run with (never above what we tested: 7).
        let abi = ABI::from(abi_n.min(7));
        let level = if o.require {
            CompatLevel::HardRequirement
        } else {
            CompatLevel::BestEffort
        };
        let err = |e: landlock::RulesetError| format!("Landlock: {e}");
        let mut ruleset = Ruleset::default()
            .set_compatibility(level)
            .handle_access(AccessFs::from_all(abi))
            .map_err(err)?;
        if abi_n >= 4 {
            ruleset = ruleset
                .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
                .map_err(err)?;
        }
        if abi_n >= 6 {
            ruleset = ruleset.scope(Scope::from_all(abi)).map_err(err)?;
        }
        let mut rules: Vec<PathBeneath<PathFd>> = Vec::new();
        let mut add = |path: &std::path::Path, access: landlock::BitFlags<AccessFs>| {
            // A device this system lacks is no loss; a missing write
            // directory only narrows what is allowed.
            if let Ok(fd) = PathFd::new(path) {
                rules.push(PathBeneath::new(fd, access));
            }
        };
        add(std::path::Path::new("/"), AccessFs::from_read(abi));
        let mut writes: Vec<PathBeneath<std::os::fd::OwnedFd>> = Vec::new();
        for w in &o.write {
            // What is granted is the directory or file at that name itself,
            // never what a link there leads to (a command that could
            // replace the name with a link would otherwise choose where
            // the next one writes); a file gets a file's rights.
            let Ok(f) = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(w)
            else {
                continue;
            };
            let Ok(meta) = f.metadata() else { continue };
            let access = if meta.is_dir() {
                AccessFs::from_all(abi)
            } else if meta.is_file() {
                AccessFs::from_file(abi)
            } else {
                continue;
            };
            writes.push(PathBeneath::new(std::os::fd::OwnedFd::from(f), access));
        }
        for dev in [
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
            "/dev/tty",
        ] {
            add(
                std::path::Path::new(dev),
                AccessFs::from_file(abi) & !AccessFs::Execute,
            );
        }
        // The distcc servers: their forwarded ports on the namespace's
        // loopback, or without a namespace their own ports (on any address:
        // a gap the status names).
        let ports: Vec<u16> = if abi_n < 4 {
            Vec::new()
        } else if st.net_ns {
            o.forwards.iter().map(|f| f.local).collect()
        } else {
            o.forwards.iter().map(|f| f.target.port()).collect()
        };
        let created =
            ruleset
                .create()
                .map_err(err)?
                .add_rules(rules.into_iter().map(Ok::<_, landlock::RulesetError>))
                .map_err(err)?
                .add_rules(writes.into_iter().map(Ok::<_, landlock::RulesetError>))
                .map_err(err)?
                .add_rules(ports.into_iter().map(|p| {
                    Ok::<_, landlock::RulesetError>(NetPort::new(p, AccessNet::ConnectTcp))
                }))
                .map_err(err)?
                .add_rules(
                    o.listen.filter(|_| abi_n >= 4).map(|p| {
                        Ok::<_, landlock::RulesetError>(NetPort::new(p, AccessNet::BindTcp))
                    }),
                )
                .map_err(err)?;
        let status = created.restrict_self().map_err(err)?;
        st.landlock = status.ruleset != RulesetStatus::NotEnforced;
        if o.require && status.ruleset != RulesetStatus::FullyEnforced {
            return Err(format!("Landlock is only {:?}", status.ruleset));
        }
        Ok(())
    }

    pub fn main(args: Vec<OsString>) -> Result<ExitCode, String> {
        let o = parse(args)?;
        let mut st = Status {
            servers: o.forwards.iter().map(|f| f.target.to_string()).collect(),
            ..Status::default()
        };
        // The forwarder starts before the namespaces, so it stays in the
        // host's network (and user) namespace.
        let forwarder = if o.forwards.is_empty() || denied(&o, "netns") {
            None
        } else {
            Some(super::forward::spawn(&o.forwards)?)
        };
        namespaces(&o, &mut st)?;
        let forwarder = match forwarder {
            Some(fw) if st.net_ns => {
                // This process outlives the command (with a PID namespace
                // as its parent, without one by running it as a child, see
                // below) and ends and reaps the forwarder after it.
                fw.hand_over(&o.forwards)?;
                st.forwarded = true;
                Some(fw)
            }
            Some(fw) => {
                fw.abandon();
                None
            }
            None => None,
        };
        if st.pid_ns {
            // The first process of the new PID namespace: it sets up the
            // rest, runs the command, and reaps. When it exits, the kernel
            // kills whatever is left in the namespace.
            // SAFETY: the helper is single-threaded; the child only continues
            // this function.
            match unsafe { libc::fork() } {
                -1 => return Err(last_error("fork")),
                0 => {}
                child => {
                    let status = wait_for(child);
                    if let Some(fw) = forwarder {
                        fw.finish();
                    }
                    return Ok(status.map_or(ExitCode::from(126), mirror));
                }
            }
        }
        landlock(&o, &mut st)?;
        if o.probe {
            println!("{}", serde_json::to_string(&st).unwrap_or_default());
            // Without a PID namespace nobody else reaps the forwarder.
            if let Some(fw) = forwarder.filter(|_| !st.pid_ns) {
                fw.finish();
            }
            return Ok(ExitCode::SUCCESS);
        }
        if st.pid_ns {
            // As PID 1: run the command as a child and reap every orphan.
            // SAFETY: as above.
            match unsafe { libc::fork() } {
                -1 => return Err(last_error("fork")),
                0 => {}
                child => return Ok(reap_until(child)),
            }
        }
        if let Some(fw) = forwarder.filter(|_| !st.pid_ns) {
            // No PID namespace: run the command as a child rather than
            // becoming it, so the forwarder is ended and reaped here, not
            // left a zombie for whatever reaps orphans (if anything does).
            // SAFETY: as above.
            match unsafe { libc::fork() } {
                -1 => return Err(last_error("fork")),
                0 => {}
                child => {
                    let status = wait_for(child);
                    fw.finish();
                    return Ok(status.map_or(ExitCode::from(126), mirror));
                }
            }
        }
        let program = &o.argv[0];
        let mut cmd = std::process::Command::new(program);
        std::os::unix::process::CommandExt::arg0(&mut cmd, o.arg0.as_ref().unwrap_or(program));
        cmd.args(&o.argv[1..]);
        let e = std::os::unix::process::CommandExt::exec(&mut cmd);
        Err(format!(
            "cannot run `{}`: {e}",
            String::from_utf8_lossy(program.as_bytes())
        ))
    }

    /// Wait for `child`: its wait status (`None`: it cannot be waited for).
    fn wait_for(child: libc::pid_t) -> Option<libc::c_int> {
        let mut status = 0;
        loop {
            // SAFETY: waitpid writes only into `status`.
            let r = unsafe { libc::waitpid(child, &mut status, 0) };
            if r == child {
                return Some(status);
            }
            if r == -1 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return None;
            }
        }
    }

    /// As a PID namespace's first process: reap everything until `child`
    /// ends, then leave the way it did.
    fn reap_until(child: libc::pid_t) -> ExitCode {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes only into `status`.
            let r = unsafe { libc::waitpid(-1, &mut status, 0) };
            if r == child {
                return mirror(status);
            }
            if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
                return ExitCode::from(126);
            }
        }
    }

    fn mirror(status: libc::c_int) -> ExitCode {
        if libc::WIFEXITED(status) {
            return ExitCode::from(libc::WEXITSTATUS(status) as u8);
        }
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            // Die of the same signal, so the caller sees "signal N".
            // SAFETY: resetting a handler and raising a signal.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                libc::raise(sig);
            }
            return ExitCode::from(128 + sig as u8);
        }
        ExitCode::from(126)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_name_what_is_missing() {
        let full = Status {
            landlock_abi: 7,
            landlock: true,
            user_ns: true,
            net_ns: true,
            mount_ns: true,
            pid_ns: true,
            off: false,
            servers: Vec::new(),
            forwarded: false,
        };
        assert!(full.gaps().is_empty());
        assert!(full.summary().starts_with("full: landlock abi 7"));
        // A server has no network namespace by design: Landlock's TCP
        // rules are its network confinement.
        assert!(full.server_gaps().is_empty());
        let abi3 = Status {
            landlock_abi: 3,
            ..full.clone()
        };
        assert!(abi3.server_gaps()[0].contains("connect anywhere"));
        assert!(Status::default().server_gaps().len() == 2);
        let old = Status {
            landlock_abi: 2,
            net_ns: false,
            ..full.clone()
        };
        let gaps = old.gaps().join("\n");
        assert!(gaps.contains("truncate"), "{gaps}");
        assert!(gaps.contains("reach the network"), "{gaps}");
        assert!(old.summary().starts_with("partial"));
        let none = Status::default();
        assert!(none.gaps().iter().any(|g| g.contains("no Landlock")));
        // distcc servers: forwarded, nothing is missing; reached directly,
        // the ports Landlock opens are named.
        let forwarded = Status {
            servers: vec!["10.0.0.5:3632".into()],
            forwarded: true,
            ..full.clone()
        };
        assert!(forwarded.gaps().is_empty());
        assert!(
            forwarded
                .summary()
                .ends_with("tcp to 10.0.0.5:3632 (forwarded)"),
            "{}",
            forwarded.summary()
        );
        let direct = Status {
            net_ns: false,
            forwarded: false,
            ..forwarded
        };
        let gaps = direct.gaps().join("\n");
        assert!(gaps.contains("TCP port 3632 on any address"), "{gaps}");
    }

    #[test]
    fn forwards_round_trip_as_helper_arguments() {
        let f = Forward {
            local: 3633,
            target: "10.0.0.5:3632".parse().unwrap(),
        };
        assert_eq!(f.arg(), "3633=10.0.0.5:3632");
        assert_eq!(Forward::parse(&f.arg()), Ok(f));
        assert!(Forward::parse("3633=host:3632").is_err());
    }
}
