//! `Dir`: a directory commands run in, and its kernel configuration.

use super::{RhaiResult, env_map, fail, lift, strings};
use crate::stage::Ctx;
use camino::{Utf8Path, Utf8PathBuf};
use rhai::{Array, Dynamic, Engine, ImmutableString, Map};
use std::collections::BTreeMap;

/// A directory a script works in: commands run there.
#[derive(Clone)]
pub struct Dir {
    ctx: Ctx,
    path: Utf8PathBuf,
}

impl Dir {
    pub fn new(ctx: &Ctx, path: Utf8PathBuf) -> Dir {
        Dir {
            ctx: ctx.clone(),
            path,
        }
    }

    fn at(&self, rel: &str) -> String {
        self.path.join(rel).to_string()
    }

    fn run(&self, argv: Vec<String>, env: BTreeMap<String, String>) -> RhaiResult<()> {
        lift(self.ctx.run_cmd(&self.path, argv, env))
    }

    /// A runner for kconfig's expander: commands in the airlock, in `cwd`.
    fn runner(&self) -> impl FnMut(&[String], &Utf8Path) -> Result<(), String> + use<> {
        let ctx = self.ctx.clone();
        move |argv: &[String], cwd: &Utf8Path| ctx.run_cmd(cwd, argv.to_vec(), BTreeMap::new())
    }
}

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Dir>("Dir");
    engine.register_get("path", |d: &mut Dir| d.path.to_string());
    engine.register_fn("file", |d: &mut Dir, rel: &str| d.at(rel));
    engine.register_fn("to_string", |d: &mut Dir| d.path.to_string());
    engine.register_fn("exists", |d: &mut Dir, rel: &str| {
        lift(d.ctx.exists(&d.at(rel)))
    });
    engine.register_fn("dir", |d: &mut Dir, rel: &str| -> RhaiResult<Dir> {
        lift(d.ctx.make_dir(&d.at(rel)))?;
        Ok(Dir::new(&d.ctx, d.path.join(rel)))
    });

    // Commands.
    engine.register_fn("run", |d: &mut Dir, argv: Array| -> RhaiResult<()> {
        d.run(strings(&argv, "the command")?, BTreeMap::new())
    });
    engine.register_fn(
        "run",
        |d: &mut Dir, argv: Array, env: Map| -> RhaiResult<()> {
            d.run(strings(&argv, "the command")?, env_map(&env)?)
        },
    );
    engine.register_fn(
        "run_on_terminal",
        |d: &mut Dir, argv: Array| -> RhaiResult<()> {
            let argv = strings(&argv, "the command")?;
            lift(d.ctx.run_on_terminal(&d.path, argv))
        },
    );
    engine.register_fn("output", |d: &mut Dir, argv: Array| -> RhaiResult<String> {
        let argv = strings(&argv, "the command")?;
        lift(
            d.ctx
                .output_cmd(&d.path, argv, BTreeMap::new())
                .map(|o| o.trim().to_string()),
        )
    });
    engine.register_fn("make", |d: &mut Dir, args: Array| -> RhaiResult<()> {
        let mut argv = vec!["make".to_string()];
        argv.extend(strings(&args, "make's arguments")?);
        d.run(argv, BTreeMap::new())
    });
    engine.register_fn(
        "make",
        |d: &mut Dir, args: Array, env: Map| -> RhaiResult<()> {
            let mut argv = vec!["make".to_string()];
            argv.extend(strings(&args, "make's arguments")?);
            d.run(argv, env_map(&env)?)
        },
    );

    // Kernel configuration.
    engine.register_fn(
        "kconfig_set",
        |d: &mut Dir, rel: &str, symbols: Map| -> RhaiResult<()> {
            let symbols = kconfig_values(&symbols)?;
            lift(d.ctx.kconfig_set(&d.at(rel), &symbols))
        },
    );
    engine.register_fn(
        "kconfig_get",
        |d: &mut Dir, rel: &str, symbol: &str| -> RhaiResult<Dynamic> {
            let v = lift(d.ctx.kconfig_get(&d.at(rel), symbol))?;
            Ok(v.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
        },
    );
    engine.register_fn(
        "allnoconfig",
        |d: &mut Dir, minis: Array, make_args: Array| -> RhaiResult<()> {
            let minis = strings(&minis, "the miniconfig list")?;
            let make_args = strings(&make_args, "make's arguments")?;
            let mini = lift(d.ctx.miniconfig(&minis))?;
            let (src, out, rest) = crate::kconfig::split_make_args(&d.path, &make_args);
            let out = output_dir(d, &out)?;
            // The kernel's allnoconfig, or busybox's equivalent (detected
            // from the tree: its allnoconfig ignores KCONFIG_ALLCONFIG).
            let mut expander = crate::kconfig::make_expander(&src, out, rest, d.runner());
            crate::kconfig::expand(&mini, &mut expander)
                .map(drop)
                .map_err(|e| fail(e.to_string()))
        },
    );
    engine.register_fn(
        "shrink_config",
        |d: &mut Dir, full: &str, out: &str, base: Array, make_args: Array| -> RhaiResult<String> {
            let base = strings(&base, "the base miniconfigs")?;
            shrink_over(d, full, out, &base, make_args)
        },
    );
    engine.register_fn(
        "shrink_config",
        |d: &mut Dir, full: &str, out: &str, make_args: Array| -> RhaiResult<String> {
            shrink_over(d, full, out, &[], make_args)
        },
    );
}

/// Kconfig's output directory (`O=`), which this process writes in outside
/// the sandbox: beneath the build directory, created and opened there
/// without following a link out of it.
fn output_dir(d: &Dir, out: &Utf8Path) -> RhaiResult<crate::confine::Root> {
    lift(
        d.ctx
            .run
            .policy
            .build_subdir(out)
            .map_err(|e| format!("kconfig's output directory (`O=`): {e}")),
    )
}

/// The smallest miniconfig that, applied after the `base` files (none: on
/// its own), expands in `d` (out of tree in `out`) to the `.config` `full`.
fn shrink_over(
    d: &mut Dir,
    full: &str,
    out: &str,
    base: &[String],
    make_args: Array,
) -> RhaiResult<String> {
    let base = lift(d.ctx.miniconfig(base))?;
    let base_for_probes = base.clone();
    let make_args = strings(&make_args, "make's arguments")?;
    let text = lift(d.ctx.read_text(full))?;
    let cfg = crate::kconfig::DotConfig::parse_str(&text);
    let out = output_dir(d, Utf8Path::new(out))?;
    let mut inner = crate::kconfig::make_expander(&d.path, out, make_args, d.runner());
    let mut over = |m: &crate::kconfig::Miniconfig| {
        let mut all = base.clone();
        all.merge(m.clone());
        inner(&all)
    };
    crate::kconfig::shrink_over(&cfg, &base_for_probes, &mut over)
        .map(|m| m.render())
        .map_err(|e| fail(e.to_string()))
}

/// A script's symbol map as kconfig values.
fn kconfig_values(symbols: &Map) -> RhaiResult<Vec<(String, crate::kconfig::Value)>> {
    use crate::kconfig::Value;
    symbols
        .iter()
        .map(|(k, v)| {
            let value = if let Some(b) = v.clone().try_cast::<bool>() {
                Value::Bool(b)
            } else if let Some(i) = v.clone().try_cast::<i64>() {
                Value::Int(i)
            } else if let Some(s) = v.clone().try_cast::<ImmutableString>() {
                match s.as_str() {
                    "y" | "m" | "n" => Value::Tristate(s.chars().next().unwrap_or('n')),
                    _ => Value::Text(s.to_string()),
                }
            } else {
                return Err(fail(format!(
                    "kconfig_set: `{k}` must be true, false, a number or a string"
                )));
            };
            Ok((k.to_string(), value))
        })
        .collect()
}
