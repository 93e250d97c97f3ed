//! The command line as a user meets it: stage names for scripts, -q and
//! -v, the local settings file, a download cache shared by two build
//! directories, `rhbuild settings`, shell completions and the manual page.

use crate::util::{TestProject, says};

fn project() -> TestProject {
    let p = TestProject::empty();
    p.add_target("t");
    p.write(
        "scripts/host-tools.rhai",
        "export const output = \"host\";\nexport const tools = true;\nctx.host_tools([\"sh\", \"echo\"]);\n",
    );
    p.write(
        "scripts/a.rhai",
        r#"export const output = "a";
ctx.stage("host-tools");
print("script says hello");
ctx.dir(ctx.out).run(["sh", "-c", "echo command output here"]);
ctx.write(`${ctx.out}/v`, ctx.setting("GREETING", "none"));
"#,
    );
    p
}

#[test]
fn a_stage_is_named_by_its_name() {
    let p = project();
    let o = p.rhbuild(&["run", "a", "--arch", "t"]).success();
    assert!(o.stdout.contains("=== a (t)"), "{}", o.stdout);
    let o = p.rhbuild(&["run", "nosuch", "--arch", "t"]).failure();
    assert!(o.stderr.contains("no script `nosuch`"), "{}", o.stderr);
}

#[test]
fn no_target_is_an_error_that_lists_them() {
    let p = project();
    let o = p.rhbuild(&["run", "a"]).failure();
    assert!(o.stderr.contains("no target given"), "{}", o.stderr);
    assert!(o.stderr.contains("(targets: t)"), "{}", o.stderr);
}

#[test]
fn quiet_prints_nothing_and_verbose_shows_the_commands_output() {
    let p = project();
    let o = p.rhbuild(&["run", "a", "--arch", "t", "-q"]).success();
    assert_eq!(o.stdout, "", "quiet printed:\n{}", o.stdout);
    let o = p
        .rhbuild(&["run", "a", "--arch", "t", "-v", "--force", "a"])
        .success();
    assert!(o.stderr.contains("command output here"), "{}", o.stderr);
    assert!(o.stdout.contains("script says hello"));
    // The log has it either way.
    assert!(p.read("build/t/logs/a.log").contains("command output here"));
}

#[test]
fn the_local_settings_file_sits_between_the_target_and_the_environment() {
    let p = project();
    p.write(
        "local.rhai",
        "export const GREETING = \"from the local file\";\nexport const BUILD_DIR = \"elsewhere\";\n",
    );
    p.rhbuild(&["run", "a", "--arch", "t"]).success();
    assert_eq!(p.read("elsewhere/t/a/v"), "from the local file");
    let o = p.rhbuild(&["settings", "--arch", "t"]).success();
    let line = o
        .stdout
        .lines()
        .find(|l| l.starts_with("GREETING"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("local file") && line.contains("from the local file"),
        "{line}"
    );
    // The environment and --set beat it.
    let o = p
        .rhbuild(&["settings", "--arch", "t"])
        .env("RHBUILD_SET_GREETING", "env")
        .success();
    assert!(o.stdout.contains("environment  env"), "{}", o.stdout);
    let o = p
        .rhbuild(&["settings", "--arch", "t", "--set", "GREETING=cli"])
        .success();
    assert!(o.stdout.contains("--set        cli"), "{}", o.stdout);
    // A default from a script, and where it comes from.
    std::fs::remove_file(p.root.join("local.rhai")).unwrap();
    let o = p.rhbuild(&["settings", "--arch", "t"]).success();
    let line = o
        .stdout
        .lines()
        .find(|l| l.starts_with("GREETING"))
        .unwrap()
        .to_string();
    assert!(line.contains("default") && line.contains("none"), "{line}");
}

/// Package `s`, whose only origin (port 1 on loopback) never answers,
/// already in `shared-cache/`, where its checksum verifies it.
fn shared_cache_holds_package_s(p: &TestProject) {
    let data = b"shared source".to_vec();
    let shared = p.root.join("shared-cache");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("s-1.tar.gz"), &data).unwrap();
    p.write(
        "packages/s.rhai",
        &format!(
            "export const name = \"s\";\nexport const version = \"1\";\nexport const sources = [ #{{ url: \"http://127.0.0.1:1/s-1.tar.gz\", sha256: \"{}\" }} ];\n",
            rhbuild::checksum::sha256_bytes(&data)
        ),
    );
}

#[test]
fn two_build_directories_share_one_download_cache() {
    let p = project();
    // The second build directory finds the download in the shared cache.
    shared_cache_holds_package_s(&p);
    p.write("scripts/get.rhai", "ctx.fetch([\"s\"]);\n");
    for dir in ["b1", "b2"] {
        p.rhbuild(&[
            "run",
            "get",
            "--arch",
            "t",
            "--build-dir",
            dir,
            "--cache-dir",
            "shared-cache",
        ])
        .success();
        assert!(!p.root.join(dir).join("cache/s-1.tar.gz").exists());
    }
    let o = p
        .rhbuild(&[
            "fetch",
            "s",
            "--build-dir",
            "b3",
            "--cache-dir",
            "shared-cache",
        ])
        .success();
    assert!(o.stdout.contains("(cached)"), "{}", o.stdout);
}

/// A run across targets hands each target's run the options the user gave
/// it: the shared download cache, the sandbox level (`require` must not
/// quietly become `auto` in the runs that build), and refuses `--force`,
/// which it cannot pass on without rebuilding a shared stage per target.
#[test]
fn a_run_across_targets_passes_its_cache_and_sandbox_level_on() {
    let p = project();
    shared_cache_holds_package_s(&p);
    // Each target's run fetches from the cache, then runs a command.
    p.write(
        "scripts/both.rhai",
        "ctx.fetch([\"s\"]);\nctx.stage(\"a\");\n",
    );
    p.write(
        "scripts/all.rhai",
        "export const all_targets = true;\nlet r = ctx.run_targets(#{ script: \"scripts/both.rhai\", arches: [\"t\"], parallel: 1, jobs: 1, dir: `${ctx.build_dir}/report` });\nprint(`exit ${r[0].exit}`);\n",
    );
    let o = p
        .rhbuild(&["run", "scripts/all.rhai", "--cache-dir", "shared-cache"])
        .success();
    says(&o.stdout, "exit 0");
    assert!(!p.root.join("build/cache/s-1.tar.gz").exists());

    // The kernel's sandbox made to lack Landlock: with `require` the
    // target's run refuses before its first command.
    std::fs::remove_dir_all(p.root.join("build/t")).unwrap();
    let o = p
        .rhbuild(&[
            "run",
            "scripts/all.rhai",
            "--cache-dir",
            "shared-cache",
            "--sandbox",
            "require",
        ])
        .env("RHBUILD_SANDBOX_DENY", "landlock")
        .output();
    says(&o.stdout, "exit 1");
    says(
        &p.read("build/report/logs/t.log"),
        "cannot be fully enforced",
    );
    assert!(!p.root.join("build/t/a").exists());

    let o = p
        .rhbuild(&["run", "scripts/all.rhai", "--force", "a"])
        .output();
    assert!(!o.status.success());
    says(&o.stderr, "--force a is not passed on");
    says(&o.stderr, "rhbuild clean --arch A a");
}

#[test]
fn completions_and_the_manual_page() {
    let p = project();
    let o = p.rhbuild(&["completions", "bash"]).success();
    assert!(o.stdout.contains("rhbuild") && o.stdout.contains("miniconfig"));
    let o = p.rhbuild(&["completions", "zsh"]).success();
    assert!(o.stdout.contains("#compdef rhbuild"));
    let o = p.rhbuild(&["man"]).success();
    assert!(o.stdout.contains(".TH rhbuild 1"), "{}", o.stdout);
}

/// build-all's matrix for another system: one job per target with the
/// exact command, as GitHub Actions' matrix JSON or lines for GNU parallel.
#[test]
fn matrix_prints_one_job_per_target_with_its_command() {
    let p = crate::util::TestProject::empty();
    p.add_target("t1");
    p.add_target("t2");
    p.write("scripts/smoketest.rhai", "print(\"x\");\n");
    let o = p
        .rhbuild(&[
            "matrix",
            "--set",
            "TOOLCHAIN=debian",
            "--set",
            "PACKAGES=lua strace",
        ])
        .success();
    let json: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let jobs = json["include"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{}", o.stdout);
    assert_eq!(jobs[0]["arch"], "t1");
    assert_eq!(
        jobs[1]["command"],
        "rhbuild run scripts/smoketest.rhai --arch t2 --set TOOLCHAIN=debian --set 'PACKAGES=lua strace'"
    );
    let o = p
        .rhbuild(&["matrix", "--arches", "t2", "--format", "lines"])
        .success();
    assert_eq!(o.stdout, "rhbuild run scripts/smoketest.rhai --arch t2\n");
    let o = p.rhbuild(&["matrix", "--arches", "t3"]).failure();
    assert!(
        o.stderr.contains("no target `t3` (targets: t1, t2)"),
        "{}",
        o.stderr
    );
}

/// `--events` counts the CPU time of each package's commands (and the
/// processes they wait for) and of each stage, packages included: a busy
/// loop in a child shell shows, a sleep does not.
#[test]
fn events_count_the_cpu_time_of_packages_and_stages() {
    let p = project();
    p.write(
        "scripts/host-tools.rhai",
        "export const output = \"host\";\nexport const tools = true;\nctx.host_tools([\"sh\", \"sleep\"]);\n",
    );
    p.write(
        "packages/burn.rhai",
        &format!(
            r#"export const name = "burn";
export const version = "1";
export const sources = [ #{{ url: "http://127.0.0.1:1/burn-1.tar.gz", sha256: "{}" }} ];
fn build(ctx) {{
    // The loop runs in a grandchild the command waits for.
    ctx.work_dir("burn").run(["sh", "-c", "sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'"]);
}}
"#,
            "0".repeat(64)
        ),
    );
    p.write(
        "scripts/s.rhai",
        "export const output = \"s\";\nctx.stage(\"host-tools\");\nctx.build(\"burn\");\nctx.dir(ctx.out).run([\"sleep\", \"1\"]);\n",
    );
    let events = p.root.join("events.jsonl");
    p.rhbuild(&["run", "s", "--arch", "t", "--events", events.as_str()])
        .success();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |event: &str, key: &str, value: &str| {
        lines
            .iter()
            .find(|e| e["event"] == event && e[key] == value)
            .unwrap_or_else(|| panic!("no {event} event for {value}: {lines:?}"))
            .clone()
    };
    let package = find("package", "package", "burn");
    let stage = find("done", "stage", "s");
    let burnt = package["cpu_seconds"].as_f64().unwrap();
    let total = stage["cpu_seconds"].as_f64().unwrap();
    // 300000 rounds of a shell loop are well over a tenth of a second of
    // CPU on any machine; the stage's second of sleep adds almost nothing.
    assert!(burnt > 0.1, "{package}");
    assert!(total >= burnt && total < burnt + 0.5, "{stage} {package}");
    assert!(
        find("done", "stage", "host-tools")["cpu_seconds"]
            .as_f64()
            .unwrap()
            < 0.5
    );
    let log = p.read("build/t/logs/burn.log");
    assert!(log.contains(", CPU "), "{log}");
}

/// Two stages side by side (`ctx.stages`) record their events in the one
/// `--events` file: every line stays whole JSON, none lost, however the
/// threads' writes fall.
#[test]
fn events_of_stages_side_by_side_stay_whole_lines() {
    let p = project();
    for side in ["a", "b"] {
        p.write(
            &format!("packages/quick-{side}.rhai"),
            &format!(
                "export const name = \"quick-{side}\";\nexport const version = \"1\";\nexport const sources = [ #{{ url: \"http://127.0.0.1:1/q-1.tar.gz\", sha256: \"{}\" }} ];\nfn build(ctx) {{}}\n",
                "0".repeat(64)
            ),
        );
        p.write(
            &format!("scripts/{side}.rhai"),
            &format!(
                "export const output = \"{side}\";\nfor i in 0..300 {{ ctx.build(\"quick-{side}\"); }}\n"
            ),
        );
    }
    p.write(
        "scripts/both.rhai",
        "export const output = \"both\";\nctx.stages([\"a\", \"b\"]);\n",
    );
    let events = p.root.join("events.jsonl");
    p.rhbuild(&["run", "both", "--arch", "t", "--events", events.as_str()])
        .success();
    let text = std::fs::read_to_string(&events).unwrap();
    let mut packages = 0;
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a broken event line ({e}): {line}"));
        if event["event"] == "package" {
            packages += 1;
        }
    }
    assert_eq!(packages, 600, "{text}");
}
