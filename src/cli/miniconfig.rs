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
    /// The kernel source comes from `--source linux=...` (a tarball or
    /// directory; default: the `linux` package's verified source).
    #[command(flatten)]
    options: super::args::RunOptions,
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
    let build_dir = args.options.build_dir.resolve(&engine);
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
    let (run, interrupt) = args.options.start(engine, args.arch.clone(), &set, None)?;
    let result = run.run_script(&rel);
    if interrupt.is_set() || result.is_err() {
        return super::args::finish(result, &interrupt);
    }
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
