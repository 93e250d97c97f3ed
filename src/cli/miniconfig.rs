//! `rhbuild miniconfig ARCH FULL.config`: shrink a full .config to a
//! miniconfig; `rhbuild menuconfig PACKAGE --arch A -o FILE`: edit one.

use super::{CliResult, msg};
use crate::engine::ScriptEngine;
use camino::{Utf8Path, Utf8PathBuf};
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
    let text = std::fs::read(&config).map_err(|e| msg(format!("cannot read `{config}`: {e}")))?;
    let files = Handover::new(&args.options, &engine, &args.arch, "miniconfig");
    let set = vec![
        format!("MINICONFIG_INPUT={}", files.abs(&files.input)),
        format!("MINICONFIG_OUTPUT={}", files.abs(&files.output)),
        format!("MINICONFIG_PACKAGE={}", args.package),
    ];
    let (run, interrupt) = args.options.start(engine, args.arch.clone(), &set, None)?;
    files.run(&run, &interrupt, &rel, Some(&text), args.output.as_ref())
}

/// The files a command hands to its script and back, in the target's
/// build directory: `.<what>-input.part-<pid>` and `.<what>-output.part-<pid>`
/// (a killed run's are swept). Written, read and removed through the
/// build directory's root once the run holds its lock, so a link a script
/// planted there is never followed.
struct Handover {
    build_dir: Utf8PathBuf,
    input: Utf8PathBuf,
    output: Utf8PathBuf,
}

impl Handover {
    fn new(
        options: &super::args::RunOptions,
        engine: &ScriptEngine,
        arch: &str,
        what: &str,
    ) -> Handover {
        let pid = std::process::id();
        Handover {
            build_dir: crate::project::absolute(&options.build_dir.resolve(engine)),
            input: Utf8PathBuf::from(format!("{arch}/.{what}-input.part-{pid}")),
            output: Utf8PathBuf::from(format!("{arch}/.{what}-output.part-{pid}")),
        }
    }

    fn abs(&self, rel: &Utf8Path) -> Utf8PathBuf {
        self.build_dir.join(rel)
    }

    /// Write `input` (if any), run the script, deliver what it wrote to
    /// `out` or standard output; remove both files whatever happens.
    fn run(
        &self,
        run: &std::sync::Arc<crate::stage::Run>,
        interrupt: &crate::interrupt::Interrupt,
        script: &Utf8Path,
        input: Option<&[u8]>,
        out: Option<&Utf8PathBuf>,
    ) -> CliResult {
        let build = run.policy.build();
        let result = (|| {
            if let Some(parent) = self.input.parent() {
                build
                    .mkdir_all(parent)
                    .map_err(|e| msg(format!("cannot create `{}`: {e}", self.abs(parent))))?;
            }
            for f in [&self.input, &self.output] {
                build
                    .remove_all(f, None)
                    .map_err(|e| msg(format!("cannot remove `{}`: {e}", self.abs(f))))?;
            }
            if let Some(bytes) = input {
                build
                    .write_atomic(&self.input, bytes, 0o644)
                    .map_err(|e| msg(format!("cannot write `{}`: {e}", self.abs(&self.input))))?;
            }
            let result = run.run_script(script);
            if interrupt.is_set() || result.is_err() {
                return super::args::finish(result, interrupt);
            }
            let text = build
                .read_to_string(&self.output)
                .map_err(|e| msg(format!("cannot read `{}`: {e}", self.abs(&self.output))))?;
            deliver(&text, out)
        })();
        for f in [&self.input, &self.output] {
            let _ = build.remove_all(f, None);
        }
        result
    }
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
    let files = Handover::new(&args.options, &engine, &arch, "menuconfig");
    let mut set = vec![
        format!("MINICONFIG_OUTPUT={}", files.abs(&files.output)),
        format!("MINICONFIG_PACKAGE={}", args.package),
    ];
    let mut edited_text = None;
    if let Some(edited) = &args.edited {
        let edited = crate::project::absolute(edited);
        if !edited.is_file() {
            return Err(msg(format!("no file `{edited}`")));
        }
        edited_text =
            Some(std::fs::read(&edited).map_err(|e| msg(format!("cannot read `{edited}`: {e}")))?);
        set.push(format!("MENUCONFIG_EDITED={}", files.abs(&files.input)));
    }
    let (run, interrupt) = args.options.start(engine, arch, &set, None)?;
    files.run(
        &run,
        &interrupt,
        &rel,
        edited_text.as_deref(),
        args.output.as_ref(),
    )
}

/// The miniconfig the script wrote, to `out` (atomically) or standard output.
fn deliver(text: &str, out: Option<&Utf8PathBuf>) -> CliResult {
    match out {
        Some(o) => {
            let o = crate::project::absolute(o);
            let part = camino::Utf8PathBuf::from(format!("{o}.part"));
            std::fs::write(&part, text)
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
