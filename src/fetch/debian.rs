//! The Debian origin: a file of a Debian source package, downloaded with
//! `apt-get source --download-only` into a directory of the cache, then
//! verified like any download. Bounded by the fetch deadline.

use super::cache::CacheDir;
use super::{Failure, FetchOptions, Origin};
use crate::interrupt::{self, Interrupt};
use camino::{Utf8Path, Utf8PathBuf};
use std::time::Instant;

/// Fetch `origin`'s file from the Debian source package `package` into the
/// cache, verified; the path it has there.
pub(super) fn fetch(
    cache: &CacheDir,
    package: &str,
    origin: &Origin,
    opts: &FetchOptions,
) -> Result<Utf8PathBuf, Failure> {
    check_debian_package(package).map_err(Failure::Permanent)?;
    let file = origin.file_name();
    let from = format!("debian source package {package}");
    // Inside the cache so the final rename stays on one file system.
    let (tmp, tmp_dir) = cache.temp_dir()?;
    let result = (|| {
        let shown = format!("apt-get source --download-only {package}");
        let deadline = Instant::now() + opts.deadline;
        let out =
            run_apt_source(package, &tmp_dir, &opts.interrupt, deadline).map_err(|e| match e {
                AptError::Interrupted => Failure::Interrupted,
                AptError::Deadline => Failure::Permanent(format!(
                    "`{shown}` did not finish within {} s (FETCH_DEADLINE)",
                    opts.deadline.as_secs()
                )),
                AptError::Missing => Failure::Permanent(
                    "`apt-get` is not installed: a Debian origin needs a Debian or Ubuntu host \
                 (or drop the origin)"
                        .to_string(),
                ),
                AptError::Io(e) => Failure::Permanent(format!("cannot run `{shown}`: {e}")),
            })?;
        let downloaded = list_dir(cache, &tmp);
        let got = tmp.join(file);
        let have = downloaded.iter().any(|n| n == file);
        // Only the named file matters, and it is verified below: apt-get
        // failing on another file of the source package (a .debian.tar.xz
        // the archive no longer has, say) does not make it unusable.
        if !out.success && !have {
            return Err(apt_failure(&shown, &out.output, &downloaded));
        }
        if !have {
            return Err(Failure::Permanent(format!(
                "`{shown}` did not download `{file}`; it downloaded {} (the archive may carry \
                 another version: update the origin, or pin one with `{package}=VERSION`)",
                describe_list(&downloaded)
            )));
        }
        cache.keep_if_verified(&got, origin, &from, &opts.interrupt)
    })();
    cache.discard(&tmp);
    result
}

pub(super) fn check_debian_package(package: &str) -> Result<(), String> {
    let ok = !package.is_empty()
        && !package.starts_with('-')
        && package
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.=:~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{package}` is not a Debian source package name (expected lowercase letters, digits \
             and + - . with an optional =VERSION)"
        ))
    }
}

struct AptOutput {
    success: bool,
    output: String,
}

enum AptError {
    Missing,
    Interrupted,
    Deadline,
    Io(std::io::Error),
}

/// Runs `apt-get source --download-only PACKAGE` in `dir`, in a process group
/// of its own so an interrupt can kill it with its download helpers.
fn run_apt_source(
    package: &str,
    dir: &Utf8Path,
    stop: &Interrupt,
    deadline: Instant,
) -> Result<AptOutput, AptError> {
    let mut cmd = std::process::Command::new("apt-get");
    // As root, apt drops to the `_apt` user, which cannot write into our
    // private temporary directory; it then warns and downloads as root anyway.
    // SAFETY: geteuid(2) has no preconditions and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        cmd.args(["-o", "APT::Sandbox::User=root"]);
    }
    cmd.args(["source", "--download-only", package])
        .current_dir(dir)
        .env("LC_ALL", "C");
    let got =
        interrupt::run_captured(&mut cmd, Some(stop), Some(deadline)).map_err(|e| match e {
            interrupt::Stopped::Interrupted => AptError::Interrupted,
            interrupt::Stopped::Deadline => AptError::Deadline,
            interrupt::Stopped::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
                AptError::Missing
            }
            interrupt::Stopped::Io(e) => AptError::Io(e),
        })?;
    let mut output = String::from_utf8_lossy(&got.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&got.stderr));
    Ok(AptOutput {
        success: got.status.success(),
        output,
    })
}

pub(super) fn apt_failure(shown: &str, output: &str, downloaded: &[String]) -> Failure {
    if output.contains("You must put some 'deb-src' URIs in your sources.list") {
        return Failure::Permanent(format!(
            "`{shown}` found no deb-src entries: add a `Types: deb-src` entry (with the same \
             URIs and Suites as your `Types: deb` entry) to a file in /etc/apt/sources.list.d/, \
             then run `apt-get update`"
        ));
    }
    if output.contains("Unable to find a source package for") {
        return Failure::Permanent(format!(
            "`{shown}` found no such source package: run `apt-get update` (its deb-src index may \
             be missing or stale), or check the package name"
        ));
    }
    let last: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = last[last.len().saturating_sub(4)..].join(" / ");
    let text = format!(
        "`{shown}` failed: {tail}; it downloaded {}",
        describe_list(downloaded)
    );
    if output.contains("Failed to fetch") || output.contains("Temporary failure resolving") {
        Failure::Transient(text)
    } else {
        Failure::Permanent(text)
    }
}

fn list_dir(cache: &CacheDir, dir: &Utf8Path) -> Vec<String> {
    cache.root.list(dir).unwrap_or_default()
}

fn describe_list(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
