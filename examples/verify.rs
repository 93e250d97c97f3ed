//! Prints a file's digest the way `sha256sum` does, through the same code the
//! fetcher verifies with. Used by `bench/verify.sh`.
//!
//! Usage: `verify sha256|sha1|both FILE`

use camino::Utf8PathBuf;
use rhbuild::checksum;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(algo), Some(file)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: verify sha256|sha1|both FILE");
        std::process::exit(2);
    };
    let path = Utf8PathBuf::from(file);
    let out = match algo.as_str() {
        "sha256" => checksum::sha256_file(&path),
        "sha1" => checksum::sha1_file(&path),
        "both" => checksum::hash_file(&path).map(|d| format!("{} {}", d.sha1, d.sha256)),
        other => {
            eprintln!("error: unknown algorithm `{other}`: expected sha256, sha1 or both");
            std::process::exit(2);
        }
    };
    match out {
        Ok(hex) => println!("{hex}  {path}"),
        Err(e) => {
            eprintln!("error: cannot read `{path}`: {e}");
            std::process::exit(1);
        }
    }
}
