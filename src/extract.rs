//! Unpacking source tarballs safely and quickly.
//!
//! `extract` unpacks .tar, .tar.gz, .tar.bz2, .tar.xz and .tar.zst archives
//! (compression told by magic bytes, not by name) into a directory that does
//! not exist yet. Guarantees:
//!
//! - `dest` appears only complete: entries go into a sibling staging
//!   directory that is renamed into place when everything succeeded, and is
//!   removed on any error.
//! - Nothing is ever written outside the staging directory: entries with
//!   absolute paths or `..` components, symbolic links whose target resolves
//!   outside (following the archive's other links, as the kernel would), hard
//!   links to paths outside, device nodes and fifos are refused, naming the
//!   entry and the archive. No entry is ever written through a symbolic link:
//!   links are created only after every other entry, and an entry lying under
//!   a link of the archive is refused.
//! - File modes (permission bits, without set-id bits) and modification times
//!   are kept; owners are not.
//!
//! Decompression runs on a thread of its own, feeding the thread that parses
//! the tar stream and writes files, like `tar xJf` piping from `xz -d`.

use camino::{Utf8Path, Utf8PathBuf};
use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime};

/// The compression wrapped around a tar stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        })
    }
}

/// Tell the compression of `archive` from its first bytes. Anything that is
/// not gzip, bzip2, xz or zstd is reported as `None` (a plain tar stream,
/// which `extract` then validates header by header).
pub fn detect(archive: &Utf8Path) -> io::Result<Compression> {
    let mut magic = [0u8; 6];
    let mut file = File::open(archive)?;
    let n = read_full(&mut file, &mut magic)?;
    Ok(compression_of(&magic[..n]))
}

fn compression_of(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(b"BZh") {
        Compression::Bzip2
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Why an extraction failed. Whatever the variant, `dest` does not exist
/// afterwards (unless it existed before, see `DestExists`) and nothing was
/// written outside it.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(
        "cannot extract `{archive}` into `{dest}`: `{dest}` already exists (remove it, or extract somewhere else)"
    )]
    DestExists {
        archive: Utf8PathBuf,
        dest: Utf8PathBuf,
    },
    #[error("refusing to extract `{archive}`: entry `{entry}` {reason}; `{dest}` was not created")]
    Unsafe {
        archive: Utf8PathBuf,
        dest: Utf8PathBuf,
        entry: String,
        reason: String,
    },
    #[error(
        "cannot read `{archive}` ({compression}) as a tarball: {source} (is the file complete? fetch it again); `{dest}` was not created"
    )]
    Corrupt {
        archive: Utf8PathBuf,
        dest: Utf8PathBuf,
        compression: Compression,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot extract `{archive}`: {action} `{path}` failed: {source}; `{dest}` was not created"
    )]
    Io {
        archive: Utf8PathBuf,
        dest: Utf8PathBuf,
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot extract `{archive}`: it is zstd-compressed and the `zstd` tool was not found ({source}); install it with `apt-get install zstd`"
    )]
    ZstdMissing {
        archive: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ExtractError {
    /// The archive entry this error is about, for refusals.
    pub fn entry(&self) -> Option<&str> {
        match self {
            ExtractError::Unsafe { entry, .. } => Some(entry),
            _ => None,
        }
    }
}

/// Unpack `archive` (.tar, .tar.gz, .tar.bz2, .tar.xz or .tar.zst, told by
/// its magic bytes) into `dest`, which must not exist; its parent is created
/// if needed.
///
/// When every entry lies under one top-level directory (as
/// `busybox-1.35.0/...`), that directory's contents become `dest`; otherwise
/// the archive's top level is `dest`.
///
/// `dest` exists afterwards only if everything succeeded: entries go into
/// `dest` + `.part-<pid>-<n>`, renamed into place at the end and removed on
/// any error. Unsafe entries (absolute paths, `..`, links resolving outside
/// the destination, entries under a symbolic link, device nodes, fifos) are
/// refused before anything is written for them, and the error names the
/// entry and the archive.
pub fn extract(archive: &Utf8Path, dest: &Utf8Path) -> Result<(), ExtractError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(ExtractError::DestExists {
            archive: archive.to_owned(),
            dest: dest.to_owned(),
        });
    }
    let ctx = Ctx {
        archive: archive.to_owned(),
        dest: dest.to_owned(),
    };
    if let Some(parent) = dest.parent().filter(|p| !p.as_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| ctx.io("creating directory", parent, e))?;
    }
    let staging = staging_path(dest);
    fs::create_dir(&staging).map_err(|e| ctx.io("creating directory", &staging, e))?;
    let result = extract_into(&ctx, staging.as_std_path());
    let result = result.and_then(|strip| {
        let from = match &strip {
            Some(top) => staging.as_std_path().join(OsStr::from_bytes(top)),
            None => staging.clone().into_std_path_buf(),
        };
        rename_noreplace(&from, dest.as_std_path()).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                ExtractError::DestExists {
                    archive: archive.to_owned(),
                    dest: dest.to_owned(),
                }
            } else {
                ctx.io("renaming into place", &staging, e)
            }
        })?;
        if strip.is_some() {
            // `dest` is complete already; an empty leftover is harmless.
            let _ = fs::remove_dir(&staging);
        }
        Ok(())
    });
    if result.is_err() {
        remove_tree(staging.as_std_path());
    }
    result
}

/// `dest` + `.part-<pid>-<n>`, unique within this process.
fn staging_path(dest: &Utf8Path) -> Utf8PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Utf8PathBuf::from(format!(
        "{}.part-{}-{}",
        dest.as_str().trim_end_matches('/'),
        std::process::id(),
        n
    ))
}

struct Ctx {
    archive: Utf8PathBuf,
    dest: Utf8PathBuf,
}

impl Ctx {
    fn io(&self, action: &'static str, path: impl AsRef<Path>, source: io::Error) -> ExtractError {
        ExtractError::Io {
            archive: self.archive.clone(),
            dest: self.dest.clone(),
            action,
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    fn refuse(&self, entry: &[u8], reason: impl Into<String>) -> ExtractError {
        ExtractError::Unsafe {
            archive: self.archive.clone(),
            dest: self.dest.clone(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    fn corrupt(&self, compression: Compression, source: io::Error) -> ExtractError {
        ExtractError::Corrupt {
            archive: self.archive.clone(),
            dest: self.dest.clone(),
            compression,
            source,
        }
    }
}

/// Size of the chunks the decompressing thread hands over, and of the
/// buffer files are written from.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the two threads.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Symbolic links followed while resolving one link before giving up (the
/// kernel gives up at 40, so anything it can resolve, we resolve).
const MAX_LINK_HOPS: usize = 256;

/// Unpack into `staging`; on success returns the single top-level directory
/// to strip, if any.
fn extract_into(ctx: &Ctx, staging: &Path) -> Result<Option<Vec<u8>>, ExtractError> {
    let archive = ctx.archive.as_std_path();
    let compression = detect(&ctx.archive).map_err(|e| ctx.io("reading", archive, e))?;
    let file = File::open(archive).map_err(|e| ctx.io("opening", archive, e))?;
    let (reader, decoder): (Box<dyn Read>, Option<Decoder>) = match compression {
        Compression::None => (Box::new(BufReader::with_capacity(CHUNK, file)), None),
        Compression::Zstd => {
            let child = std::process::Command::new("zstd")
                .args(["-d", "-c", "-q"])
                .arg(archive)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| ExtractError::ZstdMissing {
                    archive: ctx.archive.clone(),
                    source: e,
                })?;
            let (reader, decoder) = Decoder::spawn(Source::Child(child));
            (Box::new(reader), Some(decoder))
        }
        _ => {
            let input = BufReader::with_capacity(CHUNK, file);
            let stream: Box<dyn Read + Send> = match compression {
                Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
                Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
                _ => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(input)),
            };
            let (reader, decoder) = Decoder::spawn(Source::Stream(stream));
            (Box::new(reader), Some(decoder))
        }
    };
    let outcome = Unpacker::new(ctx, staging, compression).run(reader);
    if let Some(decoder) = decoder {
        decoder.join();
    }
    outcome
}

/// Where the decompressing thread reads the tar stream from.
enum Source {
    Stream(Box<dyn Read + Send>),
    /// A decompressing tool writing to its standard output.
    Child(std::process::Child),
}

/// The decompressing thread. It sends chunks of the tar stream, then an
/// empty chunk at the clean end, or the error that stopped it; it stops
/// early when the reader is dropped.
struct Decoder {
    thread: thread::JoinHandle<()>,
}

/// Reads the chunks a `Decoder` sends, handing emptied buffers back.
struct ChunkReader {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    recycle: mpsc::SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Decoder {
    fn spawn(source: Source) -> (ChunkReader, Decoder) {
        let (chunk_tx, chunk_rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
        let (recycle_tx, recycle_rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT + 2);
        let thread = thread::spawn(move || decode(source, chunk_tx, recycle_rx));
        let reader = ChunkReader {
            chunks: chunk_rx,
            recycle: recycle_tx,
            current: Vec::new(),
            pos: 0,
            done: false,
        };
        (reader, Decoder { thread })
    }

    fn join(self) {
        // A panic there closes the channel without the end marker, which
        // the reader reports as an error; nothing more to say here.
        let _ = self.thread.join();
    }
}

fn decode(
    source: Source,
    chunks: mpsc::SyncSender<io::Result<Vec<u8>>>,
    recycle: mpsc::Receiver<Vec<u8>>,
) {
    let (mut stream, mut child): (Box<dyn Read + Send>, _) = match source {
        Source::Stream(s) => (s, None),
        Source::Child(mut c) => match c.stdout.take() {
            Some(out) => (Box::new(out), Some(c)),
            None => {
                let _ = chunks.send(Err(io::Error::other("no pipe from the decompressor")));
                return;
            }
        },
    };
    let mut reached_end = false;
    let mut failure = None;
    loop {
        let mut buf = recycle.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        match read_full(&mut stream, &mut buf) {
            Ok(0) => {
                reached_end = true;
                break;
            }
            Ok(n) => {
                buf.truncate(n);
                if chunks.send(Ok(buf)).is_err() {
                    break;
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(stream);
    if let Some(child) = child.as_mut() {
        if !reached_end {
            let _ = child.kill();
        }
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        match child.wait() {
            Ok(status) if reached_end && !status.success() => {
                failure = Some(io::Error::other(format!(
                    "`zstd -d` failed ({status}): {}",
                    stderr.trim()
                )));
                reached_end = false;
            }
            Ok(_) => {}
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    let _ = match failure {
        Some(e) => chunks.send(Err(e)),
        None if reached_end => chunks.send(Ok(Vec::new())),
        None => Ok(()),
    };
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => self.done = true,
                Ok(Ok(chunk)) => {
                    let old = std::mem::replace(&mut self.current, chunk);
                    self.pos = 0;
                    if old.capacity() > 0 {
                        let _ = self.recycle.try_send(old);
                    }
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(mpsc::RecvError) => {
                    self.done = true;
                    return Err(io::Error::other("decompression stopped unexpectedly"));
                }
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Read until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A symbolic link of the archive, created only after every other entry.
struct Link {
    target: Vec<u8>,
    mtime: u64,
    /// The entry's name as the archive spells it, for messages.
    entry: Vec<u8>,
}

/// Writes the entries of one archive into the staging directory.
struct Unpacker<'a> {
    ctx: &'a Ctx,
    root: PathBuf,
    compression: Compression,
    /// Relative paths known to be real directories (not links) on disk.
    dirs: HashSet<Vec<u8>>,
    /// Symbolic links still to create, by relative path.
    links: HashMap<Vec<u8>, Link>,
    /// Mode and mtime of directory entries, applied at the end.
    dir_attrs: HashMap<Vec<u8>, (u32, u64)>,
    /// The first component shared by all entries so far, if one is.
    top: Option<Vec<u8>>,
    several_tops: bool,
    umask: u32,
    buf: Vec<u8>,
}

impl<'a> Unpacker<'a> {
    fn new(ctx: &'a Ctx, root: &Path, compression: Compression) -> Self {
        Unpacker {
            ctx,
            root: root.to_owned(),
            compression,
            dirs: HashSet::new(),
            links: HashMap::new(),
            dir_attrs: HashMap::new(),
            top: None,
            several_tops: false,
            umask: current_umask(),
            buf: vec![0; CHUNK],
        }
    }

    fn corrupt(&self, e: io::Error) -> ExtractError {
        self.ctx.corrupt(self.compression, e)
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel))
    }

    /// Unpack every entry, then create the links and set directory
    /// attributes. Returns the top-level directory to strip, if any.
    fn run(mut self, reader: Box<dyn Read>) -> Result<Option<Vec<u8>>, ExtractError> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| self.corrupt(e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.corrupt(e))?;
            self.entry(&mut entry)?;
        }
        // Read to the end, so that a damaged stream is noticed even past the
        // tar end marker.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| self.corrupt(e))?;
        self.finish()
    }

    fn entry(&mut self, entry: &mut tar::Entry<'_, Box<dyn Read>>) -> Result<(), ExtractError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Archive-wide metadata (git archive puts the commit id there).
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let rel = self.normalize(&raw, &raw, false)?;
        if rel.is_empty() {
            // The archive's own top (`./`).
            return Ok(());
        }
        self.note_top(&rel);
        self.check_not_under_link(&raw, &rel, "")?;
        let header = entry.header();
        let mode = header.mode().map_err(|e| self.corrupt(e))? & 0o777;
        let mtime = header.mtime().map_err(|e| self.corrupt(e))?;
        use tar::EntryType as T;
        match kind {
            T::Directory => self.directory(&rel, mode, mtime),
            T::Regular if raw.ends_with(b"/") => self.directory(&rel, mode, mtime),
            T::Regular | T::Continuous | T::GNUSparse => self.file(entry, &rel, mode, mtime),
            T::Symlink => {
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                let target = target.unwrap_or_default();
                self.symlink(&raw, &rel, target, mtime)
            }
            T::Link => {
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                self.hard_link(&raw, &rel, target.unwrap_or_default(), mtime)
            }
            T::Char => Err(self.refuse_special(&raw, "a character device node")),
            T::Block => Err(self.refuse_special(&raw, "a block device node")),
            T::Fifo => Err(self.refuse_special(&raw, "a fifo")),
            other => Err(self.ctx.refuse(
                &raw,
                format!(
                    "has the unsupported tar entry type {:?} (only files, directories and links are extracted)",
                    other.as_byte() as char
                ),
            )),
        }
    }

    fn refuse_special(&self, raw: &[u8], what: &str) -> ExtractError {
        self.ctx.refuse(
            raw,
            format!("is {what} (device nodes and fifos are never extracted)"),
        )
    }

    /// The path relative to the archive's top, without `.` or empty
    /// components; refuses absolute paths and `..`. `hard_link` is set when
    /// `path` is the target of a hard link rather than the entry's name.
    fn normalize(&self, raw: &[u8], path: &[u8], hard_link: bool) -> Result<Vec<u8>, ExtractError> {
        let shown = String::from_utf8_lossy(path);
        if path.starts_with(b"/") {
            return Err(self.ctx.refuse(
                raw,
                if hard_link {
                    format!(
                        "is a hard link to the absolute path `{shown}`, outside the destination"
                    )
                } else {
                    "is an absolute path (entries must lie inside the destination)".to_string()
                },
            ));
        }
        let mut rel = Vec::with_capacity(path.len());
        for part in path.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    return Err(self.ctx.refuse(
                        raw,
                        if hard_link {
                            format!("is a hard link to `{shown}`, which climbs out of the destination with `..`")
                        } else {
                            "climbs out of the destination with `..`".to_string()
                        },
                    ));
                }
                _ => {
                    if !rel.is_empty() {
                        rel.push(b'/');
                    }
                    rel.extend_from_slice(part);
                }
            }
        }
        Ok(rel)
    }

    fn note_top(&mut self, rel: &[u8]) {
        let first = rel.split(|&b| b == b'/').next().unwrap_or_default();
        match &self.top {
            None => self.top = Some(first.to_vec()),
            Some(top) if top.as_slice() != first => self.several_tops = true,
            Some(_) => {}
        }
    }

    /// Refuse `rel` when one of its parents is a symbolic link of the
    /// archive: nothing is ever written through a link.
    fn check_not_under_link(&self, raw: &[u8], rel: &[u8], what: &str) -> Result<(), ExtractError> {
        if self.links.is_empty() {
            return Ok(());
        }
        for (i, &b) in rel.iter().enumerate() {
            if b == b'/' && self.links.contains_key(&rel[..i]) {
                return Err(self.ctx.refuse(
                    raw,
                    format!(
                        "{what}lies under `{}`, a symbolic link of the same archive (entries are never written through links)",
                        String::from_utf8_lossy(&rel[..i])
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Create the parent directories of `rel` that do not exist yet.
    fn make_parent(&mut self, rel: &[u8]) -> Result<(), ExtractError> {
        let Some(end) = rel.iter().rposition(|&b| b == b'/') else {
            return Ok(());
        };
        if self.dirs.contains(&rel[..end]) {
            return Ok(());
        }
        for (i, &b) in rel.iter().enumerate().take(end + 1) {
            if (b == b'/' || i == end) && i > 0 {
                let prefix = &rel[..if b == b'/' { i } else { i + 1 }];
                if !self.dirs.contains(prefix) {
                    self.make_dir(prefix)?;
                }
            }
        }
        Ok(())
    }

    /// mkdir `rel`, whose parent exists; an existing directory is fine, an
    /// existing file is replaced.
    fn make_dir(&mut self, rel: &[u8]) -> Result<(), ExtractError> {
        let path = self.path(rel);
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
                if !is_dir {
                    self.remove_existing(rel)?;
                    fs::create_dir(&path)
                        .map_err(|e| self.ctx.io("creating directory", &path, e))?;
                }
            }
            Err(e) => return Err(self.ctx.io("creating directory", &path, e)),
        }
        self.dirs.insert(rel.to_vec());
        Ok(())
    }

    /// Remove what an earlier entry put at `rel` (a later entry replaces
    /// it, as with tar). Directories must be empty.
    fn remove_existing(&mut self, rel: &[u8]) -> Result<(), ExtractError> {
        let path = self.path(rel);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.ctx.io("inspecting", &path, e)),
        };
        if meta.is_dir() {
            fs::remove_dir(&path).map_err(|e| self.ctx.io("replacing directory", &path, e))?;
            self.dirs.remove(rel);
            self.dir_attrs.remove(rel);
        } else {
            fs::remove_file(&path).map_err(|e| self.ctx.io("replacing", &path, e))?;
        }
        Ok(())
    }

    fn directory(&mut self, rel: &[u8], mode: u32, mtime: u64) -> Result<(), ExtractError> {
        self.make_parent(rel)?;
        self.links.remove(rel);
        if !self.dirs.contains(rel) {
            self.make_dir(rel)?;
        }
        self.dir_attrs.insert(rel.to_vec(), (mode, mtime));
        Ok(())
    }

    fn file(
        &mut self,
        entry: &mut tar::Entry<'_, Box<dyn Read>>,
        rel: &[u8],
        mode: u32,
        mtime: u64,
    ) -> Result<(), ExtractError> {
        self.make_parent(rel)?;
        self.links.remove(rel);
        let path = self.path(rel);
        let open = |path: &Path| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
        };
        let mut file = match open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.remove_existing(rel)?;
                open(&path).map_err(|e| self.ctx.io("creating", &path, e))?
            }
            Err(e) => return Err(self.ctx.io("creating", &path, e)),
        };
        loop {
            let n = read_full(entry, &mut self.buf).map_err(|e| self.corrupt(e))?;
            if n == 0 {
                break;
            }
            file.write_all(&self.buf[..n])
                .map_err(|e| self.ctx.io("writing", &path, e))?;
            if n < self.buf.len() {
                break;
            }
        }
        if mode & self.umask != 0 {
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| self.ctx.io("setting the mode of", &path, e))?;
        }
        file.set_modified(time_of(mtime))
            .map_err(|e| self.ctx.io("setting the time of", &path, e))?;
        Ok(())
    }

    fn symlink(
        &mut self,
        raw: &[u8],
        rel: &[u8],
        target: Vec<u8>,
        mtime: u64,
    ) -> Result<(), ExtractError> {
        if target.is_empty() {
            return Err(self
                .ctx
                .refuse(raw, "is a symbolic link with an empty target"));
        }
        if let Err(reason) = resolve(&self.links, rel, &target, 0) {
            return Err(self.ctx.refuse(raw, reason));
        }
        self.make_parent(rel)?;
        self.dir_attrs.remove(rel);
        self.links.insert(
            rel.to_vec(),
            Link {
                target,
                mtime,
                entry: raw.to_vec(),
            },
        );
        Ok(())
    }

    fn hard_link(
        &mut self,
        raw: &[u8],
        rel: &[u8],
        target: Vec<u8>,
        mtime: u64,
    ) -> Result<(), ExtractError> {
        let to = self.normalize(raw, &target, true)?;
        if to.is_empty() {
            return Err(self
                .ctx
                .refuse(raw, "is a hard link to the destination's top directory"));
        }
        self.check_not_under_link(raw, &to, "is a hard link to a path that ")?;
        if to == rel {
            return Ok(());
        }
        if let Some(link) = self.links.get(&to) {
            // A hard link to a symbolic link is the same symbolic link again.
            let target = link.target.clone();
            return self.symlink(raw, rel, target, mtime);
        }
        self.make_parent(rel)?;
        self.links.remove(rel);
        let (from, path) = (self.path(&to), self.path(rel));
        let link = || fs::hard_link(&from, &path);
        match link() {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.remove_existing(rel)?;
                link().map_err(|e| self.ctx.io("creating hard link", &path, e))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.ctx.refuse(
                raw,
                format!(
                    "is a hard link to `{}`, which no earlier entry of the archive created",
                    String::from_utf8_lossy(&target)
                ),
            )),
            Err(e) => Err(self.ctx.io("creating hard link", &path, e)),
        }
    }

    /// Check every link against the whole tree, create the links, and set
    /// directory modes and times. Returns the top-level directory to strip.
    fn finish(mut self) -> Result<Option<Vec<u8>>, ExtractError> {
        let strip = match (&self.top, self.several_tops) {
            (Some(top), false) if self.dirs.contains(top) && !self.links.contains_key(top) => {
                Some(top.clone())
            }
            _ => None,
        };
        let root_len = usize::from(strip.is_some());
        let mut links: Vec<_> = self.links.iter().collect();
        links.sort_by(|a, b| a.0.cmp(b.0));
        for (rel, link) in &links {
            if let Err(reason) = resolve(&self.links, rel, &link.target, root_len) {
                return Err(self.ctx.refuse(&link.entry, reason));
            }
        }
        let links: Vec<(Vec<u8>, Vec<u8>, u64)> = links
            .into_iter()
            .map(|(rel, l)| (rel.clone(), l.target.clone(), l.mtime))
            .collect();
        for (rel, target, mtime) in links {
            let path = self.path(&rel);
            let make = || std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path);
            match make() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.remove_existing(&rel)?;
                    make().map_err(|e| self.ctx.io("creating symbolic link", &path, e))?;
                }
                Err(e) => return Err(self.ctx.io("creating symbolic link", &path, e)),
            }
            set_mtime_nofollow(&path, mtime)
                .map_err(|e| self.ctx.io("setting the time of", &path, e))?;
        }
        // Deepest first, so that a directory without search permission does
        // not hide the ones below it.
        let mut dirs: Vec<_> = std::mem::take(&mut self.dir_attrs).into_iter().collect();
        dirs.sort_by(|a, b| b.0.cmp(&a.0));
        for (rel, (mode, mtime)) in dirs {
            let path = self.path(&rel);
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(|e| self.ctx.io("setting the mode of", &path, e))?;
            set_mtime_nofollow(&path, mtime)
                .map_err(|e| self.ctx.io("setting the time of", &path, e))?;
        }
        Ok(strip)
    }
}

/// Follow the symbolic link at `rel` (relative to the archive's top) to
/// `target` through the archive's other links, as the kernel would, and
/// fail with the reason when it leaves the destination: the top, or the
/// single top-level directory when `root_len` is 1.
fn resolve(
    links: &HashMap<Vec<u8>, Link>,
    rel: &[u8],
    target: &[u8],
    root_len: usize,
) -> Result<(), String> {
    let shown = String::from_utf8_lossy(target);
    if target.starts_with(b"/") {
        return Err(format!(
            "is a symbolic link to the absolute path `{shown}`, outside the destination"
        ));
    }
    let split = |p: &[u8]| -> Vec<Vec<u8>> {
        p.split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(<[u8]>::to_vec)
            .collect()
    };
    let mut stack = split(rel);
    stack.pop();
    let mut pending: Vec<Vec<u8>> = split(target).into_iter().rev().collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == b".." {
            if stack.len() <= root_len {
                return Err(format!(
                    "is a symbolic link to `{shown}`, which resolves outside the destination"
                ));
            }
            stack.pop();
            continue;
        }
        stack.push(part);
        if links.is_empty() {
            continue;
        }
        if let Some(link) = links.get(&stack.join(&b'/')) {
            hops += 1;
            if hops > MAX_LINK_HOPS || link.target.starts_with(b"/") {
                return Err(format!(
                    "is a symbolic link to `{shown}`, which cannot be resolved inside the destination (through `{}`)",
                    String::from_utf8_lossy(&link.entry)
                ));
            }
            stack.pop();
            pending.extend(split(&link.target).into_iter().rev());
        }
    }
    Ok(())
}

fn time_of(mtime: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(mtime)
}

fn set_mtime_nofollow(path: &Path, mtime: u64) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: mtime.min(i64::MAX as u64) as libc::time_t,
            tv_nsec: 0,
        },
    ];
    // SAFETY: `c` is a NUL-terminated path and `times` holds two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// rename(2) that fails with `AlreadyExists` instead of replacing `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let cf = CString::new(from.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let ct = CString::new(to.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both are NUL-terminated paths.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cf.as_ptr(),
            libc::AT_FDCWD,
            ct.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // Filesystems without RENAME_NOREPLACE: check, then rename.
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            fs::rename(from, to)
        }
        _ => Err(e),
    }
}

/// The process umask, read without changing it.
fn current_umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Remove a staging tree, making directories writable and searchable first
/// if a plain removal fails (an archive may hold read-only directories).
fn remove_tree(path: &Path) {
    if fs::remove_dir_all(path).is_ok() {
        return;
    }
    fn open_up(path: &Path) {
        if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
            if let Ok(entries) = fs::read_dir(path) {
                for entry in entries.flatten() {
                    open_up(&entry.path());
                }
            }
        }
    }
    open_up(path);
    let _ = fs::remove_dir_all(path);
}
