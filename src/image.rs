//! System image writers: initramfs (gzipped newc cpio), squashfs and ext2,
//! plus the check that a directory is a root filesystem at all.
//!
//! None of them needs root, and in every image every file is owned by root
//! (uid and gid 0) whoever built the tree: the cpio writer is our own code
//! and writes 0; squashfs is written with `mksquashfs -all-root`; ext2 with
//! `mke2fs -d`, which copies the builder's owners, followed by `debugfs`
//! setting uid and gid to 0 on every inode that is not already root's (both
//! from e2fsprogs; genext2fs would be one more package for the same result).
//!
//! Every writer writes `OUT.part` and renames it to `OUT` only on success,
//! so an image that exists is a finished one.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};
use miette::Diagnostic;

/// Everything that can go wrong checking a tree or writing an image.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ImageError {
    #[error("`{root}` is not a root filesystem: {problem}")]
    #[diagnostic(
        code(image::not_root_filesystem),
        help(
            "the kernel runs `/init` from an initramfs and `/sbin/init` from a disk; install \
             busybox (or another init) into the tree first"
        )
    )]
    NotRootFilesystem { root: Utf8PathBuf, problem: String },

    #[error("cannot {action} `{path}`: {source}")]
    #[diagnostic(code(image::io))]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },

    #[error("`{path}` cannot go into {format}: {reason}")]
    #[diagnostic(code(image::unrepresentable))]
    Unrepresentable {
        path: String,
        format: &'static str,
        reason: String,
    },

    #[error("`{tool}` is needed to write {what} but is not installed: apt-get install {package}")]
    #[diagnostic(code(image::tool_missing))]
    ToolMissing {
        tool: &'static str,
        package: &'static str,
        what: &'static str,
    },

    #[error("`{command}` failed ({status}){hint}; its output ends with:\n{output}")]
    #[diagnostic(code(image::tool_failed))]
    ToolFailed {
        command: String,
        status: String,
        hint: String,
        output: String,
    },

    #[error("an image size of 0 MiB was asked for `{out}`: give a size of at least 1 MiB")]
    #[diagnostic(code(image::size))]
    ZeroSize { out: Utf8PathBuf },
}

fn io_err(action: &'static str, path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> ImageError {
    let path = path.as_ref().display().to_string();
    move |source| ImageError::Io {
        action,
        path,
        source,
    }
}

// ---------------------------------------------------------------------------
// Root filesystem check

/// What `rel` (relative to `root`, or absolute meaning the same) resolves
/// to when `root` is `/`: symlinks are followed the way the kernel would
/// after switching root, so `..` never leaves the root and an absolute link
/// target starts at the root again.
fn resolve_in_root(root: &Path, rel: &Path) -> Result<(PathBuf, Metadata), String> {
    let mut todo: Vec<std::ffi::OsString> = rel
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut stack: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    let here = |stack: &Vec<std::ffi::OsString>| -> PathBuf {
        let mut p = root.to_path_buf();
        p.extend(stack);
        p
    };
    while let Some(part) = todo.pop() {
        if part == ".." {
            stack.pop();
            continue;
        }
        stack.push(part);
        let path = here(&stack);
        let meta = fs::symlink_metadata(&path)
            .map_err(|_| format!("`/{}` does not exist in the root", display_rel(&stack)))?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return Err(format!(
                    "`/{}`: too many levels of symlinks",
                    display_rel(&stack)
                ));
            }
            let target = fs::read_link(&path)
                .map_err(|e| format!("cannot read the symlink `{}`: {e}", path.display()))?;
            stack.pop();
            if target.is_absolute() {
                stack.clear();
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(s) => todo.push(s.to_os_string()),
                    Component::ParentDir => todo.push("..".into()),
                    _ => {}
                }
            }
        } else if !todo.is_empty() && !meta.is_dir() {
            return Err(format!("`/{}` is not a directory", display_rel(&stack)));
        }
    }
    let path = here(&stack);
    let meta = fs::metadata(&path).map_err(|e| format!("`{}`: {e}", path.display()))?;
    Ok((path, meta))
}

fn display_rel(stack: &[std::ffi::OsString]) -> String {
    stack
        .iter()
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Why `rel` is not a usable init, or `None` when it is one: an executable
/// regular file, directly or through symlinks that stay inside `root`.
fn init_problem(root: &Path, rel: &str) -> Option<String> {
    let path = root.join(rel);
    let link = fs::symlink_metadata(&path).ok()?.file_type().is_symlink();
    let what = if link {
        let target = fs::read_link(&path)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        format!("`{rel}` is a symlink to `{target}`")
    } else {
        format!("`{rel}`")
    };
    match resolve_in_root(root, Path::new(rel)) {
        Err(why) => Some(format!("{what}, but {why}")),
        Ok((_, meta)) if !meta.is_file() => Some(format!("{what} is not a regular file")),
        Ok((_, meta)) if meta.mode() & 0o111 == 0 => Some(format!(
            "{what} is not executable (mode {:o})",
            meta.mode() & 0o7777
        )),
        Ok(_) => None,
    }
}

/// Succeeds when `root` is a directory holding an executable `init` or
/// `sbin/init` (regular files, or symlinks whose target, resolved as if
/// `root` were `/`, is one). Otherwise the error names the directory and
/// says what was found instead.
pub fn check_root_filesystem(root: &Utf8Path) -> Result<(), ImageError> {
    let fail = |problem: String| ImageError::NotRootFilesystem {
        root: root.to_owned(),
        problem,
    };
    match fs::metadata(root) {
        Err(e) => return Err(fail(format!("cannot read it: {e}"))),
        Ok(m) if !m.is_dir() => return Err(fail("it is not a directory".into())),
        Ok(_) => {}
    }
    let mut problems = Vec::new();
    for rel in ["init", "sbin/init"] {
        if fs::symlink_metadata(root.join(rel)).is_err() {
            continue;
        }
        match init_problem(root.as_std_path(), rel) {
            None => return Ok(()),
            Some(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Err(fail(
            "it has neither `init` nor `sbin/init`, one of which must be an executable".into(),
        ))
    } else {
        Err(fail(format!(
            "it has no executable `init` or `sbin/init`: {}",
            problems.join("; ")
        )))
    }
}

// ---------------------------------------------------------------------------
// Walking a tree

/// One entry below the root: its path relative to the root and its own
/// metadata (symlinks are not followed).
struct Node {
    rel: PathBuf,
    meta: Metadata,
}

/// Every entry below `root` (not `root` itself), each directory before its
/// contents and the entries of a directory sorted by name bytes, so the
/// order does not depend on the filesystem.
fn walk(root: &Path) -> Result<Vec<Node>, ImageError> {
    fn visit(root: &Path, rel: &Path, nodes: &mut Vec<Node>) -> Result<(), ImageError> {
        let dir = root.join(rel);
        let mut names: Vec<std::ffi::OsString> = fs::read_dir(&dir)
            .map_err(io_err("read the directory", &dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("read the directory", &dir))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let rel = rel.join(&name);
            let path = root.join(&rel);
            let meta = fs::symlink_metadata(&path).map_err(io_err("read", &path))?;
            let is_dir = meta.is_dir();
            nodes.push(Node {
                rel: rel.clone(),
                meta,
            });
            if is_dir {
                visit(root, &rel, nodes)?;
            }
        }
        Ok(())
    }
    let mut nodes = Vec::new();
    visit(root, Path::new(""), &mut nodes)?;
    Ok(nodes)
}

fn require_dir(root: &Utf8Path) -> Result<(), ImageError> {
    let meta = fs::metadata(root).map_err(io_err("read", root))?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(ImageError::Io {
            action: "make an image of",
            path: root.to_string(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        })
    }
}

fn part_path(out: &Utf8Path) -> Utf8PathBuf {
    Utf8PathBuf::from(format!("{out}.part"))
}

/// Runs `write` against `OUT.part`, renames it to `out` on success and
/// removes it on failure.
fn via_part(
    out: &Utf8Path,
    write: impl FnOnce(&Utf8Path) -> Result<(), ImageError>,
) -> Result<(), ImageError> {
    let part = part_path(out);
    let _ = fs::remove_file(&part);
    match write(&part) {
        Ok(()) => {
            crate::fsutil::publish(&part, out).map_err(io_err("rename the finished image to", out))
        }
        Err(e) => {
            let _ = fs::remove_file(&part);
            Err(e)
        }
    }
}

// ---------------------------------------------------------------------------
// initramfs: gzipped newc cpio

struct Newc<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

impl<W: Write> Newc<W> {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.write_all(&[0u8; 3][..n])
    }

    /// A header and name; the caller writes `filesize` bytes of data next
    /// and then calls `pad`.
    fn header(
        &mut self,
        name: &[u8],
        f: [u32; 4],
        filesize: u32,
        rdev: (u32, u32),
    ) -> io::Result<()> {
        let [mode, nlink, mtime, ino] = f;
        let fields = [
            ino,
            mode,
            0, // uid: root, whoever built the tree
            0, // gid
            nlink,
            mtime,
            filesize,
            0, // dev major and minor of the building host: meaningless here
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check: unused by newc
        ];
        let mut head = String::with_capacity(110);
        head.push_str("070701");
        for f in fields {
            head.push_str(&format!("{f:08X}"));
        }
        self.write_all(head.as_bytes())?;
        self.write_all(name)?;
        self.write_all(&[0])?;
        self.pad()
    }
}

/// Writes `root` as a gzip-compressed newc cpio archive (an initramfs) to
/// `out`, with our own code (no `cpio` binary needed):
///
/// - entries sorted (directories before their contents, names bytewise), so
///   the same tree and `mtime` always give the same bytes;
/// - every entry owned by uid 0, gid 0, whoever owns the files;
/// - modes as in the tree (type and permission bits, setuid included);
///   regular files, directories, symlinks, device nodes, fifos and sockets;
/// - hard links stored as independent copies (each with a link count of 1);
/// - every timestamp `mtime` when given (like SOURCE_DATE_EPOCH), else each
///   file's own;
/// - the root directory itself is not stored: the kernel's rootfs keeps its
///   own `/` (mode 0755) rather than taking the mode of a build directory.
///
/// Written to `OUT.part` and renamed to `out` on success.
pub fn write_initramfs(
    root: &Utf8Path,
    out: &Utf8Path,
    mtime: Option<u64>,
) -> Result<(), ImageError> {
    write_initramfs_with(root, out, mtime, &Tools::default())
}

/// `write_initramfs`, polling `tools.interrupt` between entries.
pub fn write_initramfs_with(
    root: &Utf8Path,
    out: &Utf8Path,
    mtime: Option<u64>,
    tools: &Tools,
) -> Result<(), ImageError> {
    require_dir(root)?;
    let nodes = walk(root.as_std_path())?;
    // A directory's link count: 2 plus one per subdirectory.
    let mut subdirs: HashMap<&Path, u32> = HashMap::new();
    for n in nodes.iter().filter(|n| n.meta.is_dir()) {
        *subdirs
            .entry(n.rel.parent().unwrap_or(Path::new("")))
            .or_default() += 1;
    }
    via_part(out, |part| {
        let file = create_no_follow(part).map_err(io_err("create", part))?;
        let gz = flate2::GzBuilder::new().write(BufWriter::new(file), flate2::Compression::best());
        let mut cpio = Newc {
            out: gz,
            written: 0,
            next_ino: 1,
        };
        let write_error = |source: io::Error| ImageError::Io {
            action: "write",
            path: part.to_string(),
            source,
        };
        for node in &nodes {
            tools.interrupted()?;
            let path = root.as_std_path().join(&node.rel);
            let meta = &node.meta;
            let t = match mtime {
                Some(t) => t as i64,
                None => meta.mtime(),
            };
            let t = t.clamp(0, u32::MAX as i64) as u32;
            let ino = cpio.next_ino;
            cpio.next_ino += 1;
            let name = node.rel.as_os_str().as_bytes();
            let ft = meta.file_type();
            let too_big = |what: &str| ImageError::Unrepresentable {
                path: path.display().to_string(),
                format: "a newc cpio archive",
                reason: format!("{what} is larger than 4 GiB"),
            };
            if ft.is_file() {
                let size = u32::try_from(meta.len()).map_err(|_| too_big("the file"))?;
                cpio.header(name, [meta.mode(), 1, t, ino], size, (0, 0))
                    .map_err(write_error)?;
                // Never through a link: an entry swapped for one since the
                // walk is not followed out of the tree.
                let mut f = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(io_err("read", &path))?;
                let copied = io::copy(&mut (&mut f).take(size as u64), &mut cpio.out)
                    .map_err(io_err("read", &path))?;
                cpio.written += copied;
                let mut extra = [0u8; 1];
                let grew = f.read(&mut extra).map_err(io_err("read", &path))? > 0;
                if copied != size as u64 || grew {
                    return Err(ImageError::Io {
                        action: "archive",
                        path: path.display().to_string(),
                        source: io::Error::other(format!(
                            "it changed size while being archived ({size} bytes expected)"
                        )),
                    });
                }
                cpio.pad().map_err(write_error)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(io_err("read the symlink", &path))?;
                let target = target.as_os_str().as_bytes();
                cpio.header(name, [meta.mode(), 1, t, ino], target.len() as u32, (0, 0))
                    .map_err(write_error)?;
                cpio.write_all(target).map_err(write_error)?;
                cpio.pad().map_err(write_error)?;
            } else if ft.is_dir() {
                let nlink = 2 + subdirs.get(node.rel.as_path()).copied().unwrap_or(0);
                cpio.header(name, [meta.mode(), nlink, t, ino], 0, (0, 0))
                    .map_err(write_error)?;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket()
            {
                let rdev = meta.rdev();
                cpio.header(
                    name,
                    [meta.mode(), 1, t, ino],
                    0,
                    (libc::major(rdev), libc::minor(rdev)),
                )
                .map_err(write_error)?;
            }
        }
        cpio.header(b"TRAILER!!!", [0, 1, 0, 0], 0, (0, 0))
            .map_err(write_error)?;
        let buffered = cpio.out.finish().map_err(write_error)?;
        let file = buffered
            .into_inner()
            .map_err(|e| e.into_error())
            .map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// External tools

fn find_tool(
    tool: &'static str,
    package: &'static str,
    what: &'static str,
) -> Result<PathBuf, ImageError> {
    // mke2fs and debugfs live in /usr/sbin, which a normal user's PATH
    // lacks; `host_dirs` adds it.
    crate::airlock::host_program_in(tool, &crate::airlock::host_dirs())
        .map(Utf8PathBuf::into_std_path_buf)
        .ok_or(ImageError::ToolMissing {
            tool,
            package,
            what,
        })
}

fn tail(text: &[u8], lines: usize) -> String {
    crate::fsutil::last_lines(&String::from_utf8_lossy(text), lines)
}

/// What the image writers run their tools in: the stage's sandbox (the
/// tools write only where its commands may) and its interrupt flag
/// (a set flag stops the tool and the writer). Both optional.
#[derive(Clone, Copy, Default)]
pub struct Tools<'a> {
    pub sandbox: Option<&'a crate::sandbox::Sandbox>,
    pub interrupt: Option<&'a crate::interrupt::Interrupt>,
    /// Every time in the image (SOURCE_DATE_EPOCH), and the filesystem's
    /// identity derived from it, so that two builds of the same tree give
    /// the same bytes. `None`: the tree's own times, a random identity.
    pub epoch: Option<u64>,
}

impl Tools<'_> {
    /// `mke2fs` options and environment for a reproducible filesystem: a
    /// UUID and directory-hash seed made from the epoch, the epoch as
    /// every filesystem-level time.
    fn ext2_identity(&self) -> (Vec<String>, Vec<(&'static str, String)>) {
        let Some(epoch) = self.epoch else {
            return (Vec::new(), Vec::new());
        };
        let h = crate::checksum::sha256_bytes(format!("rhbuild ext2 {epoch}").as_bytes());
        let uuid = format!(
            "{}-{}-4{}-8{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            &h[17..20],
            &h[20..32]
        );
        (
            vec![
                "-U".into(),
                uuid.clone(),
                "-E".into(),
                format!("hash_seed={uuid}"),
            ],
            vec![("E2FSPROGS_FAKE_TIME", epoch.to_string())],
        )
    }
}

impl Tools<'_> {
    fn interrupted(&self) -> Result<(), ImageError> {
        if self.interrupt.is_some_and(|i| i.is_set()) {
            return Err(ImageError::Io {
                action: "finish",
                path: "the image".into(),
                source: io::Error::other("interrupted"),
            });
        }
        Ok(())
    }
}

/// Runs a tool to completion; output is kept for the error only. In the
/// sandbox it may write `writes` (the image being made, a file the host
/// created) and nothing else.
fn run_tool(
    tool: &Path,
    args: &[&std::ffi::OsStr],
    writes: &Utf8Path,
    hint: &str,
    tools: &Tools,
) -> Result<std::process::Output, ImageError> {
    run_tool_env(tool, args, writes, hint, tools, &[])
}

fn run_tool_env(
    tool: &Path,
    args: &[&std::ffi::OsStr],
    writes: &Utf8Path,
    hint: &str,
    tools: &Tools,
    env: &[(&str, String)],
) -> Result<std::process::Output, ImageError> {
    let command = std::iter::once(tool.as_os_str())
        .chain(args.iter().copied())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = match (tools.sandbox, Utf8Path::from_path(tool)) {
        (Some(sandbox), Some(utf8)) => {
            let args: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let name = utf8.file_name().unwrap_or("tool");
            sandbox
                .writing(vec![writes.to_owned()])
                .command(name, utf8, &args)
        }
        _ => {
            let mut c = Command::new(tool);
            c.args(args);
            c
        }
    };
    cmd.env_clear()
        .env("LC_ALL", "C")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let got = match crate::interrupt::run_captured(&mut cmd, tools.interrupt, None) {
        Ok(got) => got,
        Err(crate::interrupt::Stopped::Io(e)) => return Err(io_err("run", tool)(e)),
        Err(_) => return tools.interrupted().map(|_| unreachable!()),
    };
    let output = std::process::Output {
        status: got.status,
        stdout: got.stdout,
        stderr: got.stderr,
    };
    if output.status.success() {
        return Ok(output);
    }
    let mut all = output.stdout.clone();
    all.extend_from_slice(&output.stderr);
    Err(ImageError::ToolFailed {
        command,
        status: output.status.to_string(),
        hint: hint.to_string(),
        output: tail(&all, 15),
    })
}

// ---------------------------------------------------------------------------
// squashfs

/// Writes `root` as a gzip-compressed squashfs image to `out` with
/// `mksquashfs ROOT OUT.part -noappend -all-root -comp gzip` (Debian
/// package squashfs-tools): every file owned by root, modes and symlinks
/// as in the tree. Renamed to `out` on success.
pub fn write_squashfs(root: &Utf8Path, out: &Utf8Path) -> Result<(), ImageError> {
    write_squashfs_with(root, out, &Tools::default())
}

/// `write_squashfs` with `mksquashfs` run in `tools`' sandbox.
pub fn write_squashfs_with(
    root: &Utf8Path,
    out: &Utf8Path,
    tools: &Tools,
) -> Result<(), ImageError> {
    require_dir(root)?;
    let mksquashfs = find_tool("mksquashfs", "squashfs-tools", "a squashfs image")?;
    via_part(out, |part| {
        // Made here, so the sandboxed mksquashfs writes this one file.
        create_no_follow(part).map_err(io_err("create", part))?;
        let mut args: Vec<String> = [
            root.as_str(),
            part.as_str(),
            "-noappend",
            "-all-root",
            "-comp",
            "gzip",
            "-no-progress",
            "-quiet",
        ]
        .map(String::from)
        .to_vec();
        if let Some(epoch) = tools.epoch {
            // Every file's time and the filesystem's own: reproducible.
            for opt in ["-mkfs-time", "-all-time"] {
                args.push(opt.into());
                args.push(epoch.to_string());
            }
        }
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        run_tool(&mksquashfs, &args, part, "", tools)?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// ext2

const MIB: u64 = 1024 * 1024;

/// Rough space `nodes` take in ext2 with 4 KiB blocks: data blocks (plus
/// indirect blocks), a block per directory and long symlink, 256-byte
/// inodes, and a few percent for bitmaps and group descriptors.
fn ext2_estimate(nodes: &[Node]) -> u64 {
    let block = 4096u64;
    let mut bytes = 0u64;
    for n in nodes {
        let size = if n.meta.is_dir() || n.meta.file_type().is_symlink() {
            block
        } else if n.meta.is_file() {
            n.meta.len().div_ceil(block) * block
        } else {
            0
        };
        bytes += size + size / 256 + 256;
    }
    bytes + bytes / 16 + MIB
}

fn inode_count(nodes: &[Node]) -> u64 {
    // Room to add files on a writable root: twice what the tree holds.
    nodes.len() as u64 * 2 + 256
}

/// `"path"` as debugfs's command parser reads it: double quotes around,
/// a double quote inside doubled.
fn debugfs_quote(rel: &Path) -> Result<Vec<u8>, ImageError> {
    let bytes = rel.as_os_str().as_bytes();
    if bytes.contains(&b'\n') {
        return Err(ImageError::Unrepresentable {
            path: rel.display().to_string(),
            format: "an ext2 image",
            reason: "its name holds a newline, which `debugfs` cannot be given to set its owner"
                .into(),
        });
    }
    let mut q = b"\"/".to_vec();
    for &b in bytes {
        if b == b'"' {
            q.push(b'"');
        }
        q.push(b);
    }
    q.push(b'"');
    Ok(q)
}

/// Writes `root` as an ext2 image of `size_mb` MiB to `out` (or, when
/// `None`, the content's estimated size plus a quarter plus 4 MiB), without
/// needing root: `mke2fs -t ext2 -d ROOT` (e2fsprogs) copies the tree, then
/// `debugfs -w` sets uid and gid 0 on every entry not already root's, since
/// `mke2fs -d` copies the builder's owners. Every file in the image is owned
/// by root; modes, symlinks, hard links and device nodes are as in the tree.
/// The file is sparse. Renamed to `out` on success.
pub fn write_ext2(root: &Utf8Path, out: &Utf8Path, size_mb: Option<u64>) -> Result<(), ImageError> {
    write_ext2_with(root, out, size_mb, &Tools::default())
}

/// `write_ext2` with its tools run in `tools`' sandbox.
pub fn write_ext2_with(
    root: &Utf8Path,
    out: &Utf8Path,
    size_mb: Option<u64>,
    tools: &Tools,
) -> Result<(), ImageError> {
    require_dir(root)?;
    if size_mb == Some(0) {
        return Err(ImageError::ZeroSize {
            out: out.to_owned(),
        });
    }
    let mke2fs = find_tool("mke2fs", "e2fsprogs", "an ext2 image")?;
    let debugfs = find_tool("debugfs", "e2fsprogs", "an ext2 image")?;
    let nodes = walk(root.as_std_path())?;
    let needed = ext2_estimate(&nodes);
    let needed_mb = needed.div_ceil(MIB);
    let size = match size_mb {
        Some(mb) => mb * MIB,
        None => (needed_mb + needed_mb / 4 + 4) * MIB,
    };
    let inodes = inode_count(&nodes);

    let mut commands = Vec::new();
    for n in &nodes {
        let path = debugfs_quote(&n.rel)?;
        let mut fields: Vec<(&str, String)> = Vec::new();
        if n.meta.uid() != 0 || n.meta.gid() != 0 {
            fields.extend([("uid", "0".to_string()), ("gid", "0".to_string())]);
        }
        if let Some(epoch) = tools.epoch {
            for f in ["atime", "mtime", "ctime", "crtime"] {
                // debugfs reads a bare number as a date (YYYYMMDD...).
                fields.push((f, format!("@{epoch}")));
            }
        }
        for (field, value) in fields {
            commands.extend_from_slice(b"set_inode_field ");
            commands.extend_from_slice(&path);
            commands.extend_from_slice(format!(" {field} {value}\n").as_bytes());
        }
    }
    if let Some(epoch) = tools.epoch {
        for dir in ["/", "/lost+found"] {
            for f in ["atime", "mtime", "ctime", "crtime"] {
                commands
                    .extend_from_slice(format!("set_inode_field {dir} {f} @{epoch}\n").as_bytes());
            }
        }
    }
    let (identity, fake_time) = tools.ext2_identity();

    via_part(out, |part| {
        let file = create_no_follow(part).map_err(io_err("create", part))?;
        file.set_len(size).map_err(io_err("size", part))?;
        drop(file);
        let hint = if size < needed {
            format!(
                " — `{root}` needs about {needed_mb} MiB and the image was asked to be {} MiB; \
                 ask for more, or for no size to fit the content",
                size / MIB
            )
        } else {
            String::new()
        };
        let inodes = inodes.to_string();
        let mut args: Vec<String> = [
            "-q",
            "-F",
            "-t",
            "ext2",
            "-m",
            "0",
            "-N",
            &inodes,
            "-E",
            "root_owner=0:0",
        ]
        .map(String::from)
        .to_vec();
        args.extend(identity.iter().cloned());
        args.extend(["-d".to_string(), root.to_string(), part.to_string()]);
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        run_tool_env(&mke2fs, &args, part, &hint, tools, &fake_time)?;
        if !commands.is_empty() {
            let script = Utf8PathBuf::from(format!("{part}.owners"));
            create_no_follow(&script)
                .and_then(|mut f| f.write_all(&commands))
                .map_err(io_err("write", &script))?;
            let args = [
                std::ffi::OsStr::new("-w"),
                std::ffi::OsStr::new("-f"),
                script.as_os_str(),
                part.as_os_str(),
            ];
            let result = run_tool_env(&debugfs, &args, part, "", tools, &fake_time);
            let _ = fs::remove_file(&script);
            let output = result?;
            // debugfs reports a failed command on stderr but still exits 0;
            // its only other stderr line is its version banner.
            let errors: Vec<String> = String::from_utf8_lossy(&output.stderr)
                .lines()
                .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
                .map(str::to_string)
                .collect();
            if !errors.is_empty() {
                return Err(ImageError::ToolFailed {
                    command: format!("{} -w -f {script} {part}", debugfs.display()),
                    status: "it reported errors".into(),
                    hint: " while giving every file to root".into(),
                    output: errors.join("\n"),
                });
            }
        }
        Ok(())
    })
}

/// Writes an empty ext2 filesystem of `size_mb` MiB to `out` (a sparse
/// file, root directory owned by root), e.g. for a /home disk; `mke2fs`
/// from e2fsprogs. Renamed to `out` on success.
pub fn create_blank_ext2(out: &Utf8Path, size_mb: u64) -> Result<(), ImageError> {
    create_blank_ext2_with(out, size_mb, &Tools::default())
}

/// `create_blank_ext2` with `mke2fs` run in `tools`' sandbox.
pub fn create_blank_ext2_with(
    out: &Utf8Path,
    size_mb: u64,
    tools: &Tools,
) -> Result<(), ImageError> {
    if size_mb == 0 {
        return Err(ImageError::ZeroSize {
            out: out.to_owned(),
        });
    }
    let mke2fs = find_tool("mke2fs", "e2fsprogs", "an ext2 image")?;
    via_part(out, |part| {
        let file = create_no_follow(part).map_err(io_err("create", part))?;
        file.set_len(size_mb * MIB).map_err(io_err("size", part))?;
        drop(file);
        let (identity, fake_time) = tools.ext2_identity();
        let mut args: Vec<String> = ["-q", "-F", "-t", "ext2", "-m", "0", "-E", "root_owner=0:0"]
            .map(String::from)
            .to_vec();
        args.extend(identity);
        args.push(part.to_string());
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        run_tool_env(&mke2fs, &args, part, "", tools, &fake_time)?;
        Ok(())
    })
}

/// Create `path` for writing, truncating a file already there but never
/// following a link at its name (a partial output's name is predictable:
/// a planted link there must not be written through).
fn create_no_follow(path: impl AsRef<Path>) -> io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}
