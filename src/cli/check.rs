//! `rhbuild check [PATH...]`: compile scripts and validate metadata.

use super::CliResult;
use crate::engine::ScriptEngine;
use camino::Utf8PathBuf;
use std::process::ExitCode;

/// Compile every script (default: all of scripts/, packages/, targets/ and
/// stdlib/), report unknown functions and malformed package and target
/// metadata with file, line and column. Builds nothing.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  rhbuild check\n  rhbuild check packages/busybox.rhai targets/sh4"
)]
pub struct Args {
    /// Files or folders to check (a target folder checks its target.rhai
    /// and linux.config).
    paths: Vec<Utf8PathBuf>,
    /// A kernel source tree whose Kconfig files declare the symbols the
    /// miniconfigs may use (default: the newest `build/src/linux-*`).
    #[arg(long, value_name = "DIR")]
    kernel: Option<Utf8PathBuf>,
}

pub fn exec(engine: ScriptEngine, args: Args) -> CliResult {
    let files = if args.paths.is_empty() {
        crate::check::default_files(&engine)
    } else {
        let mut files = Vec::new();
        for p in &args.paths {
            let abs = crate::project::absolute(p);
            let rel = match abs.strip_prefix(&engine.project.root) {
                Ok(r) => r.to_owned(),
                Err(_) => {
                    return Err(super::msg(format!(
                        "`{p}` is not inside the project `{}`",
                        engine.project.root
                    )));
                }
            };
            if abs.is_dir() {
                if abs.join("target.rhai").is_file() {
                    files.push(rel.join("target.rhai"));
                    if abs.join("linux.config").is_file() {
                        files.push(rel.join("linux.config"));
                    }
                } else {
                    for n in engine.project.names_in(&abs) {
                        files.push(rel.join(format!("{n}.rhai")));
                    }
                }
            } else if abs.is_file() {
                files.push(rel);
            } else {
                return Err(super::msg(format!("no file or folder `{p}`")));
            }
        }
        files
    };
    let kernel = crate::check::kernel_tree(&engine, args.kernel.as_deref());
    let problems = crate::check::check_files_with_kernel(&engine, &files, kernel.as_deref())
        .map_err(super::msg)?;
    if let Some(k) = &kernel {
        println!("kernel symbols checked against `{k}`");
    }
    for p in &problems {
        eprint!("{}", crate::diag::render(p));
    }
    let n = files.len();
    if problems.is_empty() {
        println!(
            "checked {n} file{}: no problems",
            if n == 1 { "" } else { "s" }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "checked {n} file{}: {} problem{}",
            if n == 1 { "" } else { "s" },
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        Ok(ExitCode::FAILURE)
    }
}
