//! The command line, and the composition root: it opens the project,
//! registers the primitives into the engine (`api::register`) and hands
//! both to the subcommand. One file per subcommand, each with `Args` (its
//! clap arguments) and `exec()` (running it over the library); the
//! arguments several share are in `args`.

mod args;
mod check;
mod clean;
mod fetch;
mod list;
mod matrix;
mod miniconfig;
mod run;
mod settings;

use crate::engine::ScriptEngine;
use crate::project::Project;
use camino::Utf8PathBuf;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "rhbuild",
    version,
    about = "Build Linux systems for foreign CPUs from pinned sources, and boot them under QEMU",
    after_help = "Examples:\n  rhbuild run scripts/system-image.rhai --arch sh4\n  rhbuild check\n  rhbuild list targets\n  rhbuild settings --arch sh4\n  rhbuild fetch busybox"
)]
struct Cli {
    /// The project checkout (default: the nearest directory at or above the
    /// current one holding scripts/, packages/ and targets/).
    #[arg(long, global = true, value_name = "DIR")]
    project: Option<Utf8PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::Args),
    Check(check::Args),
    List(list::Args),
    Settings(settings::Args),
    Matrix(matrix::Args),
    Fetch(fetch::Args),
    Miniconfig(miniconfig::Args),
    Menuconfig(miniconfig::MenuArgs),
    Clean(clean::Args),
    /// Collect the sources, patches and licence texts of everything in an
    /// image, with its SBOM, into build/<arch>/legal-info (the legal-info
    /// stage: `rhbuild run legal-info`).
    LegalInfo(run::LegalInfoArgs),
    /// Print a shell completion script: `rhbuild completions bash >
    /// /etc/bash_completion.d/rhbuild` (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `rhbuild man | man -l -`.
    Man,
    /// Copy standard input and output to a service on the host's loopback
    /// (QEMU's `guestfwd` rules run it for each guest connection).
    #[command(hide = true)]
    Relay {
        /// `127.0.0.1:PORT`; any other address is refused.
        addr: String,
    },
    /// Confine this process and run a build command (see `sandbox`).
    #[command(name = "__sandbox", hide = true)]
    Sandbox {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// Entry point of the `rhbuild` binary. When invoked under a compiler name
/// (through a link in a toolchain's `bin/`), it acts as the compiler wrapper;
/// as the airlock's `prefix/distcc`, as ccache's distcc prefix.
pub fn main() -> ExitCode {
    if let Some(code) = crate::ccwrap::dispatch() {
        return code;
    }
    if let Some(code) = crate::distcc::dispatch() {
        return code;
    }
    let cli = Cli::parse();
    // The two internal subcommands need no project.
    match cli.command {
        Command::Relay { addr } => {
            return match crate::serve::relay(&addr) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            };
        }
        Command::Sandbox { args } => return crate::sandbox::helper_main(args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "rhbuild", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => report(msg(format!("cannot write the manual page: {e}")).as_ref()),
            };
        }
        _ => {}
    }
    let start = cli
        .project
        .clone()
        .unwrap_or_else(|| Utf8PathBuf::from("."));
    let project = match Project::find(&start) {
        Ok(p) => p,
        Err(e) => return report(&e),
    };
    // The composition root: the engine, with the primitives registered.
    let mut engine = match ScriptEngine::new(project) {
        Ok(e) => e,
        Err(e) => return report(msg(format!("cannot open the project: {e}")).as_ref()),
    };
    crate::api::register(&mut engine.engine);
    let result = match cli.command {
        Command::Run(a) => run::exec(engine, a),
        Command::Check(a) => check::exec(engine, a),
        Command::List(a) => list::exec(engine, a),
        Command::Fetch(a) => fetch::exec(engine, a),
        Command::Miniconfig(a) => miniconfig::exec(engine, a),
        Command::Menuconfig(a) => miniconfig::exec_menu(engine, a),
        Command::Settings(a) => settings::exec(engine, a),
        Command::Matrix(a) => matrix::exec(engine, a),
        Command::Clean(a) => clean::exec(engine, a),
        Command::LegalInfo(a) => run::exec_legal_info(engine, a),
        Command::Relay { .. }
        | Command::Sandbox { .. }
        | Command::Completions { .. }
        | Command::Man => unreachable!("handled above"),
    };
    match result {
        Ok(code) => code,
        Err(e) => report(e.as_ref()),
    }
}

/// Print a diagnostic to stderr and return failure.
pub fn report(e: &dyn miette::Diagnostic) -> ExitCode {
    eprint!("{}", crate::diag::render(e));
    ExitCode::FAILURE
}

/// Errors subcommands return.
pub type CliResult = Result<ExitCode, Box<dyn miette::Diagnostic + Send + Sync>>;

/// A plain message as a diagnostic.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{0}")]
pub struct Message(pub String);

pub fn msg(s: impl Into<String>) -> Box<dyn miette::Diagnostic + Send + Sync> {
    Box::new(Message(s.into()))
}

/// The default job count: the machine's cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
