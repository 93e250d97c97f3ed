//! `cargo run --release --example extract -- ARCHIVE DEST`: unpack one
//! archive with `rhbuild::extract::extract` (used by bench/extract.sh).

use camino::Utf8PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [archive, dest] = args.as_slice() else {
        eprintln!("usage: extract ARCHIVE DEST");
        return ExitCode::from(2);
    };
    match rhbuild::extract::extract(&Utf8PathBuf::from(archive), &Utf8PathBuf::from(dest)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
