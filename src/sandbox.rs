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
//!   given (the build directory, which holds the run's private temporary
//!   directory that `TMPDIR` names; `/tmp` itself is not writable); `/dev/null` and a
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
use std::sync::OnceLock;

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
            if self.landlock && self.landlock_abi >= 4 {
                gaps.push("no network namespace: TCP is denied by Landlock, but UDP and unix sockets are not".into());
            } else {
                gaps.push("no network namespace: build commands can reach the network".into());
            }
        }
        if !self.mount_ns {
            gaps.push("no mount namespace: the host's sockets under /run are reachable".into());
        }
        if !self.pid_ns {
            gaps.push("no PID namespace: a process a command leaves running in another session can outlive it".into());
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
    /// Directories commands may write beneath (the build directory).
    pub writable: Vec<Utf8PathBuf>,
    /// The rhbuild binary that sets the sandbox up.
    pub exe: Utf8PathBuf,
    /// Features to pretend the kernel lacks (`RHBUILD_SANDBOX_DENY`).
    deny: Option<String>,
    /// A Landlock ABI to pretend (`RHBUILD_SANDBOX_ABI`).
    abi: Option<String>,
    status: OnceLock<Result<Status, String>>,
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
            status: OnceLock::new(),
        })
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

mod helper {
    //! The sandboxed side: runs in the freshly started helper process.

    use super::Status;
    use landlock::{
        ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
        RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
    };
    use std::ffi::{CString, OsString};
    use std::os::unix::ffi::OsStrExt;
    use std::process::ExitCode;

    struct Options {
        write: Vec<OsString>,
        deny: Vec<String>,
        abi: Option<i32>,
        require: bool,
        probe: bool,
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
                Some("--abi") => {
                    let v = it.next().ok_or("--abi needs a number")?;
                    o.abi = Some(
                        v.to_string_lossy()
                            .parse()
                            .map_err(|_| "--abi needs a number")?,
                    );
                }
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

    fn denied(o: &Options, feature: &str) -> bool {
        o.deny.iter().any(|f| f == feature)
    }

    /// The kernel's Landlock ABI (0: none), or what `--abi` pretends.
    fn landlock_abi(o: &Options) -> i32 {
        if denied(o, "landlock") {
            return 0;
        }
        // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns a number.
        let real = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<u8>(),
                0usize,
                1u32,
            )
        } as i32;
        let real = real.max(0);
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
        if !denied(o, "netns") {
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
        for w in &o.write {
            add(std::path::Path::new(w), AccessFs::from_all(abi));
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
        let created = ruleset
            .create()
            .map_err(err)?
            .add_rules(rules.into_iter().map(Ok::<_, landlock::RulesetError>))
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
        let mut st = Status::default();
        namespaces(&o, &mut st)?;
        if st.pid_ns {
            // The first process of the new PID namespace: it sets up the
            // rest, runs the command, and reaps. When it exits, the kernel
            // kills whatever is left in the namespace.
            // SAFETY: the helper is single-threaded; the child only continues
            // this function.
            match unsafe { libc::fork() } {
                -1 => return Err(last_error("fork")),
                0 => {}
                child => return Ok(wait_and_mirror(child)),
            }
        }
        landlock(&o, &mut st)?;
        if o.probe {
            println!("{}", serde_json::to_string(&st).unwrap_or_default());
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

    /// Wait for `child` and leave the same way it did.
    fn wait_and_mirror(child: libc::pid_t) -> ExitCode {
        let mut status = 0;
        loop {
            // SAFETY: waitpid writes only into `status`.
            let r = unsafe { libc::waitpid(child, &mut status, 0) };
            if r == child {
                break;
            }
            if r == -1 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return ExitCode::from(126);
            }
        }
        mirror(status)
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
        };
        assert!(full.gaps().is_empty());
        assert!(full.summary().starts_with("full: landlock abi 7"));
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
    }
}
