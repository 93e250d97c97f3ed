//! Applying a package's patches to its extracted source with GNU `patch`.
//!
//! Each patch is tried with `--dry-run` first, so a patch that does not
//! apply changes nothing; the error names the patch file and every hunk that
//! failed (file, hunk number, line). `patch` runs with a cleared environment
//! except `PATH`, never asks questions, and leaves no `.orig` or `.rej`
//! files behind.

use crate::sandbox::Sandbox;
use camino::{Utf8Path, Utf8PathBuf};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;

/// The `*.patch` files in `dir`, sorted by name; empty when `dir` does not
/// exist. Hidden files (editor leftovers such as `.#x.patch`) and
/// directories are not listed.
pub fn list_patches(dir: &Utf8Path) -> io::Result<Vec<Utf8PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut patches = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "patch file name {:?} in `{dir}` is not UTF-8 (rename it)",
                    entry.file_name()
                ),
            ));
        };
        if !name.ends_with(".patch") || name.starts_with('.') {
            continue;
        }
        let path = dir.join(name);
        if fs::metadata(&path)?.is_file() {
            patches.push(path);
        }
    }
    patches.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(patches)
}

/// A hunk that `patch` could not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedHunk {
    /// The file being patched, as `patch` named it (relative to the source).
    pub file: String,
    pub hunk: u32,
    /// The line where `patch` expected the hunk.
    pub line: u32,
}

impl fmt::Display for FailedHunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hunk #{} of `{}` (at line {})",
            self.hunk, self.file, self.line
        )
    }
}

/// Why patching stopped. Patches before the failing one stay applied; the
/// failing one changed nothing unless `DoesNotApply::dry_run_passed` says
/// the real run failed after a clean dry run.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error(
        "patch `{patch}` does not apply to `{src}`: {}{} (refresh the patch against this source, or remove it); `patch -p1` said:\n{output}",
        describe(failed),
        if *dry_run_passed { " (the dry run had passed: the source may be partly patched)" } else { "" }
    )]
    DoesNotApply {
        patch: Utf8PathBuf,
        src: Utf8PathBuf,
        failed: Vec<FailedHunk>,
        dry_run_passed: bool,
        output: String,
    },
    #[error(
        "cannot run `patch` for `{patch}`: {source} (install GNU patch: `apt-get install patch`)"
    )]
    ToolMissing {
        patch: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot patch `{src}`: it is not a directory ({source})")]
    NoSource {
        src: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read patch `{patch}`: {source}")]
    NoPatch {
        patch: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot append to log `{log}`: {source}")]
    Log {
        log: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

fn describe(failed: &[FailedHunk]) -> String {
    if failed.is_empty() {
        return "no hunk was reported as failed, see the output below".to_string();
    }
    let hunks: Vec<String> = failed.iter().map(ToString::to_string).collect();
    format!("{} failed", hunks.join(", "))
}

/// Apply `patches` in order to `src` with `patch -p1`, each first tried with
/// `--dry-run` so that a patch that does not apply changes nothing. Stops at
/// the first failure, whose error names the patch file and the hunks that
/// failed, with `patch`'s output. The output of every patch is appended to
/// `log` (created if needed).
pub fn apply_patches(
    src: &Utf8Path,
    patches: &[Utf8PathBuf],
    log: &Utf8Path,
) -> Result<(), PatchError> {
    let fail = |source| PatchError::Log {
        log: log.to_owned(),
        source,
    };
    if let Some(parent) = log.parent().filter(|p| !p.as_str().is_empty()) {
        fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(log)
        .map_err(fail)?;
    apply_patches_in(src, patches, &mut file, log, None)
}

/// `apply_patches` with the log already open (`log_name` names it in
/// messages) and `patch` run inside `sandbox` when one is given.
pub fn apply_patches_in(
    src: &Utf8Path,
    patches: &[Utf8PathBuf],
    log: &mut dyn Write,
    log_name: &Utf8Path,
    sandbox: Option<&Sandbox>,
) -> Result<(), PatchError> {
    match fs::metadata(src) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(PatchError::NoSource {
                src: src.to_owned(),
                source: io::Error::from(io::ErrorKind::NotADirectory),
            });
        }
        Err(source) => {
            return Err(PatchError::NoSource {
                src: src.to_owned(),
                source,
            });
        }
    }
    for patch in patches {
        let absolute = std::path::absolute(patch).map_err(|source| PatchError::NoPatch {
            patch: patch.clone(),
            source,
        })?;
        if let Err(source) = fs::File::open(&absolute) {
            return Err(PatchError::NoPatch {
                patch: patch.clone(),
                source,
            });
        }
        for dry_run in [true, false] {
            let (ok, output) = run_patch(src, &absolute, dry_run, sandbox).map_err(|source| {
                PatchError::ToolMissing {
                    patch: patch.clone(),
                    source,
                }
            })?;
            if !dry_run || !ok {
                append_log(log, log_name, patch, &output)?;
            }
            if !ok {
                return Err(PatchError::DoesNotApply {
                    patch: patch.clone(),
                    src: src.to_owned(),
                    failed: failed_hunks(&output),
                    dry_run_passed: !dry_run,
                    output,
                });
            }
        }
    }
    Ok(())
}

/// Run `patch -p1` in `src`; returns whether it succeeded, and its output
/// (standard output and error, interleaved).
fn run_patch(
    src: &Utf8Path,
    patch: &std::path::Path,
    dry_run: bool,
    sandbox: Option<&Sandbox>,
) -> io::Result<(bool, String)> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "-p1".into(),
        // Never ask; never take a patch for a reversed one.
        "--force".into(),
        "--no-backup-if-mismatch".into(),
        "--reject-file=-".into(),
        "--input".into(),
        patch.as_os_str().to_owned(),
    ];
    if dry_run {
        args.push("--dry-run".into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut cmd = match sandbox {
        Some(sandbox) => {
            let tool = crate::airlock::host_program("patch")
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "`patch` is not in PATH"))?;
            let args: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            sandbox.command("patch", &tool, &args)
        }
        None => {
            let mut c = std::process::Command::new("patch");
            c.args(&args);
            c
        }
    };
    // `patch` keeps temporary files in TMPDIR (else /tmp, which a sandboxed
    // command may not write): beside the source tree.
    let tmp = src.parent().unwrap_or(src);
    cmd.current_dir(src)
        .env_clear()
        .env("PATH", path)
        .env("TMPDIR", tmp.as_str());
    let out = crate::interrupt::run_captured(&mut cmd, None, None).map_err(|e| match e {
        crate::interrupt::Stopped::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    })?;
    // `patch` says which file and hunk on stdout, and why it gave up on
    // stderr: one text for the error.
    let mut text = out.stdout;
    text.extend_from_slice(&out.stderr);
    let out = (out.status, text);
    Ok((
        out.0.success(),
        String::from_utf8_lossy(&out.1).into_owned(),
    ))
}

fn append_log(
    file: &mut dyn Write,
    log: &Utf8Path,
    patch: &Utf8Path,
    output: &str,
) -> Result<(), PatchError> {
    let fail = |source| PatchError::Log {
        log: log.to_owned(),
        source,
    };
    let mut text = format!("=== patch -p1 < {patch}\n{output}");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    file.write_all(text.as_bytes()).map_err(fail)
}

/// The hunks `patch` reported as failed: `Hunk #N FAILED at L.` lines,
/// attributed to the file named by the `patching file F` (or, in a dry
/// run, `checking file F`) line before them.
pub fn failed_hunks(output: &str) -> Vec<FailedHunk> {
    let mut file = String::new();
    let mut failed = Vec::new();
    for line in output.lines() {
        if let Some(name) = line
            .strip_prefix("patching file ")
            .or_else(|| line.strip_prefix("checking file "))
        {
            file = unquote(name.trim()).to_string();
        } else if let Some(rest) = line.strip_prefix("Hunk #") {
            let Some((hunk, rest)) = rest.split_once(' ') else {
                continue;
            };
            let Some(at) = rest.strip_prefix("FAILED at ") else {
                continue;
            };
            let digits: String = at.chars().take_while(char::is_ascii_digit).collect();
            if let (Ok(hunk), Ok(line)) = (hunk.parse(), digits.parse()) {
                failed.push(FailedHunk {
                    file: file.clone(),
                    hunk,
                    line,
                });
            }
        }
    }
    failed
}

/// `patch` quotes names holding spaces or quotes shell-style: `'a b'`.
fn unquote(name: &str) -> &str {
    name.strip_prefix('\'')
        .and_then(|n| n.strip_suffix('\''))
        .unwrap_or(name)
}
