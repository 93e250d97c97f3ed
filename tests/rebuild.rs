//! The fast tier of rebuild decisions: tiny scripts in a temporary project
//! (no cross compiler, QEMU or kernel), one test per trigger. Each builds,
//! changes one input, and checks that exactly the stages that read it are
//! rebuilt, with `--explain` saying why; and that with nothing changed,
//! every stage is skipped.

use crate::util::{Output, TestProject};
use camino::{Utf8Path, Utf8PathBuf};
use std::io::Write;

/// A project with a target `t` and three stages: `a` reads a project file,
/// an imported module, a setting, and (when given) a user directory; `b`
/// uses `a`; `c` builds package `p` from its source.
fn project() -> TestProject {
    let p = TestProject::empty();
    p.add_target("t");
    p.write("stdlib/lib.rhai", "fn greeting() { \"hello \" }\n");
    p.write("data/input.txt", "input\n");
    p.write(
        "scripts/a.rhai",
        r#"export const output = "a";
import "stdlib/lib" as lib;
let text = lib::greeting() + ctx.read(ctx.project_file("data/input.txt")) + ctx.setting("A_SETTING", "x");
let mine = ctx.setting("MY_DATA", "");
if mine != "" { ctx.copy(mine, `${ctx.out}/mine`); }
ctx.write(`${ctx.out}/f`, text);
"#,
    );
    p.write(
        "scripts/b.rhai",
        "export const output = \"b\";\nlet a = ctx.stage(\"a\");\nctx.copy(`${a}/f`, `${ctx.out}/f`);\n",
    );
    p.write(
        "scripts/c.rhai",
        "export const output = \"c\";\nctx.build(\"p\", #{ out: ctx.out });\n",
    );
    p
}

/// A package `p` whose source is the tarball `tarball` (placed in the
/// build directory's cache, so nothing is downloaded).
fn package_with_tarball(p: &TestProject, version: &str, content: &str) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, format!("p-{version}/data"), content.as_bytes())
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    let bytes = gz.finish().unwrap();
    let file = format!("p-{version}.tar.gz");
    std::fs::create_dir_all(p.root.join("build/cache")).unwrap();
    std::fs::write(p.root.join("build/cache").join(&file), &bytes).unwrap();
    p.write(
        "packages/p.rhai",
        &format!(
            r#"export const name = "p";
export const version = "{version}";
export const sources = [ #{{ url: "http://127.0.0.1:1/{file}", sha256: "{}" }} ];
fn build(ctx) {{
    ctx.copy(`${{ctx.source()}}/data`, `${{ctx.opts.out}}/data`);
}}
"#,
            rhbuild::checksum::sha256_bytes(&bytes)
        ),
    );
}

fn run(p: &TestProject, script: &str, extra: &[&str]) -> Output {
    let mut args = vec!["run", script, "--arch", "t", "--explain"];
    args.extend_from_slice(extra);
    p.rhbuild(&args).success()
}

fn rebuilt(o: &Output, stage: &str) -> bool {
    o.stdout.contains(&format!("=== {stage} (t)"))
}

fn skipped(o: &Output, stage: &str) -> bool {
    o.stdout.contains(&format!("--- {stage} (t): up to date"))
}

/// Build `b` (and so `a`), then run `change`, then build again and check
/// which of `a` and `b` were rebuilt and that the reason was given.
fn trigger(p: &TestProject, change: impl FnOnce(), extra: &[&str], a_rebuilt: bool, reason: &str) {
    run(p, "scripts/b.rhai", extra);
    change();
    let o = run(p, "scripts/b.rhai", extra);
    assert_eq!(rebuilt(&o, "a"), a_rebuilt, "{}", o.stdout);
    assert_eq!(skipped(&o, "a"), !a_rebuilt, "{}", o.stdout);
    assert_eq!(rebuilt(&o, "b"), a_rebuilt, "b follows a:\n{}", o.stdout);
    assert!(
        o.stdout.contains(reason),
        "expected the reason {reason:?}:\n{}",
        o.stdout
    );
}

#[test]
fn nothing_changed_skips_every_stage() {
    let p = project();
    package_with_tarball(&p, "1", "one");
    run(&p, "scripts/b.rhai", &[]);
    run(&p, "scripts/c.rhai", &[]);
    let o = run(&p, "scripts/b.rhai", &[]);
    assert!(skipped(&o, "a") && skipped(&o, "b"), "{}", o.stdout);
    assert!(!o.stdout.contains("==="), "{}", o.stdout);
    let o = run(&p, "scripts/c.rhai", &[]);
    assert!(skipped(&o, "c"), "{}", o.stdout);
}

#[test]
fn the_script_itself() {
    let p = project();
    trigger(
        &p,
        || {
            let s = p.read("scripts/a.rhai") + "// a comment\n";
            p.write("scripts/a.rhai", &s);
        },
        &[],
        true,
        "`scripts/a.rhai` changed (sha256",
    );
}

#[test]
fn a_module_it_imports() {
    let p = project();
    trigger(
        &p,
        || {
            p.write("stdlib/lib.rhai", "fn greeting() { \"hi \" }\n");
        },
        &[],
        true,
        "`stdlib/lib.rhai` changed",
    );
}

#[test]
fn a_project_file_it_read() {
    let p = project();
    trigger(
        &p,
        || {
            p.write("data/input.txt", "other\n");
        },
        &[],
        true,
        "`data/input.txt` changed",
    );
}

#[test]
fn a_setting_it_read() {
    let p = project();
    run(&p, "scripts/b.rhai", &[]);
    let o = run(&p, "scripts/b.rhai", &["--set", "A_SETTING=y"]);
    assert!(rebuilt(&o, "a") && rebuilt(&o, "b"), "{}", o.stdout);
    assert!(
        o.stdout
            .contains("setting `A_SETTING` changed: (unset) → `y`"),
        "{}",
        o.stdout
    );
    // A setting nobody reads rebuilds nothing.
    let o = run(
        &p,
        "scripts/b.rhai",
        &["--set", "A_SETTING=y", "--set", "UNREAD=1"],
    );
    assert!(skipped(&o, "a") && skipped(&o, "b"), "{}", o.stdout);
}

#[test]
fn the_environment() {
    let p = project();
    let build = |env: &[(&str, &str)]| {
        let mut r = p.rhbuild(&["run", "scripts/b.rhai", "--arch", "t", "--explain"]);
        for (k, v) in env {
            r = r.env(k, v);
        }
        r.success()
    };
    build(&[]);
    // A variable named like the setting is not a setting.
    let o = build(&[("A_SETTING", "z")]);
    assert!(skipped(&o, "a"), "{}", o.stdout);
    let o = build(&[("RHBUILD_SET_A_SETTING", "z")]);
    assert!(rebuilt(&o, "a"), "{}", o.stdout);
    assert!(o.stdout.contains("(unset) → `z`"), "{}", o.stdout);
}

#[test]
fn an_upstream_stage() {
    let p = project();
    run(&p, "scripts/b.rhai", &[]);
    let o = run(&p, "scripts/b.rhai", &["--force", "a"]);
    assert!(rebuilt(&o, "a") && rebuilt(&o, "b"), "{}", o.stdout);
    assert!(o.stdout.contains("it was forced (--force)"), "{}", o.stdout);
    assert!(o.stdout.contains("stage `a` was rebuilt"), "{}", o.stdout);
    // Forcing the last stage leaves its upstream alone.
    let o = run(&p, "scripts/b.rhai", &["--force", "b"]);
    assert!(skipped(&o, "a") && rebuilt(&o, "b"), "{}", o.stdout);
}

/// A stage already stale by a cheaper input does not bring up to date the
/// upstream stages its last build used: the rebuild may not use them.
#[test]
fn a_stage_stale_by_a_setting_leaves_an_upstream_it_no_longer_uses() {
    let p = project();
    p.write(
        "scripts/d.rhai",
        r#"export const output = "d";
if ctx.setting("USE_A", "0") == "1" {
    let a = ctx.stage("a");
    ctx.copy(`${a}/f`, `${ctx.out}/f`);
} else {
    ctx.write(`${ctx.out}/f`, "alone");
}
"#,
    );
    run(&p, "scripts/d.rhai", &["--set", "USE_A=1"]);
    p.write("data/input.txt", "other\n");
    let o = run(&p, "scripts/d.rhai", &["--set", "USE_A=0"]);
    assert!(rebuilt(&o, "d"), "{}", o.stdout);
    assert!(
        o.stdout.contains("setting `USE_A` changed: `1` → `0`"),
        "{}",
        o.stdout
    );
    assert!(
        !o.stdout.contains("=== a (t)"),
        "a was built for nothing:\n{}",
        o.stdout
    );
    assert_eq!(p.read("build/t/d/f"), "alone");
    // Still stale, and used again: the rebuild brings it up to date.
    let o = run(&p, "scripts/d.rhai", &["--set", "USE_A=1"]);
    assert!(rebuilt(&o, "a") && rebuilt(&o, "d"), "{}", o.stdout);
    assert!(
        o.stdout.contains("`data/input.txt` changed"),
        "{}",
        o.stdout
    );
}

#[test]
fn a_source_tarball() {
    let p = project();
    package_with_tarball(&p, "1", "one");
    run(&p, "scripts/c.rhai", &[]);
    package_with_tarball(&p, "2", "two");
    let o = run(&p, "scripts/c.rhai", &[]);
    assert!(rebuilt(&o, "c"), "{}", o.stdout);
    assert!(
        o.stdout.contains("the source of `p` changed"),
        "{}",
        o.stdout
    );
    assert_eq!(p.read("build/t/c/data"), "two");
}

#[test]
fn a_file_deep_in_a_directory_override() {
    let p = project();
    package_with_tarball(&p, "1", "one");
    let src = tempfile::tempdir().unwrap();
    let s = Utf8Path::from_path(src.path()).unwrap();
    std::fs::create_dir_all(s.join("sub/deep")).unwrap();
    std::fs::write(s.join("data"), "local").unwrap();
    std::fs::write(s.join("sub/deep/f.txt"), "one").unwrap();
    let over = format!("p={s}");
    run(&p, "scripts/c.rhai", &["--source", &over]);
    let o = run(&p, "scripts/c.rhai", &["--source", &over]);
    assert!(skipped(&o, "c"), "{}", o.stdout);
    // The same size, deep below the top: still seen.
    std::fs::write(s.join("sub/deep/f.txt"), "two").unwrap();
    let o = run(&p, "scripts/c.rhai", &["--source", &over]);
    assert!(rebuilt(&o, "c"), "{}", o.stdout);
    assert!(
        o.stdout.contains("the source of `p` changed"),
        "{}",
        o.stdout
    );
}

#[test]
fn a_host_tool_that_changed() {
    let p = project();
    let bin = tempfile::tempdir().unwrap();
    let b = Utf8PathBuf::from_path_buf(bin.path().to_path_buf()).unwrap();
    let tool = b.join("rhbuild-test-tool");
    std::fs::write(&tool, "#!/bin/sh\necho one\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.write(
        "scripts/a.rhai",
        "export const output = \"a\";\nctx.write(`${ctx.out}/f`, ctx.which(\"rhbuild-test-tool\"));\n",
    );
    let path = format!("{b}:{}", std::env::var("PATH").unwrap());
    let build = || {
        p.rhbuild(&["run", "scripts/b.rhai", "--arch", "t", "--explain"])
            .env("PATH", &path)
            .success()
    };
    build();
    let o = build();
    assert!(skipped(&o, "a"), "{}", o.stdout);
    // Same path, an upgraded program.
    std::fs::write(&tool, "#!/bin/sh\necho two, longer\n").unwrap();
    let o = build();
    assert!(rebuilt(&o, "a") && rebuilt(&o, "b"), "{}", o.stdout);
    assert!(o.stdout.contains("host program"), "{}", o.stdout);
}

#[test]
fn a_tool_that_was_absent_and_is_installed() {
    let p = project();
    p.write(
        "scripts/a.rhai",
        "export const output = \"a\";\nctx.write(`${ctx.out}/f`, ctx.which_or(\"rhbuild-test-absent\", \"none\"));\n",
    );
    let bin = tempfile::tempdir().unwrap();
    let b = Utf8PathBuf::from_path_buf(bin.path().to_path_buf()).unwrap();
    let path = format!("{b}:{}", std::env::var("PATH").unwrap());
    let build = || {
        p.rhbuild(&["run", "scripts/b.rhai", "--arch", "t", "--explain"])
            .env("PATH", &path)
            .success()
    };
    build();
    let tool = b.join("rhbuild-test-absent");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = build();
    assert!(rebuilt(&o, "a"), "{}", o.stdout);
    assert!(o.stdout.contains("(absent) →"), "{}", o.stdout);
}

#[test]
fn a_users_directory() {
    let p = project();
    let mine = tempfile::tempdir().unwrap();
    let m = Utf8PathBuf::from_path_buf(mine.path().to_path_buf()).unwrap();
    std::fs::create_dir_all(m.join("x/y")).unwrap();
    std::fs::write(m.join("x/y/z"), "1").unwrap();
    let set = format!("MY_DATA={m}");
    trigger(
        &p,
        || {
            std::fs::write(m.join("x/y/z"), "2").unwrap();
        },
        &["--set", &set],
        true,
        &format!("something in `{m}` was added, removed or changed"),
    );
}

#[test]
fn a_stage_removed_by_clean_is_built_again() {
    let p = project();
    run(&p, "scripts/b.rhai", &[]);
    p.rhbuild(&["clean", "--arch", "t", "a"]).success();
    assert!(!p.root.join("build/t/a").exists());
    assert!(p.root.join("build/t/b").exists());
    let o = run(&p, "scripts/b.rhai", &[]);
    assert!(rebuilt(&o, "a") && rebuilt(&o, "b"), "{}", o.stdout);
    assert!(o.stdout.contains("no finished build of it"), "{}", o.stdout);
    p.rhbuild(&["clean", "--arch", "t"]).success();
    assert!(!p.root.join("build/t").exists());
    let o = p.rhbuild(&["clean", "--arch", "t", "nosuch"]).failure();
    assert!(o.stderr.contains("no stage `nosuch`"), "{}", o.stderr);
    // A mistyped target, or the directory every target shares, is refused
    // rather than "cleaned".
    let o = p.rhbuild(&["clean", "--arch", "tt"]).failure();
    assert!(
        o.stderr
            .contains("no target `tt` (targets: t) and nothing built for it"),
        "{}",
        o.stderr
    );
    run(&p, "scripts/b.rhai", &[]);
    let o = p.rhbuild(&["clean", "--arch", "all"]).failure();
    assert!(o.stderr.contains("`all` is not a target"), "{}", o.stderr);
    assert!(p.root.join("build/t/b").exists());
}

#[test]
fn a_patch_applied_in_the_sandbox_and_its_change() {
    let p = project();
    package_with_tarball(&p, "1", "one\n");
    let patch = |to: &str| {
        p.write(
            "packages/p/fix.patch",
            &format!("--- a/data\n+++ b/data\n@@ -1 +1 @@\n-one\n+{to}\n"),
        );
    };
    patch("patched");
    run(&p, "scripts/c.rhai", &[]);
    assert_eq!(p.read("build/t/c/data"), "patched\n");
    patch("patched again");
    let o = run(&p, "scripts/c.rhai", &[]);
    assert!(rebuilt(&o, "c"), "{}", o.stdout);
    assert!(
        o.stdout.contains("`packages/p/fix.patch` changed"),
        "{}",
        o.stdout
    );
    assert_eq!(p.read("build/t/c/data"), "patched again\n");
}

#[test]
fn a_user_file_named_by_a_setting_by_its_contents() {
    let p = project();
    let mine = tempfile::tempdir().unwrap();
    let m = Utf8PathBuf::from_path_buf(mine.path().join("my.config")).unwrap();
    std::fs::write(&m, "1").unwrap();
    let set = format!("MY_DATA={m}");
    trigger(
        &p,
        || {
            std::fs::write(&m, "2").unwrap();
        },
        &["--set", &set],
        true,
        &format!("something in `{m}` was added, removed or changed"),
    );
    assert_eq!(p.read("build/t/a/mine"), "2");
}

#[test]
fn an_optional_file_that_appears() {
    let p = project();
    p.write(
        "scripts/a.rhai",
        r#"export const output = "a";
let f = ctx.optional_project_file("data/maybe.txt");
ctx.write(`${ctx.out}/f`, if f == () { "none" } else { ctx.read(f) });
"#,
    );
    trigger(
        &p,
        || {
            p.write("data/maybe.txt", "here");
        },
        &[],
        true,
        "`data/maybe.txt` appeared",
    );
    assert_eq!(p.read("build/t/a/f"), "here");
    // And its removal, the other way.
    std::fs::remove_file(p.root.join("data/maybe.txt")).unwrap();
    let o = run(&p, "scripts/b.rhai", &[]);
    assert!(
        o.stdout.contains("`data/maybe.txt` is gone"),
        "{}",
        o.stdout
    );
}

/// ccache is shared by build directories and targets: a compile that names
/// its files by absolute paths inside one build directory hits, in another
/// build directory or for another target, what the first stored (paths
/// beneath the build directory are hashed relative to it; the host's
/// compiler is keyed on the host-tools stage's content, not on one build of
/// it), and a changed header still misses.
#[test]
fn ccache_hits_across_build_directories() {
    crate::util::require_tool("ccache", "ccache");
    let p = TestProject::empty();
    p.add_target("t");
    p.add_target("u");
    p.write(
        "scripts/host-tools.rhai",
        "export const output = \"host\";\nexport const tools = true;\nctx.host_tools([\"ccache\", \"gcc\", \"cc\", \"as\", \"ld\"]);\n",
    );
    p.write(
        "scripts/cc.rhai",
        r##"export const output = "cc";
ctx.stage("host-tools");
let w = ctx.work_dir("cc");
ctx.write(w.file("inc/value.h"), ctx.setting("VALUE_H", "#define VALUE 1\n"));
ctx.write(w.file("x.c"), "#include <value.h>\nint value(void) { return VALUE; }\n");
w.run(["ccache", "gcc", "-O2", `-I${w.path}/inc`, "-c", `${w.path}/x.c`, "-o", `${ctx.out}/x.o`]);
"##,
    );
    let cache = tempfile::tempdir().unwrap();
    let cache = Utf8Path::from_path(cache.path()).unwrap().to_owned();
    let cache_setting = format!("CCACHE_DIR={cache}");
    let stats = || {
        let out = std::process::Command::new("ccache")
            .args(["--print-stats"])
            .env("CCACHE_DIR", cache.as_str())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let count = |key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
                .unwrap_or(0)
        };
        (
            count("direct_cache_hit") + count("preprocessed_cache_hit"),
            count("cache_miss"),
        )
    };
    let build = |dir: &str, extra: &[&str]| {
        let arch = if extra.first() == Some(&"u") {
            "u"
        } else {
            "t"
        };
        let extra = if arch == "u" { &extra[1..] } else { extra };
        let mut args = vec!["run", "scripts/cc.rhai", "--arch", arch, "--build-dir", dir];
        args.extend(["--set", cache_setting.as_str()]);
        args.extend(extra);
        p.rhbuild(&args).success();
    };
    build("build-a", &[]);
    assert_eq!(stats(), (0, 1), "the first compile is a miss");
    build("build-b", &[]);
    assert_eq!(stats(), (1, 1), "the second build directory missed");
    assert_eq!(
        std::fs::read(p.root.join("build-a/t/cc/x.o")).unwrap(),
        std::fs::read(p.root.join("build-b/t/cc/x.o")).unwrap()
    );
    build("build-a", &["u"]);
    assert_eq!(stats(), (2, 1), "another target missed");
    // A changed header is a new compile, not a stale hit.
    build("build-c", &["--set", "VALUE_H=#define VALUE 2\n"]);
    assert_eq!(stats(), (2, 2), "a changed header hit");
}

/// Two targets, `t1` and `t2`, that set COLOUR and TRIPLE differently; a
/// per-host stage `shared` (what it writes depends on COLOUR, which it cannot
/// see from a target) and a target stage `use` that copies it.
fn per_host_project() -> TestProject {
    let p = TestProject::empty();
    for (t, colour) in [("t1", "red"), ("t2", "blue")] {
        p.add_target(t);
        let text = p.read(&format!("targets/{t}/target.rhai"));
        p.write(
            &format!("targets/{t}/target.rhai"),
            &format!("{text}export const COLOUR = \"{colour}\";\n"),
        );
    }
    p.write(
        "scripts/shared.rhai",
        r#"export const output = "shared";
export const per_host = true;
export const tools = true;
ctx.host_tools(["sh", "sleep"], []);
let colour = ctx.setting("COLOUR", "unset");
ctx.dir(ctx.out).run(["sh", "-c", `echo ${colour} > made && echo built >> ${ctx.build_dir}/all/work/count && sleep ${ctx.setting("NAP", "0")}`]);
"#,
    );
    p.write(
        "scripts/use.rhai",
        "export const output = \"use\";\nlet s = ctx.stage(\"shared\");\nctx.copy(`${s}/made`, `${ctx.out}/made`);\n",
    );
    p
}

/// A per-host stage is built once, in build/all, for every target: it
/// sees no target's settings, so a second target finds it up to date; a
/// `--set` of what it reads rebuilds it (and says why).
#[test]
fn a_per_host_stage_is_built_once_for_every_target() {
    let p = per_host_project();
    let o = p
        .rhbuild(&["run", "scripts/use.rhai", "--arch", "t1"])
        .success();
    assert!(o.stdout.contains("=== shared (all)"), "{}", o.stdout);
    assert!(o.stdout.contains("=== use (t1)"), "{}", o.stdout);
    assert_eq!(p.read("build/all/shared/made"), "unset\n");
    assert!(p.root.join("build/all/logs/shared.log").is_file());
    assert!(!p.root.join("build/t1/shared").exists());
    let o = p
        .rhbuild(&["run", "scripts/use.rhai", "--arch", "t2"])
        .success();
    assert!(
        o.stdout.contains("--- shared (all): up to date"),
        "{}",
        o.stdout
    );
    assert_eq!(p.read("build/t2/use/made"), "unset\n");
    assert_eq!(p.read("build/all/work/count"), "built\n");
    let o = p
        .rhbuild(&[
            "run",
            "scripts/use.rhai",
            "--arch",
            "t2",
            "--explain",
            "--set",
            "COLOUR=given",
        ])
        .success();
    assert!(o.stdout.contains("=== shared (all)"), "{}", o.stdout);
    assert!(
        o.stdout
            .contains("setting `COLOUR` changed: (unset) → `given`"),
        "{}",
        o.stdout
    );
    assert_eq!(p.read("build/t2/use/made"), "given\n");
    // It needs no target: without --arch it is the same stage.
    let o = p
        .rhbuild(&["run", "scripts/shared.rhai", "--set", "COLOUR=given"])
        .success();
    assert!(
        o.stdout.contains("--- shared (all): up to date"),
        "{}",
        o.stdout
    );
    // `clean` of the stage removes the one copy every target shares.
    let o = p.rhbuild(&["clean", "--arch", "t1", "shared"]).success();
    assert!(o.stdout.contains("build/all/shared"), "{}", o.stdout);
    assert!(!p.root.join("build/all/shared").exists());
    assert!(p.root.join("build/t2/use").exists());
}

/// What a per-host stage may not reach: the target's name, its settings,
/// its stages, and the programs of its airlock (build/<arch>/host/bin).
#[test]
fn a_per_host_stage_cannot_reach_a_target() {
    let p = per_host_project();
    let attempt = |body: &str| {
        p.write(
            "scripts/shared.rhai",
            &format!(
                "export const output = \"shared\";\nexport const per_host = true;\nexport const tools = true;\nctx.host_tools([\"sh\"], []);\n{body}\n"
            ),
        );
        p.rhbuild(&["run", "scripts/use.rhai", "--arch", "t1"])
            .failure()
    };
    let o = attempt("let a = ctx.arch;");
    assert!(
        o.stderr.contains(
            "`shared` is a per-host stage, built once for every target: it has no `ctx.arch`"
        ),
        "{}",
        o.stderr
    );
    let o = attempt("let t = ctx.setting(\"TRIPLE\");");
    assert!(
        o.stderr
            .contains("setting `TRIPLE` is not set: `shared` is a per-host stage"),
        "{}",
        o.stderr
    );
    let o = attempt("ctx.target_file(\"linux.config\");");
    assert!(
        o.stderr
            .contains("it reads no target's files (`linux.config`)"),
        "{}",
        o.stderr
    );
    // Its output cannot take the place of the run's own directories.
    p.write(
        "scripts/shared.rhai",
        "export const output = \"logs\";\nexport const per_host = true;\n",
    );
    let o = p
        .rhbuild(&["run", "scripts/use.rhai", "--arch", "t1"])
        .failure();
    assert!(
        o.stderr
            .contains("`output` cannot be `logs`: build/<arch>/logs (and build/all/logs) holds the run's own files"),
        "{}",
        o.stderr
    );
    assert!(p.root.join("build/all/logs").is_dir());
    p.write("scripts/mine.rhai", "export const output = \"mine\";\n");
    let o = attempt("ctx.stage(\"mine\");");
    assert!(
        o.stderr
            .contains("it can use only other per-host stages, and `mine` is a target's"),
        "{}",
        o.stderr
    );
    // The target's airlock has `cat`; the per-host stage's has only sh.
    let bin = p.root.join("build/t1/host/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/cat", bin.join("cat")).unwrap();
    p.write(
        "scripts/mine.rhai",
        "export const output = \"mine\";\nctx.dir(ctx.out).run([\"cat\", \"/dev/null\"]);\n",
    );
    p.rhbuild(&["run", "scripts/mine.rhai", "--arch", "t1"])
        .success();
    let o = attempt("ctx.dir(ctx.out).run([\"cat\", \"/dev/null\"]);");
    assert!(
        o.stderr.contains("`cat` not found for package `shared`"),
        "{}",
        o.stderr
    );
    assert!(!p.root.join("build/all/shared").exists());
}

/// Two targets' runs side by side (build-all's children, under one build
/// lock) that both need the per-host stage: one builds it, the other waits
/// for it and finds it up to date.
#[test]
fn two_targets_side_by_side_build_a_per_host_stage_once() {
    let p = per_host_project();
    p.write(
        "scripts/both.rhai",
        r#"export const all_targets = true;
let r = ctx.run_targets(#{ script: "scripts/use.rhai", arches: ["t1", "t2"], parallel: 2, jobs: 1, dir: `${ctx.build_dir}/report` });
for x in r {
    if !x.passed { ctx.fail(`${x.arch} failed`); }
}
"#,
    );
    p.rhbuild(&["run", "scripts/both.rhai", "--set", "NAP=2"])
        .success();
    assert_eq!(p.read("build/all/work/count"), "built\n");
    let logs = p.read("build/report/logs/t1.log") + p.read("build/report/logs/t2.log").as_str();
    assert_eq!(logs.matches("=== shared (all)").count(), 1, "{logs}");
    assert_eq!(
        logs.matches("--- shared (all): up to date").count(),
        1,
        "{logs}"
    );
    assert!(
        logs.contains("waiting for another target's run to finish the per-host stage `shared`"),
        "{logs}"
    );
    assert_eq!(p.read("build/t1/use/made"), "unset\n");
    assert_eq!(p.read("build/t2/use/made"), "unset\n");
}

/// A per-host stage in use by one target's run is not replaced under it:
/// another run that must rebuild it (other settings) waits until the user
/// has ended, then rebuilds; the first run saw one build throughout.
#[test]
fn a_per_host_stage_is_not_rebuilt_under_a_run_that_uses_it() {
    let p = per_host_project();
    p.write(
        "scripts/host-tools.rhai",
        "export const output = \"host\";\nexport const tools = true;\nctx.host_tools([\"sleep\"]);\n",
    );
    p.write(
        "scripts/slow-use.rhai",
        "export const output = \"slow-use\";\nctx.stage(\"host-tools\");\nlet s = ctx.stage(\"shared\");\nctx.write(`${ctx.out}/before`, ctx.read(`${s}/made`));\nctx.dir(ctx.out).run([\"sleep\", \"3\"]);\nctx.write(`${ctx.out}/after`, ctx.read(`${s}/made`));\n",
    );
    p.rhbuild(&["run", "scripts/use.rhai", "--arch", "t1"])
        .success();
    let first = p.spawn(&["run", "scripts/slow-use.rhai", "--arch", "t1"]);
    crate::util::wait_for(&p.root.join("build/t1/logs/slow-use.log"));
    // Another target, other settings for the per-host stage: it waits.
    let o = p
        .rhbuild(&[
            "run",
            "scripts/use.rhai",
            "--arch",
            "t2",
            "--set",
            "COLOUR=green",
        ])
        .success();
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        o.stdout.contains("waiting for the other runs that use the per-host stage `shared` to end: this run must rebuild it"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("=== shared (all)"), "{}", o.stdout);
    assert_eq!(p.read("build/t1/slow-use/before"), "unset\n");
    assert_eq!(p.read("build/t1/slow-use/after"), "unset\n");
    assert_eq!(p.read("build/t2/use/made"), "green\n");
    assert_eq!(p.read("build/all/work/count"), "built\nbuilt\n");
    // Cleaning it waits for every run, as cleaning the whole directory does.
    p.rhbuild(&["clean", "--arch", "t1", "shared", "--no-wait"])
        .success();
    assert!(!p.root.join("build/all/shared").exists());
}

/// Download limits follow the settings the stage sees: a target file's
/// FETCH_MAX_BYTES bounds that target's downloads, not a per-host stage's.
#[test]
fn a_targets_download_limit_does_not_reach_a_per_host_stage() {
    use crate::http_server::{HttpServer, Route};
    let server = HttpServer::start();
    let data = b"twenty-four bytes long!\n".to_vec();
    server.route("/p-1.txt", Route::Bytes(data.clone()));
    let p = per_host_project();
    let text = p.read("targets/t1/target.rhai");
    p.write(
        "targets/t1/target.rhai",
        &format!("{text}export const FETCH_MAX_BYTES = \"10\";\n"),
    );
    p.write(
        "packages/p.rhai",
        &format!(
            "export const name = \"p\";\nexport const version = \"1\";\nexport const sources = [ #{{ url: \"{}\", sha256: \"{}\" }} ];\n",
            server.url("/p-1.txt"),
            rhbuild::checksum::sha256_bytes(&data)
        ),
    );
    p.write(
        "scripts/host-fetch.rhai",
        "export const output = \"host-fetch\";\nexport const per_host = true;\nctx.fetch([\"p\"]);\n",
    );
    p.write(
        "scripts/target-fetch.rhai",
        "export const output = \"target-fetch\";\nctx.fetch([\"p\"]);\n",
    );
    // The target's own fetch is bounded by its file's limit...
    let o = p
        .rhbuild(&["run", "scripts/target-fetch.rhai", "--arch", "t1"])
        .failure();
    assert!(
        o.stderr.contains("more than the 10 allowed"),
        "{}",
        o.stderr
    );
    // ...the per-host stage, run for the same target, is not.
    let o = p
        .rhbuild(&["run", "scripts/host-fetch.rhai", "--arch", "t1"])
        .success();
    assert!(o.stdout.contains("host-fetch (all) done"), "{}", o.stdout);
}
