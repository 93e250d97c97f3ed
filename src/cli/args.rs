//! Arguments several subcommands share, and starting a run from them.

use super::{CliResult, msg};
use crate::engine::ScriptEngine;
use crate::interrupt::Interrupt;
use crate::stage::{Run, RunConfig};
use camino::{Utf8Path, Utf8PathBuf};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `--build-dir`.
#[derive(clap::Args, Clone, Debug)]
pub struct BuildDir {
    /// Where everything a run writes goes.
    #[arg(
        long = "build-dir",
        env = "RHBUILD_BUILD_DIR",
        default_value = "build",
        value_name = "DIR"
    )]
    pub dir: Utf8PathBuf,
}

impl BuildDir {
    /// The build directory, absolute: a relative one lies in the project.
    pub fn resolve(&self, engine: &ScriptEngine) -> Utf8PathBuf {
        if self.dir.is_absolute() {
            self.dir.clone()
        } else {
            engine.project.root.join(&self.dir)
        }
    }
}

/// `--source NAME=PATH`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Sources {
    /// Use a local tarball or directory as a package's source (unverified;
    /// logged and recorded as such).
    #[arg(long = "source", value_name = "NAME=PATH")]
    pub pairs: Vec<String>,
}

impl Sources {
    /// The pairs, checked: `NAME=PATH` with an existing path.
    pub fn parse(&self) -> Result<BTreeMap<String, Utf8PathBuf>, String> {
        let mut out = BTreeMap::new();
        for p in &self.pairs {
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
}

/// `--arch`, from the flag or `ARCH`.
#[derive(clap::Args, Clone, Debug)]
pub struct Arch {
    /// The target: a folder of targets/ (or `ARCH`).
    #[arg(long, short, env = "ARCH")]
    pub arch: Option<String>,
}

impl Arch {
    /// The target named, or an error that lists the targets.
    pub fn name(&self, engine: &ScriptEngine) -> Result<String, String> {
        match &self.arch {
            Some(a) if !a.is_empty() => Ok(a.clone()),
            _ => Err(format!(
                "no target given: say which with `--arch NAME` or `ARCH=NAME` (targets: {})",
                engine.project.target_names().join(", ")
            )),
        }
    }
}

/// What every subcommand that runs scripts takes.
#[derive(clap::Args, Clone, Debug)]
pub struct RunOptions {
    #[command(flatten)]
    pub build_dir: BuildDir,
    #[command(flatten)]
    pub sources: Sources,
    /// Override a setting (highest priority, above the environment and the
    /// target).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Parallel jobs (default: the number of cores).
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// How strictly build commands are confined: `auto` takes what the
    /// kernel offers and says what it lacks; `require` fails without all
    /// of it; `off` runs commands unconfined (said and recorded).
    #[arg(long, env = "RHBUILD_SANDBOX", value_enum, default_value = "auto")]
    pub sandbox: crate::sandbox::Level,
    /// Refuse at once, naming the holder, when another run uses the build
    /// directory (the default is to wait for it).
    #[arg(long)]
    pub no_wait: bool,
    /// Say why each stage is rebuilt: which recorded input changed, from
    /// what to what.
    #[arg(long)]
    pub explain: bool,
    /// Rebuild STAGE (a script's name, as `linux-kernel`) whatever its
    /// manifest says; the stages that use it follow. Repeatable.
    #[arg(long, value_name = "STAGE")]
    pub force: Vec<String>,
}

impl RunOptions {
    /// Start a run of `arch` with these options (and `extra` settings
    /// after the user's): signal handlers installed, the build directory
    /// locked, the target loaded.
    pub fn start(
        &self,
        engine: ScriptEngine,
        arch: String,
        extra: &[String],
        events: Option<Utf8PathBuf>,
    ) -> Result<(Arc<Run>, Interrupt), Box<dyn miette::Diagnostic + Send + Sync>> {
        let mut pairs = self.set.clone();
        pairs.extend(extra.iter().cloned());
        let cli_settings = crate::settings::Settings::parse_pairs(&pairs)
            .map_err(|e| -> Box<dyn miette::Diagnostic + Send + Sync> { Box::new(e) })?;
        let overrides = self.sources.parse().map_err(msg)?;
        let cfg = RunConfig {
            arch,
            build_dir: self.build_dir.resolve(&engine),
            jobs: self.jobs.unwrap_or_else(super::default_jobs),
            cli_settings,
            env: Run::environment(),
            overrides,
            events,
            sandbox: self.sandbox,
            wait_for_lock: !self.no_wait,
            explain: self.explain,
            force: self.force.clone(),
        };
        let interrupt = Interrupt::from_signals()
            .map_err(|e| msg(format!("cannot install signal handlers: {e}")))?;
        let run = Run::new(engine, cfg, interrupt.clone())
            .map_err(|e| -> Box<dyn miette::Diagnostic + Send + Sync> { Box::new(e) })?;
        Ok((run, interrupt))
    }
}

/// The end of a run: 130 when it was interrupted, whatever the script did.
pub fn finish(result: Result<(), crate::engine::ScriptError>, interrupt: &Interrupt) -> CliResult {
    if interrupt.is_set() {
        eprintln!("interrupted: nothing half-built was kept");
        return Ok(std::process::ExitCode::from(130));
    }
    result
        .map(|_| std::process::ExitCode::SUCCESS)
        .map_err(|e| -> Box<dyn miette::Diagnostic + Send + Sync> { Box::new(e) })
}
