//! One run per build directory at a time.
//!
//! A run holds an exclusive `flock` on `<build>/.lock` for its whole life
//! and writes its pid and command line there, so a second run can say who
//! holds it: it waits (saying so once) or, with `--no-wait`, refuses at
//! once. The kernel drops the lock when the holder exits, however it dies.
//!
//! A run that starts child runs on the same directory (build-all's
//! matrix) passes them `RHBUILD_LOCK_HOLDER=<its pid>`; a child whose parent
//! is that pid and still holds the lock works under it. The children build
//! different targets; what they share (`cache/`, `src/`) is written by
//! atomic renames that tolerate a sibling getting there first.
//!
//! Whoever takes the lock first sweeps what killed runs left behind:
//! staging directories and partial files named `*.part-<pid>*` or
//! `*.old-<pid>` whose process is gone.
//!
//! Tests: `tests/faults.rs` (two runs at once, a run killed at each phase).

use crate::confine::Root;
use crate::interrupt::Interrupt;
use camino::{Utf8Path, Utf8PathBuf};
use rustix::fs::{FlockOperation, Mode, OFlags};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// The environment variable a lock holder passes to its child runs.
pub const HOLDER_ENV: &str = "RHBUILD_LOCK_HOLDER";

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct BuildLock {
    _fd: Option<OwnedFd>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the build directory `{dir}` is in use by {holder}; wait for it to finish (run again without --no-wait to wait), or use another --build-dir"
    )]
    Busy { dir: Utf8PathBuf, holder: String },
    #[error("interrupted while waiting for the build directory `{dir}`")]
    Interrupted { dir: Utf8PathBuf },
    #[error("cannot lock the build directory `{dir}`: {source}")]
    Io {
        dir: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

impl BuildLock {
    /// Take the lock of the build directory `build`: wait for it (polling
    /// `interrupt`) or, without `wait`, fail at once naming the holder.
    pub fn acquire(
        build: &Root,
        wait: bool,
        interrupt: &Interrupt,
    ) -> Result<BuildLock, LockError> {
        let dir = build.path().to_owned();
        let io_err = |source| LockError::Io {
            dir: dir.clone(),
            source,
        };
        if let Some(parent) = std::env::var(HOLDER_ENV)
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            && parent == std::os::unix::process::parent_id()
        {
            // The parent run holds it for us: check that it really does.
            let fd = open_lock(build).map_err(io_err)?;
            if rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_err() {
                return Ok(BuildLock { _fd: None });
            }
            // Nobody held it after all: keep it ourselves.
            write_holder(&fd).map_err(io_err)?;
            sweep_leftovers(build);
            return Ok(BuildLock { _fd: Some(fd) });
        }
        let fd = open_lock(build).map_err(io_err)?;
        match take_when_free(&fd, interrupt, || {
            let holder = read_holder(&fd);
            if !wait {
                return Err(LockError::Busy {
                    dir: dir.clone(),
                    holder,
                });
            }
            eprintln!("waiting for the build directory `{dir}`, in use by {holder}");
            Ok(())
        }) {
            Ok(Ok(())) => {}
            Ok(Err(busy)) => return Err(busy),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                return Err(LockError::Interrupted { dir });
            }
            Err(e) => return Err(io_err(e)),
        }
        write_holder(&fd).map_err(io_err)?;
        sweep_leftovers(build);
        Ok(BuildLock { _fd: Some(fd) })
    }
}

/// A lock on one per-host stage (`build/all/.<output>.lock`), which target
/// runs side by side under one build lock (build-all) take in turn: the
/// first builds the stage, the others wait and then find it up to date.
#[derive(Debug)]
pub struct StageLock {
    _fd: OwnedFd,
}

impl StageLock {
    /// Wait for the lock file `rel` beneath the build directory, polling
    /// `interrupt`; `what` names the stage in the message said once.
    pub fn acquire(
        build: &Root,
        rel: &Utf8Path,
        what: &str,
        interrupt: &Interrupt,
    ) -> io::Result<StageLock> {
        if let Some(parent) = rel.parent() {
            build.mkdir_all(parent)?;
        }
        let fd = OwnedFd::from(build.append_file(rel)?);
        // Nothing gives up: it waits until the other run is done.
        let Ok(()) = take_when_free(&fd, interrupt, || {
            println!("    waiting for another target's run to finish {what}");
            Ok::<(), std::convert::Infallible>(())
        })?;
        Ok(StageLock { _fd: fd })
    }
}

/// Take the exclusive `flock` on `fd`, polling: the first time it is held
/// elsewhere, `busy` is told (an `Err` from it gives up at once, its value
/// returned inside `Ok`); an interrupt ends the wait with
/// `ErrorKind::Interrupted`.
fn take_when_free<E>(
    fd: &OwnedFd,
    interrupt: &Interrupt,
    mut busy: impl FnMut() -> Result<(), E>,
) -> io::Result<Result<(), E>> {
    let mut said = false;
    loop {
        match rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
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

fn open_lock(build: &Root) -> io::Result<OwnedFd> {
    let fd = build.locate(Utf8Path::new(""))?;
    Ok(rustix::fs::openat(
        &fd,
        ".lock",
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
        let held = BuildLock::acquire(&root, false, &Interrupt::new()).unwrap();
        let err = BuildLock::acquire(&root, false, &Interrupt::new()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(held);
        BuildLock::acquire(&root, false, &Interrupt::new()).unwrap();
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
