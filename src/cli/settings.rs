//! `rhbuild settings --arch A`: every setting's value and where it came from.

use super::args::Arch;
use super::{CliResult, msg};
use crate::engine::ScriptEngine;
use crate::settings::{Layer, Settings};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// Print the effective settings of a target: each setting the target, the
/// local settings file, the environment or `--set` gives, and each one the scripts read with a
/// default of their own, with its value and the layer it came from
/// (target, local file, environment, --set, default).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  rhbuild settings --arch sh4\n  rhbuild settings --arch armv5l --set TOOLCHAIN=debian"
)]
pub struct Args {
    #[command(flatten)]
    arch: Arch,
    /// Override a setting, as `rhbuild run --set` does.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// A settings file instead of the project's `local.rhai`.
    #[arg(long = "settings", env = "RHBUILD_SETTINGS", value_name = "FILE")]
    settings: Option<camino::Utf8PathBuf>,
}

pub fn exec(engine: ScriptEngine, args: Args) -> CliResult {
    let arch = args.arch.name(&engine).map_err(msg)?;
    let target = crate::target::load(&engine, &arch)
        .map_err(|e| -> Box<dyn miette::Diagnostic + Send + Sync> { Box::new(e) })?;
    let cli = Settings::parse_pairs(&args.set)
        .map_err(|e| -> Box<dyn miette::Diagnostic + Send + Sync> { Box::new(e) })?;
    let local = super::args::BuildDir {
        dir: None,
        settings: args.settings.clone(),
    }
    .local_settings(&engine)?;
    let settings = Settings::with_local(
        target.settings.clone(),
        local,
        crate::stage::Run::environment(),
        cli,
    );
    let reads = crate::check::settings_read(&engine);
    let mut rows: BTreeMap<String, (String, Layer)> = BTreeMap::new();
    for (name, read) in &reads {
        let default = read.iter().find_map(|r| r.default.clone());
        match (settings.lookup(name), default) {
            (Some((v, layer)), _) => {
                rows.insert(name.clone(), (v.to_string(), layer));
            }
            (None, Some(d)) => {
                rows.insert(name.clone(), (d, Layer::Default));
            }
            (None, None) => {}
        }
    }
    for name in settings.names() {
        if let Some((v, layer)) = settings.lookup(&name) {
            rows.insert(name, (v.to_string(), layer));
        }
    }
    let width = rows.keys().map(String::len).max().unwrap_or(0);
    for (name, (value, layer)) in &rows {
        println!("{name:<width$}  {:<11}  {value}", layer.to_string());
    }
    Ok(ExitCode::SUCCESS)
}
