//! The Rhai engine: strict variables, no `eval`, map-property errors on,
//! explicit operation and call-depth limits, and imports that resolve against
//! the project root (`import "stdlib/cross" as cross;` loads
//! `stdlib/cross.rhai` whichever script imports it), read through the
//! project's `Root` so that neither `..` nor a link leads an import out of
//! the project.
//!
//! The engine knows nothing of the primitives: the composition root
//! (`cli`) registers them (`api::register`) into `ScriptEngine::engine`.

use crate::confine::Root;
use crate::diag::{self, ScriptDiagnostic, SourceLookup};
use crate::project::Project;
use camino::{Utf8Path, Utf8PathBuf};
use rhai::module_resolvers::ModuleResolver;
use rhai::{AST, Engine, EvalAltResult, Module, Position, Scope, Shared};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Operations one script run may take before it is stopped; scripts describe
/// builds and should never come near it.
pub const MAX_OPERATIONS: u64 = 50_000_000;
/// Nesting of function calls.
pub const MAX_CALL_LEVELS: usize = 48;

/// Texts and compiled modules of a project's scripts, shared by the engine's
/// module resolver and the diagnostics.
#[derive(Default)]
struct ScriptStore {
    texts: Mutex<HashMap<Utf8PathBuf, Arc<String>>>,
    modules: Mutex<HashMap<Utf8PathBuf, Shared<Module>>>,
}

/// Resolves `import "dir/name"` to `<root>/dir/name.rhai`.
struct ProjectResolver {
    root: Arc<Root>,
    store: Arc<ScriptStore>,
}

impl ModuleResolver for ProjectResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let rel = module_file(path);
        if let Some(m) = self.store.modules.lock().unwrap().get(&rel) {
            return Ok(m.clone());
        }
        let text = match self.root.read_to_string(&rel) {
            Ok(t) => t,
            Err(_) => {
                return Err(Box::new(EvalAltResult::ErrorModuleNotFound(
                    path.to_string(),
                    pos,
                )));
            }
        };
        self.store
            .texts
            .lock()
            .unwrap()
            .insert(rel.clone(), Arc::new(text.clone()));
        let mut ast = engine
            .compile(&text)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(rel.to_string(), e.into(), pos)))?;
        ast.set_source(rel.as_str());
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(rel.to_string(), e, pos)))?;
        let module: Shared<Module> = module.into();
        self.store
            .modules
            .lock()
            .unwrap()
            .insert(rel, module.clone());
        Ok(module)
    }
}

/// `stdlib/autotools` -> `stdlib/autotools.rhai`.
pub fn module_file(path: &str) -> Utf8PathBuf {
    let p = path.trim_start_matches("./");
    if p.ends_with(".rhai") {
        Utf8PathBuf::from(p)
    } else {
        Utf8PathBuf::from(format!("{p}.rhai"))
    }
}

/// The engine of one project. The primitives are registered into
/// `engine` by whoever composes a program (`cli`).
pub struct ScriptEngine {
    pub engine: Engine,
    pub project: Project,
    /// The project directory, for every read of a script.
    root: Arc<Root>,
    store: Arc<ScriptStore>,
}

impl SourceLookup for ScriptEngine {
    fn text_of(&self, file: &Utf8Path) -> Option<String> {
        if let Some(t) = self.store.texts.lock().unwrap().get(file) {
            return Some(t.as_str().to_string());
        }
        self.root.read_to_string(file).ok()
    }
}

impl ScriptEngine {
    pub fn new(project: Project) -> std::io::Result<Self> {
        let root = Arc::new(Root::open(&project.root)?);
        let store = Arc::new(ScriptStore::default());
        let mut engine = Engine::new();
        engine.set_strict_variables(true);
        // No constant folding: `rhbuild check` must see every call as written
        // (also in branches the optimizer would drop), and positions must
        // point at what the user wrote.
        engine.set_optimization_level(rhai::OptimizationLevel::None);
        engine.disable_symbol("eval");
        engine.set_fail_on_invalid_map_property(true);
        engine.set_max_operations(MAX_OPERATIONS);
        engine.set_max_call_levels(MAX_CALL_LEVELS);
        engine.set_max_expr_depths(64, 64);
        engine.set_max_string_size(64 << 20);
        engine.set_max_array_size(1 << 20);
        engine.set_max_map_size(1 << 16);
        engine.set_module_resolver(ProjectResolver {
            root: root.clone(),
            store: store.clone(),
        });
        // `print` from a script is one line of the run's output.
        engine.on_print(|s| println!("{s}"));
        engine.on_debug(|s, src, pos| {
            eprintln!(
                "debug: {}:{}: {s}",
                src.unwrap_or("?"),
                pos.line().unwrap_or(0)
            )
        });
        Ok(ScriptEngine {
            engine,
            project,
            root,
            store,
        })
    }

    /// A scope with `ctx` declared, for compiling stage scripts under
    /// strict variables (the value is bound when the script runs).
    pub fn stage_scope() -> Scope<'static> {
        let mut scope = Scope::new();
        scope.push_constant("ctx", ());
        scope
    }

    /// The text of a project file, remembered for diagnostics.
    pub fn read(&self, rel: &Utf8Path) -> std::io::Result<Arc<String>> {
        if let Some(t) = self.store.texts.lock().unwrap().get(rel) {
            return Ok(t.clone());
        }
        let text = Arc::new(self.root.read_to_string(rel)?);
        self.store
            .texts
            .lock()
            .unwrap()
            .insert(rel.to_owned(), text.clone());
        Ok(text)
    }

    /// Compile a project file (path relative to the root) with the given
    /// names pre-declared for strict-variable checking.
    pub fn compile(&self, rel: &Utf8Path, scope: &Scope) -> Result<AST, ScriptError> {
        let text = self
            .read(rel)
            .map_err(|e| ScriptError::Io(rel.to_owned(), e))?;
        let mut ast = self
            .engine
            .compile_with_scope(scope, text.as_str())
            .map_err(|e| {
                ScriptError::Diagnostic(Box::new(diag::from_parse_error(rel, &text, &e)))
            })?;
        ast.set_source(rel.as_str());
        Ok(ast)
    }

    /// Run a compiled module file and return it as a module (its exported
    /// constants and functions).
    pub fn load_module(&self, rel: &Utf8Path) -> Result<(AST, Shared<Module>), ScriptError> {
        let ast = self.compile(rel, &Scope::new())?;
        let module = Module::eval_ast_as_new(Scope::new(), &ast, &self.engine)
            .map_err(|e| self.eval_error(rel, &e))?;
        Ok((ast, module.into()))
    }

    /// Read and compile a file for validation: its text and AST, or the
    /// diagnostics that say why it cannot be validated.
    pub fn compile_for_check(
        &self,
        rel: &Utf8Path,
    ) -> Result<(Arc<String>, AST), Vec<ScriptDiagnostic>> {
        let text = self.read(rel).map_err(|e| {
            vec![ScriptDiagnostic::at(
                rel,
                "",
                1,
                1,
                format!("cannot read `{rel}`: {e}"),
                "",
                None,
            )]
        })?;
        let ast = self.compile(rel, &Scope::new()).map_err(|e| match e {
            ScriptError::Diagnostic(d) => vec![*d],
            e => vec![ScriptDiagnostic::at(
                rel,
                &text,
                1,
                1,
                e.to_string(),
                "",
                None,
            )],
        })?;
        Ok((text, ast))
    }

    /// A runtime error as a diagnostic located in the file where it happened.
    pub fn eval_error(&self, top: &Utf8Path, err: &EvalAltResult) -> ScriptError {
        ScriptError::Diagnostic(Box::new(diag::from_eval_error(top, err, self)))
    }

    /// A file and everything it imports, transitively, with their texts'
    /// SHA-256: the script inputs a stage's manifest records.
    pub fn script_closure(
        &self,
        rel: &Utf8Path,
    ) -> Result<Vec<(Utf8PathBuf, String)>, ScriptError> {
        let mut seen: Vec<(Utf8PathBuf, String)> = Vec::new();
        let mut todo = vec![rel.to_owned()];
        while let Some(f) = todo.pop() {
            if seen.iter().any(|(s, _)| *s == f) {
                continue;
            }
            let text = self.read(&f).map_err(|e| ScriptError::Io(f.clone(), e))?;
            seen.push((f.clone(), crate::checksum::sha256_bytes(text.as_bytes())));
            // With `ctx` declared, as stage scripts are compiled: under
            // strict variables a stage script would not compile without
            // it, and its imports would go unrecorded.
            let mut ast = match self
                .engine
                .compile_with_scope(&Self::stage_scope(), text.as_str())
            {
                Ok(a) => a,
                Err(_) => continue,
            };
            ast.set_source(f.as_str());
            todo.extend(imports(&ast).into_iter().map(|i| i.file));
        }
        seen.sort();
        Ok(seen)
    }
}

/// Why a script could not be compiled or run.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ScriptError {
    #[error("cannot read `{0}`: {1}")]
    #[diagnostic(help("check that the file exists and is readable"))]
    Io(Utf8PathBuf, std::io::Error),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Diagnostic(Box<ScriptDiagnostic>),
    #[error("{0}")]
    Other(String),
}

/// One `import "path" as alias;` of a script.
pub struct Import {
    /// The alias; empty for an import without `as`.
    pub alias: String,
    /// The module's file, relative to the project root.
    pub file: Utf8PathBuf,
    pub pos: Position,
}

/// Every import with a literal path, anywhere in a script, in order.
pub fn imports(ast: &AST) -> Vec<Import> {
    let mut out = Vec::new();
    ast.walk(&mut |nodes| {
        if let Some(rhai::ASTNode::Stmt(rhai::Stmt::Import(x, pos))) = nodes.last()
            && let rhai::Expr::StringConstant(path, _) = &x.0
        {
            out.push(Import {
                alias: x.1.name.to_string(),
                file: module_file(path),
                pos: *pos,
            });
        }
        true
    });
    out
}

/// A top-level `export const NAME = ...;` of a script: name, position of
/// the name, and the expression.
pub struct ExportedConst<'a> {
    pub name: &'a str,
    pub pos: Position,
    pub expr: &'a rhai::Expr,
}

/// The exported constants of a script, in order.
pub fn exported_consts(ast: &AST) -> Vec<ExportedConst<'_>> {
    ast.statements()
        .iter()
        .filter_map(|s| match s {
            rhai::Stmt::Var(x, flags, _) if flags.contains(rhai::ASTFlags::EXPORTED) => {
                Some(ExportedConst {
                    name: x.0.name.as_str(),
                    pos: x.0.pos,
                    expr: &x.1,
                })
            }
            _ => None,
        })
        .collect()
}

/// Whether a script exports `name` as the literal `true`.
pub fn literal_true(ast: &AST, name: &str) -> bool {
    exported_consts(ast)
        .into_iter()
        .any(|c| c.name == name && matches!(c.expr, rhai::Expr::BoolConstant(true, _)))
}

/// A script's literal string constant `name`, if it exports one.
pub fn literal_const(ast: &AST, name: &str) -> Option<String> {
    exported_consts(ast)
        .into_iter()
        .find(|c| c.name == name)
        .and_then(|c| match c.expr {
            rhai::Expr::StringConstant(s, _) => Some(s.to_string()),
            _ => None,
        })
}
