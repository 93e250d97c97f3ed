//! `rhbuild miniconfig ARCH FULL.config`: shrink a full .config to a
//! miniconfig; `rhbuild menuconfig PACKAGE --arch A -o FILE`: edit one.

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
    /// The package the configuration is for: linux or busybox.
    #[arg(long, default_value = "linux")]
    package: String,
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
        format!("MINICONFIG_PACKAGE={}", args.package),
    ];
    let (run, interrupt) = args.options.start(engine, args.arch.clone(), &set, None)?;
    let result = run.run_script(&rel);
    if interrupt.is_set() || result.is_err() {
        return super::args::finish(result, &interrupt);
    }
    deliver(&output, args.output.as_ref())
}

/// Edit a package's configuration with its own menuconfig, starting from
/// the miniconfigs it is built from (the package's, the target's, yours),
/// and write the result, shrunk to a miniconfig.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  rhbuild menuconfig busybox --arch sh4 -o my-busybox.config\n  rhbuild menuconfig linux --arch sh4 -o targets/sh4/linux.config --source linux=/usr/src/linux-source-6.1.tar.xz\nThen build with it: --set MY_BUSYBOX_CONFIG=my-busybox.config"
)]
pub struct MenuArgs {
    /// linux or busybox.
    package: String,
    #[command(flatten)]
    arch: super::args::Arch,
    /// Where to write the miniconfig (default: standard output).
    #[arg(long, short)]
    output: Option<Utf8PathBuf>,
    /// Take this full .config, edited by other means, instead of showing
    /// the menu (for scripts and tests; it is settled with olddefconfig).
    #[arg(long, value_name = "FILE")]
    edited: Option<Utf8PathBuf>,
    #[command(flatten)]
    options: super::args::RunOptions,
}

pub fn exec_menu(engine: ScriptEngine, args: MenuArgs) -> CliResult {
    let rel = Utf8PathBuf::from("scripts/menuconfig.rhai");
    if !engine.project.root.join(&rel).is_file() {
        return Err(msg(format!(
            "`{rel}` is missing: it holds the steps this command runs"
        )));
    }
    if args.package != "linux" && args.package != "busybox" {
        return Err(msg(format!(
            "`{}` has no menuconfig here: say linux or busybox",
            args.package
        )));
    }
    let arch = args.arch.name(&engine).map_err(msg)?;
    let build_dir = args.options.build_dir.resolve(&engine);
    let tmp = build_dir.join(&arch).join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| msg(format!("cannot create `{tmp}`: {e}")))?;
    let output = tmp.join("menuconfig-output.config");
    let _ = std::fs::remove_file(&output);
    let mut set = vec![
        format!("MINICONFIG_OUTPUT={output}"),
        format!("MINICONFIG_PACKAGE={}", args.package),
    ];
    if let Some(edited) = &args.edited {
        let edited = crate::project::absolute(edited);
        if !edited.is_file() {
            return Err(msg(format!("no file `{edited}`")));
        }
        let copy = tmp.join("menuconfig-edited.config");
        std::fs::copy(&edited, &copy).map_err(|e| msg(format!("cannot copy `{edited}`: {e}")))?;
        set.push(format!("MENUCONFIG_EDITED={copy}"));
    }
    let (run, interrupt) = args.options.start(engine, arch, &set, None)?;
    let result = run.run_script(&rel);
    if interrupt.is_set() || result.is_err() {
        return super::args::finish(result, &interrupt);
    }
    deliver(&output, args.output.as_ref())
}

/// The miniconfig the script wrote, to `out` (atomically) or standard output.
fn deliver(output: &camino::Utf8Path, out: Option<&Utf8PathBuf>) -> CliResult {
    let text =
        std::fs::read_to_string(output).map_err(|e| msg(format!("cannot read `{output}`: {e}")))?;
    match out {
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
