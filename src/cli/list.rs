//! `rhbuild list targets|packages|stages`.

use super::CliResult;
use crate::engine::ScriptEngine;
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
enum What {
    Targets,
    Packages,
    Stages,
}

/// List the project's targets (with their descriptions), packages (with
/// versions) or stages.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  rhbuild list targets\n  rhbuild list packages")]
pub struct Args {
    #[arg(value_enum)]
    what: What,
}

pub fn exec(engine: ScriptEngine, args: Args) -> CliResult {
    let p = engine.project.clone();
    match args.what {
        What::Targets => {
            for t in p.target_names() {
                let rel = camino::Utf8PathBuf::from(format!("targets/{t}/target.rhai"));
                let desc = engine
                    .load_module(&rel)
                    .ok()
                    .and_then(|(_, m)| m.get_var_value::<rhai::ImmutableString>("DESCRIPTION"))
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "(target.rhai does not load: run `rhbuild check`)".into());
                println!("{t:<14} {desc}");
            }
        }
        What::Packages => {
            for n in p.names_in(&p.packages()) {
                match crate::package::load(&engine, &n) {
                    Ok(pkg) => println!("{n:<14} {}", pkg.version),
                    Err(_) => {
                        println!("{n:<14} (does not load: run `rhbuild check packages/{n}.rhai`)")
                    }
                }
            }
        }
        What::Stages => {
            for n in p.names_in(&p.scripts()) {
                let rel = camino::Utf8PathBuf::from(format!("scripts/{n}.rhai"));
                let kind = match engine.compile(&rel, &crate::engine::ScriptEngine::stage_scope()) {
                    Ok(ast) => match crate::engine::literal_const(&ast, "output") {
                        Some(o) if crate::engine::literal_true(&ast, "per_host") => {
                            format!("stage, writes build/all/{o} (once for every target)")
                        }
                        Some(o) => format!("stage, writes build/<arch>/{o}"),
                        None => "action".to_string(),
                    },
                    Err(_) => "(does not compile: run `rhbuild check`)".to_string(),
                };
                println!("{n:<18} {kind}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
