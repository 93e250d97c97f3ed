//! The primitives as scripts see them. A thin layer: each function converts
//! its arguments, calls into `stage`, `kconfig`, `image` or `qemu`, and turns
//! a failure into a script error at the call site. No logic lives here.
//!
//! The reference for script writers is docs/primitives.md; keep it in step.

use crate::stage::{Ctx, PrimResult};
use camino::{Utf8Path, Utf8PathBuf};
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map, Position};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

fn fail(msg: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(msg.into()),
        Position::NONE,
    ))
}

fn lift<T>(r: PrimResult<T>) -> RhaiResult<T> {
    r.map_err(fail)
}

/// An array of strings (numbers are accepted and printed).
fn strings(a: &Array, what: &str) -> RhaiResult<Vec<String>> {
    a.iter()
        .map(|v| {
            if v.is_string() || v.is_int() || v.is_float() || v.is_bool() {
                Ok(v.to_string())
            } else {
                Err(fail(format!(
                    "{what} must hold strings, found a `{}`",
                    v.type_name()
                )))
            }
        })
        .collect()
}

fn env_map(m: &Map) -> RhaiResult<BTreeMap<String, String>> {
    m.iter()
        .map(|(k, v)| {
            if v.is_string() || v.is_int() || v.is_bool() {
                Ok((k.to_string(), v.to_string()))
            } else {
                Err(fail(format!(
                    "environment variable `{k}` must be a string, found a `{}`",
                    v.type_name()
                )))
            }
        })
        .collect()
}

/// A directory a script works in: commands run there.
#[derive(Clone)]
pub struct Dir {
    ctx: Ctx,
    path: Utf8PathBuf,
}

/// A file server on the host's loopback (see `serve`).
#[derive(Clone)]
pub struct Server {
    inner: Arc<Mutex<Option<crate::serve::FileServer>>>,
    port: i64,
}

/// The host's distccd on the loopback (see `distccd`).
#[derive(Clone)]
pub struct Distcc {
    inner: Arc<Mutex<crate::serve::Distccd>>,
    port: i64,
    log: String,
}

/// A running emulator's serial console.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Mutex<Option<crate::qemu::QemuConsole>>>,
    log: Utf8PathBuf,
    started: std::time::Instant,
}

impl Console {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut crate::qemu::QemuConsole) -> Result<T, crate::qemu::QemuError>,
    ) -> RhaiResult<T> {
        let mut g = self.inner.lock().unwrap();
        let c = g
            .as_mut()
            .ok_or_else(|| fail("the emulator was already stopped"))?;
        f(c).map_err(|e| fail(format!("{e}")))
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

/// Names registered as functions with a `ctx` first argument, for
/// `rhbuild check`'s unknown-function walk (they are also in the engine's
/// signatures; this list documents the API in one place).
pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Ctx>("Ctx");
    engine.register_type_with_name::<Dir>("Dir");
    engine.register_type_with_name::<Console>("Console");

    // --- ctx: facts about the run
    engine.register_get("arch", |c: &mut Ctx| c.arch());
    engine.register_get("cpus", |c: &mut Ctx| c.run.jobs as i64);
    engine.register_get("stage", |c: &mut Ctx| c.frame.stage.clone());
    engine.register_get("build_dir", |c: &mut Ctx| c.run.build_dir.to_string());
    engine.register_get("arch_dir", |c: &mut Ctx| c.run.arch_dir().to_string());
    engine.register_get("log", |c: &mut Ctx| c.frame.log.to_string());
    engine.register_get("out", |c: &mut Ctx| lift(c.out().map(|p| p.to_string())));
    engine.register_get("package", |c: &mut Ctx| {
        lift(c.current_package().map(|p| p.name))
    });
    engine.register_get("version", |c: &mut Ctx| {
        lift(c.current_package().map(|p| p.version))
    });
    engine.register_fn("setting", |c: &mut Ctx, k: &str| lift(c.setting(k)));
    engine.register_fn("setting", |c: &mut Ctx, k: &str, d: &str| {
        c.setting_or(k, d)
    });
    engine.register_fn("target_file", |c: &mut Ctx, n: &str| {
        lift(c.target_file(n).map(|p| p.to_string()))
    });
    engine.register_fn("project_file", |c: &mut Ctx, n: &str| {
        lift(c.project_file(n).map(|p| p.to_string()))
    });

    // --- ctx: stages and packages
    engine.register_fn("stage", |c: &mut Ctx, name: &str| {
        lift(c.stage(name).map(|p| p.to_string()))
    });
    engine.register_fn("build", |c: &mut Ctx, name: &str| {
        lift(c.build(name, "build", Map::new()))
    });
    engine.register_fn("build", |c: &mut Ctx, name: &str, opts: Map| {
        lift(c.build(name, "build", opts))
    });
    engine.register_fn("build", |c: &mut Ctx, name: &str, step: &str, opts: Map| {
        lift(c.build(name, step, opts))
    });
    engine.register_get("opts", |c: &mut Ctx| c.frame.opts.clone());
    engine.register_get("rhbuild", |c: &mut Ctx| {
        let _ = c;
        std::env::current_exe()
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default()
    });
    engine.register_fn(
        "which_or",
        |c: &mut Ctx, name: &str, default: &str| -> String {
            let _ = c;
            crate::stage::resolve_host_tool(name)
                .map(|p| p.to_string())
                .unwrap_or_else(|| default.to_string())
        },
    );
    engine.register_fn("which", |c: &mut Ctx, name: &str| -> RhaiResult<String> {
        let p = crate::stage::resolve_host_tool(name)
            .ok_or_else(|| fail(format!("host program `{name}` not found in PATH")))?;
        c.frame
            .inputs
            .lock()
            .unwrap()
            .tools
            .insert(p.to_string(), p.to_string());
        Ok(p.to_string())
    });
    // Whether the airlock's own tools (build/<arch>/host/bin, which the
    // host-tools stage fills) include NAME: a command run in the airlock
    // finds it by its bare name.
    engine.register_fn("in_airlock", |c: &mut Ctx, name: &str| {
        !name.contains('/') && c.run.arch_dir().join("host/bin").join(name).exists()
    });
    engine.register_fn("fetch", |c: &mut Ctx, names: Array| -> RhaiResult<()> {
        let names = strings(&names, "fetch's package list")?;
        lift(c.fetch(&names))
    });
    engine.register_fn("packages", |c: &mut Ctx| -> Array {
        let p = &c.run.engine.project;
        p.names_in(&p.packages())
            .into_iter()
            .map(Dynamic::from)
            .collect()
    });
    engine.register_fn("targets", |c: &mut Ctx| -> Array {
        c.run
            .engine
            .project
            .target_names()
            .into_iter()
            .map(Dynamic::from)
            .collect()
    });
    engine.register_fn("report", |c: &mut Ctx, key: &str, value: Dynamic| {
        c.run.event(
            "result",
            serde_json::json!({ "key": key, "value": dynamic_to_json(&value) }),
        );
    });
    engine.register_fn(
        "run_targets",
        |c: &mut Ctx, spec: Map| -> RhaiResult<Array> { run_targets(c, &spec) },
    );
    engine.register_fn("pretty_json", |v: Dynamic| {
        serde_json::to_string_pretty(&dynamic_to_json(&v)).unwrap_or_default()
    });
    engine.register_fn("file_size", |c: &mut Ctx, p: &str| -> RhaiResult<i64> {
        lift(c.file_size(p).map(|n| n as i64))
    });
    engine.register_fn("list", |c: &mut Ctx, p: &str| -> RhaiResult<Array> {
        lift(
            c.list_dir(p)
                .map(|names| names.into_iter().map(Dynamic::from).collect()),
        )
    });
    engine.register_fn("source", |c: &mut Ctx| {
        lift(c.source().map(|p| p.to_string()))
    });
    engine.register_fn("source_of", |c: &mut Ctx, name: &str| {
        lift(c.source_of(name).map(|p| p.to_string()))
    });
    engine.register_fn("setup", |c: &mut Ctx| {
        lift(c.setup().map(|p| Dir {
            ctx: c.clone(),
            path: p,
        }))
    });
    engine.register_fn("work_dir", |c: &mut Ctx, n: &str| {
        lift(c.work_dir(n).map(|p| Dir {
            ctx: c.clone(),
            path: p,
        }))
    });
    engine.register_fn("dir", |c: &mut Ctx, p: &str| -> RhaiResult<Dir> {
        let path = lift(c.directory(p))?;
        Ok(Dir {
            ctx: c.clone(),
            path,
        })
    });
    engine.register_fn(
        "host_tools",
        |c: &mut Ctx, names: Array| -> RhaiResult<()> {
            let names = strings(&names, "host_tools's list")?;
            lift(c.host_tools(&names, &[]).map(|_| ()))
        },
    );
    engine.register_fn(
        "host_tools",
        |c: &mut Ctx, names: Array, optional: Array| -> RhaiResult<Array> {
            let names = strings(&names, "host_tools's list")?;
            let optional = strings(&optional, "host_tools's optional list")?;
            lift(
                c.host_tools(&names, &optional)
                    .map(|m| m.into_iter().map(Dynamic::from).collect()),
            )
        },
    );

    // --- paths (plain text operations)
    engine.register_fn("file_name", |p: &str| {
        Utf8Path::new(p).file_name().unwrap_or("").to_string()
    });
    engine.register_fn("file_stem", |p: &str| {
        Utf8Path::new(p).file_stem().unwrap_or("").to_string()
    });
    engine.register_fn("parent", |p: &str| {
        Utf8Path::new(p)
            .parent()
            .map(|p| p.to_string())
            .unwrap_or_default()
    });
    engine.register_fn("join", |a: Array, sep: &str| {
        a.iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(sep)
    });
    // The host's clock, in whole seconds since 1970: a guest without a
    // battery-backed clock learns the time from its kernel command line.
    engine.register_fn("now", || -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    engine.register_fn("words", |s: &str| -> Array {
        s.split_whitespace()
            .map(|w| Dynamic::from(w.to_string()))
            .collect()
    });

    // --- ctx: files (through the access policy: see ctx_fs)
    engine.register_fn("exists", |c: &mut Ctx, p: &str| lift(c.exists(p)));
    engine.register_fn("mkdir", |c: &mut Ctx, p: &str| lift(c.make_dir(p)));
    engine.register_fn("write", |c: &mut Ctx, p: &str, text: &str| {
        lift(c.write_text(p, text, None))
    });
    engine.register_fn("write", |c: &mut Ctx, p: &str, text: &str, mode: i64| {
        lift(c.write_text(p, text, Some(mode as u32)))
    });
    engine.register_fn("read", |c: &mut Ctx, p: &str| lift(c.read_text(p)));
    engine.register_fn("symlink", |c: &mut Ctx, target: &str, link: &str| {
        lift(c.make_symlink(target, link))
    });
    engine.register_fn("copy", |c: &mut Ctx, from: &str, to: &str| {
        lift(c.copy_path(from, to))
    });
    engine.register_fn("chmod", |c: &mut Ctx, p: &str, mode: i64| {
        lift(c.change_mode(p, mode as u32))
    });
    engine.register_fn("remove", |c: &mut Ctx, p: &str| lift(c.remove_path(p)));
    engine.register_fn("fail", |_c: &mut Ctx, msg: &str| -> RhaiResult<()> {
        Err(fail(msg.to_string()))
    });

    // --- ctx: commands outside a Dir
    engine.register_fn(
        "run",
        |c: &mut Ctx, cwd: &str, argv: Array| -> RhaiResult<()> {
            let argv = strings(&argv, "the command")?;
            let cwd = lift(c.readable(cwd))?;
            lift(c.run_cmd(&cwd, argv, BTreeMap::new()))
        },
    );

    // --- Dir
    engine.register_get("path", |d: &mut Dir| d.path.to_string());
    engine.register_fn("file", |d: &mut Dir, rel: &str| {
        d.path.join(rel).to_string()
    });
    engine.register_fn("to_string", |d: &mut Dir| d.path.to_string());
    engine.register_fn("exists", |d: &mut Dir, rel: &str| {
        lift(d.ctx.exists(d.path.join(rel).as_str()))
    });
    engine.register_fn("run", |d: &mut Dir, argv: Array| -> RhaiResult<()> {
        let argv = strings(&argv, "the command")?;
        lift(d.ctx.run_cmd(&d.path, argv, BTreeMap::new()))
    });
    engine.register_fn(
        "run",
        |d: &mut Dir, argv: Array, env: Map| -> RhaiResult<()> {
            let argv = strings(&argv, "the command")?;
            let env = env_map(&env)?;
            lift(d.ctx.run_cmd(&d.path, argv, env))
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
        lift(d.ctx.run_cmd(&d.path, argv, BTreeMap::new()))
    });
    engine.register_fn(
        "make",
        |d: &mut Dir, args: Array, env: Map| -> RhaiResult<()> {
            let mut argv = vec!["make".to_string()];
            argv.extend(strings(&args, "make's arguments")?);
            let env = env_map(&env)?;
            lift(d.ctx.run_cmd(&d.path, argv, env))
        },
    );
    engine.register_fn("dir", |d: &mut Dir, rel: &str| -> RhaiResult<Dir> {
        let p = d.path.join(rel);
        lift(d.ctx.make_dir(p.as_str()))?;
        Ok(Dir {
            ctx: d.ctx.clone(),
            path: p,
        })
    });

    // --- kconfig
    engine.register_fn(
        "kconfig_set",
        |d: &mut Dir, rel: &str, symbols: Map| -> RhaiResult<()> {
            let symbols = kconfig_values(&symbols)?;
            lift(d.ctx.kconfig_set(d.path.join(rel).as_str(), &symbols))
        },
    );
    engine.register_fn(
        "kconfig_get",
        |d: &mut Dir, rel: &str, symbol: &str| -> RhaiResult<Dynamic> {
            let v = lift(d.ctx.kconfig_get(d.path.join(rel).as_str(), symbol))?;
            Ok(v.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
        },
    );
    engine.register_fn(
        "allnoconfig",
        |d: &mut Dir, minis: Array, make_args: Array| -> RhaiResult<()> {
            let minis = strings(&minis, "the miniconfig list")?;
            let make_args = strings(&make_args, "make's arguments")?;
            lift(allnoconfig(d, &minis, &make_args))
        },
    );

    engine.register_fn(
        "shrink_config",
        |d: &mut Dir, full: &str, out: &str, make_args: Array| -> RhaiResult<String> {
            let make_args = strings(&make_args, "make's arguments")?;
            lift(shrink_config(d, full, out, make_args))
        },
    );

    // --- images
    engine.register_fn(
        "check_root_filesystem",
        |c: &mut Ctx, root: &str| -> RhaiResult<()> {
            let root = lift(c.readable(root))?;
            crate::image::check_root_filesystem(&root).map_err(|e| fail(format!("{e}")))
        },
    );
    engine.register_fn(
        "initramfs",
        |c: &mut Ctx, root: &str, out: &str| -> RhaiResult<()> {
            let root = lift(c.readable(root))?;
            let out = lift(c.writable(out))?;
            let mtime = c
                .run
                .settings
                .get("SOURCE_DATE_EPOCH")
                .and_then(|s| s.parse().ok());
            crate::image::write_initramfs_with(&root, &out, mtime, &c.image_tools())
                .map_err(|e| fail(format!("{e}")))
        },
    );
    engine.register_fn(
        "squashfs",
        |c: &mut Ctx, root: &str, out: &str| -> RhaiResult<()> {
            let root = lift(c.readable(root))?;
            let out = lift(c.writable(out))?;
            crate::image::write_squashfs_with(&root, &out, &c.image_tools())
                .map_err(|e| fail(format!("{e}")))
        },
    );
    engine.register_fn(
        "ext2",
        |c: &mut Ctx, root: &str, out: &str, megs: i64| -> RhaiResult<()> {
            let root = lift(c.readable(root))?;
            let out = lift(c.writable(out))?;
            let size = (megs > 0).then_some(megs as u64);
            crate::image::write_ext2_with(&root, &out, size, &c.image_tools())
                .map_err(|e| fail(format!("{e}")))
        },
    );
    engine.register_fn(
        "blank_ext2",
        |c: &mut Ctx, out: &str, megs: i64| -> RhaiResult<()> {
            let out = lift(c.writable(out))?;
            crate::image::create_blank_ext2_with(&out, megs.max(1) as u64, &c.image_tools())
                .map_err(|e| fail(format!("{e}")))
        },
    );

    // --- services for guests on the host's loopback
    engine.register_type_with_name::<Server>("Server");
    engine.register_fn(
        "serve",
        |c: &mut Ctx, dir: &str, log: &str| -> RhaiResult<Server> {
            let dir = lift(c.readable(dir))?;
            let log = lift(c.writable(log))?;
            let s = crate::serve::FileServer::start(&dir, &log)
                .map_err(|e| fail(format!("cannot start a file server for `{dir}`: {e}")))?;
            Ok(Server {
                port: s.port as i64,
                inner: Arc::new(Mutex::new(Some(s))),
            })
        },
    );
    engine.register_get("port", |s: &mut Server| s.port);
    engine.register_fn("requests", |s: &mut Server| -> Array {
        s.inner
            .lock()
            .unwrap()
            .as_ref()
            .map(|f| f.requests().into_iter().map(Dynamic::from).collect())
            .unwrap_or_default()
    });
    engine.register_fn("stop", |s: &mut Server| {
        s.inner.lock().unwrap().take();
    });
    engine.register_type_with_name::<Distcc>("Distcc");
    engine.register_fn(
        "distccd",
        |c: &mut Ctx, compilers: &str, log: &str, jobs: i64| -> RhaiResult<Distcc> {
            let compilers = lift(c.readable(compilers))?;
            let log = lift(c.writable(log))?;
            let d =
                crate::serve::Distccd::start(&compilers, &log, jobs.max(1) as u32).map_err(fail)?;
            Ok(Distcc {
                port: d.port as i64,
                log: log.to_string(),
                inner: Arc::new(Mutex::new(d)),
            })
        },
    );
    engine.register_get("port", |d: &mut Distcc| d.port);
    engine.register_get("log", |d: &mut Distcc| d.log.clone());
    engine.register_fn("compiles", |d: &mut Distcc| -> Array {
        d.inner
            .lock()
            .unwrap()
            .compiles()
            .into_iter()
            .map(Dynamic::from)
            .collect()
    });
    engine.register_fn("stop", |d: &mut Distcc| {
        d.inner.lock().unwrap().stop();
    });

    // --- qemu
    engine.register_fn("boot", |c: &mut Ctx, spec: Map| -> RhaiResult<Console> {
        let spec = lift(qemu_spec(c, &spec))?;
        let log = spec.console_log.clone();
        let console = crate::qemu::QemuConsole::spawn(&spec, c.run.interrupt.clone())
            .map_err(|e| fail(format!("{e}")))?;
        Ok(Console {
            inner: Arc::new(Mutex::new(Some(console))),
            log,
            started: std::time::Instant::now(),
        })
    });
    engine.register_fn("emulate", |c: &mut Ctx, spec: Map| -> RhaiResult<i64> {
        let spec = lift(qemu_spec(c, &spec))?;
        let status = crate::qemu::interactive(&spec).map_err(|e| fail(format!("{e}")))?;
        Ok(status.code().unwrap_or(-1) as i64)
    });
    engine.register_get("log", |c: &mut Console| c.log.to_string());
    engine.register_get("seconds", |c: &mut Console| {
        c.started.elapsed().as_secs_f64()
    });
    engine.register_fn(
        "expect",
        |c: &mut Console, pat: &str, timeout: i64| -> RhaiResult<String> {
            c.with(|q| q.expect(pat, secs(timeout)))
        },
    );
    engine.register_fn("send", |c: &mut Console, line: &str| {
        c.with(|q| q.send_line(line))
    });
    engine.register_fn(
        "command",
        |c: &mut Console, line: &str, prompt: &str, timeout: i64| -> RhaiResult<String> {
            c.with(|q| q.run(line, prompt, secs(timeout)))
        },
    );
    engine.register_fn(
        "wait_exit",
        |c: &mut Console, timeout: i64| -> RhaiResult<i64> {
            let st = c.with(|q| q.wait_exit(secs(timeout)))?;
            Ok(st.code().unwrap_or(-1) as i64)
        },
    );
    engine.register_fn("tail", |c: &mut Console, n: i64| {
        c.with(|q| Ok(q.tail(n.max(0) as usize)))
    });
    engine.register_fn("stop", |c: &mut Console| {
        if let Some(mut q) = c.inner.lock().unwrap().take() {
            q.kill();
        }
    });
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

/// `make allnoconfig KCONFIG_ALLCONFIG=<merged miniconfigs>` in a directory
/// (make arguments may add `O=`, `ARCH=`, ...), then check that every
/// requested symbol survived into `.config`.
fn allnoconfig(d: &Dir, minis: &[String], make_args: &[String]) -> PrimResult<()> {
    let mut files = Vec::new();
    for m in minis {
        files.push(d.ctx.readable(m)?);
    }
    let mini = crate::kconfig::Miniconfig::parse_files(&files).map_err(|e| format!("{e}"))?;
    let merged = d
        .ctx
        .run
        .arch_dir()
        .join("tmp")
        .join(format!("{}.miniconfig", d.ctx.frame.stage));
    std::fs::create_dir_all(merged.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::write(&merged, mini.render()).map_err(|e| format!("cannot write `{merged}`: {e}"))?;
    let mut argv = vec!["make".to_string()];
    argv.extend(make_args.iter().cloned());
    argv.push("allnoconfig".into());
    argv.push(format!("KCONFIG_ALLCONFIG={merged}"));
    d.ctx.run_cmd(&d.path, argv, BTreeMap::new())?;
    let out_dir = make_args
        .iter()
        .find_map(|a| a.strip_prefix("O="))
        .map(|o| {
            let o = Utf8PathBuf::from(o);
            if o.is_absolute() { o } else { d.path.join(o) }
        })
        .unwrap_or_else(|| d.path.clone());
    let cfg = crate::kconfig::DotConfig::parse_file(&out_dir.join(".config"))
        .map_err(|e| format!("{e}"))?;
    let missing = crate::kconfig::missing(&mini, &cfg);
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing
        .iter()
        .map(|(e, found)| {
            let shown = if found == "n" {
                "is not set".to_string()
            } else {
                format!("is {found}")
            };
            format!(
                "  CONFIG_{}={} ({}:{}) {shown}",
                e.symbol,
                e.value,
                d.ctx.run.engine.project.relative(&e.file),
                e.line
            )
        })
        .collect();
    Err(format!(
        "{} symbol(s) of the miniconfig did not survive `make allnoconfig`:\n{}\nthey do not exist in this source or their dependencies are missing; add the dependencies or remove them (`make menuconfig`, then `/` to search, shows what each needs)",
        missing.len(),
        list.join("\n")
    ))
}

/// Shrink the full `.config` at `full` to a miniconfig, expanding with the
/// tree in `d` (out of tree in `out`); returns the miniconfig's text.
fn shrink_config(d: &Dir, full: &str, out: &str, make_args: Vec<String>) -> PrimResult<String> {
    let full = d.ctx.readable(full)?;
    let out = d.ctx.writable(out)?;
    let cfg = crate::kconfig::DotConfig::parse_file(&full).map_err(|e| format!("{e}"))?;
    let ctx = d.ctx.clone();
    let run =
        move |argv: &[String], cwd: &Utf8Path| ctx.run_cmd(cwd, argv.to_vec(), BTreeMap::new());
    let mut expander = crate::kconfig::make_expander(&d.path, &out, make_args, run);
    let mini = crate::kconfig::shrink(&cfg, &mut expander).map_err(|e| format!("{e}"))?;
    Ok(mini.render())
}

/// A QEMU invocation from a script's map: `#{ binary, args, log }`. User
/// networking must be restricted: a guest may reach only the host's
/// loopback through explicit forwards.
fn qemu_spec(c: &Ctx, m: &Map) -> PrimResult<crate::qemu::QemuSpec> {
    let binary = m
        .get("binary")
        .map(|v| v.to_string())
        .ok_or("the QEMU map needs `binary`")?;
    let args = m
        .get("args")
        .and_then(|v| v.clone().try_cast::<Array>())
        .ok_or("the QEMU map needs `args`, an array")?;
    let args: Vec<String> = args.iter().map(|v| v.to_string()).collect();
    for (i, a) in args.iter().enumerate() {
        let is_netdev = i > 0 && (args[i - 1] == "-netdev" || args[i - 1] == "-nic");
        if is_netdev
            && a.starts_with("user")
            && !a
                .split(',')
                .any(|o| o == "restrict=on" || o == "restrict=yes")
        {
            return Err(format!(
                "QEMU user networking `{a}` must say `restrict=on`: the guest may reach only the host's loopback through explicit guestfwd/hostfwd rules"
            ));
        }
        if a == "-net" && args.get(i + 1).is_some_and(|n| n.starts_with("user")) {
            return Err("use `-netdev user,...,restrict=on` rather than `-net user`".into());
        }
    }
    let log = match m.get("log") {
        Some(l) => c.writable(&l.to_string())?,
        None => c
            .run
            .logs_dir()
            .join(format!("{}-console.log", c.frame.stage)),
    };
    Ok(crate::qemu::QemuSpec {
        binary,
        args,
        console_log: log,
    })
}

/// A script value as JSON (maps, arrays, strings, numbers, booleans, ()).
pub fn dynamic_to_json(v: &Dynamic) -> serde_json::Value {
    use serde_json::Value;
    if v.is_unit() {
        Value::Null
    } else if let Some(b) = v.clone().try_cast::<bool>() {
        Value::Bool(b)
    } else if let Some(i) = v.clone().try_cast::<i64>() {
        Value::from(i)
    } else if let Some(f) = v.clone().try_cast::<f64>() {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    } else if let Some(a) = v.clone().try_cast::<Array>() {
        Value::Array(a.iter().map(dynamic_to_json).collect())
    } else if let Some(m) = v.clone().try_cast::<Map>() {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.to_string(), dynamic_to_json(v)))
                .collect(),
        )
    } else {
        Value::String(v.to_string())
    }
}

/// JSON as a script value.
pub fn json_to_dynamic(v: &serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from(i),
            None => Dynamic::from(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(a) => Dynamic::from(a.iter().map(json_to_dynamic).collect::<Array>()),
        Value::Object(o) => Dynamic::from(
            o.iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect::<Map>(),
        ),
    }
}

/// `ctx.run_targets(#{ script, arches, parallel, jobs, dir })`: run a script
/// for each target as a child rhbuild (see `matrix`), with this run's build
/// directory, `--set` settings and `--source` overrides.
fn run_targets(c: &mut Ctx, spec: &Map) -> RhaiResult<Array> {
    let get = |k: &str| spec.get(k).cloned().unwrap_or(Dynamic::UNIT);
    let script = get("script").to_string();
    let arches = match get("arches").try_cast::<Array>() {
        Some(a) => strings(&a, "run_targets' arches")?,
        None => return Err(fail("run_targets needs `arches`, an array of target names")),
    };
    let known = c.run.engine.project.target_names();
    for a in &arches {
        if !known.contains(a) {
            return Err(fail(format!(
                "no target `{a}` (targets: {})",
                known.join(", ")
            )));
        }
    }
    let parallel = get("parallel").as_int().unwrap_or(1).max(1) as usize;
    let jobs = get("jobs").as_int().unwrap_or(1).max(1) as usize;
    let dir = lift(c.writable(&get("dir").to_string()))?;
    let root = c.run.engine.project.root.clone();
    if !root.join(&script).is_file() {
        return Err(fail(format!("run_targets: no script `{script}`")));
    }
    let mut args = vec!["--build-dir".to_string(), c.run.build_dir.to_string()];
    for (k, v) in c.run.settings.command_line() {
        args.push("--set".into());
        args.push(format!("{k}={v}"));
    }
    for (k, v) in &c.run.overrides {
        args.push("--source".into());
        args.push(format!("{k}={v}"));
    }
    let exe = std::env::current_exe()
        .map_err(|e| fail(format!("cannot find the rhbuild binary: {e}")))?;
    let plan = crate::matrix::Plan {
        exe: Utf8PathBuf::from_path_buf(exe)
            .map_err(|p| fail(format!("`{}` is not UTF-8", p.display())))?,
        script: script.into(),
        arches,
        parallel,
        jobs,
        args,
        dir,
        project_root: root,
    };
    let outcomes = crate::matrix::run(&plan, &c.run.interrupt, |o| {
        let verdict = if o.exit == 0 { "passed" } else { "FAILED" };
        println!(
            "    {:<14} {verdict} in {:.0} s (log: {})",
            o.arch, o.seconds, o.log
        );
    })
    .map_err(|e| fail(format!("running the targets: {e}")))?;
    if c.run.interrupt.is_set() {
        return Err(fail("interrupted"));
    }
    Ok(outcomes
        .into_iter()
        .map(|o| {
            let mut m = Map::new();
            m.insert("arch".into(), Dynamic::from(o.arch));
            m.insert("passed".into(), Dynamic::from(o.exit == 0));
            m.insert("exit".into(), Dynamic::from(o.exit as i64));
            m.insert("seconds".into(), Dynamic::from(o.seconds));
            m.insert("log".into(), Dynamic::from(o.log.to_string()));
            m.insert(
                "events".into(),
                Dynamic::from(o.events.iter().map(json_to_dynamic).collect::<Array>()),
            );
            Dynamic::from(m)
        })
        .collect())
}
