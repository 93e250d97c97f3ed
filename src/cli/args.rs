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
    /// Where everything a run writes goes (default: the local settings
    /// file's BUILD_DIR, else build/).
    #[arg(long = "build-dir", env = "RHBUILD_BUILD_DIR", value_name = "DIR")]
    pub dir: Option<Utf8PathBuf>,
    /// A settings file (default: the project's `local.rhai`, when there is
    /// one): settings between the target's and the environment's, and
    /// BUILD_DIR and CACHE_DIR.
    #[arg(long = "settings", env = "RHBUILD_SETTINGS", value_name = "FILE")]
    pub settings: Option<Utf8PathBuf>,
}

/// The name of the project's untracked local settings file.
pub const LOCAL_SETTINGS: &str = "local.rhai";

impl BuildDir {
    /// The local settings file's settings (none when there is no file).
    pub fn local_settings(
        &self,
        engine: &ScriptEngine,
    ) -> Result<BTreeMap<String, String>, Box<dyn miette::Diagnostic + Send + Sync>> {
        let path = match &self.settings {
            Some(p) => p.clone(),
            None => {
                let p = engine.project.root.join(LOCAL_SETTINGS);
                if !p.is_file() {
                    return Ok(BTreeMap::new());
                }
                p
            }
        };
        crate::target::load_settings_file(engine, &path)
            .map_err(|e| -> Box<dyn miette::Diagnostic + Send + Sync> { Box::new(e) })
    }

    /// The build directory, absolute: a relative one lies in the project.
    pub fn resolve(&self, engine: &ScriptEngine) -> Utf8PathBuf {
        let local = self.local_settings(engine).unwrap_or_default();
        let dir = self
            .dir
            .clone()
            .or_else(|| local.get("BUILD_DIR").map(Utf8PathBuf::from))
            .unwrap_or_else(|| Utf8PathBuf::from("build"));
        absolute_in(engine, dir)
    }

    /// `--cache-dir`, else the local file's CACHE_DIR (`None`: the build
    /// directory's own `cache/`).
    pub fn cache_dir(
        &self,
        engine: &ScriptEngine,
        flag: Option<&Utf8PathBuf>,
    ) -> Option<Utf8PathBuf> {
        let local = self.local_settings(engine).unwrap_or_default();
        flag.cloned()
            .or_else(|| local.get("CACHE_DIR").map(Utf8PathBuf::from))
            .map(|d| absolute_in(engine, d))
    }
}

/// A path from the user, absolute: a relative one lies in the project.
fn absolute_in(engine: &ScriptEngine, p: Utf8PathBuf) -> Utf8PathBuf {
    if p.is_absolute() {
        p
    } else {
        engine.project.root.join(p)
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
    /// The download cache (default: the local file's CACHE_DIR, else
    /// `<build-dir>/cache`); several build directories may share one.
    #[arg(long = "cache-dir", env = "RHBUILD_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<Utf8PathBuf>,
    /// Show every command's output as it comes (it also goes to the logs).
    #[arg(short = 'v', long, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print only warnings and errors.
    #[arg(short = 'q', long)]
    pub quiet: bool,
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
            local: self.build_dir.local_settings(&engine)?,
            cache_dir: self.build_dir.cache_dir(&engine, self.cache_dir.as_ref()),
            quiet: self.quiet,
            verbose: self.verbose,
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
