//! Packages: one module per package under `packages/`, declaring its data
//! first (name, version, sources with checksums; optionally the packages
//! it needs, its licence, and a check to run in a booted guest) and then
//! `fn build(ctx)`. Its own patches live in `packages/<name>/*.patch`.

use crate::checksum::Expected;
use crate::diag::ScriptDiagnostic;
use crate::engine::{ScriptEngine, ScriptError, exported_consts};
use crate::fetch::{Origin, OriginKind, SourceSpec};
use camino::{Utf8Path, Utf8PathBuf};
use rhai::{Dynamic, Map};

/// Keys a source map may hold.
const SOURCE_KEYS: &[&str] = &[
    "url", "mirrors", "debian", "file", "sha1", "sha256", "inner", "size",
];

/// A loaded package.
#[derive(Clone, Debug)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// `packages/<name>.rhai`, relative to the project root.
    pub file: Utf8PathBuf,
    pub origins: Vec<Origin>,
    /// Per origin: the path, inside its (verified) file, of the tarball that
    /// holds the real source tree (Debian's gcc-12 orig tarball wraps
    /// upstream's), or `None` when the file itself is the source.
    pub inner: Vec<Option<String>>,
    /// Whether the package defines `fn build(ctx)`.
    pub buildable: bool,
    /// `depends`: the packages built before it into the same root.
    pub depends: Vec<String>,
    /// `license`: an SPDX licence expression.
    pub license: Option<String>,
    /// `license_files`: its licence texts, relative to its source tree.
    pub license_files: Vec<String>,
    /// `check`: a command run in a booted guest and text its output must
    /// hold, proving the package works there.
    pub check: Option<Check>,
}

/// A package's check inside a booted guest.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub run: String,
    pub expect: String,
}

impl Package {
    pub fn spec(&self) -> SourceSpec {
        SourceSpec {
            package: self.name.clone(),
            origins: self.origins.clone(),
        }
    }

    /// The folder of the package's own patches.
    pub fn patch_dir(&self, root: &Utf8Path) -> Utf8PathBuf {
        root.join("packages").join(&self.name)
    }
}

fn file_of(name: &str) -> Utf8PathBuf {
    Utf8PathBuf::from(format!("packages/{name}.rhai"))
}

/// Load and check `packages/<name>.rhai`.
pub fn load(engine: &ScriptEngine, name: &str) -> Result<Package, ScriptError> {
    let rel = file_of(name);
    if !engine.project.root.join(&rel).is_file() {
        return Err(ScriptError::Other(format!(
            "no package `{name}`: `{rel}` does not exist (packages: {})",
            engine
                .project
                .names_in(&engine.project.packages())
                .join(", ")
        )));
    }
    if let Some(d) = validate(engine, &rel).into_iter().next() {
        return Err(ScriptError::Diagnostic(Box::new(d)));
    }
    let (ast, module) = engine.load_module(&rel)?;
    let version = module
        .get_var_value::<rhai::ImmutableString>("version")
        .unwrap_or_default()
        .to_string();
    let sources = module
        .get_var_value::<rhai::Array>("sources")
        .unwrap_or_default();
    let maps: Vec<Map> = sources
        .iter()
        .filter_map(|s| s.clone().try_cast::<Map>())
        .collect();
    let origins = maps.iter().map(origin_of).collect();
    let inner = maps.iter().map(|m| text(m, "inner")).collect();
    Ok(Package {
        name: name.to_string(),
        version,
        file: rel,
        origins,
        inner,
        buildable: ast
            .iter_functions()
            .any(|f| f.name == "build" && f.params.len() == 1),
        depends: strings(module.get_var("depends").as_ref()),
        license: module
            .get_var_value::<rhai::ImmutableString>("license")
            .map(|s| s.to_string()),
        license_files: strings(module.get_var("license_files").as_ref()),
        check: module.get_var_value::<Map>("check").and_then(|m| {
            Some(Check {
                run: text(&m, "run")?,
                expect: text(&m, "expect")?,
            })
        }),
    })
}

/// An array of strings, or `None` when it is not one.
fn string_list(v: Option<&Dynamic>) -> Option<Vec<String>> {
    v?.clone()
        .try_cast::<rhai::Array>()?
        .iter()
        .map(|x| {
            x.clone()
                .try_cast::<rhai::ImmutableString>()
                .map(|s| s.to_string())
        })
        .collect()
}

/// The same, empty when it is not one (`rhbuild check` says why).
fn strings(v: Option<&Dynamic>) -> Vec<String> {
    string_list(v).unwrap_or_default()
}

/// `names` and every package they need, each after what it needs and
/// once: the order to build them into one root. An unknown name or a cycle
/// is an error naming the packages involved.
pub fn build_order(
    names: &[String],
    depends_of: &mut dyn FnMut(&str) -> Result<Vec<String>, ScriptError>,
) -> Result<Vec<String>, ScriptError> {
    fn visit(
        name: &str,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
        depends_of: &mut dyn FnMut(&str) -> Result<Vec<String>, ScriptError>,
    ) -> Result<(), ScriptError> {
        if done.iter().any(|d| d == name) {
            return Ok(());
        }
        if let Some(at) = path.iter().position(|p| p == name) {
            let mut cycle = path[at..].to_vec();
            cycle.push(name.to_string());
            return Err(ScriptError::Other(format!(
                "packages depend on each other in a circle: {}; remove one of these `depends`",
                cycle.join(" -> ")
            )));
        }
        let needs = depends_of(name).map_err(|e| match path.last() {
            Some(parent) => {
                ScriptError::Other(format!("package `{parent}` depends on `{name}`: {e}"))
            }
            None => e,
        })?;
        path.push(name.to_string());
        for n in &needs {
            visit(n, path, done, depends_of)?;
        }
        path.pop();
        done.push(name.to_string());
        Ok(())
    }
    let mut done = Vec::new();
    for n in names {
        visit(n, &mut Vec::new(), &mut done, depends_of)?;
    }
    Ok(done)
}

fn text(m: &Map, key: &str) -> Option<String> {
    m.get(key)
        .and_then(|v| v.clone().try_cast::<rhai::ImmutableString>())
        .map(|s| s.to_string())
}

fn origin_of(m: &Map) -> Origin {
    let expected = Expected {
        sha1: text(m, "sha1"),
        sha256: text(m, "sha256"),
    };
    let mirrors = m
        .get("mirrors")
        .and_then(|v| v.clone().try_cast::<rhai::Array>())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.clone().try_cast::<rhai::ImmutableString>())
                .map(|s| s.to_string())
                .collect()
        })
        .unwrap_or_default();
    let kind = match (text(m, "url"), text(m, "debian"), text(m, "file")) {
        (Some(u), _, _) => OriginKind::Url(u),
        (None, Some(p), Some(f)) => OriginKind::Debian {
            package: p,
            file: f,
        },
        _ => OriginKind::Url(String::new()),
    };
    Origin {
        kind,
        mirrors,
        expected,
        size: m
            .get("size")
            .and_then(|v| v.as_int().ok())
            .and_then(|n| u64::try_from(n).ok()),
    }
}

/// Every problem with a package file, as diagnostics (empty when fine):
/// `name` equal to the file's stem, a `version` string, and `sources`, a
/// non-empty array of maps each with a `url` or `debian` + `file` origin and
/// at least one well-formed checksum.
pub fn validate(engine: &ScriptEngine, rel: &Utf8Path) -> Vec<ScriptDiagnostic> {
    let (text_src, ast) = match engine.compile_for_check(rel) {
        Ok(x) => x,
        Err(diags) => return diags,
    };
    let text_src = text_src.as_str();
    let stem = rel.file_stem().unwrap_or("");
    let consts = exported_consts(&ast);
    let at = |pos: rhai::Position, msg: String, label: &str, help: &str| {
        ScriptDiagnostic::at(
            rel,
            text_src,
            pos.line().unwrap_or(1),
            pos.position().unwrap_or(1),
            msg,
            label.to_string(),
            Some(help.to_string()),
        )
    };
    let mut out = Vec::new();
    for field in ["name", "version", "sources"] {
        if !consts.iter().any(|c| c.name == field) {
            out.push(at(
                rhai::Position::new(1, 1),
                format!("package `{rel}` lacks `export const {field}`"),
                "in this file",
                "a package declares `name`, `version` and `sources` before its build function (see docs/packages.md)",
            ));
        }
    }
    if !out.is_empty() {
        return out;
    }
    // Values need evaluation (versions are interpolated into URLs).
    let module = match rhai::Module::eval_ast_as_new(rhai::Scope::new(), &ast, &engine.engine) {
        Ok(m) => m,
        Err(e) => {
            if let ScriptError::Diagnostic(d) = engine.eval_error(rel, &e) {
                return vec![*d];
            }
            return out;
        }
    };
    for c in &consts {
        match c.name {
            "name" => {
                let v = module.get_var_value::<rhai::ImmutableString>("name");
                if v.as_deref() != Some(stem) {
                    out.push(at(
                        c.pos,
                        format!(
                            "package name must be `{stem}` (the file's name), found {}",
                            show(module.get_var("name").as_ref())
                        ),
                        "declared here",
                        "rename the file or the package so they agree",
                    ));
                }
            }
            "version"
                if module
                    .get_var_value::<rhai::ImmutableString>("version")
                    .is_none_or(|v| v.is_empty()) =>
            {
                out.push(at(
                    c.pos,
                    "package `version` must be a non-empty string".into(),
                    "declared here",
                    "for example `export const version = \"1.35.0\";`",
                ));
            }
            "sources" => {
                let items: Vec<rhai::Position> = match c.expr {
                    rhai::Expr::Array(items, _) => {
                        items.iter().map(|e| e.start_position()).collect()
                    }
                    _ => Vec::new(),
                };
                let Some(arr) = module.get_var_value::<rhai::Array>("sources") else {
                    out.push(at(c.pos, "package `sources` must be an array of maps".into(), "declared here", "for example `export const sources = [#{ url: \"...\", sha256: \"...\" }];`"));
                    continue;
                };
                if arr.is_empty() {
                    out.push(at(
                        c.pos,
                        "package `sources` is empty".into(),
                        "declared here",
                        "give at least one origin with its checksum",
                    ));
                }
                for (i, s) in arr.iter().enumerate() {
                    let pos = items.get(i).copied().unwrap_or(c.pos);
                    out.extend(
                        check_source(s, i)
                            .into_iter()
                            .map(|(m, h)| at(pos, m, "this source", &h)),
                    );
                }
            }
            "depends" => {
                let listed = string_list(module.get_var("depends").as_ref());
                if listed.is_none() {
                    out.push(at(
                        c.pos,
                        "package `depends` must be an array of package names".into(),
                        "declared here",
                        "for example `export const depends = [\"zlib\"];`",
                    ));
                }
                for n in listed.unwrap_or_default() {
                    if n == stem {
                        out.push(at(
                            c.pos,
                            format!("package `{stem}` depends on itself"),
                            "declared here",
                            "leave its own name out of `depends`",
                        ));
                    } else if !engine.project.root.join(file_of(&n)).is_file() {
                        out.push(at(
                            c.pos,
                            format!(
                                "package `{stem}` depends on `{n}`, but `{}` does not exist",
                                file_of(&n)
                            ),
                            "declared here",
                            "write that package first, or correct the name",
                        ));
                    }
                }
            }
            "license"
                if module
                    .get_var_value::<rhai::ImmutableString>("license")
                    .is_none_or(|v| v.trim().is_empty()) =>
            {
                out.push(at(
                    c.pos,
                    "package `license` must be an SPDX licence expression".into(),
                    "declared here",
                    "for example `export const license = \"GPL-2.0-only\";` (see https://spdx.org/licenses/)",
                ));
            }
            "license_files" => {
                let files = string_list(module.get_var("license_files").as_ref());
                if files.as_ref().is_none_or(|files| {
                    files.iter().any(|f| {
                        f.is_empty() || f.starts_with('/') || f.split('/').any(|c| c == "..")
                    })
                }) {
                    out.push(at(
                        c.pos,
                        "package `license_files` must be an array of paths inside the source tree"
                            .into(),
                        "declared here",
                        "for example `export const license_files = [\"LICENSE\"];`",
                    ));
                }
            }
            "check" => {
                let ok = module.get_var_value::<Map>("check").is_some_and(|m| {
                    text(&m, "run").is_some_and(|r| !r.trim().is_empty())
                        && text(&m, "expect").is_some_and(|e| !e.is_empty())
                        && m.keys().all(|k| k == "run" || k == "expect")
                });
                if !ok {
                    out.push(at(
                        c.pos,
                        "package `check` must be a map with `run` (a command for the guest's shell) and `expect` (text its output holds)".into(),
                        "declared here",
                        "for example `export const check = #{ run: \"lua -v\", expect: \"Lua 5.4\" };`",
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

fn show(v: Option<&Dynamic>) -> String {
    match v {
        Some(d) => format!("`{d}`"),
        None => "nothing".into(),
    }
}

/// Problems with one source map: (message, help).
fn check_source(s: &Dynamic, i: usize) -> Vec<(String, String)> {
    let n = i + 1;
    let Some(m) = s.clone().try_cast::<Map>() else {
        return vec![(
            format!("source {n} must be a map `#{{ ... }}`"),
            "for example `#{ url: \"...\", sha256: \"...\" }`".into(),
        )];
    };
    let mut out = Vec::new();
    for k in m.keys() {
        if !SOURCE_KEYS.contains(&k.as_str()) {
            out.push((
                format!("source {n} has an unknown key `{k}`"),
                format!("source keys are: {}", SOURCE_KEYS.join(", ")),
            ));
        }
    }
    let has_url = m.contains_key("url");
    let has_deb = m.contains_key("debian") && m.contains_key("file");
    if !has_url && !has_deb {
        out.push((
            format!("source {n} names no origin"),
            "give `url: \"https://...\"`, or `debian: \"PACKAGE\", file: \"PACKAGE_VERSION.orig.tar.xz\"`".into(),
        ));
    }
    if m.contains_key("inner") {
        match text(&m, "inner") {
            Some(p) if !p.is_empty() && !p.starts_with('/') && !p.split('/').any(|c| c == "..") => {}
            _ => out.push((
                format!("source {n}: `inner` must be a relative path inside the tarball"),
                "for example `inner: \"gcc-12.2.0-dfsg.tar.xz\"` (the tarball's top directory is left out)".into(),
            )),
        }
    }
    if let Some(v) = m.get("size")
        && v.as_int().map_or(true, |n| n <= 0)
    {
        out.push((
            format!("source {n}: `size` must be a positive number of bytes"),
            "for example `size: 2481300` (what `stat -c %s FILE` prints)".into(),
        ));
    }
    let sha1 = text(&m, "sha1");
    let sha256 = text(&m, "sha256");
    if sha1.is_none() && sha256.is_none() {
        out.push((
            format!("source {n} has no checksum"),
            "add `sha256: \"...\"` (and/or `sha1`), computed from the real file with sha256sum; rhbuild never extracts an unverified download".into(),
        ));
    }
    for (algo, v, len) in [("sha1", sha1, 40), ("sha256", sha256, 64)] {
        if let Some(v) = v
            && (v.len() != len || !v.chars().all(|c| c.is_ascii_hexdigit()))
        {
            out.push((
                format!("source {n}: `{algo}` must be {len} hex digits, found `{v}`"),
                "copy it from sha256sum/sha1sum output".into(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod order_tests {
    use super::*;
    use std::collections::BTreeMap;

    fn order(names: &[&str], graph: &[(&str, &[&str])]) -> Result<Vec<String>, String> {
        let graph: BTreeMap<&str, Vec<String>> = graph
            .iter()
            .map(|(k, v)| (*k, v.iter().map(|s| s.to_string()).collect()))
            .collect();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        build_order(&names, &mut |n| {
            graph
                .get(n)
                .cloned()
                .ok_or_else(|| ScriptError::Other(format!("no package `{n}`")))
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn what_a_package_needs_comes_first_and_once() {
        let g: &[(&str, &[&str])] = &[
            ("dropbear", &["zlib"]),
            ("zlib", &[]),
            ("lua", &[]),
            ("tool", &["zlib", "lua"]),
        ];
        assert_eq!(
            order(&["dropbear", "lua"], g).unwrap(),
            ["zlib", "dropbear", "lua"]
        );
        assert_eq!(
            order(&["tool", "dropbear", "zlib"], g).unwrap(),
            ["zlib", "lua", "tool", "dropbear"]
        );
        assert_eq!(order(&[], g).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_circle_and_an_unknown_package_are_named() {
        let g: &[(&str, &[&str])] = &[
            ("a", &["b"]),
            ("b", &["c"]),
            ("c", &["a"]),
            ("d", &["nope"]),
        ];
        let e = order(&["a"], g).unwrap_err();
        assert!(e.contains("a -> b -> c -> a"), "{e}");
        let e = order(&["d"], g).unwrap_err();
        assert!(
            e.contains("package `d` depends on `nope`: no package `nope`"),
            "{e}"
        );
    }
}
