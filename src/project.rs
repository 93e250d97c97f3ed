//! Where a project's scripts live and where a run writes.

use camino::{Utf8Path, Utf8PathBuf};

/// A checkout with `scripts/`, `packages/`, `targets/` and `stdlib/`.
#[derive(Clone, Debug)]
pub struct Project {
    pub root: Utf8PathBuf,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error(
    "no rhbuild project found at or above `{start}`: expected a directory holding `scripts/`, `packages/` and `targets/`"
)]
#[diagnostic(help("run rhbuild from the project's checkout, or pass --project DIR"))]
pub struct NotAProject {
    pub start: Utf8PathBuf,
}

impl Project {
    /// The nearest directory at or above `start` that holds `scripts/`,
    /// `packages/` and `targets/`.
    pub fn find(start: &Utf8Path) -> Result<Self, NotAProject> {
        let start_abs = absolute(start);
        let mut dir = Some(start_abs.as_path());
        while let Some(d) = dir {
            if ["scripts", "packages", "targets"]
                .iter()
                .all(|s| d.join(s).is_dir())
            {
                return Ok(Project { root: d.to_owned() });
            }
            dir = d.parent();
        }
        Err(NotAProject { start: start_abs })
    }

    pub fn scripts(&self) -> Utf8PathBuf {
        self.root.join("scripts")
    }
    pub fn packages(&self) -> Utf8PathBuf {
        self.root.join("packages")
    }
    pub fn targets(&self) -> Utf8PathBuf {
        self.root.join("targets")
    }
    pub fn stdlib(&self) -> Utf8PathBuf {
        self.root.join("stdlib")
    }

    /// `path` relative to the project root, for messages and manifests;
    /// unchanged when it lies outside.
    pub fn relative(&self, path: &Utf8Path) -> Utf8PathBuf {
        path.strip_prefix(&self.root)
            .map(|p| p.to_owned())
            .unwrap_or_else(|_| path.to_owned())
    }

    /// Names of the `.rhai` files in a project directory, sorted, without extension.
    pub fn names_in(&self, dir: &Utf8Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".rhai").map(str::to_owned)
            })
            .collect();
        names.sort();
        names
    }

    /// Target names: the folders of `targets/` that hold a `target.rhai`.
    pub fn target_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.targets())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("target.rhai").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }
}

/// `path` made absolute against the current directory, without touching the
/// filesystem (no symlink resolution).
pub fn absolute(path: &Utf8Path) -> Utf8PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
        .unwrap_or_else(|| Utf8PathBuf::from("/"));
    let mut out = cwd;
    for c in path.components() {
        match c {
            camino::Utf8Component::CurDir => {}
            camino::Utf8Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_str()),
        }
    }
    out
}
