//! `ctx`: the run, its stages and packages, files, images.

use super::{RhaiResult, dynamic_to_json, fail, json_to_dynamic, lift, strings};
use crate::api::Dir;
use crate::stage::Ctx;
use rhai::{Array, Dynamic, Engine, Map};
use std::collections::BTreeMap;

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Ctx>("Ctx");

    // Facts about the run.
    engine.register_get("arch", |c: &mut Ctx| lift(c.read_arch()));
    engine.register_get("cpus", |c: &mut Ctx| c.run.jobs as i64);
    engine.register_get("stage", |c: &mut Ctx| c.frame.stage.clone());
    engine.register_get("build_dir", |c: &mut Ctx| c.run.build_dir.to_string());
    engine.register_get("arch_dir", |c: &mut Ctx| c.frame.home.to_string());
    engine.register_get("log", |c: &mut Ctx| c.frame.log.to_string());
    engine.register_get("out", |c: &mut Ctx| lift(c.out().map(|p| p.to_string())));
    engine.register_get("package", |c: &mut Ctx| {
        lift(c.current_package().map(|p| p.name))
    });
    engine.register_get("version", |c: &mut Ctx| {
        lift(c.current_package().map(|p| p.version))
    });
    engine.register_get("opts", |c: &mut Ctx| c.frame.opts.clone());
    engine.register_get("source_date_epoch", |c: &mut Ctx| {
        c.source_date_epoch() as i64
    });
    engine.register_get("rhbuild", |_c: &mut Ctx| {
        std::env::current_exe()
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default()
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

    // Host programs.
    engine.register_fn(
        "which_or",
        |c: &mut Ctx, name: &str, default: &str| -> String {
            c.which(name)
                .map(|p| p.to_string())
                .unwrap_or_else(|| default.to_string())
        },
    );
    engine.register_fn("which", |c: &mut Ctx, name: &str| -> RhaiResult<String> {
        c.which(name)
            .map(|p| p.to_string())
            .ok_or_else(|| fail(format!("host program `{name}` not found in PATH")))
    });
    engine.register_fn("in_airlock", |c: &mut Ctx, name: &str| c.in_airlock(name));
    engine.register_get("ccache", |c: &mut Ctx| c.ccache());
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

    // Stages and packages.
    engine.register_fn("stage", |c: &mut Ctx, name: &str| {
        lift(c.stage(name).map(|p| p.to_string()))
    });
    engine.register_fn("stages", |c: &mut Ctx, names: Array| -> RhaiResult<Array> {
        let names = strings(&names, "stages' names")?;
        lift(c.stages(&names).map(|dirs| {
            dirs.into_iter()
                .map(|d| Dynamic::from(d.to_string()))
                .collect()
        }))
    });
    engine.register_fn(
        "optional_project_file",
        |c: &mut Ctx, rel: &str| -> RhaiResult<Dynamic> {
            Ok(lift(c.optional_project_file(rel))?
                .map_or(Dynamic::UNIT, |p| Dynamic::from(p.to_string())))
        },
    );
    engine.register_fn(
        "build_order",
        |c: &mut Ctx, names: Array| -> RhaiResult<Array> {
            let names = strings(&names, "package names")?;
            let order = lift(c.packages_in_order(&names))?;
            Ok(order.into_iter().map(Dynamic::from).collect())
        },
    );
    engine.register_fn("package_info", |c: &mut Ctx, name: &str| {
        lift(c.package_info(name))
    });
    engine.register_fn("source_record", |c: &mut Ctx, name: &str| {
        lift(c.source_record(name))
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
    engine.register_fn("fetch", |c: &mut Ctx, names: Array| -> RhaiResult<()> {
        let names = strings(&names, "fetch's package list")?;
        lift(c.fetch(&names))
    });
    engine.register_fn("source", |c: &mut Ctx| {
        lift(c.source().map(|p| p.to_string()))
    });
    engine.register_fn("source_of", |c: &mut Ctx, name: &str| {
        lift(c.source_of(name).map(|p| p.to_string()))
    });
    engine.register_fn("setup", |c: &mut Ctx| {
        lift(c.setup().map(|p| Dir::new(c, p)))
    });
    engine.register_fn("work_dir", |c: &mut Ctx, n: &str| {
        lift(c.work_dir(n).map(|p| Dir::new(c, p)))
    });
    engine.register_fn("dir", |c: &mut Ctx, p: &str| {
        lift(c.directory(p).map(|p| Dir::new(c, p)))
    });
    engine.register_fn(
        "run",
        |c: &mut Ctx, cwd: &str, argv: Array| -> RhaiResult<()> {
            let argv = strings(&argv, "the command")?;
            let cwd = lift(c.readable(cwd))?;
            lift(c.run_cmd(&cwd, argv, BTreeMap::new()))
        },
    );
    engine.register_fn("fail", |_c: &mut Ctx, msg: &str| -> RhaiResult<()> {
        Err(fail(msg.to_string()))
    });

    // Reports and other targets.
    engine.register_fn("report", |c: &mut Ctx, key: &str, value: Dynamic| {
        c.run.event(
            "result",
            serde_json::json!({ "key": key, "value": dynamic_to_json(&value) }),
        );
    });
    engine.register_fn(
        "run_targets",
        |c: &mut Ctx, spec: Map| -> RhaiResult<Array> {
            let get = |k: &str| spec.get(k).cloned().unwrap_or(Dynamic::UNIT);
            let arches = match get("arches").try_cast::<Array>() {
                Some(a) => strings(&a, "run_targets' arches")?,
                None => return Err(fail("run_targets needs `arches`, an array of target names")),
            };
            let outcomes = lift(c.run_targets(
                &get("script").to_string(),
                &arches,
                get("parallel").as_int().unwrap_or(1).max(1) as usize,
                get("jobs").as_int().unwrap_or(1).max(1) as usize,
                &get("dir").to_string(),
            ))?;
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
        },
    );

    // Files, through the access policy (see `ctx_fs`).
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
    engine.register_fn("file_size", |c: &mut Ctx, p: &str| -> RhaiResult<i64> {
        lift(c.file_size(p).map(|n| n as i64))
    });
    engine.register_fn("list", |c: &mut Ctx, p: &str| -> RhaiResult<Array> {
        lift(
            c.list_dir(p)
                .map(|names| names.into_iter().map(Dynamic::from).collect()),
        )
    });

    // Images.
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
            let tools = c.image_tools();
            crate::image::write_initramfs_with(&root, &out, tools.epoch, &tools)
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
}
