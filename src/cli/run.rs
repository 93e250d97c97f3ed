//! `rhbuild run SCRIPT`: run a stage (and what it needs) or an action.

use super::{CliResult, msg};
use crate::engine::ScriptEngine;
use crate::interrupt::Interrupt;
use crate::settings::Settings;
use crate::stage::{Run, RunConfig};
use camino::{Utf8Path, Utf8PathBuf};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// Run a script: a stage is skipped when its inputs are unchanged, and
/// everything it needs before it runs first.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  rhbuild run scripts/system-image.rhai --arch sh4\n  rhbuild run scripts/smoketest.rhai --arch sh4 --source linux=/usr/src/linux-source-6.1.tar.xz\n  rhbuild run scripts/system-image.rhai --arch sh4 --set SYSIMAGE_TYPE=squashfs -j 2"
)]
pub struct Args {
    /// The script to run, for example scripts/system-image.rhai.
    script: Utf8PathBuf,
    /// The target: a folder of targets/.
    #[arg(long, short, env = "ARCH", default_value = "sh4")]
    arch: String,
    /// Override a setting (highest priority, above the environment and the target).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Use a local tarball or directory as a package's source (unverified; logged).
    #[arg(long = "source", value_name = "NAME=PATH")]
    source: Vec<String>,
    /// Parallel jobs (default: the number of cores).
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    /// Where everything a run writes goes.
    #[arg(
        long,
        env = "RHBUILD_BUILD_DIR",
        default_value = "build",
        value_name = "DIR"
    )]
    build_dir: Utf8PathBuf,
    /// How strictly build commands are confined: `auto` takes what the
    /// kernel offers and says what it lacks; `require` fails without all of
    /// it; `off` runs commands unconfined (said and recorded).
    #[arg(long, env = "RHBUILD_SANDBOX", value_enum, default_value = "auto")]
    sandbox: crate::sandbox::Level,
    /// Refuse at once, naming the holder, when another run uses the build
    /// directory (the default is to wait for it).
    #[arg(long)]
    no_wait: bool,
    /// Append one JSON line per stage and package event (start, up-to-date,
    /// done, failed, blocked) and per result a script reports to FILE.
    #[arg(long, value_name = "FILE")]
    events: Option<Utf8PathBuf>,
}

/// Parse `--source NAME=PATH` pairs; paths must exist.
pub fn parse_sources(pairs: &[String]) -> Result<BTreeMap<String, Utf8PathBuf>, String> {
    let mut out = BTreeMap::new();
    for p in pairs {
        let Some((name, path)) = p.split_once('=') else {
            return Err(format!(
                "malformed `--source {p}`: expected NAME=PATH, for example `--source linux=/usr/src/linux-source-6.1.tar.xz`"
            ));
        };
        let path = crate::project::absolute(Utf8Path::new(path));
        if !path.exists() {
            return Err(format!("`--source {name}=...`: `{path}` does not exist"));
        }
        out.insert(name.to_string(), path);
    }
    Ok(out)
}

pub fn exec(engine: ScriptEngine, args: Args) -> CliResult {
    let script = crate::project::absolute(&args.script);
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
    let cli_settings = Settings::parse_pairs(&args.set)
        .map_err(|e| -> Box<dyn miette::Diagnostic + Send + Sync> { Box::new(e) })?;
    let overrides = parse_sources(&args.source).map_err(msg)?;
    let build_dir = if args.build_dir.is_absolute() {
        args.build_dir.clone()
    } else {
        engine.project.root.join(&args.build_dir)
    };
    let cfg = RunConfig {
        arch: args.arch.clone(),
        build_dir,
        jobs: args.jobs.unwrap_or_else(super::default_jobs),
        cli_settings,
        env: Run::environment(),
        overrides,
        events: args.events.as_ref().map(|e| crate::project::absolute(e)),
        sandbox: args.sandbox,
        wait_for_lock: !args.no_wait,
    };
    let interrupt = Interrupt::from_signals()
        .map_err(|e| msg(format!("cannot install signal handlers: {e}")))?;
    let run = Run::new(engine, cfg, interrupt.clone())
        .map_err(|e| -> Box<dyn miette::Diagnostic + Send + Sync> { Box::new(e) })?;
    let result = run.run_script(&rel);
    match result {
        // An action that ended after an interrupt did not finish its work.
        Ok(()) if interrupt.is_set() => {
            eprintln!("interrupted: nothing half-built was kept");
            Ok(ExitCode::from(130))
        }
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            if interrupt.is_set() {
                eprintln!("interrupted: nothing half-built was kept");
                return Ok(ExitCode::from(130));
            }
            Err(Box::new(e))
        }
    }
}
