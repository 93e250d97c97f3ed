//! `rhbuild check`: compile every script and validate package and target
//! metadata without building anything.
//!
//! Rhai resolves function names only when a call runs, so a misspelt
//! primitive in a rarely taken branch would otherwise surface hours into a
//! build. The checker walks each AST and compares every call against the
//! registered API, the script's own functions and the functions of the
//! modules it imports.

use crate::diag::ScriptDiagnostic;
use crate::engine::{ScriptEngine, ScriptError};
use camino::{Utf8Path, Utf8PathBuf};
use rhai::{AST, ASTNode, Expr};
use std::collections::{BTreeMap, BTreeSet};

/// Built-in keywords Rhai handles itself rather than as registered functions.
const KEYWORDS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "this",
    "throw",
];

/// What kind of file is checked decides the scope it compiles with and the
/// metadata rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Script,
    Package,
    Target,
    Stdlib,
    /// A kernel miniconfig (`targets/base-linux.config`,
    /// `targets/<arch>/linux.config`).
    Miniconfig,
}

/// Which kind a project file is, by its folder.
pub fn kind_of(rel: &Utf8Path) -> Kind {
    if rel.extension() == Some("config") {
        return Kind::Miniconfig;
    }
    let first = rel.components().next().map(|c| c.as_str()).unwrap_or("");
    match first {
        "packages" => Kind::Package,
        "targets" => Kind::Target,
        "stdlib" => Kind::Stdlib,
        _ => Kind::Script,
    }
}

/// Every `.rhai` file `check` looks at by default, relative to the root.
pub fn default_files(engine: &ScriptEngine) -> Vec<Utf8PathBuf> {
    let p = &engine.project;
    let mut out = Vec::new();
    for dir in ["scripts", "packages", "stdlib"] {
        for n in p.names_in(&p.root.join(dir)) {
            out.push(Utf8PathBuf::from(format!("{dir}/{n}.rhai")));
        }
    }
    if p.root.join("targets/base-linux.config").is_file() {
        out.push(Utf8PathBuf::from("targets/base-linux.config"));
    }
    for t in p.target_names() {
        out.push(Utf8PathBuf::from(format!("targets/{t}/target.rhai")));
        if p.root.join(format!("targets/{t}/linux.config")).is_file() {
            out.push(Utf8PathBuf::from(format!("targets/{t}/linux.config")));
        }
    }
    out
}

/// The names the engine knows as functions (including getters as
/// `get$name`), computed once per check.
pub struct KnownApi {
    names: BTreeSet<String>,
    static_modules: BTreeMap<String, BTreeSet<String>>,
    /// A kernel tree and the symbols its Kconfig files declare, when one
    /// is at hand: miniconfig symbols are checked against it.
    pub kernel: Option<(Utf8PathBuf, std::collections::HashSet<String>)>,
}

impl KnownApi {
    pub fn of(engine: &ScriptEngine) -> Self {
        let mut names: BTreeSet<String> = KEYWORDS.iter().map(|s| s.to_string()).collect();
        for sig in engine.engine.gen_fn_signatures(true) {
            if let Some(name) = fn_name_of_signature(&sig) {
                names.insert(name);
            }
        }
        KnownApi {
            names,
            static_modules: BTreeMap::new(),
            kernel: None,
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

/// `fn name(a: T) -> R` or `name(a: T) -> R` -> `name`.
fn fn_name_of_signature(sig: &str) -> Option<String> {
    let s = sig.trim_start_matches("pub ").trim_start_matches("fn ");
    let end = s.find('(')?;
    let name = s[..end].trim();
    let name = name.rsplit("::").next().unwrap_or(name);
    (!name.is_empty()).then(|| name.to_string())
}

/// A kernel tree to check miniconfig symbols against: `given`, else the
/// newest extracted `linux-*` tree under the project's `build/src/`.
pub fn kernel_tree(engine: &ScriptEngine, given: Option<&Utf8Path>) -> Option<Utf8PathBuf> {
    if let Some(g) = given {
        return Some(g.to_owned());
    }
    let src = engine.project.root.join("build/src");
    let mut trees: Vec<(std::time::SystemTime, Utf8PathBuf)> = std::fs::read_dir(&src)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let path = src.join(&name);
            (name.starts_with("linux-") && path.join("Kconfig").is_file()).then(|| {
                (
                    e.metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .unwrap_or(std::time::UNIX_EPOCH),
                    path,
                )
            })
        })
        .collect();
    trees.sort();
    trees.pop().map(|(_, p)| p)
}

/// Check files and return every problem found, in file order; miniconfig
/// symbols are checked against `kernel` when given.
pub fn check_files_with_kernel(
    engine: &ScriptEngine,
    files: &[Utf8PathBuf],
    kernel: Option<&Utf8Path>,
) -> Result<Vec<ScriptDiagnostic>, String> {
    let mut api = KnownApi::of(engine);
    if let Some(tree) = kernel {
        let symbols = crate::kconfig::declared_symbols(tree)
            .map_err(|e| format!("cannot read the kernel tree `{tree}`: {e}"))?;
        api.kernel = Some((tree.to_owned(), symbols));
    }
    let mut out = Vec::new();
    for f in files {
        out.extend(check_file(engine, &api, f));
    }
    Ok(out)
}

/// Check files and return every problem found, in file order.
pub fn check_files(engine: &ScriptEngine, files: &[Utf8PathBuf]) -> Vec<ScriptDiagnostic> {
    let api = KnownApi::of(engine);
    let mut out = Vec::new();
    for f in files {
        out.extend(check_file(engine, &api, f));
    }
    out
}

/// Check one file (relative to the project root).
pub fn check_file(engine: &ScriptEngine, api: &KnownApi, rel: &Utf8Path) -> Vec<ScriptDiagnostic> {
    let kind = kind_of(rel);
    if kind == Kind::Miniconfig {
        return check_miniconfig(engine, api, rel);
    }
    let scope = match kind {
        Kind::Script => crate::engine::ScriptEngine::stage_scope(),
        _ => rhai::Scope::new(),
    };
    let ast = match engine.compile(rel, &scope) {
        Ok(a) => a,
        Err(ScriptError::Diagnostic(d)) => return vec![*d],
        Err(e) => return vec![ScriptDiagnostic::at(rel, "", 1, 1, e.to_string(), "", None)],
    };
    let text = engine.read(rel).map(|t| t.to_string()).unwrap_or_default();
    let mut out = unknown_calls(engine, api, rel, &text, &ast);
    match kind {
        Kind::Package => out.extend(crate::package::validate(engine, rel)),
        Kind::Target => out.extend(crate::target::validate(engine, rel)),
        Kind::Script | Kind::Stdlib | Kind::Miniconfig => {}
    }
    out
}

/// A miniconfig: every line well-formed (with file:line:column), and, with
/// a kernel tree at hand, every symbol declared by its Kconfig files.
fn check_miniconfig(
    engine: &ScriptEngine,
    api: &KnownApi,
    rel: &Utf8Path,
) -> Vec<ScriptDiagnostic> {
    let text = match std::fs::read_to_string(engine.project.root.join(rel)) {
        Ok(t) => t,
        Err(e) => {
            return vec![ScriptDiagnostic::at(
                rel,
                "",
                1,
                1,
                format!("cannot read `{rel}`: {e}"),
                "",
                None,
            )];
        }
    };
    let mut out: Vec<ScriptDiagnostic> = crate::kconfig::malformed_lines(&text)
        .into_iter()
        .map(|p| {
            ScriptDiagnostic::at(
                rel,
                &text,
                p.line,
                p.column,
                p.reason,
                p.label,
                Some("each line is `CONFIG_NAME=y` (or m, n, a number, 0x-hex, a \"quoted string\"), `# CONFIG_NAME is not set`, a `#` comment or blank".into()),
            )
        })
        .collect();
    if let Some((tree, declared)) = &api.kernel {
        for (symbol, line, column) in crate::kconfig::symbols_with_lines(&text) {
            if !declared.contains(&symbol) {
                out.push(ScriptDiagnostic::at(
                    rel,
                    &text,
                    line,
                    column,
                    format!("`CONFIG_{symbol}` is declared by no Kconfig file of `{tree}`"),
                    "unknown symbol",
                    Some("check its spelling (`make menuconfig`, then `/` searches); it may belong to another kernel version".into()),
                ));
            }
        }
    }
    out
}

/// Where a script reads a setting by a literal name: the file, its line,
/// and the literal default when the call gives one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingRead {
    pub file: Utf8PathBuf,
    pub line: usize,
    pub default: Option<String>,
}

/// Every setting the project's scripts, packages and stdlib read with
/// `ctx.setting("NAME")` or `ctx.setting("NAME", "DEFAULT")`, by name.
pub fn settings_read(engine: &ScriptEngine) -> BTreeMap<String, Vec<SettingRead>> {
    let mut out: BTreeMap<String, Vec<SettingRead>> = BTreeMap::new();
    for rel in default_files(engine) {
        let kind = kind_of(&rel);
        if matches!(kind, Kind::Target | Kind::Miniconfig) {
            continue;
        }
        let scope = match kind {
            Kind::Script => ScriptEngine::stage_scope(),
            _ => rhai::Scope::new(),
        };
        let Ok(ast) = engine.compile(&rel, &scope) else {
            continue;
        };
        ast.walk(&mut |nodes| {
            if let Some(ASTNode::Expr(Expr::MethodCall(x, pos))) = nodes.last()
                && x.name.as_str() == "setting"
                && let Some(Expr::StringConstant(name, _)) = x.args.first()
            {
                let default = match x.args.get(1) {
                    Some(Expr::StringConstant(d, _)) => Some(d.to_string()),
                    _ => None,
                };
                out.entry(name.to_string()).or_default().push(SettingRead {
                    file: rel.clone(),
                    line: pos.line().unwrap_or(0),
                    default,
                });
            }
            true
        });
    }
    out
}

/// Imports of a script: alias -> (module file, position of the import).
fn imports(ast: &AST) -> BTreeMap<String, (Utf8PathBuf, rhai::Position)> {
    crate::engine::imports(ast)
        .into_iter()
        .filter(|i| !i.alias.is_empty())
        .map(|i| (i.alias, (i.file, i.pos)))
        .collect()
}

/// Functions a module file defines (public ones, as an importer sees them).
fn module_functions(engine: &ScriptEngine, file: &Utf8Path) -> Option<BTreeSet<String>> {
    let ast = engine.compile(file, &rhai::Scope::new()).ok()?;
    Some(
        ast.iter_functions()
            .filter(|f| f.access != rhai::FnAccess::Private)
            .map(|f| f.name.to_string())
            .collect(),
    )
}

fn unknown_calls(
    engine: &ScriptEngine,
    api: &KnownApi,
    rel: &Utf8Path,
    text: &str,
    ast: &AST,
) -> Vec<ScriptDiagnostic> {
    let own: BTreeSet<String> = ast.iter_functions().map(|f| f.name.to_string()).collect();
    let imported = imports(ast);
    let mut out = Vec::new();
    for (alias, (file, pos)) in &imported {
        if !engine.project.root.join(file).is_file() {
            out.push(ScriptDiagnostic::at(
                rel,
                text,
                pos.line().unwrap_or(1),
                pos.position().unwrap_or(1),
                format!("import `{alias}`: no file `{file}`"),
                "imported here",
                Some("imports name a file relative to the project root, without `.rhai`".into()),
            ));
        }
    }
    let module_fns: BTreeMap<&str, BTreeSet<String>> = imported
        .iter()
        .filter_map(|(alias, (file, _))| {
            module_functions(engine, file).map(|f| (alias.as_str(), f))
        })
        .collect();
    let mut report = |name: String, pos: rhai::Position, help: String| {
        out.push(ScriptDiagnostic::at(
            rel,
            text,
            pos.line().unwrap_or(1),
            pos.position().unwrap_or(1),
            format!("unknown function `{name}`"),
            "not defined anywhere",
            Some(help),
        ));
    };
    ast.walk(&mut |nodes| {
        match nodes.last() {
            Some(ASTNode::Expr(Expr::FnCall(x, pos))) => {
                if x.is_operator_call() {
                    return true;
                }
                let name = x.name.as_str();
                if x.namespace.is_empty() {
                    if !api.has(name) && !own.contains(name) {
                        report(name.to_string(), *pos, suggestion(api, &own, name));
                    }
                } else {
                    let ns = x.namespace.to_string();
                    let ns = ns.trim_end_matches("::").to_string();
                    let known = module_fns
                        .get(ns.as_str())
                        .or_else(|| api.static_modules.get(&ns))
                        .map(|fns| fns.contains(name));
                    // A module that exists but does not compile is reported
                    // on its own; its callers are not blamed.
                    let broken = imported.get(&ns).is_some_and(|(f, _)| engine.project.root.join(f).is_file());
                    match known {
                        None if broken => {}
                        Some(true) => {}
                        Some(false) => report(
                            format!("{ns}::{name}"),
                            *pos,
                            format!("module `{ns}` defines no public function `{name}`"),
                        ),
                        None => report(
                            format!("{ns}::{name}"),
                            *pos,
                            format!("no module `{ns}` is imported; add `import \"stdlib/{ns}\" as {ns};` or similar"),
                        ),
                    }
                }
            }
            Some(ASTNode::Expr(Expr::MethodCall(x, pos))) => {
                let name = x.name.as_str();
                if !api.has(name) && !own.contains(name) {
                    report(name.to_string(), *pos, suggestion(api, &own, name));
                }
            }
            _ => {}
        }
        true
    });
    out
}

/// "did you mean" for a misspelt name: the closest known name by edit
/// distance, when it is close.
fn suggestion(api: &KnownApi, own: &BTreeSet<String>, name: &str) -> String {
    let best = api
        .names
        .iter()
        .chain(own.iter())
        .filter(|n| !n.contains('$'))
        .map(|n| (edit_distance(n, name), n))
        .min();
    match best {
        Some((d, n)) if d <= 2 || d * 3 <= name.len() => {
            format!("did you mean `{n}`? The primitives are listed in docs/primitives.md")
        }
        _ => "define it in this script, import the module that has it, or see docs/primitives.md for the primitives".into(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_names() {
        assert_eq!(
            fn_name_of_signature("fn setting(_: Ctx, k: &str) -> String").as_deref(),
            Some("setting")
        );
        assert_eq!(
            fn_name_of_signature("get$arch(_: Ctx) -> String").as_deref(),
            Some("get$arch")
        );
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("setting", "settign"), 2);
        assert_eq!(edit_distance("build", "build"), 0);
    }
}
