//! Settings: target defaults, then environment variables of the same name,
//! then `--set KEY=VALUE` (highest). Stages record which settings they read,
//! so changing one only rebuilds the stages that looked at it.

use std::collections::BTreeMap;

/// Where a setting's value came from, for `rhbuild run -v` and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Target,
    Environment,
    CommandLine,
}

/// The layered settings of one run. Immutable once the run starts.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    target: BTreeMap<String, String>,
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
        Settings { target, env, cli }
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
        self.target.get(key).map(|v| (v.as_str(), Layer::Target))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.lookup(key).map(|(v, _)| v)
    }

    /// Keys starting with `prefix` from any layer (the environment
    /// included), resolved.
    pub fn with_prefix(&self, prefix: &str) -> BTreeMap<String, String> {
        self.target
            .keys()
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
    fn malformed_pairs_are_refused() {
        assert!(Settings::parse_pairs(&["A=1".into(), "B=x=y".into()]).is_ok());
        let e = Settings::parse_pairs(&["NOEQUALS".into()]).unwrap_err();
        assert!(e.to_string().contains("`NOEQUALS`"));
        assert!(Settings::parse_pairs(&["=v".into()]).is_err());
    }
}
