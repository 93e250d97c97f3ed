//! The cache directory: verified files under their own names, `.part`
//! files being downloaded, verification stamps, and a lock per file name.
//!
//! Every operation goes through a `Root` of the directory (see `confine`),
//! so a link planted in the cache (by a build command, say) is never
//! followed: a cached name that is not a regular file is not a cached file.
//! Whoever fetches a file holds its lock (`.locks/<file>.lock`), so two runs, or
//! two build directories sharing one cache, never download the same file
//! into each other; the second finds it cached. With the lock held, `.part`
//! files of that name are orphans of a killed run, and are removed.

use super::{Failure, Fetched, Origin, SourceSpec, check_file_name};
use crate::checksum::{self, Expected};
use crate::confine::Root;
use crate::interrupt::{Checked, Interrupt};
use camino::{Utf8Path, Utf8PathBuf};
use rustix::fs::{FileType, FlockOperation, Mode, OFlags};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where the per-file locks live: one file each, never removed (removing a
/// lock file others may wait on would let two holders in).
const LOCKS: &str = ".locks";

pub(super) struct CacheDir {
    pub root: Arc<Root>,
}

/// A held per-file lock; released when dropped.
pub(super) struct FileLock {
    _fd: OwnedFd,
}

fn rel(name: &str) -> &Utf8Path {
    Utf8Path::new(name)
}

impl CacheDir {
    pub fn path(&self, file: &str) -> Utf8PathBuf {
        self.root.join(rel(file))
    }

    /// Take the lock of `file` (waiting for another fetch of it, polling
    /// `interrupt`), then sweep that file's orphaned `.part` files.
    pub fn lock(&self, file: &str, interrupt: &Interrupt) -> Result<FileLock, Failure> {
        let dir = self
            .root
            .mkdir_all(rel(LOCKS))
            .and_then(|_| self.root.locate(rel(LOCKS)))
            .map_err(|e| Failure::Permanent(format!("cannot use the cache: {e}")))?;
        let fd = rustix::fs::openat(
            &dir,
            format!("{file}.lock"),
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| Failure::Permanent(format!("cannot lock `{file}` in the cache: {e}")))?;
        loop {
            match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => {
                    if interrupt.is_set() {
                        return Err(Failure::Interrupted);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(Failure::Permanent(format!(
                        "cannot lock `{file}` in the cache: {e}"
                    )));
                }
            }
        }
        self.sweep_parts(file);
        Ok(FileLock { _fd: fd })
    }

    /// Remove `.<file>.*.part` files and `.apt-source.*` directories no
    /// live process owns (call with `file`'s lock held).
    fn sweep_parts(&self, file: &str) {
        let Ok(names) = self.root.list(rel("")) else {
            return;
        };
        let prefix = format!(".{file}.");
        for n in names {
            if n.starts_with(&prefix) && n.ends_with(".part") {
                let _ = self.root.remove_all(rel(&n), None);
            }
        }
    }

    /// A new, empty `.part` file for `file`: its name and the open file.
    pub fn new_part(&self, file: &str) -> Result<(Utf8PathBuf, File), Failure> {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = Utf8PathBuf::from(format!(
            ".{file}.{}-{}.part",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = self.root.remove_all(&name, None);
        self.root
            .create_file(&name, 0o600)
            .map(|f| (name, f))
            .map_err(|e| Failure::Permanent(format!("cannot create a file in the cache: {e}")))
    }

    pub fn discard(&self, name: &Utf8Path) {
        let _ = self.root.remove_all(name, None);
    }

    /// A fresh directory in the cache (for `apt-get source`): its name and
    /// real path.
    pub fn temp_dir(&self) -> Result<(Utf8PathBuf, Utf8PathBuf), Failure> {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = Utf8PathBuf::from(format!(
            ".apt-source.{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let fail = |e: io::Error| {
            Failure::Permanent(format!("cannot create a directory in the cache: {e}"))
        };
        let _ = self.root.remove_all(&name, None);
        self.root.mkdir(&name, 0o755).map_err(fail)?;
        let real = self.root.real_path(&name).map_err(fail)?;
        Ok((name, real))
    }

    /// Open `name` for reading only when it is a regular file (a link
    /// planted there is not a cached file).
    fn open_regular(&self, name: &Utf8Path) -> io::Result<Option<File>> {
        match self.root.kind(name)? {
            Some(FileType::RegularFile) => Ok(Some(self.root.open_file(name)?)),
            _ => Ok(None),
        }
    }

    /// Verify `name` against `expected`, hashing it (with the interrupt
    /// flag polled); `Ok(Err(why))` is a mismatch.
    fn verify(
        &self,
        name: &Utf8Path,
        expected: &Expected,
        interrupt: &Interrupt,
    ) -> io::Result<Result<(), String>> {
        let Some(file) = self.open_regular(name)? else {
            return Ok(Err("it is not a regular file".into()));
        };
        let checked = Checked {
            inner: file,
            interrupt: interrupt.clone(),
        };
        Ok(checksum::verify_reader(checked, expected)?.map_err(|m| m.short()))
    }

    /// The first origin's file that is present and matches that origin's
    /// checksum. With `say`, files that match none of the origins naming
    /// them are deleted and reported.
    pub fn look(
        &self,
        spec: &SourceSpec,
        mut say: Option<&mut dyn FnMut(&str)>,
        interrupt: &Interrupt,
    ) -> Option<Fetched> {
        let mut seen: Vec<&str> = Vec::new();
        for origin in &spec.origins {
            let file = origin.file_name();
            if seen.contains(&file) || check_file_name(file).is_err() {
                continue;
            }
            seen.push(file);
            if !self.root.exists(rel(file)).unwrap_or(false) {
                continue;
            }
            // Origins may share a file name with different contents (say, a
            // repacked tarball): the file is good if any of them vouches for it.
            let mut mismatch = None;
            for (idx, o) in spec.origins.iter().enumerate() {
                if o.file_name() != file || o.expected.is_empty() {
                    continue;
                }
                let found = Fetched {
                    path: self.path(file),
                    origin: idx,
                    from: "cache".to_string(),
                };
                if self.stamp_holds(file, &o.expected) {
                    return Some(found);
                }
                match self.verify(rel(file), &o.expected, interrupt) {
                    Ok(Ok(())) => {
                        self.write_stamp(file, &o.expected);
                        return Some(found);
                    }
                    Ok(Err(m)) => mismatch = Some(m),
                    Err(e) => mismatch = Some(format!("cannot be read ({e})")),
                }
            }
            if interrupt.is_set() {
                return None;
            }
            if let (Some(say), Some(why)) = (say.as_mut(), mismatch) {
                let _ = self.root.remove_all(rel(file), None);
                say(&format!(
                    "cached `{file}` does not match its checksum ({why}): deleted it, fetching it again"
                ));
            }
        }
        None
    }

    /// Verify the file `name` (a `.part`, or one `apt-get` left in a
    /// directory of the cache) against the origin and rename it into the
    /// cache under the origin's name; it is removed when it does not match.
    pub fn keep_if_verified(
        &self,
        name: &Utf8Path,
        origin: &Origin,
        from: &str,
        interrupt: &Interrupt,
    ) -> Result<Utf8PathBuf, Failure> {
        let file = origin.file_name();
        let verdict = self.verify(name, &origin.expected, interrupt);
        if interrupt.is_set() {
            self.discard(name);
            return Err(Failure::Interrupted);
        }
        match verdict {
            Ok(Ok(())) => {}
            Ok(Err(m)) => {
                self.discard(name);
                return Err(Failure::Permanent(format!(
                    "checksum mismatch for `{file}` from {from}: {m} (the file was not kept)"
                )));
            }
            Err(e) => {
                self.discard(name);
                return Err(Failure::Permanent(format!(
                    "cannot read back `{}`: {e}",
                    self.root.join(name)
                )));
            }
        }
        let _ = self.root.chmod(name, 0o644);
        self.root.rename(name, rel(file)).map_err(|e| {
            self.discard(name);
            Failure::Permanent(format!("cannot keep `{file}` in the cache: {e}"))
        })?;
        self.write_stamp(file, &origin.expected);
        Ok(self.path(file))
    }

    /// What a stamp holds: the checksums the file matched and the metadata
    /// it had then. The inode change time moves on any write, rename or
    /// chmod and cannot be set back by a user, so a file whose metadata
    /// still matches is the one that was verified.
    fn stamp_text(&self, file: &str, expected: &Expected) -> Option<String> {
        if self.root.kind(rel(file)).ok()?? != FileType::RegularFile {
            return None;
        }
        let m = self.root.metadata(rel(file)).ok()?;
        Some(format!(
            "{:?} {:?} size={} ino={} mtime={}.{} ctime={}.{}\n",
            expected.sha256,
            expected.sha1,
            m.st_size,
            m.st_ino,
            m.st_mtime,
            m.st_mtime_nsec,
            m.st_ctime,
            m.st_ctime_nsec
        ))
    }

    fn stamp_name(file: &str) -> Utf8PathBuf {
        Utf8PathBuf::from(format!(".{file}.verified"))
    }

    fn write_stamp(&self, file: &str, expected: &Expected) {
        if let Some(text) = self.stamp_text(file, expected) {
            // A stamp is only a shortcut: failing to write one costs a re-hash.
            let _ = self
                .root
                .write_atomic(&Self::stamp_name(file), text.as_bytes(), 0o644);
        }
    }

    /// Whether `file` still is the file that was verified against
    /// `expected`, so re-hashing it can be skipped (a second `rhbuild fetch`
    /// with everything cached then costs a few `stat` calls).
    fn stamp_holds(&self, file: &str, expected: &Expected) -> bool {
        match (
            self.root.read_to_string(&Self::stamp_name(file)),
            self.stamp_text(file, expected),
        ) {
            (Ok(stored), Some(now)) => stored == now,
            _ => false,
        }
    }
}
