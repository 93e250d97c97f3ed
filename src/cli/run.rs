//! `rhbuild run SCRIPT`: run a stage (and what it needs) or an action.

use super::args::{Arch, RunOptions, finish};
use super::{CliResult, msg};
use crate::engine::ScriptEngine;
use camino::Utf8PathBuf;

/// Run a script: a stage is skipped when its inputs are unchanged, and
/// everything it needs before it runs first.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  rhbuild run scripts/system-image.rhai --arch sh4\n  rhbuild run scripts/smoketest.rhai --arch sh4 --source linux=/usr/src/linux-source-6.1.tar.xz\n  rhbuild run scripts/system-image.rhai --arch sh4 --set SYSIMAGE_TYPE=squashfs -j 2"
)]
pub struct Args {
    /// The script to run, for example scripts/system-image.rhai, or a
    /// stage's name: system-image.
    script: Utf8PathBuf,
    #[command(flatten)]
    arch: Arch,
    #[command(flatten)]
    options: RunOptions,
    /// Append one JSON line per stage and package event (start, up-to-date,
    /// done, failed, blocked) and per result a script reports to FILE.
    #[arg(long, value_name = "FILE")]
    events: Option<Utf8PathBuf>,
}

/// `rhbuild legal-info`: the legal-info stage, with `run`'s options.
#[derive(clap::Args)]
pub struct LegalInfoArgs {
    #[command(flatten)]
    arch: Arch,
    #[command(flatten)]
    options: RunOptions,
}

pub fn exec_legal_info(engine: ScriptEngine, args: LegalInfoArgs) -> CliResult {
    exec(
        engine,
        Args {
            script: Utf8PathBuf::from("legal-info"),
            arch: args.arch,
            options: args.options,
            events: None,
        },
    )
}

pub fn exec(engine: ScriptEngine, args: Args) -> CliResult {
    // A stage's name (`system-image`) stands for its script.
    let named = engine
        .project
        .scripts()
        .join(format!("{}.rhai", args.script));
    let script = if !args.script.as_str().contains('/') && !args.script.exists() && named.is_file()
    {
        named
    } else {
        crate::project::absolute(&args.script)
    };
    let rel = match script.strip_prefix(&engine.project.root) {
        Ok(r) => r.to_owned(),
        Err(_) => {
            return Err(msg(format!(
                "`{}` is not inside the project `{}`",
                args.script, engine.project.root
            )));
        }
    };
    if !script.is_file() {
        return Err(msg(format!(
            "no script `{}` (stages: {})",
            args.script,
            engine
                .project
                .names_in(&engine.project.scripts())
                .join(", ")
        )));
    }
    // A script that runs across targets (`export const all_targets =
    // true;`), or a per-host stage (built once for every target), needs
    // none.
    let (all_targets, per_host) = engine
        .compile(&rel, &ScriptEngine::stage_scope())
        .map(|ast| {
            (
                crate::engine::literal_true(&ast, "all_targets"),
                crate::engine::literal_true(&ast, "per_host"),
            )
        })
        .unwrap_or((false, false));
    let arch = match args.arch.name(&engine) {
        // A run across targets holds no target's lock (its children take
        // theirs) and reads no target's settings: an --arch is ignored.
        Ok(a) if all_targets => {
            eprintln!(
                "note: `{}` runs across targets: --arch {a} is ignored",
                args.script
            );
            String::new()
        }
        Ok(a) => a,
        Err(_) if all_targets || per_host => String::new(),
        Err(e) => return Err(msg(e)),
    };
    let events = args.events.as_ref().map(|e| crate::project::absolute(e));
    let (run, interrupt) = args.options.start(engine, arch, &[], events)?;
    finish(run.run_script(&rel), &interrupt)
}
