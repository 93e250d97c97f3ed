//! Targets: one folder per architecture under `targets/`, holding
//! `target.rhai` (exported constants: the target's settings) and
//! `linux.config` (the board's kernel miniconfig). Nothing in `src/` names an
//! architecture; everything specific lives in those files.

use crate::diag::ScriptDiagnostic;
use crate::engine::{ScriptEngine, ScriptError, exported_consts};
use camino::{Utf8Path, Utf8PathBuf};
use rhai::Dynamic;
use std::collections::BTreeMap;

/// Settings every target must define, and what each is for.
pub const REQUIRED: &[(&str, &str)] = &[
    ("DESCRIPTION", "one line saying what CPU and board this is"),
    (
        "TRIPLE",
        "the toolchain's target triple, which names its tools, for example \"sh4-linux-musl\"",
    ),
    ("KARCH", "the kernel's ARCH= name, for example \"sh\""),
    (
        "KERNEL_IMAGE",
        "the kernel image's path in the kernel build, for example \"arch/sh/boot/zImage\"",
    ),
    (
        "DEBIAN_CROSS_COMPILE",
        "the prefix of Debian's cross compiler for this CPU (used with TOOLCHAIN=debian), for example \"sh4-linux-gnu-\"",
    ),
    (
        "CROSS_PACKAGE",
        "the Debian package that provides it, for example \"gcc-sh4-linux-gnu\"",
    ),
    (
        "QEMU",
        "the system emulator, for example \"qemu-system-sh4\"",
    ),
    (
        "QEMU_PACKAGE",
        "the Debian package that provides it, for example \"qemu-system-misc\"",
    ),
    (
        "QEMU_MACHINE",
        "QEMU's board and serial options, for example \"-M r2d -serial null -serial mon:stdio\"",
    ),
    (
        "QEMU_USER",
        "the user-mode emulator for the toolchain sanity check, for example \"qemu-sh4-static\"",
    ),
    (
        "CONSOLE",
        "the kernel's serial console device, for example \"ttySC1\"",
    ),
];

/// The directory a per-host stage's output, logs and work go in, beneath
/// the build directory (also where scripts across targets keep theirs):
/// no target may take its name.
pub const PER_HOST_DIR: &str = "all";

/// A loaded target.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    /// `targets/<name>`, absolute.
    pub dir: Utf8PathBuf,
    /// `targets/<name>/target.rhai`, relative to the project root.
    pub file: Utf8PathBuf,
    pub settings: BTreeMap<String, String>,
}

/// The settings of a settings file (a project's `local.rhai`, or the file
/// `--settings` names): its exported UPPER_CASE constants, as text.
pub fn load_settings_file(
    engine: &ScriptEngine,
    path: &Utf8Path,
) -> Result<BTreeMap<String, String>, ScriptError> {
    let abs = crate::project::absolute(path);
    let rel = match abs.strip_prefix(&engine.project.root) {
        Ok(r) => r.to_owned(),
        Err(_) => {
            // Outside the project: read it as it is.
            let text =
                std::fs::read_to_string(&abs).map_err(|e| ScriptError::Io(abs.clone(), e))?;
            let ast = engine.engine.compile(&text).map_err(|e| {
                ScriptError::Diagnostic(Box::new(crate::diag::from_parse_error(&abs, &text, &e)))
            })?;
            let module = rhai::Module::eval_ast_as_new(rhai::Scope::new(), &ast, &engine.engine)
                .map_err(|e| ScriptError::Other(format!("`{abs}`: {e}")))?;
            return Ok(module
                .iter_var()
                .filter_map(|(k, v)| setting_text(v).map(|t| (k.to_string(), t)))
                .collect());
        }
    };
    let (_, module) = engine.load_module(&rel)?;
    Ok(module
        .iter_var()
        .filter_map(|(k, v)| setting_text(v).map(|t| (k.to_string(), t)))
        .collect())
}

impl Target {
    /// The stand-in of a script that runs across targets
    /// (`export const all_targets = true;`) when no `--arch` is given: no
    /// settings, its files under `build/all/`.
    pub fn all(engine: &ScriptEngine) -> Target {
        Target {
            name: "all".into(),
            dir: engine.project.targets(),
            file: Utf8PathBuf::new(),
            settings: BTreeMap::new(),
        }
    }
}

/// A setting's value as text: strings as they are, numbers and booleans
/// printed, arrays joined with spaces.
pub fn setting_text(v: &Dynamic) -> Option<String> {
    if let Some(s) = v.clone().try_cast::<rhai::ImmutableString>() {
        return Some(s.to_string());
    }
    if let Some(a) = v.clone().try_cast::<rhai::Array>() {
        let parts: Option<Vec<String>> = a.iter().map(setting_text).collect();
        return parts.map(|p| p.join(" "));
    }
    if v.is_int() || v.is_bool() || v.is_float() || v.is_char() {
        return Some(v.to_string());
    }
    None
}

/// The setting that makes a target a variant of another: `BASED_ON =
/// "mips64el"` takes that target's settings (its own win) and its kernel
/// miniconfig (its own `linux.config` applies after it, see
/// stdlib/config.rhai), and a file `ctx.target_file` does not find in the
/// variant's folder comes from the base's. One level only: a base is a
/// target of its own.
pub const BASED_ON: &str = "BASED_ON";

/// Load `targets/<name>/target.rhai` and check it (every required setting
/// present, itself or through `BASED_ON`, every value a string, number,
/// boolean or array of them, a `linux.config` beside it).
pub fn load(engine: &ScriptEngine, name: &str) -> Result<Target, ScriptError> {
    if name == PER_HOST_DIR {
        return Err(ScriptError::Other(format!(
            "`targets/{name}` cannot be a target: build/{name} holds what every target shares (per-host stages, build-all's report); rename the folder"
        )));
    }
    let own = load_one(engine, name)?;
    let Some(base) = own.settings.get(BASED_ON).cloned() else {
        return Ok(own);
    };
    let file = &own.file;
    if base == name
        || !engine
            .project
            .root
            .join(format!("targets/{base}/target.rhai"))
            .is_file()
    {
        return Err(ScriptError::Other(format!(
            "`{file}` says BASED_ON = \"{base}\", which is not another target (targets: {}); name the folder this target varies",
            engine.project.target_names().join(", ")
        )));
    }
    let parent = load_one(engine, &base)?;
    if let Some(grand) = parent.settings.get(BASED_ON) {
        return Err(ScriptError::Other(format!(
            "`{file}` says BASED_ON = \"{base}\", but `{}` is itself based on `{grand}`: base `{name}` on `{grand}` directly (one level of variants)",
            parent.file
        )));
    }
    let mut settings = parent.settings;
    settings.extend(own.settings);
    let missing: Vec<&str> = REQUIRED
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| !settings.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(ScriptError::Other(format!(
            "target `{name}` and its base `{base}` lack {}: add them to `{file}`",
            missing.join(", ")
        )));
    }
    Ok(Target { settings, ..own })
}

/// One target file, without its base.
fn load_one(engine: &ScriptEngine, name: &str) -> Result<Target, ScriptError> {
    let rel = Utf8PathBuf::from(format!("targets/{name}/target.rhai"));
    if !engine.project.root.join(&rel).is_file() {
        let known = engine.project.target_names().join(", ");
        return Err(ScriptError::Other(format!(
            "no target `{name}`: `{rel}` does not exist (targets: {known}); add a folder with a target.rhai to make one"
        )));
    }
    if let Some(d) = validate(engine, &rel).into_iter().next() {
        return Err(ScriptError::Diagnostic(Box::new(d)));
    }
    let (_, module) = engine.load_module(&rel)?;
    let settings = module
        .iter_var()
        .filter_map(|(k, v)| setting_text(v).map(|t| (k.to_string(), t)))
        .collect();
    Ok(Target {
        name: name.to_string(),
        dir: engine.project.targets().join(name),
        file: rel,
        settings,
    })
}

/// Every problem with a target file, as diagnostics (empty when it is fine).
pub fn validate(engine: &ScriptEngine, rel: &Utf8Path) -> Vec<ScriptDiagnostic> {
    let (text, ast) = match engine.compile_for_check(rel) {
        Ok(x) => x,
        Err(diags) => return diags,
    };
    let consts = exported_consts(&ast);
    let mut out = Vec::new();
    // A variant gets what it does not say from its base (checked by `load`).
    let variant = consts.iter().any(|c| c.name == BASED_ON);
    for (field, what) in REQUIRED {
        if !variant && !consts.iter().any(|c| c.name == *field) {
            out.push(ScriptDiagnostic::at(
                rel,
                &text,
                1,
                1,
                format!("target `{rel}` lacks the required setting `{field}`"),
                "in this file",
                Some(format!("add `export const {field} = ...;`: {what}")),
            ));
        }
    }
    for c in &consts {
        let ok = matches!(
            c.expr,
            rhai::Expr::StringConstant(..)
                | rhai::Expr::IntegerConstant(..)
                | rhai::Expr::BoolConstant(..)
                | rhai::Expr::Array(..)
                | rhai::Expr::InterpolatedString(..)
                | rhai::Expr::DynamicConstant(..)
        );
        if !ok
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
        {
            out.push(ScriptDiagnostic::at(
                rel,
                &text,
                c.pos.line().unwrap_or(1),
                c.pos.position().unwrap_or(1),
                format!("target setting `{}` must be an UPPER_CASE name with a string, number, boolean or array value", c.name),
                "this setting",
                Some("target files hold settings only; logic belongs in scripts/ or stdlib/".into()),
            ));
        }
    }
    let dir = engine
        .project
        .root
        .join(rel)
        .parent()
        .map(|p| p.to_owned())
        .unwrap_or_default();
    if !dir.join("linux.config").is_file() {
        out.push(ScriptDiagnostic::at(
            rel,
            &text,
            1,
            1,
            format!(
                "target folder `{}` has no `linux.config`",
                engine.project.relative(&dir)
            ),
            "target defined here",
            Some("add the board's kernel miniconfig (CONFIG_X=y lines) beside target.rhai".into()),
        ));
    }
    out
}
