//! The airlock against real host programs: `sh`, `cat`, `env`, `sleep` are
//! allowed; `xz` and `python3` exist on the host but are not.

use camino::{Utf8Path, Utf8PathBuf};
use rhbuild::airlock::{self, Airlock, Command, RunError};
use rhbuild::interrupt::Interrupt;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Fail (never skip) when a host program the test relies on is missing.
fn require_host(program: &str, debian_package: &str) -> Utf8PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|d| Utf8Path::new(d).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("this test needs `{program}` on the host: apt-get install {debian_package}")
        })
}

struct Sandbox {
    _tmp: tempfile::TempDir,
    root: Utf8PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("create a temporary directory");
        let root = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).expect("UTF-8 temp path");
        std::fs::create_dir(root.join("src")).unwrap();
        Sandbox { _tmp: tmp, root }
    }

    /// An airlock whose only PATH entry is a host bin holding `tools`.
    fn airlock(&self, tools: &[&str]) -> Airlock {
        let bin = self.root.join("host/bin");
        let tools: Vec<String> = tools.iter().map(|t| t.to_string()).collect();
        let host_path = std::env::var("PATH").unwrap_or_default();
        let missing = airlock::populate_host_bin(&bin, &tools, &host_path).unwrap();
        assert!(
            missing.is_empty(),
            "host tools missing: {missing:?} (apt-get install coreutils dash)"
        );
        Airlock {
            path: vec![bin],
            env: BTreeMap::new(),
            interrupt: Interrupt::new(),
            ..Airlock::default()
        }
    }

    fn command(&self, argv: &[&str]) -> Command {
        Command {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            cwd: self.root.join("src"),
            env: BTreeMap::new(),
            log: self.root.join("logs/demo.log"),
            package: "demo".to_string(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("logs/demo.log")).unwrap_or_default()
    }
}

#[test]
fn allowed_program_runs_and_its_output_is_logged() {
    let sb = Sandbox::new();
    let airlock = sb.airlock(&["sh", "cat"]);
    std::fs::write(sb.root.join("src/hello.txt"), "hello from the host\n").unwrap();
    airlock.run(&sb.command(&["cat", "hello.txt"])).unwrap();
    let log = sb.log();
    assert!(log.starts_with("$ cat hello.txt    # in "), "log: {log}");
    assert!(
        log.contains("hello from the host\n# done in "),
        "log: {log}"
    );
    assert!(log.ends_with(" s\n"), "log: {log}");
}

#[test]
fn output_captures_stdout_and_logs_stderr() {
    let sb = Sandbox::new();
    let airlock = sb.airlock(&["sh"]);
    let out = airlock
        .output(&sb.command(&["sh", "-c", "echo /opt/libc.a; echo probing >&2"]))
        .unwrap();
    assert_eq!(out, "/opt/libc.a\n");
    let log = sb.log();
    assert!(log.contains("probing\n"), "log: {log}");
    assert!(!log.contains("/opt/libc.a\n"), "log: {log}");
}

#[test]
fn host_program_missing_from_allow_list_is_not_found_by_a_script() {
    require_host("xz", "xz-utils");
    let sb = Sandbox::new();
    let airlock = sb.airlock(&["sh", "cat"]);
    let err = airlock
        .run(&sb.command(&["sh", "-c", "xz --version"]))
        .unwrap_err();
    match &err {
        RunError::Failed { status, .. } => assert_eq!(status.code(), Some(127), "{err}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(sb.log().contains("xz: not found"), "log: {}", sb.log());
}

#[test]
fn host_program_missing_from_allow_list_is_not_found_as_argv0() {
    require_host("python3", "python3");
    let sb = Sandbox::new();
    let airlock = sb.airlock(&["sh", "cat"]);
    let err = airlock
        .run(&sb.command(&["python3", "-c", "print(1)"]))
        .unwrap_err();
    assert!(
        matches!(&err, RunError::NotFound { program, .. } if program == "python3"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "`python3` not found for package `demo`: it is not on the host-tools allow-list or not installed (searched {}/host/bin); add it to the allow-list or build it as a host tool",
            sb.root
        )
    );
    assert_eq!(sb.log(), "", "nothing ran, so nothing was logged");
}

#[test]
fn program_with_a_slash_is_relative_to_the_working_directory() {
    let sb = Sandbox::new();
    let airlock = sb.airlock(&["sh"]);
    let script = sb.root.join("src/configure");
    std::fs::write(&script, "#!/bin/sh\necho configured \"$1\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = airlock
        .output(&sb.command(&["./configure", "--prefix=/usr"]))
        .unwrap();
    assert_eq!(out, "configured --prefix=/usr\n");
}

/// Runs `env` in an airlock and prints what it saw between markers. Started
/// by `host_variables_do_not_leak` in a child process whose environment holds
/// a canary variable; run alone it is harmless.
#[test]
#[ignore = "run by airlock::host_variables_do_not_leak in a child process"]
fn leak_probe() {
    let sb = Sandbox::new();
    let mut airlock = sb.airlock(&["env"]);
    airlock
        .env
        .insert("CROSS_COMPILE".into(), "sh4-linux-musl-".into());
    let mut cmd = sb.command(&["env"]);
    cmd.env.insert("V".into(), "1".into());
    let out = airlock.output(&cmd).unwrap();
    // The harness has printed `test airlock::leak_probe ... ` without a newline.
    println!("\nPROBE-PATH={}", airlock.path_var());
    println!("PROBE-CWD={}", cmd.cwd);
    println!("PROBE-BEGIN\n{out}PROBE-END");
}

#[test]
fn host_variables_do_not_leak() {
    let exe = std::env::current_exe().unwrap();
    let child = std::process::Command::new(&exe)
        .args([
            "--exact",
            "airlock::leak_probe",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RHBUILD_LEAK_CANARY", "canary-3f9c2a")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "probe failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in probe output:\n{stdout}"))
            .to_string()
    };
    let (path, cwd) = (field("PROBE-PATH="), field("PROBE-CWD="));
    let seen = stdout
        .split_once("PROBE-BEGIN\n")
        .and_then(|(_, rest)| rest.split_once("PROBE-END"))
        .map(|(env, _)| env)
        .expect("probe markers");
    assert!(!seen.contains("canary-3f9c2a"), "canary leaked:\n{seen}");
    let mut seen: Vec<&str> = seen.lines().collect();
    seen.sort();
    let mut expected = vec![
        "CROSS_COMPILE=sh4-linux-musl-".to_string(),
        format!("HOME={cwd}"),
        "LANG=C".to_string(),
        "LC_ALL=C".to_string(),
        format!("PATH={path}"),
        "V=1".to_string(),
    ];
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn failure_names_package_command_status_and_log_tail() {
    let sb = Sandbox::new();
    let airlock = sb.airlock(&["sh"]);
    let err = airlock
        .run(&sb.command(&["sh", "-c", "echo one; echo two >&2; exit 3"]))
        .unwrap_err();
    let log = sb.root.join("logs/demo.log");
    let cwd = sb.root.join("src");
    assert_eq!(
        err.to_string(),
        format!(
            "`sh -c 'echo one; echo two >&2; exit 3'` failed for package `demo`: \
             expected exit status 0, got exit status 3; full log: {log}, which ends:\n    \
             $ sh -c 'echo one; echo two >&2; exit 3'    # in {cwd}\n    \
             one\n    \
             two"
        )
    );
}

#[test]
fn failure_tail_is_the_last_twenty_lines() {
    let sb = Sandbox::new();
    let airlock = sb.airlock(&["sh", "seq"]);
    let err = airlock
        .run(&sb.command(&["sh", "-c", "seq 1 30; exit 1"]))
        .unwrap_err();
    let RunError::Failed { tail, .. } = &err else {
        panic!("expected Failed, got {err:?}");
    };
    let expected: Vec<String> = (11..=30).map(|n| n.to_string()).collect();
    assert_eq!(tail, &expected.join("\n"));
}

/// Processes whose process group is `pgid` and that are not zombies.
fn live_members(pgid: i32) -> Vec<i32> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state ppid pgrp ...
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) && fields[0] != "Z" {
            live.push(pid);
        }
    }
    live
}

#[test]
fn interrupt_kills_the_whole_process_group() {
    let sb = Sandbox::new();
    let airlock = sb.airlock(&["sh", "sleep"]);
    let pids = sb.root.join("src/pids");
    let flag = airlock.interrupt.clone();
    let watcher = {
        let pids = pids.clone();
        std::thread::spawn(move || {
            // Set the flag once the shell has started both sleeps.
            let give_up = Instant::now() + Duration::from_secs(60);
            while Instant::now() < give_up {
                let text = std::fs::read_to_string(&pids).unwrap_or_default();
                if text.lines().count() == 3 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            flag.set();
        })
    };
    let err = airlock
        .run(&sb.command(&[
            "sh",
            "-c",
            "sleep 1000 & echo $! > pids; sleep 1000 & echo $! >> pids; echo $$ >> pids; wait",
        ]))
        .unwrap_err();
    watcher.join().unwrap();
    assert!(matches!(err, RunError::Interrupted { .. }), "{err:?}");
    assert!(err.to_string().contains("`demo` was interrupted"), "{err}");

    let text = std::fs::read_to_string(&pids).unwrap();
    let ids: Vec<i32> = text.lines().map(|l| l.parse().unwrap()).collect();
    let leader = ids[2];
    // SIGKILL is delivered asynchronously: wait (bounded) for the kernel to
    // finish tearing the group down.
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut live = live_members(leader);
    while !live.is_empty() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(50));
        live = live_members(leader);
    }
    assert!(live.is_empty(), "still running in group {leader}: {live:?}");
}

#[test]
fn leftover_background_process_is_killed_when_the_command_exits() {
    let sb = Sandbox::new();
    let airlock = sb.airlock(&["sh", "sleep"]);
    let out = airlock
        .output(&sb.command(&["sh", "-c", "sleep 1000 & echo $$"]))
        .unwrap();
    let leader: i32 = out.trim().parse().unwrap();
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut live = live_members(leader);
    while !live.is_empty() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(50));
        live = live_members(leader);
    }
    assert!(live.is_empty(), "still running in group {leader}: {live:?}");
}

#[test]
fn populate_host_bin_links_tools_and_reports_missing_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
    let fake = root.join("fakebin");
    std::fs::create_dir(&fake).unwrap();
    let tool = fake.join("mytool");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(fake.join("notexec"), "").unwrap();

    let bin = root.join("host/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("stale"), "from an older run").unwrap();

    let tools: Vec<String> = ["mytool", "notexec", "nosuchtool", &format!("cc={tool}")]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let host_path = format!("relative/dir::{fake}");
    let missing = airlock::populate_host_bin(&bin, &tools, &host_path).unwrap();
    assert_eq!(
        missing,
        vec!["notexec".to_string(), "nosuchtool".to_string()]
    );

    let mut names: Vec<String> = std::fs::read_dir(&bin)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["cc".to_string(), "mytool".to_string()]);
    assert_eq!(std::fs::read_link(bin.join("mytool")).unwrap(), tool);
    assert_eq!(std::fs::read_link(bin.join("cc")).unwrap(), tool);
    assert!(!root.join("host/bin.part").exists());
    assert!(!root.join("host/bin.old").exists());
}

#[test]
fn populate_host_bin_rejects_malformed_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
    let bin = root.join("bin");
    for bad in [&["../sh"][..], &["cc=relative/gcc"], &["sh", "sh"], &[""]] {
        let tools: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
        let err = airlock::populate_host_bin(&bin, &tools, "/usr/bin").unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{bad:?}: {err}"
        );
        assert!(!bin.exists(), "{bad:?} left a bin behind");
    }
}
