//! `rhbuild matrix`: the build-all matrix as jobs another system runs, one
//! per target, each with the exact command it runs (GitHub Actions' or
//! GitLab's matrix, GNU parallel over ssh).

use super::{CliResult, msg};
use crate::engine::ScriptEngine;
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    /// `{"include": [{"arch": ..., "command": ...}, ...]}`: GitHub
    /// Actions' `strategy.matrix` (fromJSON), or any JSON reader.
    Json,
    /// One command per line: `parallel --sshlogin ... < jobs`.
    Lines,
}

/// Print one job per target: the command that builds and smoketests it,
/// for a CI system or GNU parallel to spread over machines.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  rhbuild matrix\n  rhbuild matrix --arches 'sh4 armv5l' --format lines | parallel -j 2\n  rhbuild matrix --set TOOLCHAIN=debian"
)]
pub struct Args {
    /// The targets (default: every folder of targets/).
    #[arg(long, value_name = "'A B ...'")]
    arches: Option<String>,
    /// The script each job runs.
    #[arg(long, default_value = "scripts/smoketest.rhai")]
    script: String,
    /// Settings every job passes on (`--set NAME=VALUE`, repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
}

pub fn exec(engine: ScriptEngine, args: Args) -> CliResult {
    let known = engine.project.target_names();
    let arches: Vec<String> = match &args.arches {
        Some(list) => list.split_whitespace().map(String::from).collect(),
        None => known.clone(),
    };
    if let Some(a) = arches.iter().find(|a| !known.contains(a)) {
        return Err(msg(format!(
            "no target `{a}` (targets: {})",
            known.join(", ")
        )));
    }
    if let Some(s) = args.set.iter().find(|s| !s.contains('=')) {
        return Err(msg(format!("`--set {s}` needs NAME=VALUE")));
    }
    let script = engine.project.root.join(&args.script);
    if !script.is_file() {
        return Err(msg(format!("no script `{}`", args.script)));
    }
    let jobs: Vec<(String, String)> = arches
        .iter()
        .map(|arch| {
            let mut words = vec![
                "rhbuild".to_string(),
                "run".into(),
                args.script.clone(),
                "--arch".into(),
                arch.clone(),
            ];
            for s in &args.set {
                words.push("--set".into());
                words.push(s.clone());
            }
            (arch.clone(), crate::airlock::shell_join(&words))
        })
        .collect();
    match args.format {
        Format::Lines => {
            for (_, c) in &jobs {
                println!("{c}");
            }
        }
        Format::Json => {
            let include: Vec<serde_json::Value> = jobs
                .iter()
                .map(|(a, c)| serde_json::json!({ "arch": a, "command": c }))
                .collect();
            println!("{}", serde_json::json!({ "include": include }));
        }
    }
    Ok(ExitCode::SUCCESS)
}
