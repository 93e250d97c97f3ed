//! `rhbuild fetch [PACKAGE...]`: download and verify only.

use super::{CliResult, msg};
use crate::engine::ScriptEngine;
use crate::fetch::SourceCache;
use std::process::ExitCode;

/// Download and verify packages into build/cache/ (all packages when none
/// are named). Cached files are re-verified; nothing is extracted.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  rhbuild fetch\n  rhbuild fetch busybox musl\n  PREFERRED_MIRROR=http://127.0.0.1:8000 rhbuild fetch"
)]
pub struct Args {
    /// Packages to fetch (default: every package in packages/).
    packages: Vec<String>,
    /// Parallel downloads (at most 4).
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    #[command(flatten)]
    build_dir: super::args::BuildDir,
    /// The download cache (default: the local file's CACHE_DIR, else
    /// `<build-dir>/cache`).
    #[arg(long = "cache-dir", env = "RHBUILD_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<camino::Utf8PathBuf>,
    /// A package named here is not fetched (and not verified).
    #[command(flatten)]
    sources: super::args::Sources,
}

pub fn exec(engine: ScriptEngine, args: Args) -> CliResult {
    use std::io::IsTerminal;
    let names = if args.packages.is_empty() {
        engine.project.names_in(&engine.project.packages())
    } else {
        args.packages.clone()
    };
    let overrides = args.sources.parse().map_err(msg)?;
    let mut pkgs = Vec::new();
    for n in &names {
        if let Some(p) = overrides.get(n) {
            eprintln!(
                "warning: `{n}` comes from `{p}` (--source), which nobody verified; not fetched"
            );
            continue;
        }
        pkgs.push(
            crate::package::load(&engine, n)
                .map_err(|e| -> Box<dyn miette::Diagnostic + Send + Sync> { Box::new(e) })?,
        );
    }
    let build_dir = args.build_dir.resolve(&engine);
    let cache = match args.build_dir.cache_dir(&engine, args.cache_dir.as_ref()) {
        Some(dir) => crate::confine::Root::create(&dir),
        None => crate::confine::Root::create(&build_dir)
            .and_then(|b| b.subdir(camino::Utf8Path::new("cache"))),
    }
    .map(SourceCache::in_root)
    .map_err(|e| msg(format!("cannot use the source cache in `{build_dir}`: {e}")))?;
    let interrupt = crate::interrupt::Interrupt::from_signals()
        .map_err(|e| msg(format!("cannot install signal handlers: {e}")))?;
    let opts = crate::fetch::FetchOptions {
        preferred_mirror: std::env::var("PREFERRED_MIRROR")
            .ok()
            .filter(|s| !s.is_empty()),
        progress: std::io::stderr().is_terminal(),
        interrupt: interrupt.clone(),
        ..Default::default()
    };
    let jobs = args.jobs.unwrap_or_else(super::default_jobs);
    let specs: Vec<_> = pkgs.iter().map(|p| p.spec()).collect();
    let say = |name: &str, line: &str| println!("{name:<12} {line}");
    let failures = crate::fetch::fetch_many(&cache, &specs, &opts, jobs, &say);
    for (_, e) in &failures {
        super::report(e);
    }
    if interrupt.is_set() {
        eprintln!("interrupted: nothing half-fetched was kept");
        return Ok(ExitCode::from(130));
    }
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        let names: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
        Err(msg(format!("could not fetch: {}", names.join(", "))))
    }
}
