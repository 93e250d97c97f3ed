//! The access policy: every path a primitive touches is resolved beneath a
//! root by the kernel, never compared as a string.
//!
//! A [`Root`] is a directory capability: an open directory descriptor.
//! Every operation takes a path *relative* to it and resolves that path with
//! `openat2(RESOLVE_BENEATH)`: `..` and symbolic links are followed only
//! while they stay beneath the root; a path that would leave it fails with
//! [`ErrorKind::PermissionDenied`] and a message naming the root. The last
//! component of a path an operation creates, replaces or removes is never
//! followed: `create` does not write through a link, `remove_all` removes a
//! link and not what it points to.
//!
//! Why `openat2` and not a capability crate: the kernel does the resolution
//! (no user-space walk to get wrong, no race with a concurrent build command
//! swapping a link), `RESOLVE_NO_SYMLINKS` gives the extractor "never
//! through a link" for free, and Linux 5.6 has it (Debian 12 ships 6.1).
//!
//! [`AccessPolicy`] says which roots a run may use: it writes beneath the
//! build directory only, and reads beneath the build directory, the project
//! and the directories (or single files) the user named in `MY_*` settings. An absolute path a
//! script gives picks its root by the roots' own paths (the deepest root
//! that contains it lexically); what follows that prefix, `..` and links
//! included, is the kernel's to resolve beneath that root.
//!
//! Tests: the unit tests below, `tests/confine.rs` (scripts attacking the
//! policy) and `tests/faults.rs`.

use crate::interrupt::Interrupt;
use camino::{Utf8Component, Utf8Path, Utf8PathBuf};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// A directory every operation is confined beneath.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// The path the root was opened with (scripts see this one).
    path: Utf8PathBuf,
    /// The same directory without links, for paths given that way.
    real: Utf8PathBuf,
}

/// What the kernel's resolution may do: stay beneath the root, never
/// through /proc's magic links.
fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
}

/// An error for a path that leads outside its root.
pub fn escape_error(root: &Utf8Path, rel: &Utf8Path) -> io::Error {
    io::Error::new(
        ErrorKind::PermissionDenied,
        format!("`{rel}` leads outside `{root}` (through `..` or a symbolic link)"),
    )
}

/// Whether an error is a refused escape (rather than, say, a missing file).
pub fn is_escape(e: &io::Error) -> bool {
    e.kind() == ErrorKind::PermissionDenied && e.to_string().contains("leads outside")
}

impl Root {
    /// Open the directory at `path` (which must exist) as a root.
    pub fn open(path: &Utf8Path) -> io::Result<Root> {
        let fd = rfs::open(
            path.as_std_path(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("cannot open `{path}`: {e}"),
            )
        })?;
        let real = std::fs::canonicalize(path)
            .ok()
            .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
            .unwrap_or_else(|| path.to_owned());
        Ok(Root {
            fd,
            path: path.to_owned(),
            real,
        })
    }

    /// Create the directory at `path` (and its parents) and open it.
    pub fn create(path: &Utf8Path) -> io::Result<Root> {
        std::fs::create_dir_all(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create `{path}`: {e}")))?;
        Root::open(path)
    }

    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    /// The root's directory without links (what programs told to work in
    /// it should be given).
    pub fn real(&self) -> &Utf8Path {
        &self.real
    }

    /// The directory `rel` beneath this root (created if missing) as a
    /// root of its own.
    pub fn subdir(&self, rel: &Utf8Path) -> io::Result<Root> {
        self.mkdir_all(rel)?;
        let fd = self
            .open_beneath(rel, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .map_err(|e| self.err(e, rel, "open"))?;
        let real = fd_path(&fd).unwrap_or_else(|_| self.join(rel));
        Ok(Root {
            fd,
            path: self.join(rel),
            real,
        })
    }

    /// `abs` relative to this root, when it lies lexically beneath the
    /// root's path (as given or without links). The result may still hold
    /// `..` or links: the kernel decides where it leads.
    pub fn relative(&self, abs: &Utf8Path) -> Option<Utf8PathBuf> {
        for base in [&self.path, &self.real] {
            if let Ok(rel) = abs.strip_prefix(base) {
                return Some(rel.to_owned());
            }
        }
        None
    }

    /// The absolute path of `rel` as scripts see it (no resolution).
    pub fn join(&self, rel: &Utf8Path) -> Utf8PathBuf {
        if rel.as_str().is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    fn err(&self, e: Errno, rel: &Utf8Path, what: &str) -> io::Error {
        if e == Errno::XDEV {
            return escape_error(&self.path, rel);
        }
        let shown = self.join(rel);
        let base = io::Error::from(e);
        io::Error::new(base.kind(), format!("cannot {what} `{shown}`: {base}"))
    }

    /// `openat2` beneath the root, following links while they stay beneath.
    fn open_beneath(&self, rel: &Utf8Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        let p = if rel.as_str().is_empty() {
            "."
        } else {
            rel.as_str()
        };
        loop {
            match rfs::openat2(&self.fd, p, flags | OFlags::CLOEXEC, mode, beneath()) {
                // The kernel asks for a retry when a rename raced the walk.
                Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
                other => return other,
            }
        }
    }

    /// The parent directory of `rel`, resolved beneath the root, and the
    /// last component, which the caller acts on without following it.
    fn parent(&self, rel: &Utf8Path) -> io::Result<(OwnedFd, String)> {
        let (parent, name) = split_last(rel).ok_or_else(|| {
            io::Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "`{}` names no file (it ends in `.` or `..`, or is the root)",
                    self.join(rel)
                ),
            )
        })?;
        let fd = self
            .open_beneath(parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .map_err(|e| self.err(e, rel, "reach the directory of"))?;
        Ok((fd, name.to_string()))
    }

    /// Read a whole file (links followed beneath the root).
    pub fn read(&self, rel: &Utf8Path) -> io::Result<Vec<u8>> {
        let mut f = self.open_file(rel)?;
        let mut out = Vec::new();
        io::Read::read_to_end(&mut f, &mut out).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot read `{}`: {e}", self.join(rel)))
        })?;
        Ok(out)
    }

    pub fn read_to_string(&self, rel: &Utf8Path) -> io::Result<String> {
        String::from_utf8(self.read(rel)?).map_err(|_| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("`{}` is not UTF-8 text", self.join(rel)),
            )
        })
    }

    /// Open a file for reading (links followed beneath the root).
    pub fn open_file(&self, rel: &Utf8Path) -> io::Result<File> {
        let fd = self
            .open_beneath(rel, OFlags::RDONLY, Mode::empty())
            .map_err(|e| self.err(e, rel, "open"))?;
        Ok(File::from(fd))
    }

    /// Open a directory for listing (links followed beneath the root).
    pub fn open_dir(&self, rel: &Utf8Path) -> io::Result<OwnedFd> {
        self.open_beneath(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            .map_err(|e| self.err(e, rel, "open the directory"))
    }

    /// An `O_PATH` descriptor of what `rel` resolves to beneath the root.
    pub fn locate(&self, rel: &Utf8Path) -> io::Result<OwnedFd> {
        self.open_beneath(rel, OFlags::PATH, Mode::empty())
            .map_err(|e| self.err(e, rel, "find"))
    }

    /// Where `rel` really is: its path with every link resolved (beneath
    /// the root), for handing to a program.
    pub fn real_path(&self, rel: &Utf8Path) -> io::Result<Utf8PathBuf> {
        let fd = self.locate(rel)?;
        fd_path(&fd)
    }

    /// Create (or truncate) a file for writing. The last component is never
    /// followed: an existing link there is replaced, not written through.
    pub fn create_file(&self, rel: &Utf8Path, mode: u32) -> io::Result<File> {
        let (dir, name) = self.parent(rel)?;
        self.create_in(&dir, &name, rel, mode, OFlags::TRUNC)
    }

    /// Open a file for appending, creating it if needed (never through a
    /// link).
    pub fn append_file(&self, rel: &Utf8Path) -> io::Result<File> {
        let (dir, name) = self.parent(rel)?;
        self.create_in(&dir, &name, rel, 0o644, OFlags::APPEND)
    }

    fn create_in(
        &self,
        dir: &OwnedFd,
        name: &str,
        rel: &Utf8Path,
        mode: u32,
        extra: OFlags,
    ) -> io::Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | extra;
        match rfs::openat(dir, name, flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::LOOP) => {
                // A link sits there: replace it, never write through it.
                rfs::unlinkat(dir, name, AtFlags::empty())
                    .map_err(|e| self.err(e, rel, "replace"))?;
                rfs::openat(dir, name, flags | OFlags::EXCL, Mode::from_raw_mode(mode))
                    .map(File::from)
                    .map_err(|e| self.err(e, rel, "create"))
            }
            Err(e) => Err(self.err(e, rel, "create")),
        }
    }

    /// Write a whole file, through a temporary name renamed into place, so
    /// a reader never sees half of it.
    pub fn write_atomic(&self, rel: &Utf8Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        let tmp = format!(".{name}.part-{}", std::process::id());
        let file = self.create_in(&dir, &tmp, rel, mode, OFlags::TRUNC)?;
        let result = (|| {
            let mut f = file;
            io::Write::write_all(&mut f, bytes)?;
            rfs::fchmod(&f, Mode::from_raw_mode(mode))?;
            rfs::renameat(&dir, tmp.as_str(), &dir, name.as_str())?;
            Ok::<(), io::Error>(())
        })();
        if let Err(e) = result {
            let _ = rfs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
            return Err(io::Error::new(
                e.kind(),
                format!("cannot write `{}`: {e}", self.join(rel)),
            ));
        }
        Ok(())
    }

    /// `mkdir -p`, every component resolved beneath the root.
    pub fn mkdir_all(&self, rel: &Utf8Path) -> io::Result<()> {
        let mut done = Utf8PathBuf::new();
        for c in rel.components() {
            let next = done.join(c.as_str());
            match self.open_beneath(&next, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()) {
                Ok(_) => {}
                Err(Errno::NOENT) if matches!(c, Utf8Component::Normal(_)) => {
                    let dir = self
                        .open_beneath(&done, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
                        .map_err(|e| self.err(e, &done, "reach"))?;
                    match rfs::mkdirat(&dir, c.as_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.err(e, &next, "create the directory")),
                    }
                    // What is there now must be a directory beneath the root.
                    self.open_beneath(&next, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
                        .map_err(|e| self.err(e, &next, "create the directory"))?;
                }
                Err(e) => return Err(self.err(e, &next, "create the directory")),
            }
            done = next;
        }
        Ok(())
    }

    /// `mkdir` of one directory whose parent exists; an existing directory
    /// is an `AlreadyExists` error.
    pub fn mkdir(&self, rel: &Utf8Path, mode: u32) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        rfs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(mode))
            .map_err(|e| self.err(e, rel, "create the directory"))
    }

    /// Create the symbolic link `rel` -> `target`, replacing a file or link
    /// already there. The target is only text: whatever it names, every
    /// later access through the link is resolved beneath its root.
    pub fn symlink(&self, target: &str, rel: &Utf8Path) -> io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        match rfs::symlinkat(target, &dir, name.as_str()) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                let st = rfs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.err(e, rel, "inspect"))?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    return Err(io::Error::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "cannot create the link `{}`: a directory is there",
                            self.join(rel)
                        ),
                    ));
                }
                rfs::unlinkat(&dir, name.as_str(), AtFlags::empty())
                    .map_err(|e| self.err(e, rel, "replace"))?;
                rfs::symlinkat(target, &dir, name.as_str())
                    .map_err(|e| self.err(e, rel, "create the link"))
            }
            Err(e) => Err(self.err(e, rel, "create the link")),
        }
    }

    /// What is at `rel`, without following a link there (`None`: nothing).
    pub fn kind(&self, rel: &Utf8Path) -> io::Result<Option<FileType>> {
        if split_last(rel).is_none() {
            // The root itself, or a path ending in `..`: resolve it whole.
            return match self.open_beneath(rel, OFlags::PATH, Mode::empty()) {
                Ok(fd) => Ok(Some(FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode))),
                Err(Errno::NOENT) => Ok(None),
                Err(e) => Err(self.err(e, rel, "inspect")),
            };
        }
        let (dir, name) = match self.parent(rel) {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match rfs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
            Err(e) => Err(self.err(e, rel, "inspect")),
        }
    }

    /// Whether something (a link counts) is at `rel`.
    pub fn exists(&self, rel: &Utf8Path) -> io::Result<bool> {
        Ok(self.kind(rel)?.is_some())
    }

    /// Metadata of what `rel` resolves to (links followed beneath).
    pub fn metadata(&self, rel: &Utf8Path) -> io::Result<rfs::Stat> {
        let fd = self.locate(rel)?;
        Ok(rfs::fstat(&fd)?)
    }

    /// The names in a directory, sorted.
    pub fn list(&self, rel: &Utf8Path) -> io::Result<Vec<String>> {
        let fd = self.open_dir(rel)?;
        let mut names = Vec::new();
        for entry in entries(&fd)? {
            names.push(entry.0);
        }
        names.sort();
        Ok(names)
    }

    /// chmod what `rel` resolves to (links followed beneath).
    pub fn chmod(&self, rel: &Utf8Path, mode: u32) -> io::Result<()> {
        let fd = self.locate(rel)?;
        chmod_fd(&fd, mode).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot chmod `{}`: {e}", self.join(rel)))
        })
    }

    /// Remove whatever is at `rel`: a file, a link (not what it points to)
    /// or a whole tree. Nothing there is fine. Read-only directories in the
    /// tree are opened up first.
    pub fn remove_all(&self, rel: &Utf8Path, interrupt: Option<&Interrupt>) -> io::Result<()> {
        let (dir, name) = match self.parent(rel) {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        remove_entry(dir.as_fd(), &name, interrupt).map_err(|e| {
            if e.kind() == ErrorKind::Interrupted {
                e
            } else {
                io::Error::new(e.kind(), format!("cannot remove `{}`: {e}", self.join(rel)))
            }
        })
    }

    /// renameat2 of `from` to `to`, both parents resolved beneath the root
    /// (the outer error: a parent could not be; the inner: the rename).
    fn rename_with(
        &self,
        from: &Utf8Path,
        to: &Utf8Path,
        flags: rfs::RenameFlags,
    ) -> io::Result<Result<(), Errno>> {
        let (fd, fname) = self.parent(from)?;
        let (td, tname) = self.parent(to)?;
        Ok(rfs::renameat_with(
            &fd,
            fname.as_str(),
            &td,
            tname.as_str(),
            flags,
        ))
    }

    fn rename_error(&self, e: Errno, from: &Utf8Path, to: &Utf8Path) -> io::Error {
        if e == Errno::EXIST || e == Errno::NOTEMPTY {
            return io::Error::new(
                ErrorKind::AlreadyExists,
                format!("`{}` exists already", self.join(to)),
            );
        }
        self.err(e, to, &format!("rename `{}` to", self.join(from)))
    }

    /// Rename `from` to `to` (both beneath this root), replacing `to` when
    /// it is a file or an empty directory.
    pub fn rename(&self, from: &Utf8Path, to: &Utf8Path) -> io::Result<()> {
        self.rename_with(from, to, rfs::RenameFlags::empty())?
            .map_err(|e| self.rename_error(e, from, to))
    }

    /// Rename that fails with `AlreadyExists` rather than replace `to`.
    pub fn rename_noreplace(&self, from: &Utf8Path, to: &Utf8Path) -> io::Result<()> {
        match self.rename_with(from, to, rfs::RenameFlags::NOREPLACE)? {
            Err(Errno::INVAL) | Err(Errno::NOSYS) => {
                // Filesystems without RENAME_NOREPLACE: check, then rename.
                if self.exists(to)? {
                    return Err(self.rename_error(Errno::EXIST, from, to));
                }
                self.rename(from, to)
            }
            other => other.map_err(|e| self.rename_error(e, from, to)),
        }
    }

    /// Put the directory `from` at `to`, replacing whatever `to` was, so
    /// that `to` is never seen half-made: exchanged atomically where the
    /// filesystem can, else moved aside and removed.
    pub fn replace_dir(&self, from: &Utf8Path, to: &Utf8Path) -> io::Result<()> {
        if !self.exists(to)? {
            return self.rename(from, to);
        }
        match self.rename_with(from, to, rfs::RenameFlags::EXCHANGE)? {
            Ok(()) => self.remove_all(from, None),
            Err(_) => {
                let old = Utf8PathBuf::from(format!("{to}.old-{}", std::process::id()));
                self.remove_all(&old, None)?;
                self.rename(to, &old)?;
                self.rename(from, to)?;
                self.remove_all(&old, None)
            }
        }
    }

    /// Copy `from_rel` beneath `from` to `to_rel` beneath this root: a file
    /// (replacing a file there), or a directory tree, merged into a
    /// directory already at `to_rel` (following directory links already in
    /// the destination, as a root filesystem's `etc -> usr/etc`, while they
    /// stay beneath this root). Links are copied as links, modes and times
    /// kept, hard links within the tree kept, reflinked where the
    /// filesystem can. Nothing is ever written through a link.
    pub fn copy_from(
        &self,
        from: &Root,
        from_rel: &Utf8Path,
        to_rel: &Utf8Path,
        interrupt: Option<&Interrupt>,
    ) -> io::Result<()> {
        let src = from.locate(from_rel)?;
        let st = rfs::fstat(&src)?;
        let mut copier = Copier {
            to: self,
            interrupt,
            links: HashMap::new(),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let dir = from.open_dir(from_rel)?;
                copier.dir(dir.as_fd(), to_rel)
            }
            FileType::RegularFile => {
                if self.kind(to_rel)? == Some(FileType::Directory) {
                    return Err(io::Error::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "cannot copy the file `{}` onto the directory `{}`",
                            from.join(from_rel),
                            self.join(to_rel)
                        ),
                    ));
                }
                let (dir, name) = self.parent(to_rel)?;
                let file = from.open_file(from_rel)?;
                copier.file(file, &st, dir.as_fd(), &name, to_rel)
            }
            _ => Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "`{}` is neither a file nor a directory; only those are copied",
                    from.join(from_rel)
                ),
            )),
        }
    }
}

/// `rel` split into its parent and a last component that names an entry
/// (`None` when it ends in `.`, `..` or names nothing).
fn split_last(rel: &Utf8Path) -> Option<(&Utf8Path, &str)> {
    match rel.components().next_back() {
        Some(Utf8Component::Normal(name)) => {
            Some((rel.parent().unwrap_or(Utf8Path::new("")), name))
        }
        _ => None,
    }
}

/// The path of an open descriptor, as /proc knows it.
pub fn fd_path(fd: &impl AsFd) -> io::Result<Utf8PathBuf> {
    let link = format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd())
    );
    let p = std::fs::read_link(&link)?;
    Utf8PathBuf::from_path_buf(p).map_err(|p| {
        io::Error::new(
            ErrorKind::InvalidData,
            format!("`{}` is not UTF-8", p.display()),
        )
    })
}

/// chmod through a descriptor, which may be `O_PATH`.
fn chmod_fd(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
    rfs::chmod(link.as_str(), Mode::from_raw_mode(mode))?;
    Ok(())
}

/// The entries of an open directory (without `.` and `..`): name and type.
fn entries(dir: &OwnedFd) -> io::Result<Vec<(String, Option<FileType>)>> {
    let mut out = Vec::new();
    let mut d = rfs::Dir::read_from(dir)?;
    for e in d.by_ref() {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = String::from_utf8(name.to_vec()).map_err(|e| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!(
                    "a file name is not UTF-8: {:?}",
                    String::from_utf8_lossy(e.as_bytes())
                ),
            )
        })?;
        let t = e.file_type();
        out.push((name, (t != FileType::Unknown).then_some(t)));
    }
    Ok(out)
}

fn check_interrupt(interrupt: Option<&Interrupt>) -> io::Result<()> {
    if interrupt.is_some_and(Interrupt::is_set) {
        return Err(io::Error::new(ErrorKind::Interrupted, "interrupted"));
    }
    Ok(())
}

/// Remove `name` in `dir` and, for a directory, everything below it; links
/// are removed, never followed.
fn remove_entry(dir: BorrowedFd<'_>, name: &str, interrupt: Option<&Interrupt>) -> io::Result<()> {
    check_interrupt(interrupt)?;
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return match rfs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    let open = || {
        rfs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let sub = match open() {
        Ok(fd) => fd,
        Err(Errno::ACCESS) => {
            // A directory without read or search permission (an archive may
            // hold one): open it up, through a descriptor, then list it.
            let p = rfs::openat(
                dir,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            chmod_fd(&p, 0o700)?;
            open()?
        }
        Err(e) => return Err(e.into()),
    };
    if st.st_mode & 0o700 != 0o700 {
        let _ = rfs::fchmod(&sub, Mode::from_raw_mode(0o700));
    }
    for (child, _) in entries(&sub)? {
        remove_entry(sub.as_fd(), &child, interrupt)?;
    }
    match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A tree copy into a root.
struct Copier<'a> {
    to: &'a Root,
    interrupt: Option<&'a Interrupt>,
    /// Files of the source with more than one link -> the first copy, so
    /// the copy keeps them linked.
    links: HashMap<(u64, u64), OwnedFd>,
}

/// At most this many hard-linked files are remembered (an open descriptor
/// each); past it, further links are copied as separate files.
const MAX_REMEMBERED_LINKS: usize = 512;

impl Copier<'_> {
    /// Copy the directory `src` to `to_rel`, merging into what is there.
    fn dir(&mut self, src: BorrowedFd<'_>, to_rel: &Utf8Path) -> io::Result<()> {
        check_interrupt(self.interrupt)?;
        let st = rfs::fstat(src)?;
        let root = self.to;
        // The destination directory: made if missing; an existing one, or a
        // link to one beneath the root, is merged into.
        match root.kind(to_rel)? {
            None => root.mkdir(to_rel, 0o700)?,
            Some(FileType::Directory) | Some(FileType::Symlink) => {}
            Some(_) => {
                return Err(io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "cannot copy a directory onto the file `{}`",
                        root.join(to_rel)
                    ),
                ));
            }
        }
        let dst = root.open_dir(to_rel)?;
        let own = src.try_clone_to_owned()?;
        for (name, kind) in entries(&own)? {
            check_interrupt(self.interrupt)?;
            let child_rel = to_rel.join(&name);
            let kind = match kind {
                Some(k) => k,
                None => FileType::from_raw_mode(
                    rfs::statat(src, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)?.st_mode,
                ),
            };
            match kind {
                FileType::Directory => {
                    let sub = rfs::openat(
                        src,
                        name.as_str(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?;
                    self.dir(sub.as_fd(), &child_rel)?;
                }
                FileType::Symlink => {
                    let target = rfs::readlinkat(src, name.as_str(), Vec::new())?;
                    let target = target.to_str().map_err(|_| {
                        io::Error::new(
                            ErrorKind::InvalidData,
                            format!("the link `{child_rel}` is not UTF-8"),
                        )
                    })?;
                    root.symlink(target, &child_rel)?;
                }
                FileType::RegularFile => {
                    let fd = rfs::openat(
                        src,
                        name.as_str(),
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?;
                    let fst = rfs::fstat(&fd)?;
                    self.file(File::from(fd), &fst, dst.as_fd(), &name, &child_rel)?;
                }
                other => {
                    return Err(io::Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "cannot copy `{name}`: it is a {other:?}, and only files, directories and links are copied"
                        ),
                    ));
                }
            }
        }
        rfs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
        let times = rfs::Timestamps {
            last_access: st_atime(&st),
            last_modification: st_mtime(&st),
        };
        rfs::futimens(&dst, &times)?;
        Ok(())
    }

    /// Copy one regular file to `name` in `dir` (replacing a file or link
    /// there, never writing through it).
    fn file(
        &mut self,
        src: File,
        st: &rfs::Stat,
        dir: BorrowedFd<'_>,
        name: &str,
        rel: &Utf8Path,
    ) -> io::Result<()> {
        let key = (st.st_dev, st.st_ino);
        match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(old) if FileType::from_raw_mode(old.st_mode) == FileType::Directory => {
                return Err(io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "cannot copy a file onto the directory `{}`",
                        self.to.join(rel)
                    ),
                ));
            }
            Ok(_) => rfs::unlinkat(dir, name, AtFlags::empty())?,
            Err(_) => {}
        }
        if st.st_nlink > 1
            && let Some(first) = self.links.get(&key)
        {
            let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(first));
            if rfs::linkat(rfs::CWD, link.as_str(), dir, name, AtFlags::SYMLINK_FOLLOW).is_ok() {
                return Ok(());
            }
        }
        let out = rfs::openat(
            dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("cannot create `{}`: {e}", self.to.join(rel)),
            )
        })?;
        let out = File::from(out);
        copy_data(&src, &out, st.st_size as u64, self.interrupt).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot copy to `{}`: {e}", self.to.join(rel)),
            )
        })?;
        rfs::fchmod(&out, Mode::from_raw_mode(st.st_mode & 0o7777))?;
        rfs::futimens(
            &out,
            &rfs::Timestamps {
                last_access: st_atime(st),
                last_modification: st_mtime(st),
            },
        )?;
        if st.st_nlink > 1 && self.links.len() < MAX_REMEMBERED_LINKS {
            let path_fd = rfs::openat(
                dir,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            self.links.insert(key, path_fd);
        }
        Ok(())
    }
}

/// Copy `len` bytes from `src` to `dst`: a reflink where the filesystem
/// can, else `copy_file_range`, else read and write.
pub fn copy_data(
    src: &File,
    dst: &File,
    len: u64,
    interrupt: Option<&Interrupt>,
) -> io::Result<()> {
    if len > 0 && rfs::ioctl_ficlone(dst, src).is_ok() {
        return Ok(());
    }
    let mut left = len;
    while left > 0 {
        check_interrupt(interrupt)?;
        let chunk = left.min(64 << 20) as usize;
        match rfs::copy_file_range(src, None, dst, None, chunk) {
            Ok(0) => break,
            Ok(n) => left -= n as u64,
            Err(Errno::XDEV) | Err(Errno::NOSYS) | Err(Errno::INVAL) | Err(Errno::OPNOTSUPP) => {
                return copy_by_reading(src, dst, interrupt);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_by_reading(
    mut src: &File,
    mut dst: &File,
    interrupt: Option<&Interrupt>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        check_interrupt(interrupt)?;
        let n = io::Read::read(&mut src, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        io::Write::write_all(&mut dst, &buf[..n])?;
    }
}

fn st_mtime(st: &rfs::Stat) -> rfs::Timespec {
    rfs::Timespec {
        tv_sec: st.st_mtime as _,
        tv_nsec: st.st_mtime_nsec as _,
    }
}

fn st_atime(st: &rfs::Stat) -> rfs::Timespec {
    rfs::Timespec {
        tv_sec: st.st_atime as _,
        tv_nsec: st.st_atime_nsec as _,
    }
}

/// Which root a path was found beneath.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// The build directory (writable).
    Build,
    /// The project checkout (read-only; files read are recorded).
    Project,
    /// A directory (or file) the user named in a `MY_*` setting
    /// (read-only; recorded by a stamp of its contents).
    User { setting: String, dir: Utf8PathBuf },
}

/// A path found beneath one of the policy's roots.
#[derive(Debug)]
pub struct Located<'a> {
    pub root: &'a Root,
    pub rel: Utf8PathBuf,
    pub place: Place,
}

impl Located<'_> {
    /// The path as scripts see it.
    pub fn path(&self) -> Utf8PathBuf {
        self.root.join(&self.rel)
    }
}

/// The roots one run may use.
#[derive(Debug)]
pub struct AccessPolicy {
    build: Root,
    project: Root,
    /// `MY_*` settings naming directories or files: (setting, the
    /// directory, and for a file its name: nothing else there is read).
    user: Vec<(String, Root, Option<String>)>,
}

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("`{path}` is outside the build directory `{build}`; scripts write only there")]
    NotWritable { path: String, build: Utf8PathBuf },
    #[error(
        "`{path}` is outside the build directory, the project and the directories named by MY_* settings; scripts read only there"
    )]
    NotReadable { path: String },
    #[error("`{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl AccessPolicy {
    /// `build` is created if missing; `project` must exist; each `MY_*`
    /// setting (and each `--source` override, named `--source NAME`) that
    /// names an existing directory becomes a read root.
    pub fn new(
        build: &Utf8Path,
        project: &Utf8Path,
        user_dirs: &[(String, String)],
    ) -> io::Result<AccessPolicy> {
        let build = Root::create(build)?;
        let project = Root::open(project)?;
        let mut user = Vec::new();
        for (setting, dir) in user_dirs {
            if dir.is_empty() {
                continue;
            }
            let p = crate::project::absolute(Utf8Path::new(dir));
            if p.is_dir() {
                user.push((setting.clone(), Root::open(&p)?, None));
            } else if p.is_file()
                && let (Some(parent), Some(name)) = (p.parent(), p.file_name())
            {
                user.push((setting.clone(), Root::open(parent)?, Some(name.to_string())));
            }
        }
        Ok(AccessPolicy {
            build,
            project,
            user,
        })
    }

    /// Open `path` for appending, creating it and its parents: beneath
    /// the build directory through its root (never through a link),
    /// elsewhere (a log or event file the user named) as given.
    pub fn append(&self, path: &Utf8Path) -> io::Result<File> {
        if let Some(rel) = self.build.relative(path) {
            if let Some(parent) = rel.parent() {
                self.build.mkdir_all(parent)?;
            }
            return self.build.append_file(&rel);
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }

    /// The directory `path` beneath the build directory, created and
    /// opened there as a root (no `..` out of it, no link followed), for
    /// what rhbuild itself writes in it outside the sandbox.
    pub fn build_subdir(&self, path: &Utf8Path) -> Result<Root, String> {
        let rel = self.build.relative(path).ok_or_else(|| {
            format!(
                "`{path}` is not beneath the build directory `{}`",
                self.build.path
            )
        })?;
        self.build
            .subdir(&rel)
            .map_err(|e| format!("cannot use `{path}`: {e}"))
    }

    pub fn build(&self) -> &Root {
        &self.build
    }

    pub fn project(&self) -> &Root {
        &self.project
    }

    /// Where a script may write `path`: beneath the build directory.
    pub fn writable(&self, path: &str) -> Result<Located<'_>, PolicyError> {
        let abs = crate::project::absolute(Utf8Path::new(path));
        match self.build.relative(&abs) {
            Some(rel) => Ok(Located {
                root: &self.build,
                rel,
                place: Place::Build,
            }),
            None => Err(PolicyError::NotWritable {
                path: path.to_string(),
                build: self.build.path.clone(),
            }),
        }
    }

    /// The roots `path` may be read beneath, deepest first (the build
    /// directory usually lies inside the project). The caller tries them in
    /// order and moves on only when the kernel says a path escapes one.
    pub fn readable(&self, path: &str) -> Result<Vec<Located<'_>>, PolicyError> {
        let abs = crate::project::absolute(Utf8Path::new(path));
        let mut found: Vec<(usize, Located<'_>)> = Vec::new();
        for (root, place) in [(&self.build, Place::Build), (&self.project, Place::Project)] {
            if let Some(rel) = root.relative(&abs) {
                found.push((root.path.as_str().len(), Located { root, rel, place }));
            }
        }
        for (setting, r, only) in &self.user {
            let Some(rel) = r.relative(&abs) else {
                continue;
            };
            // A file named by a setting opens its directory, but only the
            // file itself is readable there.
            if only.as_ref().is_some_and(|name| rel.as_str() != name) {
                continue;
            }
            found.push((
                r.path.as_str().len(),
                Located {
                    root: r,
                    place: Place::User {
                        setting: setting.clone(),
                        dir: match only {
                            Some(name) => r.path.join(name),
                            None => r.path.clone(),
                        },
                    },
                    rel,
                },
            ));
        }
        if found.is_empty() {
            return Err(PolicyError::NotReadable {
                path: path.to_string(),
            });
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        Ok(found.into_iter().map(|(_, l)| l).collect())
    }

    /// Run `op` on the first root `path` resolves beneath (see `readable`).
    pub fn read_with<T>(
        &self,
        path: &str,
        mut op: impl FnMut(&Located<'_>) -> io::Result<T>,
    ) -> Result<(Located<'_>, T), PolicyError> {
        let mut last = None;
        for loc in self.readable(path)? {
            match op(&loc) {
                Ok(v) => return Ok((loc, v)),
                Err(e) if is_escape(&e) => last = Some(e),
                Err(e) => {
                    return Err(PolicyError::Io {
                        path: path.to_string(),
                        source: e,
                    });
                }
            }
        }
        let _ = last;
        Err(PolicyError::NotReadable {
            path: path.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> (tempfile::TempDir, Utf8PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let p = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
        (t, p)
    }

    #[test]
    fn dotdot_and_links_out_are_refused() {
        let (_t, base) = tmp();
        std::fs::create_dir_all(base.join("root/sub")).unwrap();
        std::fs::write(base.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../../secret", base.join("root/sub/abs-rel")).unwrap();
        std::os::unix::fs::symlink(base.join("secret"), base.join("root/sub/abs")).unwrap();
        std::os::unix::fs::symlink("..", base.join("root/up")).unwrap();
        let r = Root::open(&base.join("root")).unwrap();
        for p in [
            "../secret",
            "sub/abs-rel",
            "sub/abs",
            "up/secret",
            "sub/../../secret",
        ] {
            let e = r.read(Utf8Path::new(p)).unwrap_err();
            assert!(is_escape(&e), "{p}: {e}");
            let e = r
                .create_file(&Utf8Path::new(p).join("x"), 0o644)
                .unwrap_err();
            assert!(is_escape(&e) || e.kind() == ErrorKind::NotFound, "{p}: {e}");
        }
        assert_eq!(std::fs::read_to_string(base.join("secret")).unwrap(), "s");
        // Links that stay beneath are followed.
        std::os::unix::fs::symlink("sub", base.join("root/in")).unwrap();
        r.create_file(Utf8Path::new("in/f"), 0o644).unwrap();
        assert!(base.join("root/sub/f").is_file());
    }

    #[test]
    fn create_replaces_a_link_instead_of_writing_through_it() {
        let (_t, base) = tmp();
        std::fs::create_dir_all(base.join("root")).unwrap();
        std::fs::write(base.join("root/target"), "keep").unwrap();
        std::os::unix::fs::symlink("target", base.join("root/l")).unwrap();
        let r = Root::open(&base.join("root")).unwrap();
        io::Write::write_all(
            &mut r.create_file(Utf8Path::new("l"), 0o644).unwrap(),
            b"new",
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(base.join("root/target")).unwrap(),
            "keep"
        );
        assert!(!base.join("root/l").is_symlink());
    }

    #[test]
    fn remove_all_never_follows_links() {
        let (_t, base) = tmp();
        std::fs::create_dir_all(base.join("outside/keep")).unwrap();
        std::fs::create_dir_all(base.join("root/tree/ro")).unwrap();
        std::fs::write(base.join("root/tree/ro/f"), "x").unwrap();
        std::os::unix::fs::symlink(base.join("outside"), base.join("root/tree/link")).unwrap();
        std::fs::set_permissions(
            base.join("root/tree/ro"),
            std::os::unix::fs::PermissionsExt::from_mode(0o500),
        )
        .unwrap();
        let r = Root::open(&base.join("root")).unwrap();
        r.remove_all(Utf8Path::new("tree"), None).unwrap();
        assert!(!base.join("root/tree").exists());
        assert!(base.join("outside/keep").is_dir());
        // A link as the path itself: the link goes, not its target.
        std::os::unix::fs::symlink(base.join("outside"), base.join("root/l")).unwrap();
        r.remove_all(Utf8Path::new("l"), None).unwrap();
        assert!(base.join("outside/keep").is_dir());
        // Through a parent link that leaves: refused.
        std::os::unix::fs::symlink(base.join("outside"), base.join("root/p")).unwrap();
        assert!(is_escape(
            &r.remove_all(Utf8Path::new("p/keep"), None).unwrap_err()
        ));
        assert!(base.join("outside/keep").is_dir());
    }

    #[test]
    fn mkdir_all_stays_beneath() {
        let (_t, base) = tmp();
        std::fs::create_dir_all(base.join("root")).unwrap();
        std::os::unix::fs::symlink(&base, base.join("root/out")).unwrap();
        let r = Root::open(&base.join("root")).unwrap();
        r.mkdir_all(Utf8Path::new("a/b/c")).unwrap();
        assert!(base.join("root/a/b/c").is_dir());
        assert!(is_escape(
            &r.mkdir_all(Utf8Path::new("out/evil")).unwrap_err()
        ));
        assert!(is_escape(
            &r.mkdir_all(Utf8Path::new("a/../../evil")).unwrap_err()
        ));
        assert!(!base.join("evil").exists());
    }

    #[test]
    fn chmod_follows_only_beneath() {
        let (_t, base) = tmp();
        std::fs::create_dir_all(base.join("root")).unwrap();
        std::fs::write(base.join("outside"), "x").unwrap();
        std::os::unix::fs::symlink(base.join("outside"), base.join("root/l")).unwrap();
        let r = Root::open(&base.join("root")).unwrap();
        assert!(is_escape(&r.chmod(Utf8Path::new("l"), 0o777).unwrap_err()));
        use std::os::unix::fs::PermissionsExt;
        assert_ne!(
            std::fs::metadata(base.join("outside"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o777
        );
        std::fs::create_dir(base.join("root/t")).unwrap();
        r.chmod(Utf8Path::new("t"), 0o1777).unwrap();
        assert_eq!(
            std::fs::metadata(base.join("root/t"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o1777
        );
    }

    #[test]
    fn copy_merges_keeps_links_and_never_writes_through_them() {
        let (_t, base) = tmp();
        let src = base.join("src");
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::fs::write(src.join("etc/motd"), "hi").unwrap();
        std::fs::write(src.join("a"), "A").unwrap();
        std::fs::hard_link(src.join("a"), src.join("b")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("abs")).unwrap();
        let dst = base.join("root");
        std::fs::create_dir_all(dst.join("tree/usr/etc")).unwrap();
        std::os::unix::fs::symlink("usr/etc", dst.join("tree/etc")).unwrap();
        std::fs::write(base.join("victim"), "v").unwrap();
        std::os::unix::fs::symlink(base.join("victim"), dst.join("tree/a")).unwrap();
        let from = Root::open(&src).unwrap();
        let to = Root::open(&dst).unwrap();
        to.copy_from(&from, Utf8Path::new(""), Utf8Path::new("tree"), None)
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dst.join("tree/usr/etc/motd")).unwrap(),
            "hi"
        );
        assert_eq!(std::fs::read_to_string(base.join("victim")).unwrap(), "v");
        assert_eq!(std::fs::read_to_string(dst.join("tree/a")).unwrap(), "A");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(dst.join("tree/a")).unwrap().ino(),
            std::fs::metadata(dst.join("tree/b")).unwrap().ino()
        );
        assert_eq!(
            std::fs::read_link(dst.join("tree/abs")).unwrap().to_str(),
            Some("/etc/passwd")
        );
    }

    #[test]
    fn policy_picks_the_deepest_root_and_falls_back_only_on_escape() {
        let (_t, base) = tmp();
        std::fs::create_dir_all(base.join("proj/build")).unwrap();
        std::fs::create_dir_all(base.join("proj/scripts")).unwrap();
        std::fs::write(base.join("proj/scripts/s"), "S").unwrap();
        let p = AccessPolicy::new(&base.join("proj/build"), &base.join("proj"), &[]).unwrap();
        let path = base.join("proj/build/../scripts/s");
        let (loc, bytes) = p.read_with(path.as_str(), |l| l.root.read(&l.rel)).unwrap();
        assert_eq!(loc.place, Place::Project);
        assert_eq!(bytes, b"S");
        assert!(
            p.writable(path.as_str())
                .is_ok_and(|l| is_escape(&l.root.create_file(&l.rel, 0o644).unwrap_err()))
        );
        assert!(p.writable(base.join("elsewhere").as_str()).is_err());
        assert!(
            p.read_with(base.join("proj/../x").as_str(), |l| l.root.read(&l.rel))
                .is_err()
        );
    }
}
