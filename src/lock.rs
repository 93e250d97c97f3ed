//! Who may work in a build directory at once.
//!
//! Every run holds a shared `flock` on `<build>/.lock` for its whole life;
//! a run for a target also holds an exclusive one on `<build>/.<arch>.lock`,
//! and writes its pid and command line there. So runs for different targets
//! (build-all's children, or a user booting sh4 while mips builds) work side
//! by side, a second run for the same target waits (saying once who holds
//! it) or, with `--no-wait`, refuses at once, and `rhbuild clean` of the
//! whole directory takes `.lock` exclusively: it waits for every run, and
//! every run waits for it. The kernel drops a lock when its holder exits,
//! however it dies.
//!
//! What targets share is written so that two runs at once both end
//! correct: `cache/` and `src/` by atomic renames that tolerate a sibling
//! getting there first, a per-host stage under its own lock
//! ([`StageLock`]: shared by the runs that use it, alone to rebuild it),
//! build-all's report under `.all.lock`.
//!
//! A run sweeps, once it holds its locks, what killed runs left behind:
//! staging directories and partial files named `*.part-<pid>*` or
//! `*.old-<pid>` whose process is gone (a live run's are never touched).
//!
//! Tests: `tests/faults.rs` (two runs at once on one target and on two,
//! clean beside a run, a run killed at each phase).

use crate::confine::Root;
use crate::interrupt::Interrupt;
use camino::{Utf8Path, Utf8PathBuf};
use rustix::fs::{FlockOperation, Mode, OFlags};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// What a run locks.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// The whole directory, alone (`rhbuild clean` without `--arch`).
    Whole,
    /// One target's part, beside other targets' runs.
    Target(&'a str),
    /// Only a share of the directory: a run with no target (a per-host
    /// stage, build-all's parent), which locks what it writes itself.
    Shared,
}

/// The held locks; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct BuildLock {
    _shared: Option<OwnedFd>,
    /// The lock file this run wrote its name into, emptied when dropped.
    own: Option<OwnedFd>,
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        if let Some(fd) = &self.own {
            let _ = rustix::fs::ftruncate(fd, 0);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{what} is in use by {holder}; wait for it to finish (run again without --no-wait to wait), or use another --build-dir"
    )]
    Busy { what: String, holder: String },
    #[error("interrupted while waiting for {what}")]
    Interrupted { what: String },
    #[error("cannot lock the build directory `{dir}`: {source}")]
    Io {
        dir: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

impl BuildLock {
    /// Take the locks `scope` needs in the build directory `build`: wait
    /// for them (polling `interrupt`) or, without `wait`, fail at once
    /// naming the holder.
    pub fn acquire(
        build: &Root,
        scope: Scope,
        wait: bool,
        interrupt: &Interrupt,
    ) -> Result<BuildLock, LockError> {
        let dir = build.path().to_owned();
        let io_err = |source| LockError::Io {
            dir: dir.clone(),
            source,
        };
        let whole = format!("the build directory `{dir}`");
        let top = open_lock(build, ".lock").map_err(io_err)?;
        let (op, holder): (_, Box<dyn Fn() -> String>) = match scope {
            Scope::Whole => (
                FlockOperation::NonBlockingLockExclusive,
                Box::new(|| running(build)),
            ),
            _ => (
                FlockOperation::NonBlockingLockShared,
                Box::new(|| read_holder(&top)),
            ),
        };
        take(&top, op, &whole, wait, interrupt, holder)?;
        let mut lock = BuildLock {
            _shared: None,
            own: None,
        };
        match scope {
            Scope::Whole => {
                write_holder(&top).map_err(io_err)?;
                lock.own = Some(top);
            }
            Scope::Shared => lock._shared = Some(top),
            Scope::Target(arch) => {
                lock._shared = Some(top);
                let fd = open_lock(build, &target_lock(arch)).map_err(io_err)?;
                let what = format!("the target `{arch}` in {whole}");
                take(
                    &fd,
                    FlockOperation::NonBlockingLockExclusive,
                    &what,
                    wait,
                    interrupt,
                    || read_holder(&fd),
                )?;
                write_holder(&fd).map_err(io_err)?;
                lock.own = Some(fd);
            }
        }
        sweep_leftovers(build);
        Ok(lock)
    }

    /// Take, besides, the exclusive lock file `name` at the build
    /// directory's top (build-all's report: `.all.lock`), waiting for it
    /// or, without `wait`, refusing; held until the returned descriptor is
    /// closed.
    pub fn also(
        build: &Root,
        name: &str,
        what: &str,
        wait: bool,
        interrupt: &Interrupt,
    ) -> Result<OwnedFd, LockError> {
        let fd = open_lock(build, name).map_err(|source| LockError::Io {
            dir: build.path().to_owned(),
            source,
        })?;
        take(
            &fd,
            FlockOperation::NonBlockingLockExclusive,
            what,
            wait,
            interrupt,
            || read_holder(&fd),
        )?;
        let _ = write_holder(&fd);
        Ok(fd)
    }
}

/// The lock file of target `arch`, at the build directory's top (never
/// inside `<arch>/`, which `rhbuild clean` removes).
fn target_lock(arch: &str) -> String {
    format!(".{arch}.lock")
}

/// Take `op` on `fd` for `what`, saying once whom it waits for (or, without
/// `wait`, refusing naming them).
fn take(
    fd: &OwnedFd,
    op: FlockOperation,
    what: &str,
    wait: bool,
    interrupt: &Interrupt,
    holder: impl Fn() -> String,
) -> Result<(), LockError> {
    match take_when_free(fd, op, interrupt, || {
        let holder = holder();
        if !wait {
            return Err(LockError::Busy {
                what: what.to_string(),
                holder,
            });
        }
        eprintln!("waiting for {what}, in use by {holder}");
        Ok(())
    }) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(busy)) => Err(busy),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(LockError::Interrupted {
            what: what.to_string(),
        }),
        Err(source) => Err(LockError::Io {
            dir: Utf8PathBuf::from(what),
            source,
        }),
    }
}

/// A lock on one per-host stage (`build/all/.<output>.lock`). A run that
/// uses the stage holds it shared until the run ends, so nobody replaces
/// the stage's output while it is in use; a run that must (re)build it
/// holds it alone while it does, then shares it. See [`StageLock::use_stage`].
#[derive(Debug)]
pub struct StageLock {
    fd: OwnedFd,
}

/// What a run found, holding a per-host stage's lock shared.
pub enum Found<T> {
    /// Up to date: use it (`T`: its hash).
    Current(T),
    /// It must be built for this run.
    Stale,
}

impl StageLock {
    /// Bring a per-host stage up to date and keep using it: `check` (run
    /// holding the lock shared) says whether it is current; if not, `build`
    /// runs holding it alone, once every other run that uses the stage has
    /// ended. Returns the held (shared) lock, to keep until the run ends,
    /// and what `check` or `build` gave. `what` names the stage in the
    /// messages said once; `interrupt` ends every wait.
    pub fn use_stage<T, E>(
        build: &Root,
        rel: &Utf8Path,
        what: &str,
        interrupt: &Interrupt,
        mut check: impl FnMut() -> Result<Found<T>, E>,
        build_it: impl FnOnce() -> Result<T, E>,
        io_err: impl Fn(io::Error) -> E,
    ) -> Result<(StageLock, T), E> {
        if let Some(parent) = rel.parent() {
            build.mkdir_all(parent).map_err(&io_err)?;
        }
        let fd = OwnedFd::from(build.append_file(rel).map_err(&io_err)?);
        let lock = StageLock { fd };
        let mut said_building = false;
        let mut said_users = false;
        loop {
            // Shared: waits only while another run builds it.
            let Ok(()) = take_when_free(
                &lock.fd,
                FlockOperation::NonBlockingLockShared,
                interrupt,
                || {
                    if !said_building {
                        println!("    waiting for another target's run to finish {what}");
                        said_building = true;
                    }
                    Ok::<(), std::convert::Infallible>(())
                },
            )
            .map_err(&io_err)?;
            if let Found::Current(t) = check()? {
                return Ok((lock, t));
            }
            // Alone, to build it: only when no other run uses it (a failed
            // conversion may have dropped the shared lock: start again).
            if rustix::fs::flock(&lock.fd, FlockOperation::NonBlockingLockExclusive).is_ok() {
                let t = build_it()?;
                rustix::fs::flock(&lock.fd, FlockOperation::LockShared)
                    .map_err(|e| io_err(e.into()))?;
                return Ok((lock, t));
            }
            let _ = rustix::fs::flock(&lock.fd, FlockOperation::Unlock);
            if !said_users {
                println!(
                    "    waiting for the other runs that use {what} to end: this run must rebuild it"
                );
                said_users = true;
            }
            if interrupt.is_set() {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "interrupted",
                )));
            }
            // Two runs that both found it stale step back by different
            // amounts, so one of them gets it.
            std::thread::sleep(Duration::from_millis(
                50 + u64::from(std::process::id() % 97),
            ));
        }
    }

    /// The descriptor holding the lock, to keep it held until it is closed.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// Take the `flock` `op` (a non-blocking one) on `fd`, polling: the first time it is held
/// elsewhere, `busy` is told (an `Err` from it gives up at once, its value
/// returned inside `Ok`); an interrupt ends the wait with
/// `ErrorKind::Interrupted`.
fn take_when_free<E>(
    fd: &OwnedFd,
    op: FlockOperation,
    interrupt: &Interrupt,
    mut busy: impl FnMut() -> Result<(), E>,
) -> io::Result<Result<(), E>> {
    let mut said = false;
    loop {
        match rustix::fs::flock(fd, op) {
            Ok(()) => return Ok(Ok(())),
            Err(rustix::io::Errno::WOULDBLOCK) => {
                if !said {
                    if let Err(e) = busy() {
                        return Ok(Err(e));
                    }
                    said = true;
                }
                if interrupt.is_set() {
                    return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn open_lock(build: &Root, name: &str) -> io::Result<OwnedFd> {
    let fd = build.locate(Utf8Path::new(""))?;
    Ok(rustix::fs::openat(
        &fd,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?)
}

fn write_holder(fd: &OwnedFd) -> io::Result<()> {
    let cmdline: Vec<String> = std::env::args().collect();
    let text = format!("{}\n{}\n", std::process::id(), cmdline.join(" "));
    rustix::fs::ftruncate(fd, 0)?;
    let mut f = std::fs::File::from(fd.try_clone()?);
    io::Seek::seek(&mut f, io::SeekFrom::Start(0))?;
    f.write_all(text.as_bytes())
}

/// "pid N (`command line`)" from the lock file, as its holder wrote it.
fn read_holder(fd: &OwnedFd) -> String {
    let mut text = String::new();
    if let Ok(dup) = fd.try_clone() {
        let mut f = std::fs::File::from(dup);
        let _ = io::Seek::seek(&mut f, io::SeekFrom::Start(0));
        let _ = f.take(4096).read_to_string(&mut text);
    }
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(pid), Some(cmd)) if !pid.is_empty() => format!("pid {pid} (`{cmd}`)"),
        _ => "another rhbuild run".to_string(),
    }
}

/// Who holds a share of the build directory, as their lock files say:
/// every live run for a target (a run with none is "another rhbuild run").
fn running(build: &Root) -> String {
    let mut who = Vec::new();
    if let Ok(names) = build.list(Utf8Path::new("")) {
        for name in names {
            if name == ".lock" || !name.starts_with('.') || !name.ends_with(".lock") {
                continue;
            }
            let Ok(fd) = open_lock(build, &name) else {
                continue;
            };
            let text = read_holder(&fd);
            let live = text
                .strip_prefix("pid ")
                .and_then(|t| t.split(' ').next())
                .and_then(|p| p.parse().ok())
                .is_some_and(alive);
            if live {
                who.push(text);
            }
        }
    }
    if who.is_empty() {
        "another rhbuild run".to_string()
    } else {
        who.join(", ")
    }
}

/// The pid embedded in a leftover's name (`.x.part-123`, `x.part-123-4`,
/// `.x.old-123`), if it has one.
fn leftover_pid(name: &str) -> Option<u32> {
    let rest = name
        .rsplit_once(".part-")
        .or_else(|| name.rsplit_once(".old-"))
        .map(|(_, r)| r)?;
    rest.split('-').next()?.parse().ok()
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    pid == std::process::id() || unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
}

/// Remove what killed runs left: `*.part-<pid>*` and `*.old-<pid>` entries
/// of dead processes in the build directory's top, each target's directory
/// and `src/`.
pub fn sweep_leftovers(build: &Root) {
    let mut dirs: Vec<Utf8PathBuf> = vec![Utf8PathBuf::new(), Utf8PathBuf::from("src")];
    if let Ok(names) = build.list(Utf8Path::new("")) {
        for n in names {
            if !n.starts_with('.')
                && n != "src"
                && n != "cache"
                && build.kind(Utf8Path::new(&n)).ok().flatten()
                    == Some(rustix::fs::FileType::Directory)
            {
                dirs.push(Utf8PathBuf::from(n));
            }
        }
    }
    for dir in dirs {
        let Ok(names) = build.list(&dir) else {
            continue;
        };
        for name in names {
            if let Some(pid) = leftover_pid(&name)
                && !alive(pid)
            {
                let _ = build.remove_all(&dir.join(&name), None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_names_carry_their_pid() {
        assert_eq!(leftover_pid(".root-filesystem.part-123"), Some(123));
        assert_eq!(leftover_pid("busybox-1.35.0-abc.part-77-3"), Some(77));
        assert_eq!(leftover_pid(".host.old-9"), Some(9));
        assert_eq!(leftover_pid("busybox-1.35.0-abc"), None);
        assert_eq!(leftover_pid(".manifest.json.part-x"), None);
    }

    #[test]
    fn a_second_lock_is_refused_with_the_holder_named() {
        let t = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
        let root = Root::open(&p).unwrap();
        let i = Interrupt::new();
        let held = BuildLock::acquire(&root, Scope::Target("sh4"), false, &i).unwrap();
        let me = format!("pid {}", std::process::id());
        // The same target: refused, naming the holder.
        let text = BuildLock::acquire(&root, Scope::Target("sh4"), false, &i)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(&me) && text.contains("the target `sh4`"),
            "{text}"
        );
        // Another target and a run with none work beside it.
        let other = BuildLock::acquire(&root, Scope::Target("mips"), false, &i).unwrap();
        let shared = BuildLock::acquire(&root, Scope::Shared, false, &i).unwrap();
        // The whole directory waits for all of them, naming the targets' runs.
        let text = BuildLock::acquire(&root, Scope::Whole, false, &i)
            .unwrap_err()
            .to_string();
        assert!(text.contains(&me), "{text}");
        drop((held, other));
        assert!(BuildLock::acquire(&root, Scope::Whole, false, &i).is_err());
        drop(shared);
        let whole = BuildLock::acquire(&root, Scope::Whole, false, &i).unwrap();
        // And every run waits for it.
        let text = BuildLock::acquire(&root, Scope::Target("sh4"), false, &i)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(&me) && text.contains("the build directory"),
            "{text}"
        );
        drop(whole);
        BuildLock::acquire(&root, Scope::Target("sh4"), false, &i).unwrap();
        // A released lock's file no longer names its holder.
        assert_eq!(std::fs::read_to_string(p.join(".sh4.lock")).unwrap(), "");
    }

    #[test]
    fn dead_runs_leftovers_are_swept_live_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
        std::fs::create_dir_all(p.join("sh4/.root-filesystem.part-999999999/x")).unwrap();
        std::fs::create_dir_all(p.join(format!("sh4/.linux-kernel.part-{}", std::process::id())))
            .unwrap();
        std::fs::create_dir_all(p.join("src/busybox-1-abc.part-999999998-0")).unwrap();
        std::fs::create_dir_all(p.join("src/busybox-1-abc")).unwrap();
        let root = Root::open(&p).unwrap();
        sweep_leftovers(&root);
        assert!(!p.join("sh4/.root-filesystem.part-999999999").exists());
        assert!(
            p.join(format!("sh4/.linux-kernel.part-{}", std::process::id()))
                .exists()
        );
        assert!(!p.join("src/busybox-1-abc.part-999999998-0").exists());
        assert!(p.join("src/busybox-1-abc").exists());
    }
}
