//! Settings: the target's `target.rhai`, then the local settings file
//! (`local.rhai` in the project, untracked, or `--settings FILE`), then the
//! environment, then `--set KEY=VALUE` (highest); a script's own default applies when none
//! sets it. Stages record which settings they read, so changing one only
//! rebuilds the stages that looked at it. `rhbuild settings --arch A` shows
//! each setting's value and layer.
//!
//! The environment gives only what docs/targets.md lists: `PREFERRED_MIRROR`,
//! `SOURCE_DATE_EPOCH`, every `MY_*` directory, and any setting spelt
//! `RHBUILD_SET_NAME=VALUE`. An exported `CROSS_COMPILE` or `ARCH` of a
//! kernel developer's shell never changes a build behind their back.

use std::collections::BTreeMap;

/// Where a setting's value came from, for `rhbuild settings` and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Target,
    /// The local settings file.
    Local,
    Environment,
    CommandLine,
    /// A script's own default (`ctx.setting(NAME, DEFAULT)`).
    Default,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layer::Target => "target",
            Layer::Local => "local file",
            Layer::Environment => "environment",
            Layer::CommandLine => "--set",
            Layer::Default => "default",
        })
    }
}

/// The prefix of environment variables that set any setting.
pub const ENV_PREFIX: &str = "RHBUILD_SET_";

/// Settings the environment gives under their own names.
pub const ENV_NAMES: &[&str] = &["PREFERRED_MIRROR", "SOURCE_DATE_EPOCH"];

/// The settings an environment gives: `ENV_NAMES`, every `MY_*`, and
/// `RHBUILD_SET_NAME=VALUE` as `NAME`; nothing else.
pub fn from_environment(
    vars: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in vars {
        if let Some(name) = k.strip_prefix(ENV_PREFIX) {
            if !name.is_empty() {
                out.insert(name.to_string(), v);
            }
        } else if ENV_NAMES.contains(&k.as_str()) || k.starts_with("MY_") {
            out.entry(k).or_insert(v);
        }
    }
    out
}

/// The layered settings of one run. Immutable once the run starts.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    target: BTreeMap<String, String>,
    /// The local settings file (`local.rhai` or `--settings FILE`).
    local: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    cli: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("malformed setting `{0}`: expected KEY=VALUE, for example `--set SYSIMAGE_TYPE=squashfs`")]
pub struct BadSetting(pub String);

impl Settings {
    /// `env` is a snapshot of the process environment taken once at start.
    pub fn new(
        target: BTreeMap<String, String>,
        env: BTreeMap<String, String>,
        cli: BTreeMap<String, String>,
    ) -> Self {
        Settings {
            target,
            local: BTreeMap::new(),
            env,
            cli,
        }
    }

    /// The layers with the local settings file between the target and the
    /// environment.
    pub fn with_local(
        target: BTreeMap<String, String>,
        local: BTreeMap<String, String>,
        env: BTreeMap<String, String>,
        cli: BTreeMap<String, String>,
    ) -> Self {
        Settings {
            target,
            local,
            env,
            cli,
        }
    }

    /// The same layers without the target's: what a per-host stage sees
    /// (see `stage`), so that every target reads the same values.
    pub fn without_target(&self) -> Settings {
        Settings {
            target: BTreeMap::new(),
            ..self.clone()
        }
    }

    /// The settings given with `--set`.
    pub fn command_line(&self) -> &BTreeMap<String, String> {
        &self.cli
    }

    /// Parse `KEY=VALUE` pairs from the command line.
    pub fn parse_pairs(pairs: &[String]) -> Result<BTreeMap<String, String>, BadSetting> {
        let mut out = BTreeMap::new();
        for p in pairs {
            match p.split_once('=') {
                Some((k, v))
                    if !k.is_empty()
                        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    out.insert(k.to_string(), v.to_string());
                }
                _ => return Err(BadSetting(p.clone())),
            }
        }
        Ok(out)
    }

    /// The value of `key` and the layer it came from.
    pub fn lookup(&self, key: &str) -> Option<(&str, Layer)> {
        if let Some(v) = self.cli.get(key) {
            return Some((v, Layer::CommandLine));
        }
        if let Some(v) = self.env.get(key) {
            return Some((v, Layer::Environment));
        }
        if let Some(v) = self.local.get(key) {
            return Some((v, Layer::Local));
        }
        self.target.get(key).map(|v| (v.as_str(), Layer::Target))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.lookup(key).map(|(v, _)| v)
    }

    /// Every name some layer sets.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .target
            .keys()
            .chain(self.local.keys())
            .chain(self.env.keys())
            .chain(self.cli.keys())
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Keys starting with `prefix` from any layer (the environment
    /// included), resolved.
    pub fn with_prefix(&self, prefix: &str) -> BTreeMap<String, String> {
        self.target
            .keys()
            .chain(self.local.keys())
            .chain(self.env.keys())
            .chain(self.cli.keys())
            .filter(|k| k.starts_with(prefix))
            .filter_map(|k| self.get(k).map(|v| (k.clone(), v.to_string())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn command_line_beats_environment_beats_target() {
        let s = Settings::new(
            map(&[("A", "t"), ("B", "t"), ("C", "t")]),
            map(&[("B", "e"), ("C", "e")]),
            map(&[("C", "c")]),
        );
        assert_eq!(s.lookup("A"), Some(("t", Layer::Target)));
        assert_eq!(s.lookup("B"), Some(("e", Layer::Environment)));
        assert_eq!(s.lookup("C"), Some(("c", Layer::CommandLine)));
        assert_eq!(s.get("D"), None);
    }

    #[test]
    fn the_environment_gives_only_documented_settings() {
        let env = from_environment(map(&[
            ("CROSS_COMPILE", "evil-"),
            ("ARCH", "arm"),
            ("TOOLCHAIN", "debian"),
            ("PREFERRED_MIRROR", "http://m"),
            ("MY_ROOT_OVERLAY", "/o"),
            ("RHBUILD_SET_TOOLCHAIN", "debian"),
            ("RHBUILD_SET_", "x"),
        ]));
        assert_eq!(
            env,
            map(&[
                ("PREFERRED_MIRROR", "http://m"),
                ("MY_ROOT_OVERLAY", "/o"),
                ("TOOLCHAIN", "debian"),
            ])
        );
    }

    #[test]
    fn malformed_pairs_are_refused() {
        assert!(Settings::parse_pairs(&["A=1".into(), "B=x=y".into()]).is_ok());
        let e = Settings::parse_pairs(&["NOEQUALS".into()]).unwrap_err();
        assert!(e.to_string().contains("`NOEQUALS`"));
        assert!(Settings::parse_pairs(&["=v".into()]).is_err());
    }
}
