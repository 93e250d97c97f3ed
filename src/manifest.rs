//! Stage manifests: what a stage's output was built from. A stage whose
//! recorded inputs all still hold is skipped.
//!
//! Inputs are recorded as the stage reads them (redo-style): the scripts it
//! ran and imported, the project files it read, the settings it looked at,
//! the upstream stages it used (by their hashes) and the sources it
//! unpacked (by checksum, or as an unverified local override).

use camino::Utf8Path;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const FILE: &str = "manifest.json";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// Project files (relative path) -> SHA-256 of their contents.
    pub files: BTreeMap<String, String>,
    /// Settings read -> value (`None`: it was not set).
    pub settings: BTreeMap<String, Option<String>>,
    /// Upstream stages used -> their manifest hash.
    pub stages: BTreeMap<String, String>,
    /// Packages unpacked -> `sha256:...` of the verified tarball, or
    /// `unverified:PATH:SIZE:MTIME` for a `--source` override.
    pub sources: BTreeMap<String, String>,
    /// Host tools resolved -> their target path (a changed host compiler
    /// path rebuilds).
    pub tools: BTreeMap<String, String>,
    /// The user's own directories read (`MY_ROOT_OVERLAY`, ...) -> a stamp
    /// of their contents (paths, sizes, modes, times).
    #[serde(default)]
    pub trees: BTreeMap<String, String>,
    /// The target's name, when the script asked for it (`ctx.arch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

impl Inputs {
    /// SHA-256 of the canonical JSON of these inputs.
    pub fn hash(&self, stage: &str, arch: &str) -> String {
        let text = serde_json::to_string(&(stage, arch, env!("CARGO_PKG_VERSION"), self))
            .unwrap_or_default();
        crate::checksum::sha256_bytes(text.as_bytes())
    }

    /// What the stage's output is a function of, the same in every build
    /// directory and for every target whose settings and files it read
    /// alike: these inputs with each upstream stage named by its own content
    /// key (`key_of` its recorded hash) rather than by the id of one build
    /// of it. The target's name counts only where the script asked for it.
    /// Two builds of a stage from the same inputs share a key; ccache keys
    /// compilers on it, so the host's compiler is one compiler for every
    /// target.
    pub fn content_key(&self, stage: &str, key_of: impl Fn(&str) -> String) -> String {
        let mut named = self.clone();
        for hash in named.stages.values_mut() {
            *hash = key_of(hash);
        }
        named.hash(stage, "")
    }
}

/// A stamp of a directory tree's contents: every path with its type,
/// size, mode, modification and inode-change times, hashed; a link's
/// target; and, for a file changed in the last two seconds (whose time
/// cannot tell a second edit within the same tick), its contents. Any edit,
/// addition, removal or `touch -d` back-dating changes it; no file is read
/// otherwise, so it is cheap.
pub fn tree_stamp(root: &Utf8Path) -> String {
    use std::os::unix::fs::MetadataExt;
    // A single file (a MY_* setting may name one): its contents.
    if root.is_file() {
        return match crate::checksum::sha256_file(root) {
            Ok(h) => format!("file sha256 {h}"),
            Err(e) => format!("file unreadable: {e}"),
        };
    }
    let recent = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64 - 2)
        .unwrap_or(0);
    let mut lines = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(p) = camino::Utf8PathBuf::from_path_buf(e.path()) else {
                continue;
            };
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let mut line = format!(
                "{} {} {:o} {}.{} {}.{}",
                p.strip_prefix(root).unwrap_or(&p),
                m.size(),
                m.mode(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec()
            );
            if m.file_type().is_symlink() {
                if let Ok(t) = std::fs::read_link(&p) {
                    line.push_str(&format!(" -> {}", t.display()));
                }
            } else if m.is_file()
                && (m.mtime() >= recent || m.ctime() >= recent)
                && let Ok(bytes) = std::fs::read(&p)
            {
                line.push_str(&format!(" {}", crate::checksum::sha256_bytes(&bytes)));
            }
            lines.push(line);
            if m.is_dir() {
                todo.push(p);
            }
        }
    }
    lines.sort();
    crate::checksum::sha256_bytes(lines.join("\n").as_bytes())
}

/// What identifies a local source (`--source NAME=PATH`): a directory by
/// the stamp of its whole contents, a file by its size, times and inode
/// (and its contents when it changed in the last two seconds).
pub fn local_source_identity(path: &Utf8Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(path) else {
        return format!("unverified:{path}:missing");
    };
    if m.is_dir() {
        return format!("unverified:{path}:tree:{}", tree_stamp(path));
    }
    let recent = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64 - 2)
        .unwrap_or(0);
    let mut id = format!(
        "unverified:{path}:{}:{}.{}:{}.{}:{}",
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.ino()
    );
    if (m.mtime() >= recent || m.ctime() >= recent)
        && let Ok(sum) = crate::checksum::sha256_file(path)
    {
        id.push(':');
        id.push_str(&sum);
    }
    id
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub stage: String,
    pub arch: String,
    pub hash: String,
    pub rhbuild: String,
    /// Seconds since the epoch when the stage finished.
    pub finished: u64,
    /// Wall time of the stage in seconds, not counting upstream stages it
    /// brought up to date.
    pub seconds: f64,
    /// Packages built from sources nobody verified (`--source` overrides).
    pub unverified: Vec<String>,
    /// What the sandbox enforced for the stage's commands (`None`: none ran).
    #[serde(default)]
    pub sandbox: Option<String>,
    /// The stage's content key ([`Inputs::content_key`]; empty in
    /// manifests written before it existed).
    #[serde(default)]
    pub key: String,
    pub inputs: Inputs,
}

impl Manifest {
    /// The manifest of the output directory `dir` beneath `root`.
    pub fn read_in(root: &crate::confine::Root, dir: &Utf8Path) -> Option<Manifest> {
        let text = root.read_to_string(&dir.join(FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn write_in(&self, root: &crate::confine::Root, dir: &Utf8Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        root.write_atomic(&dir.join(FILE), (text + "\n").as_bytes(), 0o644)
    }

    /// The manifest of the output directory `dir` (for tools outside a run).
    pub fn read(dir: &Utf8Path) -> Option<Manifest> {
        let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_changes_with_any_input() {
        let mut a = Inputs::default();
        a.files.insert("scripts/x.rhai".into(), "aa".into());
        let h1 = a.hash("x", "sh4");
        a.settings.insert("K".into(), Some("v".into()));
        let h2 = a.hash("x", "sh4");
        assert_ne!(h1, h2);
        assert_ne!(h2, a.hash("x", "armv5l"));
        assert_eq!(h2, a.clone().hash("x", "sh4"));
        // The content key ignores the target unless the script read it,
        // and names upstream stages by their keys.
        let key = |i: &Inputs| i.content_key("x", |h| format!("key of {h}"));
        let mut sh4 = a.clone();
        sh4.arch = Some("sh4".into());
        let mut armv5l = a.clone();
        armv5l.arch = Some("armv5l".into());
        assert_ne!(key(&sh4), key(&armv5l));
        assert_eq!(key(&a), key(&a.clone()));
        let mut rebuilt = a.clone();
        rebuilt.stages.insert("up".into(), "build 1".into());
        let mut again = a.clone();
        again.stages.insert("up".into(), "build 2".into());
        assert_ne!(key(&rebuilt), key(&again));
        assert_eq!(
            rebuilt.content_key("x", |_| "same".into()),
            again.content_key("x", |_| "same".into())
        );
    }
}
