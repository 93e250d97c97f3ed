//! `rhbuild check`: diagnostics name the file, line and column and show the
//! source line with a caret. The rendered text is asserted whole.

use crate::util::TestProject;

fn check(p: &TestProject, args: &[&str]) -> String {
    let mut a = vec!["check"];
    a.extend_from_slice(args);
    let o = p.rhbuild(&a).failure();
    o.stderr
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let p = TestProject::empty();
    p.write("scripts/broken.rhai", "let a = 1;\nlet b = (a + ;\n");
    let err = check(&p, &["scripts/broken.rhai"]);
    assert_eq!(
        err,
        r#"  × syntax error: Unexpected ';'
   ╭─[scripts/broken.rhai:2:14]
 1 │ let a = 1;
 2 │ let b = (a + ;
   ·              ┬
   ·              ╰── here
   ╰────
  help: fix the script; `rhbuild check` reports every script's errors without building
"#
    );
}

#[test]
fn unknown_function_is_found_without_running() {
    let p = TestProject::empty();
    p.write(
        "scripts/typo.rhai",
        "// never runs the branch\nif false {\n    ctx.settign(\"X\");\n}\n",
    );
    let err = check(&p, &["scripts/typo.rhai"]);
    assert_eq!(
        err,
        r#"  × unknown function `settign`
   ╭─[scripts/typo.rhai:3:9]
 2 │ if false {
 3 │     ctx.settign("X");
   ·         ───┬───
   ·            ╰── not defined anywhere
 4 │ }
   ╰────
  help: did you mean `setting`? The primitives are listed in docs/primitives.md
"#
    );
}

#[test]
fn unknown_function_in_an_imported_module_is_named() {
    let p = TestProject::empty();
    p.write("stdlib/helpers.rhai", "fn greet(ctx) { print(\"hi\"); }\n");
    p.write(
        "scripts/use.rhai",
        "import \"stdlib/helpers\" as helpers;\nhelpers::greet(ctx);\nhelpers::gret(ctx);\n",
    );
    let err = check(&p, &["scripts/use.rhai"]);
    assert!(err.contains("unknown function `helpers::gret`"), "{err}");
    assert!(err.contains("[scripts/use.rhai:3:10]"), "{err}");
    assert!(
        err.contains("module `helpers` defines no public function `gret`"),
        "{err}"
    );
    assert!(!err.contains("greet`"), "{err}");
}

#[test]
fn package_without_checksum_points_at_the_source() {
    let p = TestProject::empty();
    p.write(
        "packages/hello.rhai",
        r#"export const name = "hello";
export const version = "1.0";
export const sources = [
    #{ url: `https://example.org/hello-${version}.tar.gz` },
];
"#,
    );
    let err = check(&p, &["packages/hello.rhai"]);
    assert_eq!(
        err,
        r#"  × source 1 has no checksum
   ╭─[packages/hello.rhai:4:5]
 3 │ export const sources = [
 4 │     #{ url: `https://example.org/hello-${version}.tar.gz` },
   ·     ┬
   ·     ╰── this source
 5 │ ];
   ╰────
  help: add `sha256: "..."` (and/or `sha1`), computed from the real file with sha256sum; rhbuild never extracts an unverified download
"#
    );
}

#[test]
fn target_missing_a_field_names_file_and_field() {
    let p = TestProject::empty();
    p.add_target("mini");
    let text = p
        .read("targets/mini/target.rhai")
        .replace("export const CONSOLE = \"ttySC1\";\n", "");
    p.write("targets/mini/target.rhai", &text);
    let err = check(&p, &["targets/mini"]);
    assert!(
        err.contains("× target `targets/mini/target.rhai` lacks the required setting `CONSOLE`"),
        "{err}"
    );
    assert!(
        err.contains("help: add `export const CONSOLE = ...;`: the kernel's serial console device"),
        "{err}"
    );
}

#[test]
fn the_repository_checks_clean() {
    let p = TestProject::copy_of_repo();
    let o = p.rhbuild(&["check"]).success();
    assert!(o.stdout.starts_with("checked "), "{}", o.stdout);
    assert!(o.stdout.trim_end().ends_with("no problems"), "{}", o.stdout);
}

#[test]
fn a_copied_target_is_listed_and_checked_without_rebuilding() {
    let p = TestProject::copy_of_repo();
    let status = std::process::Command::new("cp")
        .args(["-a"])
        .arg(p.root.join("targets/sh4"))
        .arg(p.root.join("targets/myboard"))
        .status()
        .unwrap();
    assert!(status.success());
    let t = p.read("targets/myboard/target.rhai").replace(
        "export const DESCRIPTION = \"SuperH SH-4 little-endian, QEMU r2d board\";",
        "export const DESCRIPTION = \"a copy under a new name\";",
    );
    p.write("targets/myboard/target.rhai", &t);
    let o = p.rhbuild(&["list", "targets"]).success();
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("myboard") && l.contains("a copy under a new name")),
        "{}",
        o.stdout
    );
    p.rhbuild(&["check", "targets/myboard"]).success();
}

#[test]
fn build_all_continues_past_failing_targets_and_reports_each() {
    // Two targets whose cross compiler does not exist: each fails in its
    // first stage, neither stops the other, and the report says so.
    let p = TestProject::copy_of_repo();
    for name in ["nocc1", "nocc2"] {
        p.add_target(name);
        let t = p
            .read(&format!("targets/{name}/target.rhai"))
            .replace("\"sh4-linux-gnu-\"", "\"no-such-cross-\"");
        p.write(&format!("targets/{name}/target.rhai"), &t);
    }
    let o = p
        .rhbuild(&[
            "run",
            "scripts/build-all.rhai",
            "--set",
            "ARCHES=nocc1,nocc2",
        ])
        .failure();
    assert!(
        o.stderr.contains("2 target(s) failed: nocc1, nocc2"),
        "{}",
        o.stderr
    );
    assert!(o.stdout.contains("nocc1          FAILED"), "{}", o.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&p.read("build/report/report.json")).unwrap();
    assert_eq!(json["passed"], 0);
    let targets = json["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for (t, name) in targets.iter().zip(["nocc1", "nocc2"]) {
        assert_eq!(t["arch"], name);
        assert_eq!(t["passed"], false);
        let host = &t["stages"][0];
        assert_eq!(host["name"], "host-tools");
        assert_eq!(host["status"], "failed");
        // The stages waiting for it are blocked: the cross compiler, and
        // the root filesystem and kernel, which wait for it side by side.
        for i in 1..=3 {
            assert_eq!(t["stages"][i]["status"], "blocked", "{t}");
        }
        let err = t["error"].as_str().unwrap();
        assert!(err.contains("no-such-cross-gcc' is not installed"), "{err}");
        let log = p.root.join(format!("build/report/logs/{name}.log"));
        assert!(log.is_file());
    }
    let html = p.read("build/report/index.html");
    assert!(html.contains("0 of 2 targets passed"), "{html}");
    assert!(
        html.contains(r#"<a href="logs/nocc1.log">run</a>"#),
        "{html}"
    );
    // Opens from disk: nothing fetched from elsewhere.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
}

/// A target folder that says `BASED_ON` takes the other target's settings
/// (its own win), its kernel miniconfig before its own, and the files it
/// lacks from the other's folder.
#[test]
fn a_variant_target_builds_on_its_base() {
    let p = TestProject::copy_of_repo();
    p.write(
        "targets/sh4v/target.rhai",
        "export const BASED_ON = \"sh4\";\nexport const DESCRIPTION = \"a variant\";\nexport const TRIPLE = \"sh4eb-linux-musl\";\n",
    );
    p.write(
        "targets/sh4v/linux.config",
        "# CONFIG_CPU_LITTLE_ENDIAN is not set\n",
    );
    p.write(
        "scripts/show.rhai",
        "import \"stdlib/config\" as config;\nfor f in config::base_minis(ctx, \"linux\") { print(`mini ${f}`); }\nprint(`fix ${ctx.target_file(\"libgcc-fix.c\")}`);\nprint(`console ${ctx.setting(\"CONSOLE\")} triple ${ctx.setting(\"TRIPLE\")}`);\n",
    );
    let o = p
        .rhbuild(&["run", "scripts/show.rhai", "--arch", "sh4v"])
        .success();
    let root = p.root.as_str();
    assert!(
        o.stdout.contains(&format!(
            "mini {root}/targets/base-linux.config\nmini {root}/targets/sh4/linux.config\nmini {root}/targets/sh4v/linux.config\n"
        )),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains(&format!("fix {root}/targets/sh4/libgcc-fix.c")),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("console ttySC1 triple sh4eb-linux-musl"),
        "{}",
        o.stdout
    );
    let listed = p.rhbuild(&["list", "targets"]).success();
    assert!(
        listed.stdout.contains("sh4v           a variant"),
        "{}",
        listed.stdout
    );
}

#[test]
fn a_variant_of_nothing_or_of_a_variant_is_refused() {
    let p = TestProject::copy_of_repo();
    p.write(
        "targets/lost/target.rhai",
        "export const BASED_ON = \"nosuch\";\nexport const DESCRIPTION = \"x\";\n",
    );
    p.write("targets/lost/linux.config", "");
    let o = p.rhbuild(&["settings", "--arch", "lost"]).failure();
    assert!(
        o.stderr.contains(
            "`targets/lost/target.rhai` says BASED_ON = \"nosuch\", which is not another target"
        ),
        "{}",
        o.stderr
    );
    p.write(
        "targets/deep/target.rhai",
        "export const BASED_ON = \"mips64\";\nexport const DESCRIPTION = \"x\";\n",
    );
    p.write("targets/deep/linux.config", "");
    let o = p.rhbuild(&["settings", "--arch", "deep"]).failure();
    assert!(
        o.stderr.contains("but `targets/mips64/target.rhai` is itself based on `mips64el`: base `deep` on `mips64el` directly"),
        "{}",
        o.stderr
    );
}

/// A board that boots only some image types (SYSIMAGE_TYPES) refuses the
/// others before anything is fetched or built, naming what it boots; an
/// unknown type is refused the same way.
#[test]
fn an_image_type_the_board_does_not_boot_is_refused_before_any_build() {
    let p = TestProject::copy_of_repo();
    let o = p
        .rhbuild(&[
            "run",
            "scripts/system-image.rhai",
            "--arch",
            "sh4eb",
            "--set",
            "SYSIMAGE_TYPE=squashfs",
        ])
        .failure();
    assert!(
        o.stderr.contains("this target boots only initramfs images (SYSIMAGE_TYPES in its target.rhai, which says why), not squashfs"),
        "{}",
        o.stderr
    );
    // A variant that narrows the list refuses the default type too.
    p.write(
        "targets/sh4d/target.rhai",
        "export const BASED_ON = \"sh4\";\nexport const DESCRIPTION = \"disks only\";\nexport const SYSIMAGE_TYPES = \"squashfs ext2\";\n",
    );
    p.write("targets/sh4d/linux.config", "");
    let o = p
        .rhbuild(&["run", "scripts/smoketest.rhai", "--arch", "sh4d"])
        .failure();
    assert!(
        o.stderr
            .contains("this target boots only squashfs, ext2 images (SYSIMAGE_TYPES in its target.rhai, which says why), not initramfs"),
        "{}",
        o.stderr
    );
    let o = p
        .rhbuild(&[
            "run",
            "scripts/system-image.rhai",
            "--arch",
            "sh4",
            "--set",
            "SYSIMAGE_TYPE=cpio",
        ])
        .failure();
    assert!(o.stderr.contains("not cpio"), "{}", o.stderr);
    // Nothing was fetched, extracted or built for any of them.
    for dir in [
        "build/sh4eb",
        "build/sh4d",
        "build/sh4",
        "build/cache",
        "build/all",
    ] {
        let path = p.root.join(dir);
        let mut found = Vec::new();
        if path.exists() {
            crate::util::walk(&path, &mut found);
        }
        let built: Vec<_> = found
            .iter()
            .filter(|f| f.is_file() && !f.as_str().contains("/logs/"))
            .collect();
        assert!(built.is_empty(), "{dir}: {built:?}");
    }
}

/// build-all's report turns each toolchain package's wall and CPU time into
/// the stage's sum, the physical limit (CPU time over the target's cores)
/// and gcc's share.
#[test]
fn the_report_shows_the_toolchains_cpu_time_and_physical_limit() {
    let p = TestProject::copy_of_repo();
    p.write(
        "scripts/show-report.rhai",
        r#"import "stdlib/report" as report;
let pkg = |name, wall, cpu| #{ stage: "cross-compiler", name: name, seconds: wall, cpu_seconds: cpu, log: "x" };
let t = #{ arch: "sh4", passed: true, seconds: 400.0, stages: [], logs: [], log: "logs/sh4.log", error: "",
    packages: [pkg.call("binutils", 50.0, 60.0), pkg.call("gcc", 100.0, 180.0),
               #{ stage: "linux-kernel", name: "linux", seconds: 70.0, cpu_seconds: 130.0, log: "y" }] };
print(report::html(#{ total_seconds: 400.0, parallel: 1, jobs_per_target: 2, cpus: 2, passed: 1, failed: [], targets: [t] }));
"#,
    );
    let o = p
        .rhbuild(&["run", "scripts/show-report.rhai", "--arch", "sh4"])
        .success();
    // 150 s of wall time, 240 s of CPU, 120 s on 2 cores (80 %), gcc 2/3;
    // the kernel is no part of it.
    assert!(
        o.stdout.contains("<tr><td>sh4</td><td>150.0 s</td><td>240.0 s</td><td>120.0 s (80.0 %)</td><td>66.7 %</td><td>binutils: 50.0 s (CPU 60.0 s)</td><td>gcc: 100.0 s (CPU 180.0 s)</td></tr>"),
        "{}",
        o.stdout
    );
}
