//! The fault suite: every safety promise of ARCHITECTURE.md and
//! docs/security.md, attacked. Each test builds its hostile input itself
//! (scripts, packages, archives, servers on 127.0.0.1) in a fresh temporary
//! project; nothing needs a cross compiler, QEMU or a kernel, so the whole
//! suite runs in seconds.

use crate::http_server::{HttpServer, Route};
use crate::util::{TestProject, says};
use camino::{Utf8Path, Utf8PathBuf};
use rhbuild::checksum::{Expected, sha256_bytes};
use rhbuild::fetch::{FetchOptions, Origin, OriginKind, SourceCache, SourceSpec};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A project with a target `t`, a host-tools stage whose airlock holds a
/// few shell tools, and whatever the test writes next.
fn project() -> TestProject {
    let p = TestProject::empty();
    p.add_target("t");
    p.write(
        "scripts/host-tools.rhai",
        r#"export const output = "host";
export const tools = true;
ctx.host_tools(["sh", "bash", "cat", "touch", "sleep", "setsid", "echo", "ls", "mkdir", "head", "ln", "rm", "true", "chmod", "printf", "mv"]);
"#,
    );
    p
}

/// A directory outside the project and the build directory, with a file
/// the attacks aim at; it must look the same afterwards.
struct Outside {
    _tmp: tempfile::TempDir,
    dir: Utf8PathBuf,
}

impl Outside {
    fn new() -> Outside {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
        std::fs::write(dir.join("victim"), "untouched\n").unwrap();
        Outside { _tmp: tmp, dir }
    }

    fn listing(&self) -> Vec<String> {
        crate::util::listing(&self.dir)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn assert_untouched(&self) {
        assert_eq!(
            self.listing(),
            vec!["victim".to_string()],
            "something appeared outside"
        );
        assert_eq!(
            std::fs::read_to_string(self.dir.join("victim")).unwrap(),
            "untouched\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(self.dir.join("victim"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "the victim's mode changed");
    }
}

/// An action script (no `output`) that runs `body` with `ctx`, for
/// attacks through the script primitives.
fn run_action(p: &TestProject, body: &str) -> crate::util::Output {
    p.write("scripts/attack.rhai", body);
    p.rhbuild(&["run", "scripts/attack.rhai", "--arch", "t"])
        .output()
}

// ---------------------------------------------------------------------------
// Confined primitives: paths a script gives

#[test]
fn every_file_primitive_refuses_dotdot_out_of_the_build_directory() {
    let out = Outside::new();
    std::fs::set_permissions(
        out.dir.join("victim"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let p = project();
    // The build directory's parent is the project; `../../outside` climbs
    // from it to the outside directory through the project's parent.
    let rel_out = pathdiff(&p.root.join("build"), &out.dir);
    let esc = format!("${{ctx.build_dir}}/{rel_out}");
    let attacks = [
        format!(r#"ctx.write(`{esc}/new`, "x");"#),
        format!(r#"ctx.write(`{esc}/victim`, "overwritten");"#),
        format!(r#"ctx.mkdir(`{esc}/newdir`);"#),
        format!(r#"ctx.copy(ctx.project_file("scripts/attack.rhai"), `{esc}/copied`);"#),
        format!(r#"ctx.remove(`{esc}/victim`);"#),
        format!(r#"ctx.chmod(`{esc}/victim`, 0o777);"#),
        format!(r#"ctx.symlink("/etc/passwd", `{esc}/link`);"#),
        format!(r#"print(ctx.read(`{esc}/victim`));"#),
        format!(r#"print(ctx.list(`{esc}`));"#),
        format!(r#"print(ctx.exists(`{esc}/victim`));"#),
        format!(r#"print(ctx.file_size(`{esc}/victim`));"#),
        format!(r#"ctx.dir(`{esc}`);"#),
        format!(r#"ctx.dir(ctx.build_dir).dir(`{rel_out}/d`);"#),
        format!(
            r#"ctx.mkdir(`${{ctx.build_dir}}/w`); ctx.write(`${{ctx.build_dir}}/w/.config`, "CONFIG_A=y\n"); ctx.dir(`${{ctx.build_dir}}/w`).kconfig_set(`../{rel_out}/victim`, #{{ A: true }});"#
        ),
        format!(r#"print(ctx.read("{}/victim"));"#, out.dir),
        format!(r#"ctx.write("{}/new", "x");"#, out.dir),
    ];
    for a in &attacks {
        let o = run_action(&p, a);
        assert!(
            !o.status.success(),
            "not refused: {a}\n{}{}",
            o.stdout,
            o.stderr
        );
        assert!(
            o.stderr.contains("outside"),
            "{a}: the error should say the path leads outside:\n{}",
            o.stderr
        );
        assert!(
            !o.stdout.contains("untouched"),
            "{a} read the victim:\n{}",
            o.stdout
        );
        out.assert_untouched();
    }
}

/// A relative path from `from` to `to` made of `..` and names.
fn pathdiff(from: &Utf8Path, to: &Utf8Path) -> String {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); f.len() - common];
    parts.extend(t[common..].iter().map(|c| c.as_str().to_string()));
    parts.join("/")
}

#[test]
fn a_link_a_script_made_is_never_written_or_read_through() {
    let out = Outside::new();
    let p = project();
    for (link_target, what) in [
        (out.dir.to_string(), "absolute"),
        (pathdiff(&p.root.join("build"), &out.dir), "relative"),
    ] {
        for attack in [
            r#"ctx.write(`${ctx.build_dir}/l/new`, "x");"#,
            r#"ctx.write(`${ctx.build_dir}/l/victim`, "x");"#,
            r#"ctx.remove(`${ctx.build_dir}/l/victim`);"#,
            r#"ctx.chmod(`${ctx.build_dir}/l/victim`, 0o777);"#,
            r#"print(ctx.read(`${ctx.build_dir}/l/victim`));"#,
            r#"ctx.mkdir(`${ctx.build_dir}/l/sub`);"#,
            r#"ctx.copy(ctx.project_file("scripts/attack.rhai"), `${ctx.build_dir}/l/copied`);"#,
        ] {
            let body = format!(
                "ctx.remove(`${{ctx.build_dir}}/l`);\nctx.symlink(\"{link_target}\", `${{ctx.build_dir}}/l`);\n{attack}\n"
            );
            let o = run_action(&p, &body);
            assert!(
                !o.status.success(),
                "{what} link: not refused: {attack}\n{}",
                o.stderr
            );
            assert!(!o.stdout.contains("untouched"), "{attack}");
            out.assert_untouched();
        }
        // Removing the link itself is fine and leaves its target alone.
        let o = run_action(&p, "ctx.remove(`${ctx.build_dir}/l`);");
        assert!(o.status.success(), "{}", o.stderr);
        out.assert_untouched();
    }
}

#[test]
fn chains_of_links_and_links_to_links_stay_confined() {
    let out = Outside::new();
    let p = project();
    // a -> b -> c -> outside: each hop is a link the script made.
    let body = format!(
        r#"ctx.mkdir(`${{ctx.build_dir}}/x`);
ctx.symlink("{}", `${{ctx.build_dir}}/x/c`);
ctx.symlink("c", `${{ctx.build_dir}}/x/b`);
ctx.symlink("x/b", `${{ctx.build_dir}}/a`);
ctx.write(`${{ctx.build_dir}}/a/new`, "x");
"#,
        out.dir
    );
    let o = run_action(&p, &body);
    assert!(!o.status.success());
    says(&o.stderr, "outside");
    out.assert_untouched();
    // A chain that stays inside is followed.
    let body = r#"ctx.mkdir(`${ctx.build_dir}/in/real`);
ctx.symlink("real", `${ctx.build_dir}/in/one`);
ctx.symlink("in/one", `${ctx.build_dir}/two`);
ctx.write(`${ctx.build_dir}/two/f`, "inside");
print(ctx.read(`${ctx.build_dir}/in/real/f`));
"#;
    let o = run_action(&p, body);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(o.stdout.contains("inside"));
}

#[test]
fn an_overlay_holding_a_link_out_is_copied_as_a_link_and_not_followed() {
    let out = Outside::new();
    let p = project();
    let overlay = tempfile::tempdir().unwrap();
    let ov = Utf8Path::from_path(overlay.path()).unwrap();
    std::fs::create_dir_all(ov.join("etc")).unwrap();
    std::fs::write(ov.join("etc/motd"), "hello\n").unwrap();
    std::os::unix::fs::symlink(&out.dir, ov.join("escape")).unwrap();
    std::os::unix::fs::symlink(out.dir.join("victim"), ov.join("victim")).unwrap();
    let body = r#"let root = `${ctx.build_dir}/root`;
ctx.mkdir(root);
ctx.copy(ctx.setting("MY_ROOT_OVERLAY"), root);
print(ctx.read(`${root}/etc/motd`));
ctx.write(`${root}/escape/new`, "x");
"#;
    p.write("scripts/attack.rhai", body);
    let o = p
        .rhbuild(&["run", "scripts/attack.rhai", "--arch", "t"])
        .env("MY_ROOT_OVERLAY", ov.as_str())
        .output();
    assert!(o.stdout.contains("hello"), "{}{}", o.stdout, o.stderr);
    assert!(
        !o.status.success(),
        "writing through the overlay's link was not refused"
    );
    let copied = p.root.join("build/root/escape");
    assert!(copied.is_symlink(), "the link was not copied as a link");
    // Reading through the copied link is refused too.
    let o = run_action(&p, "print(ctx.read(`${ctx.build_dir}/root/victim`));");
    assert!(!o.status.success());
    assert!(!o.stdout.contains("untouched"));
    out.assert_untouched();
}

/// A `MY_*` setting naming one file (MY_BUSYBOX_CONFIG) opens that file,
/// not the directory it sits in: its neighbours, `..` from it and a link
/// beside it stay unreadable.
#[test]
fn a_user_file_setting_opens_that_file_and_nothing_beside_it() {
    let out = Outside::new();
    let p = project();
    let mine = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(mine.path()).unwrap();
    std::fs::write(dir.join("my.config"), "CONFIG_X=y\n").unwrap();
    std::fs::write(dir.join("secret"), "neighbour\n").unwrap();
    std::os::unix::fs::symlink(out.dir.join("victim"), dir.join("link")).unwrap();
    let file = dir.join("my.config");
    let o = p
        .rhbuild(&["run", "scripts/attack.rhai", "--arch", "t"])
        .env("MY_BUSYBOX_CONFIG", file.as_str());
    p.write(
        "scripts/attack.rhai",
        "print(ctx.read(ctx.setting(\"MY_BUSYBOX_CONFIG\")));\n",
    );
    let o = o.output();
    assert!(
        o.status.success() && o.stdout.contains("CONFIG_X=y"),
        "{}{}",
        o.stdout,
        o.stderr
    );
    for path in [
        dir.join("secret").to_string(),
        format!("{file}/../secret"),
        dir.join("link").to_string(),
        dir.to_string(),
    ] {
        p.write(
            "scripts/attack.rhai",
            &format!("print(ctx.read(\"{path}\"));\nprint(ctx.list(\"{dir}\"));\n"),
        );
        let o = p
            .rhbuild(&["run", "scripts/attack.rhai", "--arch", "t"])
            .env("MY_BUSYBOX_CONFIG", file.as_str())
            .output();
        assert!(!o.status.success(), "`{path}` was read: {}", o.stdout);
        assert!(!o.stdout.contains("neighbour") && !o.stdout.contains("untouched"));
        says(
            &o.stderr,
            "outside the build directory, the project and the directories named by MY_* settings",
        );
    }
    out.assert_untouched();
}

#[test]
fn project_files_that_link_out_are_not_read() {
    let out = Outside::new();
    let p = project();
    std::os::unix::fs::symlink(out.dir.join("victim"), p.root.join("targets/t/secret")).unwrap();
    let o = run_action(&p, r#"print(ctx.read(ctx.target_file("secret")));"#);
    assert!(!o.status.success());
    assert!(!o.stdout.contains("untouched"), "{}", o.stdout);
}

// ---------------------------------------------------------------------------
// The sandboxed airlock

/// A package whose build runs `argv` (a Rhai array literal) in a work
/// directory, and a stage that builds it.
fn package_running(p: &TestProject, argv: &str) {
    package_running_with(p, "run", argv);
}

/// The same through another `Dir` method that runs a command.
fn package_running_with(p: &TestProject, method: &str, argv: &str) {
    p.write(
        "packages/evil.rhai",
        &format!(
            r#"export const name = "evil";
export const version = "1";
export const sources = [ #{{ url: "http://127.0.0.1:1/evil-1.tar.gz", sha256: "{}" }} ];
fn build(ctx) {{
    let w = ctx.work_dir("evil");
    w.{method}({argv});
}}
"#,
            "0".repeat(64)
        ),
    );
    p.write(
        "scripts/victim-stage.rhai",
        "export const output = \"victim-stage\";\nctx.stage(\"host-tools\");\nctx.build(\"evil\");\n",
    );
}

fn run_stage(p: &TestProject) -> crate::util::Output {
    p.rhbuild(&["run", "scripts/victim-stage.rhai", "--arch", "t"])
        .output()
}

#[test]
fn a_build_command_cannot_write_outside_the_build_directory() {
    let out = Outside::new();
    let p = project();
    let marker = format!("/tmp/rhbuild-fault-{}", std::process::id());
    for target in [
        marker.clone(),
        out.dir.join("new").to_string(),
        out.dir.join("victim").to_string(),
        p.root.join("scripts/planted").to_string(),
    ] {
        package_running(&p, &format!(r#"["sh", "-c", "echo pwned > {target}"]"#));
        let o = run_stage(&p);
        assert!(
            !o.status.success(),
            "writing {target} was not refused:\n{}",
            o.stderr
        );
        says(&o.stderr, "package `evil`");
        says(&o.stderr, "Permission denied");
        assert!(
            !Utf8Path::new(&target).exists() || target.ends_with("victim"),
            "{target} appeared"
        );
        out.assert_untouched();
        assert!(
            !p.root.join("build/t/victim-stage").exists(),
            "a failed stage looks finished"
        );
    }
    assert!(!Utf8Path::new(&marker).exists());
}

/// A stage's command writes beneath its own output (the `.part` directory
/// being built), its side's work and temporary directories and ccache's
/// only. Another stage's finished output, the top of its target's
/// directory, the verified source trees of `build/src`, another target's
/// directory, the per-host stages' `build/all`, the download cache and the
/// top of the build directory are read-only to it; a per-host stage's
/// commands are held the same way on `build/all`'s side.
#[test]
fn a_build_command_writes_only_its_stages_output_and_scratch() {
    let p = project();
    p.add_target("u");
    p.rhbuild(&["run", "scripts/host-tools.rhai", "--arch", "t"])
        .success();
    let build = p.root.join("build");
    let host_manifest = p.read("build/t/host/manifest.json");
    let others = [
        "src/gcc-12.2.0-abc/configure",
        "u/cross-compiler/bin/u-linux-musl-gcc",
        "all/host-libraries/lib/libgmp.a",
        "cache/gcc-12.2.0.tar.xz",
    ];
    for f in others {
        std::fs::create_dir_all(build.join(f).parent().unwrap()).unwrap();
        std::fs::write(build.join(f), "original\n").unwrap();
    }
    let refused = |o: &crate::util::Output, what: &str| {
        assert!(
            !o.status.success(),
            "writing {what} was not refused:\n{}",
            o.stderr
        );
        says(&o.stderr, "Permission denied");
    };
    let new = [
        "t/planted",
        "t/host/planted",
        "src/planted",
        "u/planted",
        "all/planted",
        "planted",
    ];
    for f in others.iter().chain(&new).chain(&["t/host/manifest.json"]) {
        let path = build.join(f);
        package_running(&p, &format!(r#"["sh", "-c", "echo pwned >> {path}"]"#));
        let o = run_stage(&p);
        refused(&o, f);
        says(&o.stderr, "package `evil`");
    }
    // Replacing rather than appending: a rename into a shared tree.
    let configure = build.join(others[0]);
    package_running(
        &p,
        &format!(r#"["sh", "-c", "echo pwned > mine && mv mine {configure}"]"#),
    );
    refused(&run_stage(&p), "a rename into build/src");
    for f in others {
        assert_eq!(p.read(&format!("build/{f}")), "original\n", "{f} changed");
    }
    assert_eq!(p.read("build/t/host/manifest.json"), host_manifest);
    for f in new {
        assert!(!build.join(f).exists(), "{f} appeared");
    }

    // Its own: the work directory, TMPDIR, ccache's directory (by default
    // and outside, as CI gives it) and the stage's output.
    package_running(
        &p,
        r#"["sh", "-c", "echo ok > ok && echo ok > \"$TMPDIR/ok\" && echo ok > \"$CCACHE_DIR/probe\""]"#,
    );
    let shared = tempfile::tempdir().unwrap();
    let shared = Utf8Path::from_path(shared.path()).unwrap();
    // A CCACHE_DIR the user named through a link: followed once, by the
    // host (a grant is never taken through a link at its name).
    let named = tempfile::tempdir().unwrap();
    let named = Utf8Path::from_path(named.path()).unwrap();
    let through = named.join("real");
    std::fs::create_dir(&through).unwrap();
    std::os::unix::fs::symlink(&through, named.join("link")).unwrap();
    let link = named.join("link");
    for (setting, ccache) in [
        ("", build.join("ccache")),
        (shared.as_str(), shared.to_owned()),
        (link.as_str(), through.clone()),
    ] {
        let o = p
            .rhbuild(&[
                "run",
                "scripts/victim-stage.rhai",
                "--arch",
                "t",
                "--force",
                "victim-stage",
            ])
            .env("RHBUILD_SET_CCACHE_DIR", setting)
            .output();
        assert!(o.status.success(), "{}", o.stderr);
        for f in ["build/t/work/evil/ok", "build/t/tmp/ok"] {
            assert_eq!(p.read(f), "ok\n");
        }
        assert_eq!(
            std::fs::read_to_string(ccache.join("probe")).unwrap(),
            "ok\n"
        );
    }

    // A stage's commands write its output; a per-host stage's too, and
    // nothing of a target's or another per-host stage's.
    let stage = |per_host: bool, cmd: &str| {
        let head = if per_host {
            "export const per_host = true;\nexport const tools = true;\nctx.host_tools([\"sh\"], []);"
        } else {
            "ctx.stage(\"host-tools\");"
        };
        p.write(
            "scripts/own.rhai",
            &format!(
                "export const output = \"own\";\n{head}\nctx.dir(ctx.out).run([\"sh\", \"-c\", \"{cmd}\"]);\n"
            ),
        );
        p.rhbuild(&["run", "scripts/own.rhai", "--arch", "t"])
            .output()
    };
    let o = stage(false, "echo ok > made");
    assert!(o.status.success(), "{}", o.stderr);
    assert_eq!(p.read("build/t/own/made"), "ok\n");
    for f in [
        "t/planted",
        "u/planted",
        "src/planted",
        "all/planted",
        others[2],
    ] {
        refused(&stage(true, &format!("echo pwned >> {}", build.join(f))), f);
    }
    assert_eq!(p.read(&format!("build/{}", others[2])), "original\n");
    for f in new {
        assert!(!build.join(f).exists(), "{f} appeared");
    }
    let o = stage(true, "echo ok > made");
    assert!(o.status.success(), "{}", o.stderr);
    assert_eq!(p.read("build/all/own/made"), "ok\n");
}

/// Preparing a source tree runs the host's `patch` under the source
/// sandbox: whatever runs as `patch` (here a stand-in first in PATH that
/// tries to write elsewhere, then hands over to the real one) writes only
/// beneath `build/src`, and the patched tree is still made.
#[test]
fn patch_preparing_a_source_writes_only_build_src() {
    assert!(
        Utf8Path::new("/usr/bin/patch").is_file(),
        "GNU `patch` is needed: apt-get install patch"
    );
    let p = project();
    let out = Outside::new();
    let build = p.root.join("build");
    let victims = [
        "t/host/manifest.json",
        "cache/planted",
        "all/planted",
        "planted",
        "u/planted",
    ];
    p.rhbuild(&["run", "scripts/host-tools.rhai", "--arch", "t"])
        .success();
    let host_manifest = p.read("build/t/host/manifest.json");
    // Another target's directory, there to be written if nothing stops it.
    std::fs::create_dir_all(build.join("u")).unwrap();
    // The source, in the download cache so nothing is fetched.
    let tarball = build.join("cache/pt-1.tar.gz");
    write_tar_gz(&tarball, |b| {
        add_file(b, "pt-1/data", 4, &mut &b"one\n"[..]);
    });
    let sha = sha256_bytes(&std::fs::read(&tarball).unwrap());
    p.write(
        "packages/pt.rhai",
        &format!(
            r#"export const name = "pt";
export const version = "1";
export const sources = [ #{{ url: "http://127.0.0.1:1/pt-1.tar.gz", sha256: "{sha}" }} ];
fn build(ctx) {{
    ctx.copy(`${{ctx.source()}}/data`, `${{ctx.opts.out}}/data`);
}}
"#
        ),
    );
    p.write(
        "packages/pt/fix.patch",
        "--- a/data\n+++ b/data\n@@ -1 +1 @@\n-one\n+patched\n",
    );
    p.write(
        "scripts/patched.rhai",
        "export const output = \"patched\";\nctx.build(\"pt\", #{ out: ctx.out });\n",
    );
    // The stand-in: each write that gets through is recorded in the tree it
    // may write (which the test reads afterwards), then the real patch runs.
    let bin = tempfile::tempdir().unwrap();
    let bin = Utf8Path::from_path(bin.path()).unwrap();
    let mut script = String::from("#!/bin/sh\n");
    let targets: Vec<Utf8PathBuf> = victims
        .iter()
        .map(|v| build.join(v))
        .chain([out.dir.join("victim"), out.dir.join("new")])
        .collect();
    for t in &targets {
        script += &format!("if echo pwned >> '{t}' 2>/dev/null; then echo '{t}' >> written; fi\n");
    }
    script += "echo ok >> inside\nexec /usr/bin/patch \"$@\"\n";
    std::fs::write(bin.join("patch"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("patch"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap());
    let o = p
        .rhbuild(&["run", "scripts/patched.rhai", "--arch", "t"])
        .env("PATH", &path)
        .output();
    assert!(o.status.success(), "{}", o.stderr);
    assert_eq!(p.read("build/t/patched/data"), "patched\n");
    // The stand-in ran (twice: the dry run, then the patch) in the tree.
    let tree = std::fs::read_dir(build.join("src"))
        .unwrap()
        .flatten()
        .map(|e| Utf8PathBuf::from_path_buf(e.path()).unwrap())
        .find(|d| d.file_name().is_some_and(|n| n.starts_with("pt-1")))
        .expect("the patched tree in build/src");
    assert_eq!(
        p.read(tree.join("inside").strip_prefix(&p.root).unwrap().as_str()),
        "ok\nok\n"
    );
    assert!(
        !tree.join("written").exists(),
        "writes got through: {}",
        std::fs::read_to_string(tree.join("written")).unwrap_or_default()
    );
    assert_eq!(p.read("build/t/host/manifest.json"), host_manifest);
    for v in &victims[1..] {
        assert!(!build.join(v).exists(), "{v} appeared");
    }
    out.assert_untouched();
}

/// An action (a script without an output: a menuconfig, the dev
/// environment) writes only its target's scratch directories: a finished
/// stage and the top of the target's directory are read-only to its
/// commands, while the disk it makes (by the host and mke2fs, granted that
/// one file) is still made.
#[test]
fn an_actions_commands_write_only_scratch() {
    let p = project();
    p.rhbuild(&["run", "scripts/host-tools.rhai", "--arch", "t"])
        .success();
    let build = p.root.join("build");
    let manifest = p.read("build/t/host/manifest.json");
    for f in ["t/host/manifest.json", "t/planted", "t/hdb.img"] {
        let o = run_action(
            &p,
            &format!(
                "ctx.stage(\"host-tools\");\nctx.work_dir(\"x\").run([\"sh\", \"-c\", \"echo pwned >> {}\"]);\n",
                build.join(f)
            ),
        );
        assert!(!o.status.success(), "writing {f} was not refused");
        says(&o.stderr, "Permission denied");
    }
    assert_eq!(p.read("build/t/host/manifest.json"), manifest);
    assert!(!build.join("t/planted").exists());
    assert!(!build.join("t/hdb.img").exists());
    let o = run_action(
        &p,
        "ctx.stage(\"host-tools\");\nctx.work_dir(\"x\").run([\"sh\", \"-c\", \"echo ok > ok && echo ok > \\\"$TMPDIR/ok\\\"\"]);\nctx.blank_ext2(`${ctx.arch_dir}/hdb.img`, 4);\n",
    );
    assert!(o.status.success(), "{}", o.stderr);
    assert_eq!(p.read("build/t/work/x/ok"), "ok\n");
    assert_eq!(p.read("build/t/tmp/ok"), "ok\n");
    let disk = std::fs::metadata(build.join("t/hdb.img")).unwrap();
    assert_eq!(disk.len(), 4 << 20);
}

/// The sandbox grants writing to the directory or file at each name it is
/// given, never to what a link there leads to; a file's grant is that
/// file alone, not its directory.
#[test]
fn a_write_grant_is_what_is_at_its_name_never_where_a_link_leads() {
    use rhbuild::sandbox::{Level, Sandbox};
    let mut sandbox = Sandbox::new(Level::Auto, Vec::new()).unwrap();
    sandbox.exe = env!("CARGO_BIN_EXE_rhbuild").into();
    let status = sandbox.status().unwrap();
    assert!(
        status.landlock,
        "this test needs Landlock: {}",
        status.summary()
    );
    let out = Outside::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(tmp.path()).unwrap();
    std::os::unix::fs::symlink(&out.dir, dir.join("link")).unwrap();
    std::fs::write(dir.join("file"), "").unwrap();
    std::fs::write(dir.join("sibling"), "kept\n").unwrap();
    let confined = sandbox.writing(vec![dir.join("link"), dir.join("file")]);
    let sh = |cmd: String| {
        confined
            .command("sh", Utf8Path::new("/bin/sh"), &["-c".to_string(), cmd])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!sh(format!("echo pwned >> {}/link/victim", dir)));
    assert!(!sh(format!("echo pwned > {}/link/new", dir)));
    assert!(!sh(format!("echo pwned >> {}", out.dir.join("victim"))));
    assert!(!sh(format!("echo pwned >> {}", dir.join("sibling"))));
    assert!(!sh(format!("echo pwned > {}", dir.join("new"))));
    assert!(sh(format!("echo mine >> {}", dir.join("file"))));
    assert_eq!(std::fs::read_to_string(dir.join("file")).unwrap(), "mine\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("sibling")).unwrap(),
        "kept\n"
    );
    assert!(!dir.join("new").exists());
    out.assert_untouched();
}

/// A command run on the user's terminal (a menuconfig) is still in the
/// sandbox: it writes nothing outside the build directory.
#[test]
fn a_command_on_the_terminal_is_sandboxed_too() {
    let out = Outside::new();
    let p = project();
    let target = out.dir.join("new");
    package_running_with(
        &p,
        "run_on_terminal",
        &format!(r#"["sh", "-c", "echo pwned > {target}"]"#),
    );
    let o = run_stage(&p);
    assert!(!o.status.success(), "writing {target} was not refused");
    says(&o.stderr, "package `evil`");
    assert!(!target.exists(), "{target} appeared");
    out.assert_untouched();
}

#[test]
fn a_build_command_reaches_no_network_not_even_loopback() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let p = project();
    package_running(
        &p,
        &format!(r#"["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"]"#),
    );
    let o = run_stage(&p);
    assert!(
        !o.status.success(),
        "the connection was not refused:\n{}",
        o.stderr
    );
    says(&o.stderr, "package `evil`");
    assert!(
        listener.accept().is_err(),
        "the listener on 127.0.0.1 got a connection"
    );
}

#[test]
fn a_program_named_by_path_outside_the_build_directory_and_project_is_refused() {
    let p = project();
    for argv in [
        r#"["/bin/sh", "-c", "true"]"#,
        r#"["/usr/bin/head", "/etc/shadow"]"#,
    ] {
        package_running(&p, argv);
        let o = run_stage(&p);
        assert!(!o.status.success(), "{argv} ran:\n{}", o.stderr);
        says(&o.stderr, "is named by path for package `evil`");
        says(&o.stderr, "bare name");
    }
    // A script of the package's own work directory, named by path, runs.
    package_running(
        &p,
        r#"["sh", "-c", "printf '#!/bin/sh\necho ran-it\n' > run.sh && chmod +x run.sh"]); w.run(["./run.sh"]"#,
    );
    let o = run_stage(&p);
    assert!(o.status.success(), "{}", o.stderr);
}

#[test]
fn a_command_cannot_replace_the_airlocks_path() {
    let p = project();
    p.write(
        "packages/evil.rhai",
        &format!(
            r#"export const name = "evil";
export const version = "1";
export const sources = [ #{{ url: "http://127.0.0.1:1/evil-1.tar.gz", sha256: "{}" }} ];
fn build(ctx) {{
    ctx.work_dir("evil").run(["sh", "-c", "true"], #{{ PATH: "/usr/bin:/bin" }});
}}
"#,
            "0".repeat(64)
        ),
    );
    p.write(
        "scripts/victim-stage.rhai",
        "export const output = \"victim-stage\";\nctx.stage(\"host-tools\");\nctx.build(\"evil\");\n",
    );
    let o = run_stage(&p);
    assert!(!o.status.success());
    says(&o.stderr, "sets `PATH`");
}

#[test]
fn nothing_a_command_started_outlives_it() {
    let p = project();
    let tag = 424242 + std::process::id() % 1000;
    package_running(
        &p,
        &format!(
            r#"["sh", "-c", "setsid sleep {tag} < /dev/null > /dev/null 2>&1 & echo started"]"#
        ),
    );
    let o = run_stage(&p);
    assert!(o.status.success(), "{}", o.stderr);
    std::thread::sleep(Duration::from_millis(300));
    let ps = Command::new("pgrep")
        .args(["-f", &format!("sleep {tag}")])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "a daemon survived its command: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}

/// A stand-in distcc server on every address (so only the sandbox keeps
/// a command from reaching it elsewhere than through its forward): it
/// answers each connection with a line and counts them.
fn counting_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = std::io::Write::write_all(&mut c, b"served\n");
        }
    });
    (port, count)
}

/// This machine's address on its way out (no packet is sent), if it has one.
fn own_address() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    Some(s.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
}

/// The victim stage run with `extra` arguments, pretending the kernel
/// lacks `deny` (see `RHBUILD_SANDBOX_DENY`; empty: nothing).
fn run_stage_with(p: &TestProject, extra: &[&str], deny: &str) -> crate::util::Output {
    let mut args = vec!["run", "scripts/victim-stage.rhai", "--arch", "t"];
    args.extend_from_slice(extra);
    p.rhbuild(&args).env("RHBUILD_SANDBOX_DENY", deny).output()
}

/// The faults project, with perl (to try a bind) among its host tools.
fn project_with_perl() -> TestProject {
    let p = project();
    p.write(
        "scripts/host-tools.rhai",
        r#"export const output = "host";
export const tools = true;
ctx.host_tools(["sh", "bash", "cat", "touch", "sleep", "echo", "head", "grep", "true", "perl"]);
"#,
    );
    p
}

/// Processes this one adopted (as a subreaper) that are distcc forwarders
/// (`rhbuild-forward`), zombies included: "pid state".
fn adopted_forwarders() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if head.ends_with("(rhbuild-forward") && fields.get(1) == Some(&me.as_str()) {
            found.push(format!(
                "{} {}",
                entry.file_name().to_string_lossy(),
                fields[0]
            ));
        }
    }
    found
}

#[test]
fn a_build_command_reaches_the_distcc_servers_and_nothing_else() {
    let (port, served) = counting_server();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    other.set_nonblocking(true).unwrap();
    let elsewhere = own_address()
        .map(|ip| ip.to_string())
        .unwrap_or("10.0.2.2".into());
    let p = project_with_perl();
    let hosts = format!("DISTCC_HOSTS=127.0.0.1:{port}/2");
    package_running(
        &p,
        &format!(
            r#"["bash", "-c", "set -e; exec 3<>/dev/tcp/127.0.0.1/{port}; head -1 <&3 | grep -q served; echo DISTCC_HOSTS=$DISTCC_HOSTS; if (exec 4<>/dev/tcp/127.0.0.1/{other_port}); then echo other-port; exit 1; fi; if (exec 5<>/dev/tcp/{elsewhere}/{port}); then echo other-address; exit 1; fi; if perl -MIO::Socket::INET -e 'IO::Socket::INET->new(Listen => 1, LocalAddr => q(127.0.0.1), LocalPort => 0) or exit 1'; then echo bound; exit 1; fi; echo only-the-server"]"#
        ),
    );
    let o = run_stage_with(&p, &["--set", &hosts], "");
    let log = p.read("build/t/logs/evil.log");
    assert!(o.status.success(), "{}\n{log}", o.stderr);
    says(&log, "only-the-server");
    // The command saw the forward's port, the server's own here.
    says(&log, &format!("DISTCC_HOSTS=127.0.0.1:{port}/2"));
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1, "{log}");
    assert!(other.accept().is_err(), "the other port got a connection");
    let m = p.read("build/t/victim-stage/manifest.json");
    assert!(
        m.contains(&format!("tcp to 127.0.0.1:{port} (forwarded)")),
        "{m}"
    );
    // The forwarder ended with the command.
    let left = crate::distcc::processes_mentioning(p.root.as_str());
    assert!(left.is_empty(), "left running: {left:?}");

    // Without a PID namespace the sandbox still ends and reaps the
    // forwarder itself, rather than leaving a zombie to whatever adopts
    // orphans: this test process adopts them here, and none is one.
    // SAFETY: prctl on this process; orphans then come to it, as zombies
    // at worst, which the check below reads.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    std::fs::remove_dir_all(p.root.join("build/t/victim-stage")).unwrap();
    let o = run_stage_with(&p, &["--set", &hosts], "pidns");
    let log = p.read("build/t/logs/evil.log");
    assert!(o.status.success(), "{}\n{log}", o.stderr);
    says(&log, "only-the-server");
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2, "{log}");
    let adopted = adopted_forwarders();
    // Orphans of tests running beside this one go back to pid 1.
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0) };
    assert!(
        adopted.is_empty(),
        "forwarders left to this process: {adopted:?}"
    );

    // Without a network namespace, the run says what is not confined,
    // and `--sandbox require` refuses.
    std::fs::remove_dir_all(p.root.join("build/t/victim-stage")).unwrap();
    let o = run_stage_with(&p, &["--set", &hosts], "netns");
    says(&o.stderr, "partial sandbox");
    says(
        &o.stderr,
        &format!(
            "reach the distcc servers directly, and Landlock lets them connect to TCP port {port} on any address"
        ),
    );
    let o = run_stage_with(&p, &["--set", &hosts, "--sandbox", "require"], "netns");
    assert!(!o.status.success());
    says(&o.stderr, "cannot be fully enforced");
    // A host the sandbox cannot forward to is refused, naming the setting.
    let o = run_stage_with(&p, &["--set", "DISTCC_HOSTS=@builder/4"], "");
    assert!(!o.status.success());
    says(&o.stderr, "`DISTCC_HOSTS`: `@builder/4` is an ssh host");
}

#[test]
fn sigint_while_a_command_talks_to_a_distcc_server_leaves_nothing_running() {
    let (port, served) = counting_server();
    let p = project_with_perl();
    let tag = 434343 + std::process::id() % 1000;
    let marker = p.root.join("build/t/work/evil/connected");
    package_running(
        &p,
        &format!(
            r#"["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/{port} && touch connected && sleep {tag}"]"#
        ),
    );
    let child = spawn_run(
        &p,
        &[
            "run",
            "scripts/victim-stage.rhai",
            "--arch",
            "t",
            "--set",
            &format!("DISTCC_HOSTS=127.0.0.1:{port}"),
        ],
    );
    wait_for(&marker);
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1);
    interrupt_and_expect_130(child);
    std::thread::sleep(Duration::from_millis(300));
    let left = crate::distcc::processes_mentioning(p.root.as_str());
    assert!(left.is_empty(), "left running: {left:?}");
    let left = crate::distcc::processes_mentioning(&format!("sleep {tag}"));
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(!p.root.join("build/t/victim-stage").exists());
}

#[test]
fn a_partial_sandbox_is_said_and_recorded_and_require_fails_clearly() {
    let p = project();
    package_running(&p, r#"["true"]"#);
    let o = p
        .rhbuild(&["run", "scripts/victim-stage.rhai", "--arch", "t"])
        .env("RHBUILD_SANDBOX_DENY", "netns")
        .output();
    assert!(o.status.success(), "{}", o.stderr);
    says(&o.stderr, "partial sandbox");
    says(&o.stderr, "no network namespace");
    let m = p.read("build/t/victim-stage/manifest.json");
    assert!(m.contains("\"sandbox\": \"partial:"), "{m}");
    // Landlock ABI 2: said as such.
    std::fs::remove_dir_all(p.root.join("build/t")).unwrap();
    let o = p
        .rhbuild(&["run", "scripts/victim-stage.rhai", "--arch", "t"])
        .env("RHBUILD_SANDBOX_ABI", "2")
        .output();
    says(&o.stderr, "truncate(2)");
    std::fs::remove_dir_all(p.root.join("build/t")).unwrap();
    let o = p
        .rhbuild(&[
            "run",
            "scripts/victim-stage.rhai",
            "--arch",
            "t",
            "--sandbox",
            "require",
        ])
        .env("RHBUILD_SANDBOX_DENY", "landlock")
        .output();
    assert!(!o.status.success());
    says(&o.stderr, "cannot be fully enforced");
    says(&o.stderr, "no Landlock");
    assert!(!p.root.join("build/t/victim-stage").exists());
    // A full sandbox says nothing and records "full".
    let o = run_stage(&p);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(!o.stderr.contains("sandbox"), "{}", o.stderr);
    let m = p.read("build/t/victim-stage/manifest.json");
    assert!(m.contains("\"sandbox\": \"full:"), "{m}");
}

// ---------------------------------------------------------------------------
// Bounded inputs: downloads

fn spec_for(url: String, data: &[u8], size: Option<u64>) -> SourceSpec {
    SourceSpec {
        package: "pkg".into(),
        origins: vec![Origin {
            kind: OriginKind::Url(url),
            mirrors: vec![],
            expected: Expected {
                sha1: None,
                sha256: Some(sha256_bytes(data)),
            },
            size,
        }],
    }
}

fn cache_dir() -> (tempfile::TempDir, Utf8PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = Utf8PathBuf::from_path_buf(t.path().join("cache")).unwrap();
    (t, p)
}

fn cache_files(dir: &Utf8Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n != ".locks")
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn an_endless_body_stops_at_the_origins_size_and_leaves_nothing() {
    let server = HttpServer::start();
    server.route("/pkg-1.tar.gz", Route::Endless);
    let (_t, dir) = cache_dir();
    let cache = SourceCache::new(dir.clone());
    let data = b"the real file, 158 bytes long or so";
    let opts = FetchOptions {
        retry_delay: Duration::ZERO,
        ..FetchOptions::default()
    };
    let e = cache
        .fetch(
            &spec_for(server.url("/pkg-1.tar.gz"), data, Some(data.len() as u64)),
            &opts,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than the"), "{e}");
    assert!(cache_files(&dir).is_empty(), "{:?}", cache_files(&dir));
    // Without a size, FETCH_MAX_BYTES (here 1 MiB) bounds it.
    let opts = FetchOptions {
        max_bytes: 1 << 20,
        ..opts
    };
    let e = cache
        .fetch(
            &spec_for(server.url("/pkg-1.tar.gz"), data, None),
            &opts,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than the 1048576 bytes"), "{e}");
    assert!(cache_files(&dir).is_empty());
}

#[test]
fn a_trickling_server_meets_the_deadline() {
    let server = HttpServer::start();
    let data = vec![7u8; 4096];
    server.route(
        "/pkg-1.tar.gz",
        Route::Trickle(data.clone(), Duration::from_millis(200)),
    );
    let (_t, dir) = cache_dir();
    let cache = SourceCache::new(dir.clone());
    let opts = FetchOptions {
        retry_delay: Duration::ZERO,
        stall_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(2),
        ..FetchOptions::default()
    };
    let started = std::time::Instant::now();
    let e = cache
        .fetch(
            &spec_for(server.url("/pkg-1.tar.gz"), &data, None),
            &opts,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("FETCH_DEADLINE"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(cache_files(&dir).is_empty(), "{:?}", cache_files(&dir));
}

#[test]
fn a_link_planted_in_the_cache_is_not_a_cached_file_and_not_followed() {
    let out = Outside::new();
    let server = HttpServer::start();
    let data = b"good contents".to_vec();
    server.route("/pkg-1.tar.gz", Route::Bytes(data.clone()));
    let (_t, dir) = cache_dir();
    std::fs::create_dir_all(&dir).unwrap();
    // The cached name is a link to a file outside that happens to match.
    std::fs::write(out.dir.join("pkg-1.tar.gz"), &data).unwrap();
    std::os::unix::fs::symlink(out.dir.join("pkg-1.tar.gz"), dir.join("pkg-1.tar.gz")).unwrap();
    let cache = SourceCache::new(dir.clone());
    let got = cache
        .fetch(
            &spec_for(server.url("/pkg-1.tar.gz"), &data, None),
            &FetchOptions::default(),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(
        got.from,
        server.url("/pkg-1.tar.gz"),
        "the planted link was taken as cached"
    );
    assert!(!dir.join("pkg-1.tar.gz").is_symlink());
    assert_eq!(std::fs::read(out.dir.join("pkg-1.tar.gz")).unwrap(), data);
}

// ---------------------------------------------------------------------------
// Bounded inputs: archives

fn write_tar_gz(path: &Utf8Path, build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    std::fs::write(path, gz.finish().unwrap()).unwrap();
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, name: &str, size: u64, data: &mut dyn std::io::Read) {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).unwrap();
}

#[test]
fn a_decompression_bomb_stops_at_the_ratio_cap_and_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let base = Utf8Path::from_path(t.path()).unwrap();
    let archive = base.join("bomb.tar.gz");
    // 512 MiB of zeros gzip to about half a MiB.
    write_tar_gz(&archive, |b| {
        add_file(
            b,
            "top/zeros",
            512 << 20,
            &mut std::io::repeat(0).take_bytes(512 << 20),
        );
    });
    let root = rhbuild::confine::Root::create(&base.join("out")).unwrap();
    let e =
        rhbuild::extract::extract_in(&archive, &root, Utf8Path::new("tree"), &Default::default())
            .unwrap_err()
            .to_string();
    assert!(e.contains("decompression bomb"), "{e}");
    assert!(e.contains("EXTRACT_MAX_RATIO"), "{e}");
    assert_eq!(crate::util::listing(&base.join("out")), "");
}

trait TakeBytes: std::io::Read + Sized {
    fn take_bytes(self, n: u64) -> std::io::Take<Self> {
        self.take(n)
    }
}
impl<R: std::io::Read> TakeBytes for R {}

#[test]
fn too_many_entries_or_bytes_stop_the_extraction() {
    let t = tempfile::tempdir().unwrap();
    let base = Utf8Path::from_path(t.path()).unwrap();
    let archive = base.join("many.tar.gz");
    write_tar_gz(&archive, |b| {
        for i in 0..200 {
            add_file(
                b,
                &format!("top/f{i}"),
                1000,
                &mut std::io::repeat(b'x').take_bytes(1000),
            );
        }
    });
    let root = rhbuild::confine::Root::create(&base.join("out")).unwrap();
    let mut opts = rhbuild::extract::Options::default();
    opts.limits.max_entries = 100;
    let e = rhbuild::extract::extract_in(&archive, &root, Utf8Path::new("a"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("100 entries") && e.contains("EXTRACT_MAX_ENTRIES"),
        "{e}"
    );
    let mut opts = rhbuild::extract::Options::default();
    opts.limits.max_bytes = 50_000;
    let e = rhbuild::extract::extract_in(&archive, &root, Utf8Path::new("b"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("50000 bytes") && e.contains("EXTRACT_MAX_BYTES"),
        "{e}"
    );
    assert_eq!(crate::util::listing(&base.join("out")), "");
    // Within the limits it extracts.
    rhbuild::extract::extract_in(&archive, &root, Utf8Path::new("c"), &Default::default()).unwrap();
    assert!(base.join("out/c/f199").is_file());
}

#[test]
fn a_link_made_under_a_path_an_earlier_entry_made_a_link_cannot_lead_out() {
    // `a/b -> ..` is harmless where it stands; `a -> .` then makes `a/b`
    // sit at the top, where `..` leaves. And the other order: `a -> .`
    // first, then `a/b -> ..` written through it.
    let t = tempfile::tempdir().unwrap();
    let base = Utf8Path::from_path(t.path()).unwrap();
    let link = |b: &mut tar::Builder<Vec<u8>>, name: &str, target: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    };
    for (i, order) in [[("a/b", ".."), ("a", ".")], [("a", "."), ("a/b", "..")]]
        .iter()
        .enumerate()
    {
        let archive = base.join(format!("chain{i}.tar.gz"));
        write_tar_gz(&archive, |b| {
            for (n, t) in order {
                link(b, n, t);
            }
            add_file(b, "other", 1, &mut std::io::repeat(b'x').take_bytes(1));
        });
        let root = rhbuild::confine::Root::create(&base.join(format!("out{i}"))).unwrap();
        let r = rhbuild::extract::extract_in(
            &archive,
            &root,
            Utf8Path::new("tree"),
            &Default::default(),
        );
        assert!(r.is_err(), "order {order:?} extracted");
        assert_eq!(crate::util::listing(&base.join(format!("out{i}"))), "");
    }
}

#[test]
fn the_sticky_bit_survives_extraction_and_set_id_bits_do_not() {
    let t = tempfile::tempdir().unwrap();
    let base = Utf8Path::from_path(t.path()).unwrap();
    let archive = base.join("modes.tar.gz");
    write_tar_gz(&archive, |b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o1777);
        b.append_data(&mut h, "top/tmp", std::io::empty()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        h.set_mode(0o6755);
        b.append_data(&mut h, "top/suid", &b"x"[..]).unwrap();
    });
    rhbuild::extract::extract(&archive, &base.join("tree")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(base.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("tree/tmp"), 0o1777);
    assert_eq!(mode("tree/suid"), 0o755);
}

// ---------------------------------------------------------------------------
// Locked trees and interrupts

/// A stage that takes a while (a command sleeping in the airlock), so a
/// second run or a signal finds it mid-way.
fn slow_stage(p: &TestProject, seconds: &str) {
    p.write(
        "scripts/slow.rhai",
        &format!(
            "export const output = \"slow\";\nctx.stage(\"host-tools\");\nctx.dir(ctx.out).run([\"sleep\", \"{seconds}\"]);\nctx.write(`${{ctx.out}}/done`, \"yes\");\n"
        ),
    );
}

fn spawn_run(p: &TestProject, args: &[&str]) -> std::process::Child {
    p.spawn(args)
}

use crate::util::wait_for;

#[test]
fn two_runs_on_one_build_directory_both_end_correct() {
    let p = project();
    slow_stage(&p, "1");
    let first = spawn_run(&p, &["run", "scripts/slow.rhai", "--arch", "t"]);
    wait_for(&p.root.join("build/t/logs/slow.log"));
    // --no-wait refuses at once, naming the holder.
    let o = p
        .rhbuild(&["run", "scripts/slow.rhai", "--arch", "t", "--no-wait"])
        .output();
    assert!(!o.status.success());
    assert!(
        o.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        o.stderr
    );
    says(&o.stderr, "rhbuild run scripts/slow.rhai");
    // Without it, the second waits, says so, and then finds the stage done.
    let second = p
        .rhbuild(&["run", "scripts/slow.rhai", "--arch", "t"])
        .output();
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(second.status.success(), "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("waiting for the target `t` in the build directory"),
        "{}",
        second.stderr
    );
    assert!(
        second.stdout.contains("slow (t): up to date"),
        "{}",
        second.stdout
    );
    assert_eq!(p.read("build/t/slow/done"), "yes");
}

fn interrupt(child: &std::process::Child) {
    // SAFETY: signalling a child we started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
}

/// Runs for two targets work side by side; cleaning waits only for what it
/// removes: one target's runs for that target, every run for the whole
/// directory.
#[test]
fn runs_for_two_targets_work_side_by_side_and_clean_waits_for_what_it_removes() {
    let p = project();
    p.add_target("u");
    slow_stage(&p, "30");
    let mut first = spawn_run(&p, &["run", "scripts/slow.rhai", "--arch", "t"]);
    wait_for(&p.root.join("build/t/logs/slow.log"));
    // Another target does not wait: --no-wait would refuse if it had to.
    p.write(
        "scripts/quick.rhai",
        "export const output = \"quick\";\nctx.stage(\"host-tools\");\nctx.write(`${ctx.out}/done`, \"yes\");\n",
    );
    let o = p
        .rhbuild(&["run", "scripts/quick.rhai", "--arch", "u", "--no-wait"])
        .success();
    says(&o.stdout, "quick (u) done in");
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended before the second could show it ran beside it"
    );
    // The same target, and the whole directory, are refused naming the run.
    let holder = format!("pid {}", first.id());
    for args in [
        &["clean", "--arch", "t", "--no-wait"][..],
        &["clean", "--no-wait"][..],
        &["run", "scripts/quick.rhai", "--arch", "t", "--no-wait"][..],
    ] {
        let o = p.rhbuild(args).failure();
        says(&o.stderr, &holder);
        says(&o.stderr, "rhbuild run scripts/slow.rhai --arch t");
    }
    // The other target's outputs can go while it runs.
    let o = p.rhbuild(&["clean", "--arch", "u", "--no-wait"]).success();
    says(&o.stdout, "removed");
    assert!(!p.root.join("build/u").exists());
    assert!(p.root.join("build/t/logs/slow.log").exists());
    // Once it is gone, the whole directory is free.
    interrupt(&first);
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(130));
    p.rhbuild(&["clean", "--no-wait"]).success();
    assert!(!p.root.join("build/t").exists());
}

/// Runs across targets (build-all) write one report: a second waits for
/// the first, while its children's targets stay open to other runs.
#[test]
fn two_runs_across_targets_take_turns_on_their_report() {
    let p = project();
    p.add_target("u");
    slow_stage(&p, "30");
    p.write(
        "scripts/all.rhai",
        "export const all_targets = true;\nctx.run_targets(#{ script: \"scripts/slow.rhai\", arches: [\"t\"], parallel: 1, jobs: 1, dir: `${ctx.build_dir}/report` });\n",
    );
    let first = spawn_run(&p, &["run", "scripts/all.rhai"]);
    wait_for(&p.root.join("build/t/logs/slow.log"));
    let o = p
        .rhbuild(&["run", "scripts/all.rhai", "--no-wait"])
        .failure();
    says(&o.stderr, "the report of runs across targets");
    says(&o.stderr, &format!("pid {}", first.id()));
    // Its child holds `t`, not the directory: `u` is free.
    p.rhbuild(&["run", "scripts/host-tools.rhai", "--arch", "u", "--no-wait"])
        .success();
    let o = p
        .rhbuild(&["run", "scripts/slow.rhai", "--arch", "t", "--no-wait"])
        .failure();
    says(&o.stderr, "the target `t`");
    interrupt(&first);
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(130));
    assert!(!p.root.join("build/t/slow").exists());
}

#[test]
fn sigint_while_a_command_runs_exits_130_and_leaves_nothing_finished() {
    let p = project();
    slow_stage(&p, "30");
    interrupted_run(&p, "slow", &p.root.join("build/t/logs/slow.log"));
    assert!(!p.root.join("build/t/slow").exists());
    let left = parts_left(&p.root.join("build/t"));
    assert!(left.is_empty(), "{left:?}");
}

/// SIGINT while a per-host stage builds: exit 130, nothing in build/all
/// looks finished, and its lock is free: the next run builds it at once.
#[test]
fn sigint_during_a_per_host_stage_leaves_nothing_and_frees_its_lock() {
    let p = project();
    p.write(
        "scripts/shared.rhai",
        "export const output = \"shared\";\nexport const per_host = true;\nexport const tools = true;\nctx.host_tools([\"sleep\"], []);\nctx.write(`${ctx.out}/made`, \"x\");\nctx.dir(ctx.out).run([\"sleep\", ctx.setting(\"NAP\", \"30\")]);\n",
    );
    interrupted_run(&p, "shared", &p.root.join("build/all/logs/shared.log"));
    assert!(!p.root.join("build/all/shared").exists());
    let left = parts_left(&p.root.join("build/all"));
    assert!(left.is_empty(), "{left:?}");
    let o = p
        .rhbuild(&[
            "run",
            "scripts/shared.rhai",
            "--arch",
            "t",
            "--no-wait",
            "--set",
            "NAP=0",
        ])
        .success();
    assert!(!o.stdout.contains("waiting"), "{}", o.stdout);
    assert_eq!(p.read("build/all/shared/made"), "x");
}

/// Run `scripts/NAME.rhai`, send SIGINT once `marker` exists (and a
/// moment later), and require exit status 130.
fn interrupted_run(p: &TestProject, name: &str, marker: &Utf8Path) {
    let child = spawn_run(p, &["run", &format!("scripts/{name}.rhai"), "--arch", "t"]);
    wait_for(marker);
    std::thread::sleep(Duration::from_millis(500));
    interrupt_and_expect_130(child);
}

/// SIGINT to a run, which must exit with status 130.
fn interrupt_and_expect_130(child: std::process::Child) {
    interrupt(&child);
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The `.part` names below `dir`.
fn parts_left(dir: &Utf8Path) -> Vec<String> {
    crate::util::listing(dir)
        .lines()
        .filter(|l| l.contains(".part"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn sigint_during_an_action_exits_130() {
    let p = project();
    p.write(
        "scripts/act.rhai",
        "ctx.stage(\"host-tools\");\nctx.dir(ctx.build_dir).run([\"sleep\", \"30\"]);\n",
    );
    interrupted_run(&p, "act", &p.root.join("build/t/logs/act.log"));
}

#[test]
fn sigint_during_a_download_exits_130_and_leaves_no_part_file() {
    let server = HttpServer::start();
    server.route("/pkg-1.tar.gz", Route::Stall(vec![0; 1000]));
    let p = project();
    p.write(
        "packages/pkg.rhai",
        &format!(
            "export const name = \"pkg\";\nexport const version = \"1\";\nexport const sources = [ #{{ url: \"{}\", sha256: \"{}\" }} ];\n",
            server.url("/pkg-1.tar.gz"),
            "1".repeat(64)
        ),
    );
    p.write("scripts/get.rhai", "ctx.fetch([\"pkg\"]);\n");
    let child = spawn_run(&p, &["run", "scripts/get.rhai", "--arch", "t"]);
    for _ in 0..200 {
        if server.hits("/pkg-1.tar.gz") > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    std::thread::sleep(Duration::from_millis(200));
    interrupt(&child);
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        cache_files(&p.root.join("build/cache"))
            .iter()
            .all(|f| f.ends_with(".verified")),
        "{:?}",
        cache_files(&p.root.join("build/cache"))
    );
}

#[test]
fn sigint_during_extraction_and_copying_leaves_nothing_that_looks_finished() {
    let p = project();
    // A source tree big enough to take a moment to unpack and to copy.
    let src = tempfile::tempdir().unwrap();
    let srcp = Utf8Path::from_path(src.path()).unwrap();
    let archive = srcp.join("big-1.tar.gz");
    write_tar_gz(&archive, |b| {
        for i in 0..3000 {
            add_file(
                b,
                &format!("big-1/d{}/f{i}", i % 30),
                20_000,
                &mut std::io::repeat(b'a').take_bytes(20_000),
            );
        }
    });
    p.write(
        "packages/big.rhai",
        &format!(
            "export const name = \"big\";\nexport const version = \"1\";\nexport const sources = [ #{{ url: \"http://127.0.0.1:1/big-1.tar.gz\", sha256: \"{}\" }} ];\nfn build(ctx) {{ let w = ctx.setup(); let w2 = ctx.setup(); let w3 = ctx.setup(); }}\n",
            "0".repeat(64)
        ),
    );
    p.write(
        "scripts/big-stage.rhai",
        "export const output = \"big-stage\";\nctx.build(\"big\");\n",
    );
    for delay in [50u64, 400, 900] {
        let child = spawn_run(
            &p,
            &[
                "run",
                "scripts/big-stage.rhai",
                "--arch",
                "t",
                "--source",
                &format!("big={archive}"),
            ],
        );
        std::thread::sleep(Duration::from_millis(delay));
        interrupt(&child);
        let o = child.wait_with_output().unwrap();
        let code = o.status.code();
        if code == Some(0) {
            // Too late: it finished; then it must be complete.
            assert!(p.root.join("build/t/big-stage/manifest.json").is_file());
            std::fs::remove_dir_all(p.root.join("build")).unwrap();
            continue;
        }
        assert_eq!(code, Some(130), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(!p.root.join("build/t/big-stage").exists());
        // The next run sweeps what was left and builds.
        let o = p
            .rhbuild(&[
                "run",
                "scripts/big-stage.rhai",
                "--arch",
                "t",
                "--source",
                &format!("big={archive}"),
            ])
            .output();
        assert!(o.status.success(), "{}", o.stderr);
        let parts = parts_left(&p.root.join("build"));
        assert!(parts.is_empty(), "{parts:?}");
        std::fs::remove_dir_all(p.root.join("build")).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Malformed scripts and configs

#[test]
fn a_malformed_script_is_named_with_file_and_line() {
    let p = project();
    p.write("scripts/bad.rhai", "let x = ;\n");
    let o = p
        .rhbuild(&["run", "scripts/bad.rhai", "--arch", "t"])
        .output();
    assert!(!o.status.success());
    says(&o.stderr, "scripts/bad.rhai:1:");
}

#[test]
fn check_reports_every_malformed_miniconfig_line() {
    let p = project();
    p.write(
        "targets/t/linux.config",
        "CONFIG_PRINTK=y\nCONFIG_MMU=yes\ngarbage\nCONFIG_OK=\"fine\"\n",
    );
    let o = p.rhbuild(&["check"]).output();
    assert!(!o.status.success());
    says(&o.stderr, "targets/t/linux.config:2:12");
    says(&o.stderr, "targets/t/linux.config:3:1");
    says(&o.stdout, "2 problems");
}

#[test]
fn check_names_symbols_the_kernel_does_not_declare() {
    let p = project();
    let tree = tempfile::tempdir().unwrap();
    let tp = Utf8Path::from_path(tree.path()).unwrap();
    std::fs::write(
        tp.join("Kconfig"),
        "config PRINTK\n\tbool \"printk\"\nsource \"arch/Kconfig\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(tp.join("arch")).unwrap();
    std::fs::write(tp.join("arch/Kconfig"), "menuconfig MMU\n\tbool\n").unwrap();
    p.write(
        "targets/t/linux.config",
        "CONFIG_PRINTK=y\nCONFIG_MMU=y\nCONFIG_PRINTKK=y\n",
    );
    let o = p.rhbuild(&["check", "--kernel", tp.as_str()]).output();
    assert!(!o.status.success());
    says(&o.stderr, "`CONFIG_PRINTKK` is declared by no Kconfig file");
    says(&o.stderr, "targets/t/linux.config:3:8");
    says(&o.stdout, "1 problem");
}

// ---------------------------------------------------------------------------
// Disk full

#[test]
fn a_full_disk_fails_clearly_and_leaves_nothing_that_looks_finished() {
    crate::util::require_tool("unshare", "util-linux");
    let p = project();
    p.write(
        "scripts/fill.rhai",
        "export const output = \"fill\";\nctx.stage(\"host-tools\");\nctx.dir(ctx.out).run([\"sh\", \"-c\", \"head -c 4000000 /dev/zero > big\"]);\n",
    );
    // The build directory on a 2 MiB tmpfs, in a mount namespace of the
    // test's own (a user namespace makes that possible without root).
    let build = p.root.join("build");
    std::fs::create_dir_all(&build).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=2m none {build} && {} run scripts/fill.rhai --arch t",
        env!("CARGO_BIN_EXE_rhbuild")
    );
    let mut cmd = Command::new("unshare");
    if unsafe { libc::geteuid() } != 0 {
        cmd.args(["--user", "--map-root-user"]);
    }
    let o = cmd
        .args(["--mount", "sh", "-c", &script])
        .current_dir(&p.root)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stderr.contains("`fill`") || stderr.contains("package `fill`"),
        "{stderr}"
    );
}

/// `rhbuild miniconfig` and `menuconfig` hand their files to the script
/// through the build directory: links a script planted there (at the
/// names once used, or the target's whole directory) are not followed,
/// so nothing outside is written or read.
#[test]
fn miniconfig_follows_no_link_planted_in_the_build_directory() {
    let outside = Outside::new();
    let p = TestProject::empty();
    p.add_target("t");
    p.write(
        "scripts/miniconfig.rhai",
        "ctx.write(ctx.setting(\"MINICONFIG_OUTPUT\"), ctx.read(ctx.setting(\"MINICONFIG_INPUT\")));\n",
    );
    p.write(
        "scripts/menuconfig.rhai",
        "ctx.write(ctx.setting(\"MINICONFIG_OUTPUT\"), ctx.read(ctx.setting(\"MENUCONFIG_EDITED\")));\n",
    );
    let mine = p.write("my.config", "CONFIG_MINE=y\n");
    let tmp = p.root.join("build/t/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    for name in [
        "miniconfig-input.config",
        "miniconfig-output.config",
        "menuconfig-output.config",
        "menuconfig-edited.config",
    ] {
        std::os::unix::fs::symlink(outside.dir.join("victim"), tmp.join(name)).unwrap();
    }
    let o = p
        .rhbuild(&["miniconfig", "t", mine.as_str(), "-o", "out.config"])
        .success();
    assert_eq!(p.read("out.config"), "CONFIG_MINE=y\n", "{}", o.stderr);
    let o = p
        .rhbuild(&[
            "menuconfig",
            "linux",
            "--arch",
            "t",
            "--edited",
            mine.as_str(),
            "-o",
            "menu.config",
        ])
        .success();
    assert_eq!(p.read("menu.config"), "CONFIG_MINE=y\n", "{}", o.stderr);
    outside.assert_untouched();
    // The target's whole directory a link to outside: refused, untouched.
    std::fs::remove_dir_all(p.root.join("build/t")).unwrap();
    std::os::unix::fs::symlink(&outside.dir, p.root.join("build/t")).unwrap();
    let o = p
        .rhbuild(&["miniconfig", "t", mine.as_str(), "-o", "out2.config"])
        .output();
    assert!(!o.status.success(), "{}", o.stdout);
    outside.assert_untouched();
    assert!(!p.root.join("out2.config").exists());
}

/// Kconfig's expansion writes its miniconfig and removes a stale `.config`
/// in the output directory itself (not in the sandbox): an `O=` outside
/// the build directory, or one reached through a planted link, is refused
/// before anything is written or removed there.
#[test]
fn kconfig_expansion_writes_nothing_outside_the_build_directory() {
    let outside = Outside::new();
    let kept = outside.dir.join("sub");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(kept.join(".config"), "CONFIG_KEEP=y\n").unwrap();
    let before = std::fs::read_dir(&kept).unwrap().count();
    let p = project();
    for out in [
        format!("O={kept}"),
        "O=../../../../../../../../../../..".to_string() + kept.as_str(),
        "O=planted".to_string(),
    ] {
        let body = format!(
            "let w = ctx.work_dir(\"k\");\nctx.symlink(\"{kept}\", `${{w.path}}/planted`);\nw.allnoconfig([], [\"{out}\"]);\n"
        );
        let o = run_action(&p, &body);
        assert!(!o.status.success(), "{out}: {}", o.stdout);
        let text = std::fs::read_to_string(kept.join(".config")).unwrap_or_default();
        assert_eq!(text, "CONFIG_KEEP=y\n", "{out}: {}", o.stderr);
        assert_eq!(
            std::fs::read_dir(&kept).unwrap().count(),
            before,
            "{out}: something was written in {kept}"
        );
    }
    let o = run_action(
        &p,
        &format!("ctx.work_dir(\"k\").shrink_config(\"/dev/null\", \"{kept}\", []);\n"),
    );
    assert!(!o.status.success());
    assert_eq!(std::fs::read_dir(&kept).unwrap().count(), before);
    std::fs::remove_dir_all(&kept).unwrap();
    outside.assert_untouched();
}

/// build-all's parent writes each target's log and reads its events in
/// the build directory, outside the sandbox; the child appends its events
/// there: links a script planted at those names are replaced or refused,
/// never written or read through.
#[test]
fn build_all_follows_no_link_planted_in_its_report() {
    let outside = Outside::new();
    let p = project();
    p.write(
        "scripts/quick.rhai",
        "export const output = \"quick\";\nctx.write(`${ctx.out}/done`, \"yes\");\n",
    );
    p.write(
        "scripts/all.rhai",
        "export const all_targets = true;\nlet r = ctx.run_targets(#{ script: \"scripts/quick.rhai\", arches: [\"t\"], parallel: 1, jobs: 1, dir: `${ctx.build_dir}/report` });\nprint(`events: ${r[0].events.len()}`);\n",
    );
    for rel in ["build/report/logs/t.log", "build/report/events/t.jsonl"] {
        let link = p.root.join(rel);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(outside.dir.join("victim"), &link).unwrap();
    }
    let o = p.rhbuild(&["run", "scripts/all.rhai"]).success();
    outside.assert_untouched();
    // The run's own log and events, where the links were.
    says(&p.read("build/report/logs/t.log"), "quick (t) done in");
    says(
        &p.read("build/report/events/t.jsonl"),
        "\"stage\":\"quick\"",
    );
    assert!(!o.stdout.contains("events: 0"), "{}", o.stdout);
    // With an --arch, as a user may type it: ignored, not a target lock
    // its children would wait for.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rhbuild"))
        .args(["run", "scripts/all.rhai", "--arch", "t"])
        .current_dir(&p.root)
        .env("RHBUILD_SET_TOOLCHAIN", "debian")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ended = None;
    for _ in 0..600 {
        ended = child.try_wait().unwrap();
        if ended.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if ended.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        ended.is_some_and(|s| s.success()),
        "build-all with --arch t did not end well: {ended:?}"
    );
    // A user's own --events file outside the build directory still works.
    let mine = outside.dir.join("mine.jsonl");
    p.rhbuild(&[
        "run",
        "scripts/quick.rhai",
        "--arch",
        "t",
        "--events",
        mine.as_str(),
    ])
    .success();
    says(&std::fs::read_to_string(&mine).unwrap(), "up-to-date");
}
