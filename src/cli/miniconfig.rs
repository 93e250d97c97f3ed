//! `rhbuild miniconfig ARCH FULL.config`: shrink a full .config to a miniconfig.

use super::{CliResult, msg};
use crate::engine::ScriptEngine;
use camino::Utf8PathBuf;
use std::process::ExitCode;

/// Shrink a full kernel `.config` (say, one tuned with menuconfig) to the
/// smallest miniconfig that `make allnoconfig KCONFIG_ALLCONFIG=` expands
/// back to the same `.config`, so the board file stays readable.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  rhbuild miniconfig sh4 build/sh4/linux-kernel/config --source linux=/usr/src/linux-source-6.1.tar.xz > targets/sh4/linux.config"
)]
pub struct Args {
    /// The target whose kernel settings (KARCH, DEBIAN_CROSS_COMPILE) to use.
    arch: String,
    /// The full .config to shrink.
    config: Utf8PathBuf,
    /// Where to write the miniconfig (default: standard output).
    #[arg(long, short)]
    output: Option<Utf8PathBuf>,
    /// The kernel source (a tarball or directory; default: the `linux` package's verified source).
    #[arg(long = "source", value_name = "NAME=PATH")]
    source: Vec<String>,
    #[arg(
        long,
        env = "RHBUILD_BUILD_DIR",
        default_value = "build",
        value_name = "DIR"
    )]
    build_dir: Utf8PathBuf,
    /// How strictly build commands are confined (see `rhbuild run --help`).
    #[arg(long, env = "RHBUILD_SANDBOX", value_enum, default_value = "auto")]
    sandbox: crate::sandbox::Level,
    /// Refuse at once, naming the holder, when another run uses the build
    /// directory (the default is to wait for it).
    #[arg(long)]
    no_wait: bool,
}

pub fn exec(engine: ScriptEngine, args: Args) -> CliResult {
    let rel = Utf8PathBuf::from("scripts/miniconfig.rhai");
    if !engine.project.root.join(&rel).is_file() {
        return Err(msg(format!(
            "`{rel}` is missing: it holds the steps this command runs"
        )));
    }
    let config = crate::project::absolute(&args.config);
    if !config.is_file() {
        return Err(msg(format!("no file `{}`", args.config)));
    }
    // The script reads and writes inside the build directory only.
    let build_dir = if args.build_dir.is_absolute() {
        args.build_dir.clone()
    } else {
        engine.project.root.join(&args.build_dir)
    };
    let tmp = build_dir.join(&args.arch).join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| msg(format!("cannot create `{tmp}`: {e}")))?;
    let input = tmp.join("miniconfig-input.config");
    let output = tmp.join("miniconfig-output.config");
    std::fs::copy(&config, &input).map_err(|e| msg(format!("cannot copy `{config}`: {e}")))?;
    let _ = std::fs::remove_file(&output);
    let set = vec![
        format!("MINICONFIG_INPUT={input}"),
        format!("MINICONFIG_OUTPUT={output}"),
    ];
    let cli_settings = crate::settings::Settings::parse_pairs(&set)
        .map_err(|e| -> Box<dyn miette::Diagnostic + Send + Sync> { Box::new(e) })?;
    let overrides = super::run::parse_sources(&args.source).map_err(msg)?;
    let cfg = crate::stage::RunConfig {
        arch: args.arch.clone(),
        build_dir,
        jobs: super::default_jobs(),
        cli_settings,
        env: crate::stage::Run::environment(),
        overrides,
        events: None,
        sandbox: args.sandbox,
        wait_for_lock: !args.no_wait,
    };
    let interrupt = crate::interrupt::Interrupt::from_signals()
        .map_err(|e| msg(format!("cannot install signal handlers: {e}")))?;
    let run = crate::stage::Run::new(engine, cfg, interrupt)
        .map_err(|e| -> Box<dyn miette::Diagnostic + Send + Sync> { Box::new(e) })?;
    run.run_script(&rel)
        .map_err(|e| -> Box<dyn miette::Diagnostic + Send + Sync> { Box::new(e) })?;
    let text = std::fs::read_to_string(&output)
        .map_err(|e| msg(format!("cannot read `{output}`: {e}")))?;
    match &args.output {
        Some(o) => {
            let o = crate::project::absolute(o);
            let part = camino::Utf8PathBuf::from(format!("{o}.part"));
            std::fs::write(&part, &text)
                .and_then(|_| std::fs::rename(&part, &o))
                .map_err(|e| msg(format!("cannot write `{o}`: {e}")))?;
            eprintln!(
                "wrote {} symbols to {o}",
                text.lines()
                    .filter(|l| l.starts_with("CONFIG_") || l.starts_with("# CONFIG_"))
                    .count()
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
