//! Unpacking source tarballs safely and quickly.
//!
//! `extract` unpacks .tar, .tar.gz, .tar.bz2, .tar.xz and .tar.zst archives
//! (compression told by magic bytes, not by name) into a directory that does
//! not exist yet. Guarantees:
//!
//! - `dest` appears only complete: entries go into a sibling staging
//!   directory that is renamed into place when everything succeeded, and is
//!   removed on any error, interrupt or exceeded limit.
//! - Nothing is ever written outside the staging directory, by
//!   construction: every entry is created relative to the staging
//!   directory's descriptor, its parent resolved by the kernel with
//!   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, so no `..` and no link (the
//!   archive's own, made by an earlier entry, or any other) is ever
//!   followed on the way; the entry itself is created without following a
//!   link. Entries with absolute paths or `..`, entries under a link of the
//!   archive, hard links to paths outside, device nodes and fifos are
//!   refused, naming the entry and the archive.
//! - No link escapes: at the end, every symbolic link of the archive is
//!   resolved through the archive's other links, as the kernel would, from
//!   where it really lies (its parents are real directories, see above);
//!   one that leads outside the destination fails the whole extraction.
//! - Bounded: `Limits` caps the bytes unpacked (in all, and relative to the
//!   archive's size) and the number of entries; past a cap, the extraction
//!   stops and nothing is left.
//! - File modes (permission bits and the sticky bit, without set-id bits)
//!   and modification times are kept; owners are not.
//!
//! Decompression runs on a thread of its own, feeding the thread that parses
//! the tar stream and writes files, like `tar xJf` piping from `xz -d`.
//!
//! Tests: `tests/extract.rs` (each refused entry kind, built by the test),
//! the property test in `tests/properties.rs` (random archives of files,
//! directories and link chains: nothing lands outside), `tests/faults.rs`.

use crate::confine::Root;
use crate::interrupt::Interrupt;
use camino::{Utf8Path, Utf8PathBuf};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;

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

/// Caps on what one archive may unpack to. The defaults are generous for
/// source trees (Linux 6.1 is 1.3 GB in 80,000 entries, at 10 times its
/// .tar.xz) and stop a bomb early: a gigabyte of zeros compresses a
/// thousandfold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file contents in all.
    pub max_bytes: u64,
    /// Entries (files, directories, links).
    pub max_entries: u64,
    /// Bytes unpacked per byte of archive, past a first 64 MiB.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 8 << 30,
            max_entries: 1_000_000,
            max_ratio: 100,
        }
    }
}

/// How to extract.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub limits: Limits,
    /// Checked between entries and chunks; when set, the extraction stops
    /// and leaves nothing.
    pub interrupt: Option<Interrupt>,
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
        "refusing to extract `{archive}`: it unpacks to more than {what} (at entry `{entry}`); `{dest}` was not created. If the archive is genuine, raise the limit ({setting})"
    )]
    TooBig {
        archive: Utf8PathBuf,
        dest: Utf8PathBuf,
        entry: String,
        what: String,
        setting: &'static str,
    },
    #[error("extracting `{archive}` was interrupted; `{dest}` was not created")]
    Interrupted {
        archive: Utf8PathBuf,
        dest: Utf8PathBuf,
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
/// if needed. The default limits, no interrupt.
///
/// When every entry lies under one top-level directory (as
/// `busybox-1.35.0/...`), that directory's contents become `dest`; otherwise
/// the archive's top level is `dest`.
pub fn extract(archive: &Utf8Path, dest: &Utf8Path) -> Result<(), ExtractError> {
    let (parent, name) = match (dest.parent(), dest.file_name()) {
        (Some(p), Some(n)) => (
            if p.as_str().is_empty() {
                Utf8Path::new(".")
            } else {
                p
            },
            n,
        ),
        _ => {
            return Err(ExtractError::Io {
                archive: archive.to_owned(),
                dest: dest.to_owned(),
                action: "naming",
                path: dest.to_string(),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            });
        }
    };
    let root = Root::create(parent).map_err(|source| ExtractError::Io {
        archive: archive.to_owned(),
        dest: dest.to_owned(),
        action: "creating directory",
        path: parent.to_string(),
        source,
    })?;
    extract_in(archive, &root, Utf8Path::new(name), &Options::default())
}

/// Unpack `archive` into `dest` beneath `root` (resolved by the kernel
/// beneath it; its parent must exist), with `options`' limits and
/// interrupt. `dest` exists afterwards only if everything succeeded:
/// entries go into `dest` + `.part-<pid>-<n>`, renamed into place at the
/// end and removed on any failure.
pub fn extract_in(
    archive: &Utf8Path,
    root: &Root,
    dest: &Utf8Path,
    options: &Options,
) -> Result<(), ExtractError> {
    let shown = root.join(dest);
    let ctx = Ctx {
        archive: archive.to_owned(),
        dest: shown.clone(),
    };
    match root.exists(dest) {
        Ok(false) => {}
        Ok(true) => {
            return Err(ExtractError::DestExists {
                archive: archive.to_owned(),
                dest: shown,
            });
        }
        Err(e) => return Err(ctx.io("inspecting", &shown, e)),
    }
    let staging = staging_path(dest);
    root.mkdir(&staging, 0o700)
        .map_err(|e| ctx.io("creating directory", root.join(&staging), e))?;
    let result = root
        .open_dir(&staging)
        .map_err(|e| ctx.io("opening", root.join(&staging), e))
        .and_then(|fd| extract_into(&ctx, fd, options))
        .and_then(|strip| {
            let from = match &strip {
                Some(top) => {
                    let top = std::str::from_utf8(top).map_err(|_| {
                        ctx.io(
                            "naming",
                            String::from_utf8_lossy(top).into_owned(),
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                "the top directory's name is not UTF-8",
                            ),
                        )
                    })?;
                    staging.join(top)
                }
                None => staging.clone(),
            };
            root.rename_noreplace(&from, dest).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    ExtractError::DestExists {
                        archive: archive.to_owned(),
                        dest: shown.clone(),
                    }
                } else {
                    ctx.io("renaming into place", root.join(&staging), e)
                }
            })
        });
    // The staging directory is empty (stripped) or gone (renamed) after
    // success, and holds the partial tree after a failure.
    let _ = root.remove_all(&staging, None);
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
    fn io(&self, action: &'static str, path: impl fmt::Display, source: io::Error) -> ExtractError {
        ExtractError::Io {
            archive: self.archive.clone(),
            dest: self.dest.clone(),
            action,
            path: path.to_string(),
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

/// Unpack into the staging directory `staging`; on success returns the
/// single top-level directory to strip, if any.
fn extract_into(
    ctx: &Ctx,
    staging: OwnedFd,
    options: &Options,
) -> Result<Option<Vec<u8>>, ExtractError> {
    let archive = ctx.archive.as_std_path();
    let compression = detect(&ctx.archive).map_err(|e| ctx.io("reading", &ctx.archive, e))?;
    let file = File::open(archive).map_err(|e| ctx.io("opening", &ctx.archive, e))?;
    let archive_len = file.metadata().map(|m| m.len()).unwrap_or(0);
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
                _ => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
            };
            let (reader, decoder) = Decoder::spawn(Source::Stream(stream));
            (Box::new(reader), Some(decoder))
        }
    };
    let budget = Budget::new(&options.limits, archive_len);
    let outcome =
        Unpacker::new(ctx, staging, compression, budget, options.interrupt.clone()).run(reader);
    if let Some(decoder) = decoder {
        decoder.join();
    }
    outcome
}

/// What is left of the limits while unpacking.
struct Budget {
    limits: Limits,
    /// `max_bytes`, or the ratio's cap when that is lower.
    bytes_cap: u64,
    bytes: u64,
    entries: u64,
}

impl Budget {
    fn new(limits: &Limits, archive_len: u64) -> Budget {
        let by_ratio = archive_len
            .saturating_mul(limits.max_ratio)
            .saturating_add(64 << 20);
        Budget {
            limits: *limits,
            bytes_cap: limits.max_bytes.min(by_ratio),
            bytes: 0,
            entries: 0,
        }
    }
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

/// A symbolic link of the archive (it exists on disk; this is the model
/// the final check resolves links through).
struct Link {
    target: Vec<u8>,
    /// The entry's name as the archive spells it, for messages.
    entry: Vec<u8>,
}

/// How a parent directory is reached: beneath the staging directory,
/// through no link at all, never through /proc's magic links.
fn no_links() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

/// Writes the entries of one archive into the staging directory.
struct Unpacker<'a> {
    ctx: &'a Ctx,
    staging: OwnedFd,
    compression: Compression,
    budget: Budget,
    interrupt: Option<Interrupt>,
    /// Relative paths known to be real directories (not links) on disk.
    dirs: HashSet<Vec<u8>>,
    /// Symbolic links on disk, by relative path.
    links: HashMap<Vec<u8>, Link>,
    /// Mode and mtime of directory entries, applied at the end.
    dir_attrs: HashMap<Vec<u8>, (u32, u64)>,
    /// The first component shared by all entries so far, if one is.
    top: Option<Vec<u8>>,
    several_tops: bool,
    umask: u32,
    buf: Vec<u8>,
}

/// The parent of `rel` and its last component (`rel` is normalized: no
/// empty, `.` or `..` components).
fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

impl<'a> Unpacker<'a> {
    fn new(
        ctx: &'a Ctx,
        staging: OwnedFd,
        compression: Compression,
        budget: Budget,
        interrupt: Option<Interrupt>,
    ) -> Self {
        Unpacker {
            ctx,
            staging,
            compression,
            budget,
            interrupt,
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

    fn shown(&self, rel: &[u8]) -> String {
        format!("{}/{}", self.ctx.dest, String::from_utf8_lossy(rel))
    }

    fn interrupted(&self) -> Result<(), ExtractError> {
        if self.interrupt.as_ref().is_some_and(Interrupt::is_set) {
            return Err(ExtractError::Interrupted {
                archive: self.ctx.archive.clone(),
                dest: self.ctx.dest.clone(),
            });
        }
        Ok(())
    }

    fn too_big(&self, raw: &[u8], what: String, setting: &'static str) -> ExtractError {
        ExtractError::TooBig {
            archive: self.ctx.archive.clone(),
            dest: self.ctx.dest.clone(),
            entry: String::from_utf8_lossy(raw).into_owned(),
            what,
            setting,
        }
    }

    /// The directory `rel` (a parent), reached by the kernel beneath the
    /// staging directory through no link at all.
    fn dir_fd(&self, raw: &[u8], rel: &[u8]) -> Result<OwnedFd, ExtractError> {
        let p: &[u8] = if rel.is_empty() { b"." } else { rel };
        loop {
            match rfs::openat2(
                &self.staging,
                os(p),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                no_links(),
            ) {
                Ok(fd) => return Ok(fd),
                Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
                Err(Errno::LOOP) | Err(Errno::XDEV) => {
                    return Err(self.ctx.refuse(
                        raw,
                        format!(
                            "lies under `{}`, which is a symbolic link (entries are never written through links)",
                            String::from_utf8_lossy(rel)
                        ),
                    ));
                }
                Err(e) => return Err(self.ctx.io("reaching", self.shown(rel), e.into())),
            }
        }
    }

    /// Unpack every entry, then check the links and set directory
    /// attributes. Returns the top-level directory to strip, if any.
    fn run(mut self, reader: Box<dyn Read>) -> Result<Option<Vec<u8>>, ExtractError> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| self.corrupt(e))?;
        for entry in entries {
            self.interrupted()?;
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
        self.budget.entries += 1;
        if self.budget.entries > self.budget.limits.max_entries {
            return Err(self.too_big(
                &raw,
                format!("{} entries", self.budget.limits.max_entries),
                "EXTRACT_MAX_ENTRIES",
            ));
        }
        self.note_top(&rel);
        self.check_not_under_link(&raw, &rel, "")?;
        let header = entry.header();
        // Permission bits and the sticky bit (a world-writable tmp keeps
        // 1777); never set-user-id or set-group-id.
        let mode = header.mode().map_err(|e| self.corrupt(e))? & 0o1777;
        let mtime = header.mtime().map_err(|e| self.corrupt(e))?;
        use tar::EntryType as T;
        match kind {
            T::Directory => self.directory(&raw, &rel, mode, mtime),
            T::Regular if raw.ends_with(b"/") => self.directory(&raw, &rel, mode, mtime),
            T::Regular | T::Continuous | T::GNUSparse => self.file(entry, &raw, &rel, mode, mtime),
            T::Symlink => {
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                self.symlink(&raw, &rel, target.unwrap_or_default(), mtime)
            }
            T::Link => {
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                self.hard_link(&raw, &rel, target.unwrap_or_default())
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
                _ if part.contains(&0) => {
                    return Err(self.ctx.refuse(raw, "has a NUL byte in its name"));
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
    /// archive (the kernel would refuse it too; this names the link).
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

    /// Create the parent directories of `rel` that do not exist yet and
    /// return the parent's descriptor.
    fn make_parent(&mut self, raw: &[u8], rel: &[u8]) -> Result<OwnedFd, ExtractError> {
        let (parent, _) = split(rel);
        if !parent.is_empty() && !self.dirs.contains(parent) {
            let mut end = 0;
            while end < parent.len() {
                end = parent[end..]
                    .iter()
                    .position(|&b| b == b'/')
                    .map_or(parent.len(), |i| end + i);
                let prefix = parent[..end].to_vec();
                if !self.dirs.contains(&prefix) {
                    self.make_dir(raw, &prefix)?;
                }
                end += 1;
            }
        }
        self.dir_fd(raw, parent)
    }

    /// mkdir `rel`, whose parent exists; an existing directory is fine,
    /// anything else there is replaced.
    fn make_dir(&mut self, raw: &[u8], rel: &[u8]) -> Result<(), ExtractError> {
        let (parent, name) = split(rel);
        let dir = self.dir_fd(raw, parent)?;
        match rfs::mkdirat(&dir, os(name), Mode::from_raw_mode(0o755)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rfs::statat(&dir, os(name), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.ctx.io("inspecting", self.shown(rel), e.into()))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                    self.remove_existing(&dir, rel)?;
                    rfs::mkdirat(&dir, os(name), Mode::from_raw_mode(0o755)).map_err(|e| {
                        self.ctx.io("creating directory", self.shown(rel), e.into())
                    })?;
                }
            }
            Err(e) => return Err(self.ctx.io("creating directory", self.shown(rel), e.into())),
        }
        self.links.remove(rel);
        self.dirs.insert(rel.to_vec());
        Ok(())
    }

    /// Remove what an earlier entry put at `rel` in `dir` (a later entry
    /// replaces it, as with tar). Directories must be empty.
    fn remove_existing(&mut self, dir: &OwnedFd, rel: &[u8]) -> Result<(), ExtractError> {
        let (_, name) = split(rel);
        let st = match rfs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(self.ctx.io("inspecting", self.shown(rel), e.into())),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            rfs::unlinkat(dir, os(name), AtFlags::REMOVEDIR).map_err(|e| {
                self.ctx
                    .io("replacing directory", self.shown(rel), e.into())
            })?;
            self.dirs.remove(rel);
            self.dir_attrs.remove(rel);
        } else {
            rfs::unlinkat(dir, os(name), AtFlags::empty())
                .map_err(|e| self.ctx.io("replacing", self.shown(rel), e.into()))?;
            self.links.remove(rel);
        }
        Ok(())
    }

    fn directory(
        &mut self,
        raw: &[u8],
        rel: &[u8],
        mode: u32,
        mtime: u64,
    ) -> Result<(), ExtractError> {
        self.make_parent(raw, rel)?;
        if !self.dirs.contains(rel) {
            self.make_dir(raw, rel)?;
        }
        self.dir_attrs.insert(rel.to_vec(), (mode, mtime));
        Ok(())
    }

    fn file(
        &mut self,
        entry: &mut tar::Entry<'_, Box<dyn Read>>,
        raw: &[u8],
        rel: &[u8],
        mode: u32,
        mtime: u64,
    ) -> Result<(), ExtractError> {
        let size = entry.size();
        if self.budget.bytes.saturating_add(size) > self.budget.bytes_cap {
            return Err(self.bytes_exceeded(raw));
        }
        let dir = self.make_parent(raw, rel)?;
        let (_, name) = split(rel);
        let open = |dir: &OwnedFd| {
            rfs::openat(
                dir,
                os(name),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode & 0o777),
            )
        };
        let fd = match open(&dir) {
            Ok(f) => f,
            Err(Errno::EXIST) => {
                self.remove_existing(&dir, rel)?;
                open(&dir).map_err(|e| self.ctx.io("creating", self.shown(rel), e.into()))?
            }
            Err(e) => return Err(self.ctx.io("creating", self.shown(rel), e.into())),
        };
        self.links.remove(rel);
        let mut file = File::from(fd);
        loop {
            self.interrupted()?;
            let n = read_full(entry, &mut self.buf).map_err(|e| self.corrupt(e))?;
            if n == 0 {
                break;
            }
            self.budget.bytes += n as u64;
            if self.budget.bytes > self.budget.bytes_cap {
                return Err(self.bytes_exceeded(raw));
            }
            file.write_all(&self.buf[..n])
                .map_err(|e| self.ctx.io("writing", self.shown(rel), e))?;
            if n < self.buf.len() {
                break;
            }
        }
        if mode & (self.umask | 0o1000) != 0 {
            rfs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(|e| {
                self.ctx
                    .io("setting the mode of", self.shown(rel), e.into())
            })?;
        }
        rfs::futimens(&file, &times(mtime)).map_err(|e| {
            self.ctx
                .io("setting the time of", self.shown(rel), e.into())
        })?;
        Ok(())
    }

    fn bytes_exceeded(&self, raw: &[u8]) -> ExtractError {
        let l = &self.budget.limits;
        if self.budget.bytes_cap < l.max_bytes {
            self.too_big(
                raw,
                format!(
                    "{} times its own size plus 64 MiB ({} bytes), which looks like a decompression bomb",
                    l.max_ratio, self.budget.bytes_cap
                ),
                "EXTRACT_MAX_RATIO",
            )
        } else {
            self.too_big(raw, format!("{} bytes", l.max_bytes), "EXTRACT_MAX_BYTES")
        }
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
        if target.contains(&0) {
            return Err(self
                .ctx
                .refuse(raw, "is a symbolic link whose target has a NUL byte"));
        }
        // Checked now against the links so far (to name the entry early)
        // and again at the end against all of them.
        if let Err(reason) = resolve(&self.links, rel, &target, 0) {
            return Err(self.ctx.refuse(raw, reason));
        }
        let dir = self.make_parent(raw, rel)?;
        let (_, name) = split(rel);
        match rfs::symlinkat(os(&target), &dir, os(name)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.remove_existing(&dir, rel)?;
                rfs::symlinkat(os(&target), &dir, os(name)).map_err(|e| {
                    self.ctx
                        .io("creating symbolic link", self.shown(rel), e.into())
                })?;
            }
            Err(e) => {
                return Err(self
                    .ctx
                    .io("creating symbolic link", self.shown(rel), e.into()));
            }
        }
        let _ = rfs::utimensat(&dir, os(name), &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
        self.dirs.remove(rel);
        self.dir_attrs.remove(rel);
        self.links.insert(
            rel.to_vec(),
            Link {
                target,
                entry: raw.to_vec(),
            },
        );
        Ok(())
    }

    fn hard_link(&mut self, raw: &[u8], rel: &[u8], target: Vec<u8>) -> Result<(), ExtractError> {
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
            return self.symlink(raw, rel, target, 0);
        }
        if self.dirs.contains(&to) {
            return Err(self.ctx.refuse(raw, "is a hard link to a directory"));
        }
        let (from_parent, from_name) = split(&to);
        let from_dir = self.dir_fd(raw, from_parent)?;
        let dir = self.make_parent(raw, rel)?;
        let (_, name) = split(rel);
        let link = || rfs::linkat(&from_dir, os(from_name), &dir, os(name), AtFlags::empty());
        match link() {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.remove_existing(&dir, rel)?;
                link().map_err(|e| self.ctx.io("creating hard link", self.shown(rel), e.into()))?;
            }
            Err(Errno::NOENT) => {
                return Err(self.ctx.refuse(
                    raw,
                    format!(
                        "is a hard link to `{}`, which no earlier entry of the archive created",
                        String::from_utf8_lossy(&target)
                    ),
                ));
            }
            Err(e) => return Err(self.ctx.io("creating hard link", self.shown(rel), e.into())),
        }
        self.links.remove(rel);
        Ok(())
    }

    /// Check every link against the whole tree and set directory modes and
    /// times. Returns the top-level directory to strip.
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
        // Deepest first, so that a directory without search permission does
        // not hide the ones below it.
        let mut dirs: Vec<_> = std::mem::take(&mut self.dir_attrs).into_iter().collect();
        dirs.sort_by(|a, b| b.0.cmp(&a.0));
        for (rel, (mode, mtime)) in dirs {
            self.interrupted()?;
            let (parent, name) = split(&rel);
            let dir = self.dir_fd(&rel, parent)?;
            let fd = rfs::openat(
                &dir,
                os(name),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.ctx.io("opening", self.shown(&rel), e.into()))?;
            let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
            rfs::chmod(link.as_str(), Mode::from_raw_mode(mode)).map_err(|e| {
                self.ctx
                    .io("setting the mode of", self.shown(&rel), e.into())
            })?;
            rfs::utimensat(&dir, os(name), &times(mtime), AtFlags::SYMLINK_NOFOLLOW).map_err(
                |e| {
                    self.ctx
                        .io("setting the time of", self.shown(&rel), e.into())
                },
            )?;
        }
        let _ = self.staging.as_fd();
        Ok(strip)
    }
}

/// Follow the symbolic link at `rel` (relative to the archive's top, its
/// parents real directories) to `target` through the archive's other
/// links, as the kernel would, and fail with the reason when it leaves the
/// destination: the top, or the single top-level directory when `root_len`
/// is 1.
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

fn times(mtime: u64) -> rfs::Timestamps {
    let t = rfs::Timespec {
        tv_sec: mtime.min(i64::MAX as u64) as _,
        tv_nsec: 0,
    };
    rfs::Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// The process umask, read without changing it.
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}
