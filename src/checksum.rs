//! Streaming SHA-1 and SHA-256 of files.
//!
//! Each source origin carries its own expected digests; `verify_file` checks
//! every digest the origin names, reading the file once.

use camino::Utf8Path;
use sha2::Digest;
use std::io::Read;

/// The digests an origin promises. At least one must be set for a source to
/// count as pinned (`rhbuild check` enforces that).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Expected {
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

impl Expected {
    pub fn is_empty(&self) -> bool {
        self.sha1.is_none() && self.sha256.is_none()
    }

    /// A short text for messages: the strongest digest, abbreviated.
    pub fn short(&self) -> String {
        match (&self.sha256, &self.sha1) {
            (Some(s), _) => format!("sha256 {}", abbrev(s)),
            (None, Some(s)) => format!("sha1 {}", abbrev(s)),
            (None, None) => "no checksum".to_string(),
        }
    }
}

/// Digests computed from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digests {
    pub sha1: String,
    pub sha256: String,
}

/// A checksum that did not match.
#[derive(Debug, thiserror::Error)]
#[error("expected {algo} {expected}, got {actual}")]
pub struct Mismatch {
    pub algo: &'static str,
    pub expected: String,
    pub actual: String,
}

impl Mismatch {
    /// `expected sha256 faeeb2…, got 0c11d5…`, for one-line messages.
    pub fn short(&self) -> String {
        format!(
            "expected {} {}, got {}",
            self.algo,
            abbrev(&self.expected),
            abbrev(&self.actual)
        )
    }
}

/// The first 12 hex digits and an ellipsis.
pub fn abbrev(hex: &str) -> String {
    if hex.len() > 12 {
        format!("{}…", &hex[..12])
    } else {
        hex.to_string()
    }
}

const CHUNK: usize = 1 << 20;

/// Hash a file with the algorithms `want` asks for (both when `None`).
fn hash_reader(mut r: impl Read, sha1: bool, sha256: bool) -> std::io::Result<Digests> {
    let mut h1 = sha1_smol::Sha1::new();
    let mut h256 = sha2::Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Run the two hashes on separate cores when both are wanted: SHA-1
        // and SHA-256 together would otherwise cost the sum of both.
        match (sha1, sha256) {
            (true, true) => std::thread::scope(|s| {
                s.spawn(|| h1.update(&buf[..n]));
                h256.update(&buf[..n]);
            }),
            (true, false) => h1.update(&buf[..n]),
            (false, _) => h256.update(&buf[..n]),
        }
    }
    Ok(Digests {
        sha1: if sha1 {
            h1.digest().to_string()
        } else {
            String::new()
        },
        sha256: if sha256 || !sha1 {
            hex(&h256.finalize())
        } else {
            String::new()
        },
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-1 and SHA-256 of a file, read once.
pub fn hash_file(path: &Utf8Path) -> std::io::Result<Digests> {
    hash_reader(std::fs::File::open(path)?, true, true)
}

/// SHA-256 of a file.
pub fn sha256_file(path: &Utf8Path) -> std::io::Result<String> {
    Ok(hash_reader(std::fs::File::open(path)?, false, true)?.sha256)
}

/// SHA-1 of a file.
pub fn sha1_file(path: &Utf8Path) -> std::io::Result<String> {
    Ok(hash_reader(std::fs::File::open(path)?, true, false)?.sha1)
}

/// SHA-256 of bytes in memory.
pub fn sha256_bytes(data: &[u8]) -> String {
    hex(&sha2::Sha256::digest(data))
}

/// Check a file against every digest `want` names, reading it once.
/// `Ok(Err(_))` is a mismatch; the outer error is an I/O failure.
pub fn verify_file(path: &Utf8Path, want: &Expected) -> std::io::Result<Result<(), Mismatch>> {
    verify_reader(std::fs::File::open(path)?, want)
}

/// Check what `r` yields against every digest `want` names.
pub fn verify_reader(
    r: impl std::io::Read,
    want: &Expected,
) -> std::io::Result<Result<(), Mismatch>> {
    let d = hash_reader(r, want.sha1.is_some(), want.sha256.is_some())?;
    if let Some(e) = &want.sha256
        && !e.eq_ignore_ascii_case(&d.sha256)
    {
        return Ok(Err(Mismatch {
            algo: "sha256",
            expected: e.clone(),
            actual: d.sha256,
        }));
    }
    if let Some(e) = &want.sha1
        && !e.eq_ignore_ascii_case(&d.sha1)
    {
        return Ok(Err(Mismatch {
            algo: "sha1",
            expected: e.clone(),
            actual: d.sha1,
        }));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_of_abc() {
        let d = hash_reader(&b"abc"[..], true, true).unwrap();
        assert_eq!(d.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verify_names_the_algorithm_that_failed() {
        let dir = tempfile::tempdir().unwrap();
        let p = camino::Utf8PathBuf::from_path_buf(dir.path().join("f")).unwrap();
        std::fs::write(&p, b"abc").unwrap();
        let ok = Expected {
            sha1: Some("a9993e364706816aba3e25717850c26c9cd0d89d".into()),
            sha256: None,
        };
        assert!(verify_file(&p, &ok).unwrap().is_ok());
        let bad = Expected {
            sha1: None,
            sha256: Some("00".repeat(32)),
        };
        let m = verify_file(&p, &bad).unwrap().unwrap_err();
        assert_eq!(m.algo, "sha256");
        assert_eq!(m.actual, sha256_bytes(b"abc"));
    }
}
