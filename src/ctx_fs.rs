//! The file primitives scripts call through `ctx` (`write`, `read`, `copy`,
//! `remove`, ...), each resolved by the access policy (`confine`): writes
//! beneath the build directory, reads beneath the build directory, the
//! project and the `MY_*` directories, `..` and links followed by the kernel
//! only while they stay beneath. What a stage reads outside the build
//! directory is recorded as an input: a project file by its content hash, a
//! project directory or a `MY_*` directory by a stamp of its contents.

use crate::confine::{Located, Place, PolicyError};
use crate::stage::{Ctx, PrimResult};
use camino::{Utf8Path, Utf8PathBuf};
use rustix::fs::FileType;
use std::io::Write;

/// SOURCE_DATE_EPOCH when nothing sets it: 2023-01-01 00:00:00 UTC.
pub const DEFAULT_SOURCE_DATE_EPOCH: &str = "1672531200";

fn policy_error(e: PolicyError) -> String {
    match e {
        PolicyError::Io { path, source } if crate::confine::is_escape(&source) => format!(
            "`{path}` leads outside the directories scripts may use (through `..` or a symbolic link): {source}"
        ),
        other => other.to_string(),
    }
}

fn io_error(path: &str, e: std::io::Error) -> String {
    if crate::confine::is_escape(&e) {
        format!(
            "`{path}` leads outside the build directory (through `..` or a symbolic link); scripts write only there: {e}"
        )
    } else {
        e.to_string()
    }
}

impl Ctx {
    /// What image writers run their tools in: this stage's sandbox and
    /// the run's interrupt flag.
    pub fn image_tools(&self) -> crate::image::Tools<'_> {
        crate::image::Tools {
            sandbox: Some(&self.frame.sandbox),
            interrupt: Some(&self.run.interrupt),
            epoch: Some(self.source_date_epoch()),
        }
    }

    /// SOURCE_DATE_EPOCH (recorded): every timestamp a build stores, so
    /// that two builds of the same inputs give the same bytes. Default:
    /// 2023-01-01 00:00:00 UTC, the year of the pinned sources.
    pub fn source_date_epoch(&self) -> u64 {
        self.setting_or("SOURCE_DATE_EPOCH", DEFAULT_SOURCE_DATE_EPOCH)
            .trim()
            .parse()
            .unwrap_or(1_672_531_200)
    }

    /// Where a script may write `path`: beneath the build directory.
    fn write_loc(&self, path: &str) -> PrimResult<Located<'_>> {
        self.run.policy.writable(path).map_err(policy_error)
    }

    /// Run `op` on `path` beneath the first root it resolves beneath and
    /// record what was read.
    fn read_loc<T>(
        &self,
        path: &str,
        op: impl FnMut(&Located<'_>) -> std::io::Result<T>,
    ) -> PrimResult<T> {
        let (loc, value) = self.run.policy.read_with(path, op).map_err(policy_error)?;
        self.record_read(&loc);
        Ok(value)
    }

    /// Record a read outside the build directory as an input.
    fn record_read(&self, loc: &Located<'_>) {
        match &loc.place {
            Place::Build => {}
            Place::Project => {
                let kind = loc
                    .root
                    .metadata(&loc.rel)
                    .map(|m| FileType::from_raw_mode(m.st_mode));
                match kind {
                    Ok(FileType::RegularFile) => {
                        if let Ok(bytes) = loc.root.read(&loc.rel) {
                            self.frame
                                .inputs
                                .lock()
                                .unwrap()
                                .files
                                .insert(loc.rel.to_string(), crate::checksum::sha256_bytes(&bytes));
                        }
                    }
                    Ok(FileType::Directory) => {
                        if let Ok(real) = loc.root.real_path(&loc.rel) {
                            self.record_tree(&real);
                        }
                    }
                    _ => {}
                }
            }
            Place::User { dir, .. } => self.record_tree(dir),
        }
    }

    /// The real path of `path` (every link resolved, beneath a readable
    /// root), for handing to a program; recorded as read.
    pub fn readable(&self, path: &str) -> PrimResult<Utf8PathBuf> {
        self.read_loc(path, |l| l.root.real_path(&l.rel))
    }

    /// A path a program may write to: the real path of its parent
    /// (resolved beneath the build directory, created if missing) and its
    /// name. A link at that name is removed first, so nothing writes
    /// through it.
    pub fn writable(&self, path: &str) -> PrimResult<Utf8PathBuf> {
        let loc = self.write_loc(path)?;
        let Some(name) = loc.rel.file_name().filter(|n| *n != ".." && *n != ".") else {
            return Err(format!("`{path}` names no file in the build directory"));
        };
        let parent = loc.rel.parent().unwrap_or(Utf8Path::new(""));
        loc.root.mkdir_all(parent).map_err(|e| io_error(path, e))?;
        if loc.root.kind(&loc.rel).map_err(|e| io_error(path, e))? == Some(FileType::Symlink) {
            loc.root
                .remove_all(&loc.rel, None)
                .map_err(|e| io_error(path, e))?;
        }
        let real = loc.root.real_path(parent).map_err(|e| io_error(path, e))?;
        Ok(real.join(name))
    }

    /// `ctx.write(path, text[, mode])`: parents are created; the file is
    /// replaced whole (a link there is replaced, not written through).
    pub fn write_text(&self, path: &str, text: &str, mode: Option<u32>) -> PrimResult<()> {
        let loc = self.write_loc(path)?;
        if let Some(parent) = loc.rel.parent() {
            loc.root.mkdir_all(parent).map_err(|e| io_error(path, e))?;
        }
        let mut f = loc
            .root
            .create_file(&loc.rel, mode.unwrap_or(0o644))
            .map_err(|e| io_error(path, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| format!("cannot write `{path}`: {e}"))?;
        if let Some(m) = mode {
            rustix::fs::fchmod(&f, rustix::fs::Mode::from_raw_mode(m))
                .map_err(|e| format!("cannot chmod `{path}`: {e}"))?;
        }
        Ok(())
    }

    /// `ctx.read(path)`: a text file's contents.
    pub fn read_text(&self, path: &str) -> PrimResult<String> {
        self.read_loc(path, |l| l.root.read_to_string(&l.rel))
    }

    /// `ctx.list(path)`: the names in a directory, sorted.
    pub fn list_dir(&self, path: &str) -> PrimResult<Vec<String>> {
        self.read_loc(path, |l| l.root.list(&l.rel))
    }

    /// `ctx.file_size(path)`.
    pub fn file_size(&self, path: &str) -> PrimResult<u64> {
        self.read_loc(path, |l| l.root.metadata(&l.rel).map(|m| m.st_size as u64))
    }

    /// `ctx.exists(path)`: whether anything (a link counts) is there.
    pub fn exists(&self, path: &str) -> PrimResult<bool> {
        self.read_loc(path, |l| l.root.exists(&l.rel))
    }

    /// `ctx.mkdir(path)`: `mkdir -p`.
    pub fn make_dir(&self, path: &str) -> PrimResult<()> {
        let loc = self.write_loc(path)?;
        loc.root.mkdir_all(&loc.rel).map_err(|e| io_error(path, e))
    }

    /// `ctx.symlink(target, link)`: the target is text; every later access
    /// through the link is resolved beneath its root like any other path.
    pub fn make_symlink(&self, target: &str, link: &str) -> PrimResult<()> {
        let loc = self.write_loc(link)?;
        loc.root
            .symlink(target, &loc.rel)
            .map_err(|e| io_error(link, e))
    }

    /// `ctx.chmod(path, mode)`.
    pub fn change_mode(&self, path: &str, mode: u32) -> PrimResult<()> {
        let loc = self.write_loc(path)?;
        loc.root
            .chmod(&loc.rel, mode)
            .map_err(|e| io_error(path, e))
    }

    /// `ctx.remove(path)`: a file, a link (not its target) or a tree.
    pub fn remove_path(&self, path: &str) -> PrimResult<()> {
        let loc = self.write_loc(path)?;
        loc.root
            .remove_all(&loc.rel, Some(&self.run.interrupt))
            .map_err(|e| io_error(path, e))
    }

    /// `ctx.copy(from, to)`: a file, or a tree merged into a directory at
    /// `to` (see `Root::copy_from`).
    pub fn copy_path(&self, from: &str, to: &str) -> PrimResult<()> {
        let dest = self.write_loc(to)?;
        if let Some(parent) = dest.rel.parent() {
            dest.root.mkdir_all(parent).map_err(|e| io_error(to, e))?;
        }
        let interrupt = self.run.interrupt.clone();
        self.read_loc(from, |src| {
            dest.root
                .copy_from(src.root, &src.rel, &dest.rel, Some(&interrupt))
        })
        .map_err(|e| format!("cannot copy `{from}` to `{to}`: {e}"))
    }

    /// A directory commands may run in (a `Dir`): it must resolve to a
    /// directory beneath a readable root. Returns the path as given.
    pub fn directory(&self, path: &str) -> PrimResult<Utf8PathBuf> {
        let is_dir = self.read_loc(path, |l| {
            l.root
                .metadata(&l.rel)
                .map(|m| FileType::from_raw_mode(m.st_mode) == FileType::Directory)
        })?;
        if !is_dir {
            return Err(format!("`{path}` is not a directory"));
        }
        Ok(crate::project::absolute(Utf8Path::new(path)))
    }

    /// `dir.kconfig_set(".config", #{ SYMBOL: value })`.
    pub fn kconfig_set(
        &self,
        path: &str,
        symbols: &[(String, crate::kconfig::Value)],
    ) -> PrimResult<()> {
        let text = self.read_text(path)?;
        let out = crate::kconfig::set_symbols(&text, symbols);
        let loc = self.write_loc(path)?;
        loc.root
            .write_atomic(&loc.rel, out.as_bytes(), 0o644)
            .map_err(|e| io_error(path, e))
    }

    /// `dir.kconfig_get(".config", SYMBOL)`.
    pub fn kconfig_get(&self, path: &str, symbol: &str) -> PrimResult<Option<String>> {
        let text = self.read_text(path)?;
        let cfg = crate::kconfig::DotConfig::parse_str(&text);
        Ok(cfg
            .get(symbol.trim_start_matches("CONFIG_"))
            .map(str::to_owned))
    }
}
