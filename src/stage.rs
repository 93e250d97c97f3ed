//! Running scripts: stages (cached, atomic outputs), actions (always run) and
//! package builds.
//!
//! A script that exports `output` is a stage: it writes into a temporary
//! directory that is renamed to `build/<arch>/<output>` only when it
//! succeeded, together with a manifest of the inputs it read. A stage whose
//! recorded inputs all still hold is skipped. A script without `output` is
//! an action (download, run-emulator, smoketest) and always runs.
//!
//! A stage that also exports `per_host = true` is built once for every
//! target: it lives in `build/all/<output>`, sees no target's settings
//! (only local.rhai's, the environment's and `--set`), cannot read
//! `ctx.arch` or use a target's stages, and runs its commands with only its
//! own `bin/` as the airlock. Target runs side by side (build-all) take
//! turns on it through a lock of its own, so it is built once.

use crate::airlock::{self, Airlock};
use crate::confine::AccessPolicy;
use crate::engine::{ScriptEngine, ScriptError, literal_const};
use crate::fetch::{FetchOptions, SourceCache};
use crate::interrupt::Interrupt;
use crate::manifest::{Inputs, Manifest};
use crate::package::{self, Package};
use crate::sandbox::{Level as SandboxLevel, Sandbox};
use crate::settings::Settings;
use crate::target::{PER_HOST_DIR, Target};
use camino::{Utf8Path, Utf8PathBuf};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The directories of `build/<arch>` (and `build/all`) the run itself
/// keeps, which no stage's output may replace.
const RESERVED_DIRS: &[&str] = &["logs", "work", "tmp", "distcc"];

/// What a project file that was looked for and not found is recorded as.
const ABSENT: &str = "absent";

/// A path inside the project, relative to its root (never absolute, no `..`).
fn project_relative(rel: &str) -> PrimResult<Utf8PathBuf> {
    if rel.starts_with('/') || rel.split('/').any(|c| c == "..") {
        return Err(format!(
            "`{rel}` must be a path inside the project, relative to its root"
        ));
    }
    Ok(Utf8PathBuf::from(rel))
}

/// What a run was asked to do.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub arch: String,
    pub build_dir: Utf8PathBuf,
    pub jobs: usize,
    pub cli_settings: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    /// `--source NAME=PATH`: a local tarball or directory replacing a
    /// package's verified source.
    pub overrides: BTreeMap<String, Utf8PathBuf>,
    /// `--events FILE`: one JSON line per stage and package event.
    pub events: Option<Utf8PathBuf>,
    /// `--sandbox`: how strictly build commands are confined.
    pub sandbox: SandboxLevel,
    /// Wait for another run's lock on the build directory (`--no-wait`:
    /// refuse at once).
    pub wait_for_lock: bool,
    /// `--explain`: say why each stage is rebuilt.
    pub explain: bool,
    /// `--force STAGE`: rebuild these whatever their manifests say (the
    /// stages that use them follow).
    pub force: Vec<String>,
    /// The local settings file's settings (between the target and the
    /// environment).
    pub local: BTreeMap<String, String>,
    /// `--cache-dir`: the download cache (default `<build>/cache`), which
    /// several build directories may share.
    pub cache_dir: Option<Utf8PathBuf>,
    /// `-q`: only warnings and errors.
    pub quiet: bool,
    /// `-v`: every command's output on the terminal too, as it comes.
    pub verbose: bool,
}

/// One run: the engine, the target, the settings and what has been done.
pub struct Run {
    pub engine: ScriptEngine,
    pub target: Target,
    pub settings: Settings,
    /// The settings without the target's layer: what per-host stages see.
    pub host_settings: Settings,
    pub build_dir: Utf8PathBuf,
    pub jobs: usize,
    pub overrides: BTreeMap<String, Utf8PathBuf>,
    pub interrupt: Interrupt,
    pub cache: SourceCache,
    /// Where scripts and the host may read and write (see `confine`).
    pub policy: Arc<AccessPolicy>,
    /// The run's kernel-enforced sandbox: what the kernel grants, probed
    /// once, and the level asked for. No command runs in it as it is:
    /// each gets a narrower one made from it (`Sandbox::writing`), a
    /// frame's (`frame_sandbox`) or `source_sandbox`.
    pub sandbox: Arc<Sandbox>,
    /// `patch` preparing a source tree: writes beneath `build/src` only.
    pub source_sandbox: Arc<Sandbox>,
    /// ccache's directory: `CCACHE_DIR`, else `<build>/ccache`, shared by
    /// every target; writable in the sandbox.
    pub ccache_dir: Utf8PathBuf,
    /// `DISTCC_HOSTS`: the distcc servers compiles are spread over (see
    /// `distcc`). Not a stage input: it changes where a compile runs, not
    /// what it makes.
    pub distcc: Option<crate::distcc::Hosts>,
    quiet: bool,
    verbose: bool,
    /// One job budget for every command and `make` of the run.
    pub jobserver: Arc<crate::jobserver::Jobserver>,
    /// This run's hold on the build directory.
    _lock: crate::lock::BuildLock,
    /// Locks taken on the way, held to the run's end (build-all's
    /// `.all.lock`).
    held: Mutex<Vec<std::os::fd::OwnedFd>>,
    /// Wait for a lock another run holds (`--no-wait`: refuse at once).
    wait_for_lock: bool,
    explain: bool,
    forced: Vec<String>,
    /// The options a run across targets passes on to each target's run,
    /// besides the build directory, settings and sources (`--cache-dir`,
    /// `--sandbox`, `--explain`, `--no-wait`).
    child_flags: Vec<String>,
    /// Stages finished or found up to date in this run -> hash.
    done: Mutex<HashMap<String, String>>,
    /// Those stages' hashes -> their content keys.
    keys: Mutex<HashMap<String, String>>,
    /// Stages some thread is bringing up to date, the stages that failed
    /// in this run, and which stage waits for which (stages may be built
    /// side by side: `ctx.stages`); `settled` wakes the waiters.
    progress: Mutex<Progress>,
    settled: std::sync::Condvar,
    packages: Mutex<HashMap<String, Package>>,
    /// The first failure's full diagnostic, kept when it crosses a script
    /// boundary (a stage run from another stage, a package build).
    failure: Mutex<Option<ScriptError>>,
    /// Sources that were overridden and logged, so the warning appears once.
    pub(crate) warned: Mutex<Vec<String>>,
    events: Option<Utf8PathBuf>,
    /// The stage that failed first; the stages that were waiting for it
    /// are reported as blocked, not failed.
    failed_stage: Mutex<Option<String>>,
}

/// Which stages are being built, which failed, who waits for whom.
#[derive(Default)]
struct Progress {
    active: std::collections::HashSet<String>,
    failed: std::collections::HashSet<String>,
    /// waiting stage -> the stage it waits for.
    waits: HashMap<String, String>,
}

/// The per-script state: which stage or package, where it writes, its log,
/// and the inputs it read.
pub struct Frame {
    pub stage: String,
    /// The stages this frame's stage was brought up to date for, outermost
    /// first, ending with its own (cycle detection).
    pub chain: Vec<String>,
    /// The stage's temporary output directory (stages only).
    pub out: Option<Utf8PathBuf>,
    pub package: Option<Package>,
    pub log: Utf8PathBuf,
    pub inputs: Arc<Mutex<Inputs>>,
    pub unverified: Arc<Mutex<Vec<String>>>,
    /// What the stage passed to a package build (`ctx.build(name, opts)`).
    pub opts: rhai::Map,
    /// The stage's own `bin/`, first in PATH, for stages that export
    /// `tools = true` (host-tools, cross-compiler): they use what they make.
    pub own_bin: Option<Utf8PathBuf>,
    /// Time spent bringing upstream stages up to date from this frame, so a
    /// stage's reported time is its own.
    pub upstream_time: Arc<Mutex<std::time::Duration>>,
    /// CPU seconds its commands spent (and the packages it built, once
    /// each is done): the stage's and the package's `cpu_seconds` events.
    pub cpu: Arc<Mutex<f64>>,
    /// A per-host stage (or a package it builds): no target's settings,
    /// stages or tools.
    pub per_host: bool,
    /// Where its logs, work and temporary directories are: `build/<arch>`,
    /// or `build/all` for a per-host stage.
    pub home: Utf8PathBuf,
    /// The sandbox its commands run in (see `Run::frame_sandbox`).
    pub sandbox: Arc<Sandbox>,
}

/// The value scripts know as `ctx`.
#[derive(Clone)]
pub struct Ctx {
    pub run: Arc<Run>,
    pub frame: Arc<Frame>,
}

/// A failure inside a primitive, as the text a script error shows.
pub type PrimResult<T> = Result<T, String>;

impl Run {
    pub fn new(
        engine: ScriptEngine,
        cfg: RunConfig,
        interrupt: Interrupt,
    ) -> Result<Arc<Run>, ScriptError> {
        let mut engine = engine;
        if cfg.quiet {
            // A script's own progress lines are quiet too.
            engine.engine.on_print(|_| {});
        }
        // No target: a script that runs across targets (build-all).
        let target = if cfg.arch.is_empty() {
            crate::target::Target::all(&engine)
        } else {
            crate::target::load(&engine, &cfg.arch)?
        };
        let settings = Settings::with_local(
            target.settings.clone(),
            cfg.local.clone(),
            cfg.env.clone(),
            cfg.cli_settings.clone(),
        );
        let build_dir = crate::project::absolute(&cfg.build_dir);
        let mut user_dirs: Vec<(String, String)> =
            settings.with_prefix("MY_").into_iter().collect();
        // A `--source` directory is the user's too: its files are read.
        for (name, path) in &cfg.overrides {
            user_dirs.push((format!("--source {name}"), path.to_string()));
        }
        let policy =
            AccessPolicy::new(&build_dir, &engine.project.root, &user_dirs).map_err(|e| {
                ScriptError::Other(format!("cannot use the build directory `{build_dir}`: {e}"))
            })?;
        let stages = engine.project.names_in(&engine.project.scripts());
        if let Some(f) = cfg.force.iter().find(|f| !stages.contains(f)) {
            return Err(ScriptError::Other(format!(
                "--force {f}: no stage `{f}` (stages: {})",
                stages.join(", ")
            )));
        }
        // A target's run works beside other targets' runs; a run with
        // none (a per-host stage, build-all's parent) only shares the
        // directory and locks what it writes.
        let scope = if cfg.arch.is_empty() {
            crate::lock::Scope::Shared
        } else {
            crate::lock::Scope::Target(&target.name)
        };
        let lock =
            crate::lock::BuildLock::acquire(policy.build(), scope, cfg.wait_for_lock, &interrupt)
                .map_err(|e| ScriptError::Other(e.to_string()))?;
        let cache = match &cfg.cache_dir {
            Some(dir) => crate::confine::Root::create(dir).map(SourceCache::in_root),
            None => policy
                .build()
                .subdir(Utf8Path::new("cache"))
                .map(SourceCache::in_root),
        }
        .map_err(|e| ScriptError::Other(format!("cannot use the source cache: {e}")))?;
        let mut ccache_dir = settings
            .get("CCACHE_DIR")
            .filter(|d| !d.is_empty())
            .map(|d| crate::project::absolute(Utf8Path::new(d)))
            .unwrap_or_else(|| build_dir.join("ccache"));
        let mut writable = vec![build_dir.clone()];
        if !ccache_dir.starts_with(&build_dir) {
            let cannot = |e: std::io::Error| {
                ScriptError::Other(format!("cannot create CCACHE_DIR `{ccache_dir}`: {e}"))
            };
            std::fs::create_dir_all(&ccache_dir).map_err(cannot)?;
            // The sandbox grants a directory at its name, never through a
            // link there: one the user named is followed here, once.
            ccache_dir = std::fs::canonicalize(&ccache_dir)
                .map_err(cannot)
                .and_then(|p| {
                    Utf8PathBuf::from_path_buf(p).map_err(|p| {
                        ScriptError::Other(format!("CCACHE_DIR `{}` is not UTF-8", p.display()))
                    })
                })?;
            writable.push(ccache_dir.clone());
        }
        let distcc = match settings.get("DISTCC_HOSTS").map(str::trim) {
            Some(text) if !text.is_empty() => {
                Some(crate::distcc::Hosts::parse(text).map_err(ScriptError::Other)?)
            }
            _ => None,
        };
        let mut sandbox = Sandbox::new(cfg.sandbox, writable)
            .map_err(|e| ScriptError::Other(format!("cannot set up the sandbox: {e}")))?;
        if let Some(hosts) = &distcc {
            let Some(program) = crate::airlock::host_program("distcc") else {
                return Err(ScriptError::Other(
                    "`DISTCC_HOSTS` is set, but distcc is not installed on this machine: apt-get install distcc (or leave DISTCC_HOSTS empty to compile here)".into(),
                ));
            };
            if !target.name.is_empty() {
                let rel = Utf8PathBuf::from(&target.name).join("distcc");
                crate::distcc::populate(
                    policy.build(),
                    &rel,
                    &program,
                    &sandbox.exe,
                    settings.get("TRIPLE").filter(|t| !t.is_empty()),
                )
                .map_err(|e| {
                    ScriptError::Other(format!(
                        "cannot make the distcc directory `{}`: {e}",
                        build_dir.join(&rel)
                    ))
                })?;
            }
            if cfg.sandbox != SandboxLevel::Off {
                sandbox = sandbox.with_forwards(hosts.forwards());
            }
            if !cfg.quiet && (cfg.jobs as u32) < hosts.slots() {
                println!(
                    "note: DISTCC_HOSTS takes {} compiles at once, the run -j {}: raise -j to use them all",
                    hosts.slots(),
                    cfg.jobs.max(1)
                );
            }
        }
        // Each command writes beneath its own stage's side of the build
        // directory only (see `Run::sandbox`); made here so they exist
        // when the sandbox opens them.
        let home = if target.name.is_empty() {
            PER_HOST_DIR
        } else {
            target.name.as_str()
        };
        let mut dirs = vec![Utf8PathBuf::from(home), PER_HOST_DIR.into(), "src".into()];
        dirs.extend(policy.build().relative(&ccache_dir));
        for dir in dirs {
            policy.build().mkdir_all(&dir).map_err(|e| {
                ScriptError::Other(format!("cannot create `{}`: {e}", build_dir.join(&dir)))
            })?;
        }
        let source_sandbox = Arc::new(sandbox.writing(vec![build_dir.join("src")]));
        let child_flags = child_flags(&cfg);
        Ok(Arc::new(Run {
            engine,
            target,
            host_settings: settings.without_target(),
            settings,
            build_dir,
            jobs: cfg.jobs.max(1),
            overrides: cfg.overrides,
            interrupt,
            cache,
            policy: Arc::new(policy),
            source_sandbox,
            sandbox: Arc::new(sandbox),
            ccache_dir,
            distcc,
            quiet: cfg.quiet,
            verbose: cfg.verbose,
            jobserver: Arc::new(
                crate::jobserver::Jobserver::new(cfg.jobs.max(1))
                    .map_err(|e| ScriptError::Other(format!("cannot make a jobserver: {e}")))?,
            ),
            _lock: lock,
            held: Mutex::new(Vec::new()),
            wait_for_lock: cfg.wait_for_lock,
            explain: cfg.explain,
            forced: cfg.force.clone(),
            child_flags,
            done: Mutex::new(HashMap::new()),
            keys: Mutex::new(HashMap::new()),
            progress: Mutex::new(Progress::default()),
            settled: std::sync::Condvar::new(),
            packages: Mutex::new(HashMap::new()),
            failure: Mutex::new(None),
            warned: Mutex::new(Vec::new()),
            events: cfg.events,
            failed_stage: Mutex::new(None),
        }))
    }

    /// `mkdir -p` of a directory the host names beneath the build directory.
    pub fn make_build_dir(&self, path: &Utf8Path) -> Result<(), ScriptError> {
        let rel = self.build_rel(path).map_err(ScriptError::Other)?;
        self.policy
            .build()
            .mkdir_all(&rel)
            .map_err(|e| ScriptError::Other(format!("cannot create `{path}`: {e}")))
    }

    /// Empty a log beneath the build directory (a link there is replaced).
    pub fn truncate_log(&self, log: &Utf8Path) -> Result<(), ScriptError> {
        let rel = self.build_rel(log).map_err(ScriptError::Other)?;
        if let Some(parent) = rel.parent() {
            let _ = self.policy.build().mkdir_all(parent);
        }
        self.policy
            .build()
            .create_file(&rel, 0o644)
            .map(drop)
            .map_err(|e| ScriptError::Other(format!("cannot write the log `{log}`: {e}")))
    }

    /// A path the host made beneath the build directory, relative to it.
    pub fn build_rel(&self, path: &Utf8Path) -> PrimResult<Utf8PathBuf> {
        self.policy.build().relative(path).ok_or_else(|| {
            format!(
                "`{path}` is not beneath the build directory `{}`",
                self.build_dir
            )
        })
    }

    /// The settings the environment gives, for `RunConfig::env` (see
    /// `settings::from_environment`).
    pub fn environment() -> BTreeMap<String, String> {
        crate::settings::from_environment(std::env::vars())
    }

    pub fn arch(&self) -> &str {
        &self.target.name
    }

    /// One line of progress, unless the run is quiet (`-q`).
    pub fn say(&self, line: String) {
        if !self.quiet {
            println!("{line}");
        }
    }

    /// `build/<arch>`.
    pub fn arch_dir(&self) -> Utf8PathBuf {
        self.build_dir.join(&self.target.name)
    }

    /// Where a stage's output, logs and work go: its target's directory,
    /// or `build/all` for a per-host stage (see the module's notes).
    pub fn place(&self, per_host: bool) -> &str {
        if per_host {
            PER_HOST_DIR
        } else {
            &self.target.name
        }
    }

    /// The settings a stage sees: a per-host stage's leave the target's
    /// layer out.
    pub fn settings_for(&self, per_host: bool) -> &Settings {
        if per_host {
            &self.host_settings
        } else {
            &self.settings
        }
    }

    /// The airlock's own tools: `build/<arch>/host/bin`, which the
    /// host-tools stage fills, or a per-host stage's own `bin/` (`own`).
    pub fn airlock_tools(&self, own: Option<&Utf8Path>, per_host: bool) -> Utf8PathBuf {
        match (per_host, own) {
            (true, Some(o)) => o.to_owned(),
            _ => self.arch_dir().join("host/bin"),
        }
    }

    /// Whether the stage `name` (scripts/<name>.rhai) is per-host.
    pub fn is_per_host(&self, name: &str) -> Result<bool, ScriptError> {
        let rel = Utf8PathBuf::from(format!("scripts/{name}.rhai"));
        if !self.engine.project.root.join(&rel).is_file() {
            return Ok(false);
        }
        let ast = self.engine.compile(&rel, &ScriptEngine::stage_scope())?;
        Ok(crate::engine::literal_true(&ast, "per_host"))
    }

    pub fn logs_dir(&self) -> Utf8PathBuf {
        self.arch_dir().join("logs")
    }

    /// Record an event for `--events` (build-all's report reads them):
    /// `kind` is start, up-to-date, done, failed, blocked or result.
    pub fn event(&self, kind: &str, fields: serde_json::Value) {
        let Some(path) = &self.events else { return };
        let mut v = serde_json::json!({ "event": kind, "arch": self.arch() });
        if let (Some(m), serde_json::Value::Object(f)) = (v.as_object_mut(), fields) {
            m.extend(f);
        }
        // One write of the whole line: stages side by side (`ctx.stages`)
        // append to the same file from their threads, and a value written
        // piece by piece (as `writeln!` on a file does) interleaves with
        // theirs. An append of one write lands whole.
        let line = format!("{v}\n");
        let written = self.policy.append(path).and_then(|mut f| {
            use std::io::Write;
            f.write_all(line.as_bytes())
        });
        if let Err(e) = written {
            eprintln!("warning: cannot write the event log `{path}`: {e}");
        }
    }

    /// The stage event for a stage that ended in an error.
    fn stage_failed(&self, name: &str, seconds: f64, error: &ScriptError) {
        let mut first = self.failed_stage.lock().unwrap();
        let kind = if first.is_none() { "failed" } else { "blocked" };
        first.get_or_insert_with(|| name.to_string());
        let mut message = format!("{error}");
        if message.len() > 2000 {
            message.truncate(message.floor_char_boundary(2000));
        }
        self.event(
            kind,
            serde_json::json!({ "stage": name, "seconds": seconds, "message": message }),
        );
    }

    /// Keep the first failure that crossed a script boundary.
    pub fn keep_failure(&self, e: ScriptError) {
        let mut f = self.failure.lock().unwrap();
        if f.is_none() {
            *f = Some(e);
        }
    }

    pub fn take_failure(&self) -> Option<ScriptError> {
        self.failure.lock().unwrap().take()
    }

    pub fn package(&self, name: &str) -> Result<Package, ScriptError> {
        if let Some(p) = self.packages.lock().unwrap().get(name) {
            return Ok(p.clone());
        }
        let p = package::load(&self.engine, name)?;
        self.packages
            .lock()
            .unwrap()
            .insert(name.to_string(), p.clone());
        Ok(p)
    }

    /// The airlock commands run in: PATH holds only `build/<arch>/host/bin`
    /// and the cross compiler's `bin`.
    /// A tool stage's own `bin` (while it is being built) comes first, so
    /// it can use the tools it just made. A per-host stage's commands have
    /// only its own `bin`: nothing of a target.
    pub fn airlock(
        &self,
        own: Option<&Utf8Path>,
        per_host: bool,
        sandbox: &Arc<Sandbox>,
        env: BTreeMap<String, String>,
    ) -> Airlock {
        let mut path = Vec::new();
        let tools = self.airlock_tools(own, per_host);
        // Compiles that do not go through ccache (which calls distcc as
        // its prefix) go through distcc's masquerade links: the host
        // compiler's always, the toolchain's only where it is not being
        // built.
        if self.distcc.is_some() && !self.ccache_used(self.settings_for(per_host), &tools) {
            let dir = self.arch_dir().join("distcc");
            path.push(dir.join("host"));
            if own.is_none() {
                path.push(dir.join("cross"));
            }
        }
        if let Some(o) = own {
            path.push(o.to_owned());
        }
        if !per_host {
            path.push(self.arch_dir().join("host/bin"));
            path.push(self.arch_dir().join("cross-compiler/bin"));
        }
        Airlock {
            path,
            env,
            interrupt: self.interrupt.clone(),
            sandbox: Some(sandbox.clone()),
            policy: Some(self.policy.clone()),
            jobserver: Some(self.jobserver.clone()),
            verbose: self.verbose,
        }
    }

    /// The sandbox of a frame's commands. A stage's (and its packages')
    /// write beneath its own output (the `.part` directory being built),
    /// the work and temporary directories of its side of the build
    /// directory (`home`: `build/<arch>`, a per-host stage's `build/all`),
    /// and ccache's: the outputs of other stages, finished and
    /// recorded as up to date, are read-only to it. An action's (no
    /// output of its own: a menuconfig, the dev environment) write only
    /// the scratch directories; the images it makes (the dev environment's
    /// disks) are written by the host, and by image tools granted their
    /// one file (`image::run_tool`).
    fn frame_sandbox(&self, home: &Utf8Path, out: Option<&Utf8Path>) -> Arc<Sandbox> {
        let scratch = [home.join("work"), home.join("tmp"), self.ccache_dir.clone()];
        let writable = out.map(Utf8Path::to_owned).into_iter().chain(scratch);
        Arc::new(self.sandbox.writing(writable.collect()))
    }

    /// Whether compiles go through ccache: `CCACHE` is not 0 and ccache is
    /// among the airlock's tools in `tools`. Scripts ask the same through
    /// `ctx.ccache` (which records the setting); here it chooses how
    /// compiles reach distcc.
    fn ccache_used(&self, settings: &Settings, tools: &Utf8Path) -> bool {
        settings.get("CCACHE") != Some("0")
            && self
                .build_rel(&tools.join("ccache"))
                .ok()
                .and_then(|rel| self.policy.build().exists(&rel).ok())
                .unwrap_or(false)
    }

    /// Extraction's limits (settings EXTRACT_MAX_BYTES, EXTRACT_MAX_ENTRIES,
    /// EXTRACT_MAX_RATIO, as a per-host stage or a target's sees them) and
    /// this run's interrupt.
    pub fn extract_options(&self, per_host: bool) -> crate::extract::Options {
        let mut limits = crate::extract::Limits::default();
        let num = |k: &str| {
            self.settings_for(per_host)
                .get(k)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(n) = num("EXTRACT_MAX_BYTES") {
            limits.max_bytes = n;
        }
        if let Some(n) = num("EXTRACT_MAX_ENTRIES") {
            limits.max_entries = n;
        }
        if let Some(n) = num("EXTRACT_MAX_RATIO") {
            limits.max_ratio = n;
        }
        crate::extract::Options {
            limits,
            interrupt: Some(self.interrupt.clone()),
        }
    }

    /// How downloads go: PREFERRED_MIRROR, FETCH_DEADLINE (seconds per
    /// file) and FETCH_MAX_BYTES (for origins without a `size`), as a
    /// per-host stage or a target's sees them.
    pub fn fetch_options(&self, per_host: bool) -> FetchOptions {
        use std::io::IsTerminal;
        let defaults = FetchOptions::default();
        let settings = self.settings_for(per_host);
        FetchOptions {
            preferred_mirror: settings
                .get("PREFERRED_MIRROR")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            progress: std::io::stderr().is_terminal(),
            interrupt: self.interrupt.clone(),
            deadline: settings
                .get("FETCH_DEADLINE")
                .and_then(|v| v.trim().parse().ok())
                .map(std::time::Duration::from_secs)
                .unwrap_or(defaults.deadline),
            max_bytes: settings
                .get("FETCH_MAX_BYTES")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(defaults.max_bytes),
            ..defaults
        }
    }

    /// Run a script file (relative to the project root): a stage when it
    /// exports `output`, otherwise an action.
    pub fn run_script(self: &Arc<Self>, rel: &Utf8Path) -> Result<(), ScriptError> {
        let ast = self.engine.compile(rel, &ScriptEngine::stage_scope())?;
        match literal_const(&ast, "output") {
            Some(_) => self.ensure_stage(rel, &[]).map(|_| ()),
            None => self.run_action(rel),
        }
    }

    fn new_frame(
        &self,
        stage: &str,
        chain: Vec<String>,
        out: Option<Utf8PathBuf>,
        log_name: &str,
        per_host: bool,
    ) -> Arc<Frame> {
        let home = self.build_dir.join(self.place(per_host));
        let sandbox = self.frame_sandbox(&home, out.as_deref());
        Arc::new(Frame {
            stage: stage.to_string(),
            chain,
            out,
            package: None,
            log: home.join("logs").join(format!("{log_name}.log")),
            inputs: Arc::new(Mutex::new(Inputs::default())),
            unverified: Arc::new(Mutex::new(Vec::new())),
            opts: rhai::Map::new(),
            own_bin: None,
            upstream_time: Arc::new(Mutex::new(std::time::Duration::ZERO)),
            cpu: Arc::new(Mutex::new(0.0)),
            per_host,
            home,
            sandbox,
        })
    }

    /// Execute a script's top level with `ctx` bound.
    fn exec(self: &Arc<Self>, rel: &Utf8Path, frame: Arc<Frame>) -> Result<(), ScriptError> {
        let ctx = Ctx {
            run: self.clone(),
            frame,
        };
        let mut scope = rhai::Scope::new();
        scope.push_constant("ctx", ctx);
        let ast = self.engine.compile(rel, &scope)?;
        let result = self.engine.engine.run_ast_with_scope(&mut scope, &ast);
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(self
                .take_failure()
                .unwrap_or_else(|| self.engine.eval_error(rel, &e))),
        }
    }

    fn run_action(self: &Arc<Self>, rel: &Utf8Path) -> Result<(), ScriptError> {
        let name = rel.file_stem().unwrap_or("script").to_string();
        self.make_build_dir(&self.logs_dir())?;
        let frame = self.new_frame(&name, vec![name.clone()], None, &name, false);
        self.exec(rel, frame)
    }

    /// Bring stage `name` (scripts/<name>.rhai) up to date and return its
    /// output directory and hash.
    pub fn stage(
        self: &Arc<Self>,
        name: &str,
        chain: &[String],
    ) -> Result<(Utf8PathBuf, String), ScriptError> {
        let rel = Utf8PathBuf::from(format!("scripts/{name}.rhai"));
        if !self.engine.project.root.join(&rel).is_file() {
            return Err(ScriptError::Other(format!(
                "no stage `{name}`: `{rel}` does not exist (stages: {})",
                self.engine
                    .project
                    .names_in(&self.engine.project.scripts())
                    .join(", ")
            )));
        }
        self.ensure_stage(&rel, chain)
    }

    /// Bring `names` up to date side by side, a thread each (one at a time
    /// when there is one); results in order.
    pub fn stages_side_by_side(
        self: &Arc<Self>,
        names: &[String],
        chain: &[String],
    ) -> Vec<Result<(Utf8PathBuf, String), ScriptError>> {
        if names.len() <= 1 {
            return names.iter().map(|n| self.stage(n, chain)).collect();
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = names
                .iter()
                .map(|n| {
                    let run = self.clone();
                    s.spawn(move || run.stage(n, chain))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(ScriptError::Other("a stage's thread panicked".into()))
                    })
                })
                .collect()
        })
    }

    fn ensure_stage(
        self: &Arc<Self>,
        rel: &Utf8Path,
        chain: &[String],
    ) -> Result<(Utf8PathBuf, String), ScriptError> {
        let ast = self.engine.compile(rel, &ScriptEngine::stage_scope())?;
        let name = rel.file_stem().unwrap_or("stage").to_string();
        let Some(output) = literal_const(&ast, "output") else {
            return Err(ScriptError::Other(format!(
                "`{rel}` is not a stage: it exports no `output`, so nothing can depend on it"
            )));
        };
        if output.is_empty() || output.contains('/') || output.starts_with('.') {
            return Err(ScriptError::Other(format!(
                "`{rel}`: `output` must be a plain directory name, found `{output}`"
            )));
        }
        if RESERVED_DIRS.contains(&output.as_str()) {
            return Err(ScriptError::Other(format!(
                "`{rel}`: `output` cannot be `{output}`: build/<arch>/{output} (and build/all/{output}) holds the run's own files ({}); choose another name",
                RESERVED_DIRS.join(", ")
            )));
        }
        let cycle = |chain: &[String]| {
            ScriptError::Other(format!(
                "stage `{name}` depends on itself: {} -> {name}",
                chain.join(" -> ")
            ))
        };
        if chain.contains(&name) {
            return Err(cycle(chain));
        }
        let per_host = crate::engine::literal_true(&ast, "per_host");
        let dir = self.build_dir.join(self.place(per_host)).join(&output);
        let waiter = chain.last().cloned();
        {
            let mut p = self.progress.lock().unwrap();
            loop {
                if let Some(h) = self.done.lock().unwrap().get(&name) {
                    return Ok((dir, h.clone()));
                }
                if p.failed.contains(&name) {
                    return Err(ScriptError::Other(format!("stage `{name}` failed")));
                }
                if !p.active.contains(&name) {
                    p.active.insert(name.clone());
                    break;
                }
                // Another thread builds it: wait, unless that thread waits
                // (through others) for this one, which would be a cycle.
                if let Some(w) = &waiter {
                    let mut at = name.clone();
                    let mut path = vec![w.clone(), name.clone()];
                    while let Some(next) = p.waits.get(&at) {
                        if next == w {
                            return Err(cycle(&path));
                        }
                        path.push(next.clone());
                        at = next.clone();
                    }
                    p.waits.insert(w.clone(), name.clone());
                }
                p = self.settled.wait(p).unwrap();
                if let Some(w) = &waiter {
                    p.waits.remove(w);
                }
            }
        }
        let mut inner = chain.to_vec();
        inner.push(name.clone());
        let result = if per_host {
            // Other targets' runs use it too: one builds it while the
            // others wait, and no run replaces it while another uses it
            // (each holds its lock shared to the end).
            let lock = Utf8PathBuf::from(format!("{PER_HOST_DIR}/.{output}.lock"));
            let lock_path = self.build_dir.join(&lock);
            crate::lock::StageLock::use_stage(
                self.policy.build(),
                &lock,
                &format!("the per-host stage `{name}`"),
                &self.interrupt,
                || {
                    Ok(match self.current(&name, &output, &inner, true)? {
                        Ok(hash) => crate::lock::Found::Current(hash),
                        Err(_) => crate::lock::Found::Stale,
                    })
                },
                || self.bring_up_to_date(rel, &name, &output, &inner, true),
                |e| {
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        ScriptError::Other("interrupted".into())
                    } else {
                        ScriptError::Other(format!(
                            "cannot lock the per-host stage `{name}` (`{lock_path}`): {e}"
                        ))
                    }
                },
            )
            .map(|(held, hash)| {
                self.held.lock().unwrap().push(held.into_fd());
                hash
            })
        } else {
            self.bring_up_to_date(rel, &name, &output, &inner, false)
        };
        {
            let mut p = self.progress.lock().unwrap();
            p.active.remove(&name);
            match &result {
                Ok(hash) => {
                    self.done.lock().unwrap().insert(name.clone(), hash.clone());
                }
                Err(_) => {
                    p.failed.insert(name.clone());
                }
            }
            self.settled.notify_all();
        }
        let hash = result?;
        Ok((dir, hash))
    }

    /// The content key of the stage build `hash` (brought up to date in
    /// this run), or the hash itself for one that has none.
    fn content_key(&self, hash: &str) -> String {
        self.keys
            .lock()
            .unwrap()
            .get(hash)
            .cloned()
            .unwrap_or_else(|| hash.to_string())
    }

    /// Whether the stage's finished build still holds: `Ok(hash)` when it
    /// does (said, and its event written), else why not.
    fn current(
        self: &Arc<Self>,
        name: &str,
        output: &str,
        chain: &[String],
        per_host: bool,
    ) -> Result<Result<String, Vec<String>>, ScriptError> {
        let place = self.place(per_host).to_string();
        let dest_rel = Utf8PathBuf::from(format!("{place}/{output}"));
        let previous = Manifest::read_in(self.policy.build(), &dest_rel);
        let why = match &previous {
            _ if self.forced.iter().any(|f| f == name) => {
                vec!["it was forced (--force)".to_string()]
            }
            None => vec!["no finished build of it".to_string()],
            Some(m) => self.changes(&m.inputs, chain, per_host)?,
        };
        if let Some(m) = previous.filter(|_| why.is_empty()) {
            self.say(format!("--- {name} ({place}): up to date"));
            self.event(
                "up-to-date",
                serde_json::json!({ "stage": name, "seconds": m.seconds }),
            );
            // Still built from an unverified source: say so every run.
            for pkg in &m.unverified {
                if let Some(path) = self.overrides.get(pkg) {
                    self.warn_override(pkg, path);
                }
            }
            let key = if m.key.is_empty() {
                m.hash.clone()
            } else {
                m.key
            };
            self.keys.lock().unwrap().insert(m.hash.clone(), key);
            return Ok(Ok(m.hash));
        }
        Ok(Err(why))
    }

    fn bring_up_to_date(
        self: &Arc<Self>,
        rel: &Utf8Path,
        name: &str,
        output: &str,
        chain: &[String],
        per_host: bool,
    ) -> Result<String, ScriptError> {
        let why = match self.current(name, output, chain, per_host)? {
            Ok(hash) => return Ok(hash),
            Err(why) => why,
        };
        let place = self.place(per_host).to_string();
        let build = self.policy.build();
        let dest_rel = Utf8PathBuf::from(format!("{place}/{output}"));
        self.say(format!("=== {name} ({place})"));
        if self.explain {
            const SHOWN: usize = 8;
            for w in why.iter().take(SHOWN) {
                self.say(format!("    because {w}"));
            }
            if why.len() > SHOWN {
                self.say(format!("    and {} more changed inputs", why.len() - SHOWN));
            }
        }
        self.event("start", serde_json::json!({ "stage": name }));
        let started = Instant::now();
        let io = |what: &str, p: &Utf8Path, e: std::io::Error| {
            ScriptError::Other(format!("cannot {what} `{p}`: {e}"))
        };
        self.make_build_dir(&self.build_dir.join(&place).join("logs"))?;
        let tmp_rel = Utf8PathBuf::from(format!("{place}/.{output}.part-{}", std::process::id()));
        let tmp = build.join(&tmp_rel);
        build
            .remove_all(&tmp_rel, Some(&self.interrupt))
            .map_err(|e| io("remove", &tmp, e))?;
        build
            .mkdir_all(&tmp_rel)
            .map_err(|e| io("create", &tmp, e))?;
        let mut frame = self.new_frame(name, chain.to_vec(), Some(tmp.clone()), name, per_host);
        if crate::engine::literal_true(
            &self.engine.compile(rel, &ScriptEngine::stage_scope())?,
            "tools",
        ) && let Some(f) = Arc::get_mut(&mut frame)
        {
            f.own_bin = Some(tmp.join("bin"));
        }
        self.truncate_log(&frame.log)?;
        {
            let mut inputs = frame.inputs.lock().unwrap();
            for (f, h) in self.engine.script_closure(rel)? {
                inputs.files.insert(f.to_string(), h);
            }
        }
        let result = self.exec(rel, frame.clone());
        if let Err(e) = result {
            let _ = build.remove_all(&tmp_rel, None);
            let own = started
                .elapsed()
                .saturating_sub(*frame.upstream_time.lock().unwrap());
            self.stage_failed(name, own.as_secs_f64(), &e);
            return Err(e);
        }
        if self.interrupt.is_set() {
            let _ = build.remove_all(&tmp_rel, None);
            return Err(ScriptError::Other("interrupted".into()));
        }
        let inputs = frame.inputs.lock().unwrap().clone();
        // The inputs and this build's own id: a stage rebuilt, even from
        // the same inputs, makes the stages that use it rebuild too.
        let hash = crate::checksum::sha256_bytes(
            format!(
                "{} {} {}",
                inputs.hash(name, &place),
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            )
            .as_bytes(),
        );
        let own_time = started
            .elapsed()
            .saturating_sub(*frame.upstream_time.lock().unwrap())
            .as_secs_f64();
        let key = inputs.content_key(name, |h| self.content_key(h));
        self.keys.lock().unwrap().insert(hash.clone(), key.clone());
        let manifest = Manifest {
            stage: name.to_string(),
            arch: place.clone(),
            hash: hash.clone(),
            key,
            rhbuild: env!("CARGO_PKG_VERSION").to_string(),
            finished: unix_now(),
            seconds: own_time,
            unverified: frame.unverified.lock().unwrap().clone(),
            sandbox: self.sandbox.probed().map(|s| s.summary()),
            inputs,
        };
        let written = manifest
            .write_in(build, &tmp_rel)
            .map_err(|e| io("write the manifest in", &tmp, e))
            // Replace the old output only now that the new one is complete.
            .and_then(|_| {
                build
                    .replace_dir(&tmp_rel, &dest_rel)
                    .map_err(|e| io("rename into place", &tmp, e))
            });
        if let Err(e) = written {
            let _ = build.remove_all(&tmp_rel, None);
            return Err(e);
        }
        self.say(format!("    {name} ({place}) done in {own_time:.1} s"));
        let cpu = *frame.cpu.lock().unwrap();
        self.event(
            "done",
            serde_json::json!({ "stage": name, "seconds": own_time, "cpu_seconds": cpu }),
        );
        Ok(hash)
    }

    /// What changed among the inputs a manifest recorded, in words (empty:
    /// every input still holds). The upstream stages are brought up to date
    /// (they may rebuild) only when every other input still holds.
    fn changes(
        self: &Arc<Self>,
        inputs: &Inputs,
        chain: &[String],
        per_host: bool,
    ) -> Result<Vec<String>, ScriptError> {
        let settings = self.settings_for(per_host);
        let mut out = Vec::new();
        let short = |h: &str| h.chars().take(12).collect::<String>();
        for (f, h) in &inputs.files {
            // Project files by their path in the project; a user's patch by
            // its absolute path: both read through the access policy.
            let path = self.engine.project.root.join(f);
            let now = self
                .policy
                .read_with(path.as_str(), |l| l.root.read(&l.rel))
                .map(|(_, b)| crate::checksum::sha256_bytes(&b));
            match now {
                Ok(now) if now == *h => {}
                Ok(_) if h == ABSENT => out.push(format!("`{f}` appeared")),
                Ok(now) => out.push(format!(
                    "`{f}` changed (sha256 {} → {})",
                    short(h),
                    short(&now)
                )),
                Err(_) if h == ABSENT => {}
                Err(_) => out.push(format!("`{f}` is gone")),
            }
        }
        for (k, v) in &inputs.settings {
            let now = settings.get(k);
            if now != v.as_deref() {
                let show = |v: Option<&str>| v.map_or("(unset)".to_string(), |v| format!("`{v}`"));
                out.push(format!(
                    "setting `{k}` changed: {} → {}",
                    show(v.as_deref()),
                    show(now)
                ));
            }
        }
        for (name, pkg_source) in &inputs.sources {
            let now = self.source_identity(name)?.unwrap_or_default();
            if now != *pkg_source {
                out.push(format!(
                    "the source of `{name}` changed: {pkg_source} → {now}"
                ));
            }
        }
        for (dir, stamp) in &inputs.trees {
            if &crate::manifest::tree_stamp(Utf8Path::new(dir)) != stamp {
                out.push(format!(
                    "something in `{dir}` was added, removed or changed"
                ));
            }
        }
        for (tool, identity) in &inputs.tools {
            // A program by its path and identity; a name that was absent
            // (`which_or`) by its still being absent.
            let now = if tool.contains('/') {
                airlock::program_identity(Utf8Path::new(tool)).unwrap_or_default()
            } else {
                airlock::host_program(tool)
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            };
            if now != *identity {
                let show = |v: &str| {
                    if v.is_empty() {
                        "(absent)".to_string()
                    } else {
                        v.to_string()
                    }
                };
                out.push(format!(
                    "host program `{tool}` changed: {} → {}",
                    show(identity),
                    show(&now)
                ));
            }
        }
        // Stale already: the upstream stages the last build used are not
        // brought up to date here, for the rebuild may no longer use them
        // (a setting that chose them changed); it asks for what it needs.
        if !out.is_empty() {
            return Ok(out);
        }
        // The upstream stages, side by side (the first failure is the error).
        let names: Vec<String> = inputs.stages.keys().cloned().collect();
        for (name, r) in names.iter().zip(self.stages_side_by_side(&names, chain)) {
            let (_, now) = r?;
            let h = &inputs.stages[name];
            if &now != h {
                out.push(format!(
                    "stage `{name}` was rebuilt ({} → {})",
                    short(h),
                    short(&now)
                ));
            }
        }
        Ok(out)
    }
}

/// The options of `cfg` a run across targets passes on to each target's
/// run (see `Run::child_flags`).
fn child_flags(cfg: &RunConfig) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(dir) = &cfg.cache_dir {
        flags.extend(["--cache-dir".to_string(), dir.to_string()]);
    }
    if let Some(level) = clap::ValueEnum::to_possible_value(&cfg.sandbox) {
        flags.extend(["--sandbox".to_string(), level.get_name().to_string()]);
    }
    if cfg.explain {
        flags.push("--explain".into());
    }
    if !cfg.wait_for_lock {
        flags.push("--no-wait".into());
    }
    flags
}

/// The host's clock in whole seconds since 1970.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Ctx {
    pub fn arch(&self) -> String {
        self.run.arch().to_string()
    }

    /// The target's name for a script (`ctx.arch`), recorded: what the
    /// script makes of it depends on the target itself. A per-host stage
    /// has no target.
    pub fn read_arch(&self) -> PrimResult<String> {
        if self.frame.per_host {
            return Err(format!(
                "`{}` is a per-host stage, built once for every target: it has no `ctx.arch`",
                self.frame.stage
            ));
        }
        let arch = self.arch();
        self.frame.inputs.lock().unwrap().arch = Some(arch.clone());
        Ok(arch)
    }

    /// The settings this frame sees: a per-host stage's leave the target's
    /// out.
    pub fn settings(&self) -> &Settings {
        self.run.settings_for(self.frame.per_host)
    }

    pub(crate) fn record_setting(&self, key: &str, value: Option<&str>) {
        self.frame
            .inputs
            .lock()
            .unwrap()
            .settings
            .insert(key.to_string(), value.map(str::to_owned));
    }

    /// A setting's value; an error naming the setting when it is unset.
    pub fn setting(&self, key: &str) -> PrimResult<String> {
        let v = self.settings().get(key);
        self.record_setting(key, v);
        v.map(str::to_owned).ok_or_else(|| {
            if self.frame.per_host {
                return format!(
                    "setting `{key}` is not set: `{}` is a per-host stage, built once for every target, so it sees only local.rhai, the environment and `--set {key}=VALUE`, never a target's settings",
                    self.frame.stage
                );
            }
            format!(
                "setting `{key}` is not set: define it in `{}`, the environment, or with `--set {key}=VALUE`",
                self.run.target.file
            )
        })
    }

    pub fn setting_or(&self, key: &str, default: &str) -> String {
        let v = self.settings().get(key);
        self.record_setting(key, v);
        v.unwrap_or(default).to_string()
    }

    /// The stage's output directory (its temporary name while it runs).
    pub fn out(&self) -> PrimResult<Utf8PathBuf> {
        self.frame.out.clone().ok_or_else(|| {
            format!(
                "`{}` is not a stage (it exports no `output`), so it has no `ctx.out`",
                self.frame.stage
            )
        })
    }

    /// Bring another stage up to date, record it as an input, and return its
    /// output directory.
    pub fn stage(&self, name: &str) -> PrimResult<Utf8PathBuf> {
        self.stages(&[name.to_string()]).map(|mut d| d.remove(0))
    }

    /// Bring several stages up to date side by side (a thread each, under
    /// the run's one job budget), record them as inputs, and return their
    /// output directories in order. The first failure is the error, after
    /// the others finished.
    pub fn stages(&self, names: &[String]) -> PrimResult<Vec<Utf8PathBuf>> {
        if self.frame.per_host {
            for n in names {
                match self.run.is_per_host(n) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(format!(
                            "`{}` is a per-host stage, built once for every target: it can use only other per-host stages, and `{n}` is a target's",
                            self.frame.stage
                        ));
                    }
                    Err(e) => {
                        self.run.keep_failure(e);
                        return Err(format!("stage `{n}` could not be read"));
                    }
                }
            }
        }
        let started = Instant::now();
        let chain = &self.frame.chain;
        let results = self.run.stages_side_by_side(names, chain);
        *self.frame.upstream_time.lock().unwrap() += started.elapsed();
        let mut dirs = Vec::new();
        let mut first_failed = None;
        for (name, r) in names.iter().zip(results) {
            match r {
                Ok((dir, hash)) => {
                    self.frame
                        .inputs
                        .lock()
                        .unwrap()
                        .stages
                        .insert(name.clone(), hash);
                    dirs.push(dir);
                }
                Err(e) => {
                    if first_failed.is_none() {
                        first_failed = Some(name.clone());
                    }
                    self.run.keep_failure(e);
                }
            }
        }
        match first_failed {
            Some(name) => Err(format!("stage `{name}` failed")),
            None => Ok(dirs),
        }
    }

    /// Record a project file as an input and return its absolute path.
    pub fn project_file(&self, rel: &str) -> PrimResult<Utf8PathBuf> {
        let relp = project_relative(rel)?;
        let bytes = self
            .run
            .policy
            .project()
            .read(&relp)
            .map_err(|e| format!("cannot read `{rel}`: {e}"))?;
        self.record_project_file(rel, crate::checksum::sha256_bytes(&bytes));
        Ok(self.run.engine.project.root.join(&relp))
    }

    /// A project file that may be missing: its absolute path when it is
    /// there, recorded as read; `None` when it is not, recorded as absent,
    /// so that creating it later rebuilds.
    pub fn optional_project_file(&self, rel: &str) -> PrimResult<Option<Utf8PathBuf>> {
        let relp = project_relative(rel)?;
        let exists = self
            .run
            .policy
            .project()
            .exists(&relp)
            .map_err(|e| format!("cannot look for `{rel}`: {e}"))?;
        if exists {
            return self.project_file(rel).map(Some);
        }
        self.record_project_file(rel, ABSENT.to_string());
        Ok(None)
    }

    fn record_project_file(&self, rel: &str, hash: String) {
        self.frame
            .inputs
            .lock()
            .unwrap()
            .files
            .insert(rel.to_string(), hash);
    }

    /// Record a file of the target's folder and return its absolute path.
    /// `targets/<arch>/NAME`, or for a variant (`BASED_ON`) without that
    /// file, its base's.
    pub fn target_file(&self, name: &str) -> PrimResult<Utf8PathBuf> {
        if self.frame.per_host {
            return Err(format!(
                "`{}` is a per-host stage, built once for every target: it reads no target's files (`{name}`)",
                self.frame.stage
            ));
        }
        let target = &self.run.target;
        let own = format!("targets/{}/{name}", target.name);
        if let Some(base) = target.settings.get(crate::target::BASED_ON)
            && !target.dir.join(name).exists()
        {
            return self.project_file(&format!("targets/{base}/{name}"));
        }
        self.project_file(&own)
    }

    pub(crate) fn record_tree(&self, dir: &Utf8Path) {
        let stamp = crate::manifest::tree_stamp(dir);
        self.frame
            .inputs
            .lock()
            .unwrap()
            .trees
            .insert(dir.to_string(), stamp);
    }

    /// The package being built, or an error for a stage-level call.
    pub fn current_package(&self) -> PrimResult<Package> {
        self.frame.package.clone().ok_or_else(|| {
            "this primitive works inside a package's `fn build(ctx)`; call it there, or use `ctx.build(\"NAME\")`".to_string()
        })
    }

    /// A loaded package, its file (and what it imports) recorded as read.
    fn package_recorded(&self, name: &str) -> PrimResult<Package> {
        let pkg = self.run.package(name).map_err(|e| e.to_string())?;
        let files = self
            .run
            .engine
            .script_closure(&pkg.file)
            .map_err(|e| e.to_string())?;
        let mut inputs = self.frame.inputs.lock().unwrap();
        for (f, h) in files {
            inputs.files.insert(f.to_string(), h);
        }
        Ok(pkg)
    }

    /// `names` and every package they `depend` on, in the order to build
    /// them: each after what it needs, each once.
    pub fn packages_in_order(&self, names: &[String]) -> PrimResult<Vec<String>> {
        package::build_order(names, &mut |n| {
            self.package_recorded(n)
                .map(|p| p.depends)
                .map_err(ScriptError::Other)
        })
        .map_err(|e| e.to_string())
    }

    /// What a package declares: name, version, license, license_files,
    /// depends, and its guest `check` (`()` when it has none).
    pub fn package_info(&self, name: &str) -> PrimResult<rhai::Map> {
        let p = self.package_recorded(name)?;
        let list = |v: &[String]| -> rhai::Array { v.iter().map(|s| s.into()).collect() };
        let mut m = rhai::Map::new();
        m.insert("name".into(), p.name.clone().into());
        m.insert("version".into(), p.version.clone().into());
        m.insert(
            "license".into(),
            p.license
                .clone()
                .map_or(rhai::Dynamic::UNIT, rhai::Dynamic::from),
        );
        m.insert("license_files".into(), list(&p.license_files).into());
        m.insert("depends".into(), list(&p.depends).into());
        let check = p.check.as_ref().map_or(rhai::Dynamic::UNIT, |c| {
            let mut m = rhai::Map::new();
            m.insert("run".into(), c.run.clone().into());
            m.insert("expect".into(), c.expect.clone().into());
            m.into()
        });
        m.insert("check".into(), check);
        Ok(m)
    }

    /// Run `packages/<name>.rhai`'s `build(ctx)` with its own log.
    pub fn build(&self, name: &str, step: &str, opts: rhai::Map) -> PrimResult<()> {
        let pkg = match self.run.package(name) {
            Ok(p) => p,
            Err(e) => {
                self.run.keep_failure(e);
                return Err(format!("package `{name}` could not be loaded"));
            }
        };
        if step == "build" && !pkg.buildable {
            return Err(format!(
                "package `{name}` has no `fn build(ctx)` in `{}`",
                pkg.file
            ));
        }
        let place = self.run.place(self.frame.per_host);
        if step == "build" {
            self.run
                .say(format!("=== {} ({place} {})", name, self.frame.stage));
        } else {
            self.run
                .say(format!("=== {name} {step} ({place} {})", self.frame.stage));
        }
        let started = Instant::now();
        {
            let mut inputs = self.frame.inputs.lock().unwrap();
            match self.run.engine.script_closure(&pkg.file) {
                Ok(files) => {
                    for (f, h) in files {
                        inputs.files.insert(f.to_string(), h);
                    }
                }
                Err(e) => {
                    drop(inputs);
                    self.run.keep_failure(e);
                    return Err(format!("package `{name}` could not be read"));
                }
            }
        }
        let logs = self.frame.home.join("logs");
        let log = if step == "build" {
            logs.join(format!("{name}.log"))
        } else {
            logs.join(format!("{name}-{step}.log"))
        };
        if let Err(e) = self.run.truncate_log(&log) {
            self.run.keep_failure(e);
            return Err(format!("package `{name}` could not start its log"));
        }
        let frame = Arc::new(Frame {
            stage: self.frame.stage.clone(),
            chain: self.frame.chain.clone(),
            out: self.frame.out.clone(),
            package: Some(pkg.clone()),
            log: log.clone(),
            inputs: self.frame.inputs.clone(),
            unverified: self.frame.unverified.clone(),
            opts,
            own_bin: self.frame.own_bin.clone(),
            upstream_time: self.frame.upstream_time.clone(),
            cpu: Arc::new(Mutex::new(0.0)),
            per_host: self.frame.per_host,
            home: self.frame.home.clone(),
            sandbox: self.frame.sandbox.clone(),
        });
        let package_cpu = frame.cpu.clone();
        let child = Ctx {
            run: self.run.clone(),
            frame,
        };
        let engine = &self.run.engine;
        let ast = match engine.compile(&pkg.file, &rhai::Scope::new()) {
            Ok(a) => a,
            Err(e) => {
                self.run.keep_failure(e);
                return Err(format!("package `{name}` does not compile"));
            }
        };
        let mut scope = rhai::Scope::new();
        if !ast
            .iter_functions()
            .any(|f| f.name == step && f.params.len() == 1)
        {
            return Err(format!(
                "package `{name}` has no `fn {step}(ctx)` in `{}`",
                pkg.file
            ));
        }
        let r: Result<rhai::Dynamic, _> = engine.engine.call_fn(&mut scope, &ast, step, (child,));
        if let Err(e) = r {
            let err = self
                .run
                .take_failure()
                .unwrap_or_else(|| engine.eval_error(&pkg.file, &e));
            self.run.keep_failure(err);
            return Err(format!("package `{name}` failed (log: {log})"));
        }
        let what = if step == "build" {
            name.to_string()
        } else {
            format!("{name} {step}")
        };
        let seconds = started.elapsed().as_secs_f64();
        let cpu = *package_cpu.lock().unwrap();
        *self.frame.cpu.lock().unwrap() += cpu;
        self.run.say(format!("    {what} done in {seconds:.1} s"));
        self.run.event(
            "package",
            serde_json::json!({ "stage": self.frame.stage, "package": what, "seconds": seconds, "cpu_seconds": cpu, "log": log.as_str() }),
        );
        Ok(())
    }

    /// Run a command in the airlock, in `cwd`, logging to this frame's log.
    pub fn run_cmd(
        &self,
        cwd: &Utf8Path,
        argv: Vec<String>,
        env: BTreeMap<String, String>,
    ) -> PrimResult<()> {
        let cmd = self.command(cwd, argv, env)?;
        self.run
            .airlock(
                self.frame.own_bin.as_deref(),
                self.frame.per_host,
                &self.frame.sandbox,
                BTreeMap::new(),
            )
            .run_measured(&cmd)
            .map(|cpu| *self.frame.cpu.lock().unwrap() += cpu)
            .map_err(|e| format!("{e}"))
    }

    /// Run a command in the airlock on the user's terminal (a menu).
    pub fn run_on_terminal(&self, cwd: &Utf8Path, argv: Vec<String>) -> PrimResult<()> {
        let cmd = self.command(cwd, argv, BTreeMap::new())?;
        self.run
            .airlock(
                self.frame.own_bin.as_deref(),
                self.frame.per_host,
                &self.frame.sandbox,
                BTreeMap::new(),
            )
            .run_on_terminal(&cmd)
            .map_err(|e| format!("{e}"))
    }

    /// Run a command in the airlock and return its standard output.
    pub fn output_cmd(
        &self,
        cwd: &Utf8Path,
        argv: Vec<String>,
        env: BTreeMap<String, String>,
    ) -> PrimResult<String> {
        let cmd = self.command(cwd, argv, env)?;
        self.run
            .airlock(
                self.frame.own_bin.as_deref(),
                self.frame.per_host,
                &self.frame.sandbox,
                BTreeMap::new(),
            )
            .output(&cmd)
            .map_err(|e| format!("{e}"))
    }

    fn command(
        &self,
        cwd: &Utf8Path,
        argv: Vec<String>,
        env: BTreeMap<String, String>,
    ) -> PrimResult<airlock::Command> {
        if argv.is_empty() {
            return Err("empty command: give the program and its arguments as an array".into());
        }
        if self.run.interrupt.is_set() {
            return Err("interrupted".into());
        }
        let mut env = env;
        env.entry("HOME".into())
            .or_insert_with(|| self.frame.home.join("work").to_string());
        env.entry("TMPDIR".into())
            .or_insert_with(|| self.frame.home.join("tmp").to_string());
        // Both exist before the sandbox grants writing beneath them.
        for dir in ["tmp", "work"] {
            self.run
                .make_build_dir(&self.frame.home.join(dir))
                .map_err(|e| e.to_string())?;
        }
        // Every time a build stores (a kernel's or busybox's build date, an
        // archive's member times) comes from this, recorded like any setting.
        env.entry("SOURCE_DATE_EPOCH".into())
            .or_insert_with(|| self.source_date_epoch().to_string());
        // ccache, where a script routes compiles through it: one cache for
        // every target of the build directory (or CCACHE_DIR), keyed on the
        // compilers this stage uses by the content keys of the stages that
        // made them: a toolchain built from other inputs, or a changed
        // compiler wrapper, misses; the same toolchain built in another
        // build directory hits.
        env.entry("CCACHE_DIR".into())
            .or_insert_with(|| self.run.ccache_dir.to_string());
        // Paths beneath the build directory are hashed (and given to the
        // compiler) relative to the command's directory, so another build
        // directory, another clone or another target's identical compile
        // hits. Compiles with debug information still hash the directory
        // (ccache's hash_dir), so their recorded paths stay true.
        env.entry("CCACHE_BASEDIR".into())
            .or_insert_with(|| self.run.build_dir.to_string());
        // Every compiler here is a gcc, some behind the compiler wrapper (a
        // link to rhbuild), whose name would hide that from ccache.
        env.entry("CCACHE_COMPILERTYPE".into())
            .or_insert_with(|| "gcc".into());
        // distcc (DISTCC_HOSTS): its servers as the sandbox lets commands
        // reach them, its state in the private temporary directory, and
        // ccache calling it through rhbuild (see `distcc`).
        if let Some(hosts) = &self.run.distcc {
            let forwarded = self
                .run
                .sandbox
                .status()
                .map(|s| s.forwarded)
                .unwrap_or(false);
            env.entry("DISTCC_HOSTS".into())
                .or_insert_with(|| hosts.for_commands(forwarded));
            let state = self.frame.home.join("tmp/distcc");
            self.run.make_build_dir(&state).map_err(|e| e.to_string())?;
            env.entry("DISTCC_DIR".into())
                .or_insert_with(|| state.to_string());
            env.entry("CCACHE_PREFIX".into()).or_insert_with(|| {
                self.run
                    .arch_dir()
                    .join("distcc/prefix")
                    .join(crate::distcc::PREFIX_NAME)
                    .to_string()
            });
        }
        if !env.contains_key("CCACHE_COMPILERCHECK") {
            let stages: BTreeMap<String, String> = (self.frame.inputs.lock().unwrap().stages)
                .iter()
                .map(|(name, hash)| (name.clone(), self.run.content_key(hash)))
                .collect();
            let key = crate::checksum::sha256_bytes(format!("{stages:?}").as_bytes());
            env.insert("CCACHE_COMPILERCHECK".into(), format!("string:{key}"));
        }
        Ok(airlock::Command {
            argv,
            cwd: cwd.to_owned(),
            env,
            log: self.frame.log.clone(),
            package: self
                .frame
                .package
                .as_ref()
                .map(|p| p.name.clone())
                .unwrap_or_else(|| self.frame.stage.clone()),
        })
    }

    /// Fill `<out>/bin` with links to host programs (see
    /// `airlock::resolve_host_tools`). Every resolved tool is recorded by
    /// its identity, so a changed host compiler rebuilds.
    pub fn host_tools(&self, names: &[String], optional: &[String]) -> PrimResult<Vec<String>> {
        let out = self.out()?;
        let host_path = std::env::var("PATH").unwrap_or_default();
        let dirs = airlock::path_dirs(&host_path);
        let (tools, mut optional_missing) = airlock::resolve_host_tools(names, optional, &dirs)
            .map_err(|missing| {
                format!(
                    "host programs not found: {}; install them (see README.md for the Debian packages) and run again",
                    missing.join(", ")
                )
            })?;
        for t in &tools {
            if let Some((_, p)) = t.split_once('=') {
                self.record_tool(Utf8Path::new(p));
            }
        }
        let bin = out.join("bin");
        let left = airlock::populate_host_bin(&bin, &tools, &host_path)
            .map_err(|e| format!("cannot fill `{bin}`: {e}"))?;
        optional_missing.extend(left);
        Ok(optional_missing)
    }

    /// A host program through the host's PATH, recorded as an input by
    /// its identity; its absence is recorded too (installing it rebuilds).
    pub fn which(&self, name: &str) -> Option<Utf8PathBuf> {
        match airlock::host_program(name) {
            Some(p) => {
                self.record_tool(&p);
                Some(p)
            }
            None => {
                self.frame
                    .inputs
                    .lock()
                    .unwrap()
                    .tools
                    .insert(name.to_string(), String::new());
                None
            }
        }
    }

    /// The airlock's own tools (see `Run::airlock_tools`).
    fn airlock_tools(&self) -> Utf8PathBuf {
        self.run
            .airlock_tools(self.frame.own_bin.as_deref(), self.frame.per_host)
    }

    /// Whether compiles go through ccache (`ctx.ccache`): `CCACHE` is not 0
    /// (recorded) and ccache is in the airlock. The airlock routes distcc
    /// by the same rule.
    pub fn ccache(&self) -> bool {
        let v = self.settings().get("CCACHE");
        self.record_setting("CCACHE", v);
        self.run.ccache_used(self.settings(), &self.airlock_tools())
    }

    /// Whether the airlock's own tools include NAME: a command run in the
    /// airlock finds it by its bare name.
    pub fn in_airlock(&self, name: &str) -> bool {
        !name.contains('/')
            && self
                .run
                .build_rel(&self.airlock_tools().join(name))
                .ok()
                .and_then(|rel| self.run.policy.build().exists(&rel).ok())
                .unwrap_or(false)
    }

    /// The miniconfig files `paths` (readable, recorded) merged in order,
    /// their entries naming project files by their project path.
    pub fn miniconfig(&self, paths: &[String]) -> PrimResult<crate::kconfig::Miniconfig> {
        let mut mini = crate::kconfig::Miniconfig::default();
        for p in paths {
            let text = self.read_text(p)?;
            let abs = crate::project::absolute(Utf8Path::new(p));
            let shown = self.run.engine.project.relative(&abs);
            let one =
                crate::kconfig::Miniconfig::parse_str(&text, &shown).map_err(|e| format!("{e}"))?;
            mini.merge(one);
        }
        Ok(mini)
    }

    /// Run `script` for each of `arches` as a child rhbuild (see `matrix`),
    /// `parallel` at a time, with this run's build directory, download
    /// cache, sandbox level, `--explain`, `--no-wait`, `--set` settings and
    /// `--source` overrides; logs and event files under `dir`. `--force` is
    /// refused: passed on, a per-host stage would be rebuilt once per target.
    pub fn run_targets(
        &self,
        script: &str,
        arches: &[String],
        parallel: usize,
        jobs: usize,
        dir: &str,
    ) -> PrimResult<Vec<crate::matrix::Outcome>> {
        let known = self.run.engine.project.target_names();
        if let Some(a) = arches.iter().find(|a| !known.contains(a)) {
            return Err(format!("no target `{a}` (targets: {})", known.join(", ")));
        }
        if let Some(stage) = self.run.forced.first() {
            return Err(format!(
                "--force {stage} is not passed on to a run across targets (a stage every target shares would be rebuilt once per target): remove it with `rhbuild clean --arch A {stage}` for the targets that need it, then run again"
            ));
        }
        let dir = self.writable(dir)?;
        let dir_root = std::sync::Arc::new(self.run.policy.build_subdir(&dir)?);
        let root = self.run.engine.project.root.clone();
        if !root.join(script).is_file() {
            return Err(format!("run_targets: no script `{script}`"));
        }
        // Its report is this run's to write until it ends: a second
        // build-all on the directory waits.
        let report_lock = crate::lock::BuildLock::also(
            self.run.policy.build(),
            // `.all.lock`: no target can be named `all`, so this is never
            // a target's lock.
            &format!(".{}.lock", crate::target::PER_HOST_DIR),
            &format!(
                "the report of runs across targets in the build directory `{}`",
                self.run.build_dir
            ),
            self.run.wait_for_lock,
            &self.run.interrupt,
        )
        .map_err(|e| e.to_string())?;
        self.run.held.lock().unwrap().push(report_lock);
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find the rhbuild binary: {e}"))?;
        let plan = crate::matrix::Plan {
            exe: Utf8PathBuf::from_path_buf(exe)
                .map_err(|p| format!("`{}` is not UTF-8", p.display()))?,
            script: script.into(),
            arches: arches.to_vec(),
            parallel,
            jobs,
            args: crate::matrix::child_args(
                &self.run.build_dir,
                &self.run.child_flags,
                self.run.settings.command_line(),
                &self.run.overrides,
            ),
            dir,
            dir_root: Some(dir_root),
            project_root: root,
        };
        let outcomes = crate::matrix::run(&plan, &self.run.interrupt, |o| {
            let verdict = if o.exit == 0 { "passed" } else { "FAILED" };
            self.run.say(format!(
                "    {:<14} {verdict} in {:.0} s (log: {})",
                o.arch, o.seconds, o.log
            ));
        })
        .map_err(|e| format!("running the targets: {e}"))?;
        if self.run.interrupt.is_set() {
            return Err("interrupted".into());
        }
        Ok(outcomes)
    }

    /// Record a host program as an input: its path and identity.
    pub fn record_tool(&self, path: &Utf8Path) {
        self.frame.inputs.lock().unwrap().tools.insert(
            path.to_string(),
            airlock::program_identity(path).unwrap_or_default(),
        );
    }
}
