//! `rhbuild clean [--arch A] [STAGE...]`: remove what runs built.

use super::args::{Arch, BuildDir};
use super::{CliResult, msg};
use crate::engine::ScriptEngine;
use camino::Utf8PathBuf;
use std::process::ExitCode;

/// Remove built outputs under the lock of what goes (see `lock`). Without
/// `--arch`: every target's directory and the extracted sources (the
/// download cache stays unless `--cache`). With `--arch A`: that target's
/// directory, or only the outputs of the STAGEs named (a per-host stage's
/// in `build/all`, which every target shares).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  rhbuild clean --arch sh4 linux-kernel\n  rhbuild clean --arch sh4\n  rhbuild clean --cache"
)]
pub struct Args {
    /// Stages whose outputs to remove (with `--arch`).
    stages: Vec<String>,
    #[command(flatten)]
    arch: Arch,
    #[command(flatten)]
    build_dir: BuildDir,
    /// Remove the download cache too (without `--arch`).
    #[arg(long)]
    cache: bool,
    /// Refuse at once when another run holds what would be removed.
    #[arg(long)]
    no_wait: bool,
}

pub fn exec(engine: ScriptEngine, args: Args) -> CliResult {
    let dir = args.build_dir.resolve(&engine);
    if !dir.is_dir() {
        println!("nothing to clean: `{dir}` does not exist");
        return Ok(ExitCode::SUCCESS);
    }
    let root = crate::confine::Root::open(&dir).map_err(|e| msg(e.to_string()))?;
    if let Some(arch) = &args.arch.arch {
        if arch == crate::target::PER_HOST_DIR {
            return Err(msg(format!(
                "`{arch}` is not a target: `{dir}/{arch}` holds what every target shares; remove a per-host stage by name (`rhbuild clean --arch A host-libraries`) or clean the whole directory"
            )));
        }
        // A mistyped name removes nothing: say so rather than succeed.
        let known = engine.project.target_names();
        if !known.contains(arch) && !dir.join(arch).exists() {
            return Err(msg(format!(
                "no target `{arch}` (targets: {}) and nothing built for it in `{dir}`",
                known.join(", ")
            )));
        }
    }
    let interrupt = crate::interrupt::Interrupt::from_signals()
        .map_err(|e| msg(format!("cannot install signal handlers: {e}")))?;
    // The stages named, first: what they remove decides what to lock.
    let mut doomed: Vec<Utf8PathBuf> = Vec::new();
    let mut shared_by_all = false;
    match (&args.arch.arch, args.stages.is_empty()) {
        (None, false) => {
            return Err(msg(
                "name the target whose stages to remove: `rhbuild clean --arch A STAGE...`",
            ));
        }
        (Some(arch), false) => {
            for stage in &args.stages {
                let rel = Utf8PathBuf::from(format!("scripts/{stage}.rhai"));
                let ast = engine
                    .compile(&rel, &ScriptEngine::stage_scope())
                    .map_err(|_| {
                        msg(format!(
                            "no stage `{stage}` (stages: {})",
                            engine
                                .project
                                .names_in(&engine.project.scripts())
                                .join(", ")
                        ))
                    })?;
                let Some(output) = crate::engine::literal_const(&ast, "output") else {
                    return Err(msg(format!(
                        "`{stage}` is an action: it has no output to remove"
                    )));
                };
                // A per-host stage's output is every target's.
                let place = if crate::engine::literal_true(&ast, "per_host") {
                    shared_by_all = true;
                    crate::target::PER_HOST_DIR
                } else {
                    arch.as_str()
                };
                doomed.push(Utf8PathBuf::from(format!("{place}/{output}")));
            }
        }
        _ => {}
    }
    // The whole directory, or a per-host stage any target's run may be
    // using, waits for every run; one target's outputs, for that target's.
    let scope = match &args.arch.arch {
        Some(arch) if !shared_by_all => crate::lock::Scope::Target(arch),
        _ => crate::lock::Scope::Whole,
    };
    let _lock = crate::lock::BuildLock::acquire(&root, scope, !args.no_wait, &interrupt)
        .map_err(|e| msg(e.to_string()))?;
    match (&args.arch.arch, args.stages.is_empty()) {
        (None, true) => {
            for name in root
                .list(camino::Utf8Path::new(""))
                .map_err(|e| msg(e.to_string()))?
            {
                if name.starts_with('.') || (name == "cache" && !args.cache) {
                    continue;
                }
                doomed.push(name.into());
            }
        }
        (Some(arch), true) => doomed.push(arch.into()),
        _ => {}
    }
    for d in doomed {
        if root.exists(&d).unwrap_or(false) {
            root.remove_all(&d, Some(&interrupt))
                .map_err(|e| msg(format!("cannot remove `{}`: {e}", root.join(&d))))?;
            println!("removed {}", root.join(&d));
        }
    }
    Ok(ExitCode::SUCCESS)
}
