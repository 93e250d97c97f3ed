//! The QEMU console against a real `qemu-system-sh4` that needs no guest: the
//! r2d board is started halted (`-S`) with the HMP monitor on stdio, so the
//! console shows the `(qemu) ` prompt. No network: `-nic none`.

use camino::{Utf8Path, Utf8PathBuf};
use rhbuild::interrupt::Interrupt;
use rhbuild::qemu::{self, QemuConsole, QemuError, QemuSpec};
use std::time::Duration;

const QEMU: &str = "qemu-system-sh4";
const PROMPT: &str = "(qemu) ";
const LONG: Duration = Duration::from_secs(60);

/// Fail (never skip) when QEMU is absent.
fn require_qemu() {
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Utf8Path::new(d).join(QEMU).is_file());
    assert!(
        found,
        "this test needs `{QEMU}`: apt-get install qemu-system-misc"
    );
}

struct Scratch {
    _tmp: tempfile::TempDir,
    root: Utf8PathBuf,
}

fn scratch() -> Scratch {
    let tmp = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
    Scratch { _tmp: tmp, root }
}

fn monitor_spec(dir: &Utf8Path) -> QemuSpec {
    require_qemu();
    QemuSpec {
        binary: QEMU.to_string(),
        args: [
            "-M", "r2d", "-S", "-display", "none", "-monitor", "stdio", "-serial", "null", "-nic",
            "none",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        console_log: dir.join("logs/console.log"),
        package: None,
    }
}

/// "7.2.22" from "QEMU emulator version 7.2.22 (Debian ...)".
fn qemu_version() -> String {
    let out = std::process::Command::new(QEMU)
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or_else(|| panic!("no version in `{QEMU} --version`: {text}"))
        .to_string()
}

fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn monitor_session_prompt_command_quit() {
    let dir = scratch();
    let spec = monitor_spec(&dir.root);
    let mut console = QemuConsole::spawn(&spec, Interrupt::new()).unwrap();
    let banner = console.expect(PROMPT, LONG).unwrap();
    assert!(banner.contains("QEMU"), "banner: {banner:?}");

    let out = console.run("info version", PROMPT, LONG).unwrap();
    let version = qemu_version();
    assert!(
        out.starts_with(&version),
        "expected `info version` to print {version}, got {out:?}"
    );

    console.send_line("quit").unwrap();
    let status = console.wait_exit(LONG).unwrap();
    assert!(status.success(), "{status:?}");

    let log = std::fs::read_to_string(&spec.console_log).unwrap();
    assert!(
        log.starts_with(&format!("=== {}\n", spec.command_line())),
        "log: {log}"
    );
    assert!(log.contains(&version), "log: {log}");
    assert!(log.contains("quit"), "log: {log}");
}

#[test]
fn expect_timeout_reports_pattern_tail_and_log() {
    let dir = scratch();
    let spec = monitor_spec(&dir.root);
    let mut console = QemuConsole::spawn(&spec, Interrupt::new()).unwrap();
    console.expect(PROMPT, LONG).unwrap();
    let err = console
        .expect("login:", Duration::from_millis(300))
        .unwrap_err();
    let QemuError::Timeout { tail, .. } = &err else {
        panic!("expected Timeout, got {err:?}");
    };
    assert!(
        tail.contains("QEMU") && tail.contains("monitor"),
        "tail: {tail}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "timed out after 0.3s waiting for `login:` on the QEMU console; console log: {}, which ends:\n    QEMU ",
            spec.console_log
        )),
        "{text}"
    );
}

#[test]
fn qemu_exiting_ends_expect_with_its_status() {
    let dir = scratch();
    let spec = monitor_spec(&dir.root);
    let mut console = QemuConsole::spawn(&spec, Interrupt::new()).unwrap();
    console.expect(PROMPT, LONG).unwrap();
    console.send_line("quit").unwrap();
    let err = console.expect("login:", LONG).unwrap_err();
    let QemuError::Exited { status, .. } = &err else {
        panic!("expected Exited, got {err:?}");
    };
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    assert!(
        err.to_string()
            .starts_with("QEMU exited with exit status 0 while waiting for `login:` on its console; console log: "),
        "{err}"
    );
}

#[test]
fn drop_kills_and_reaps_qemu() {
    let dir = scratch();
    let spec = monitor_spec(&dir.root);
    let mut console = QemuConsole::spawn(&spec, Interrupt::new()).unwrap();
    console.expect(PROMPT, LONG).unwrap();
    let pid = console.pid();
    assert!(is_running(pid));
    drop(console);
    assert!(!is_running(pid), "QEMU (pid {pid}) survived drop");
    let log = std::fs::read_to_string(&spec.console_log).unwrap();
    assert!(log.contains(PROMPT), "log: {log}");
}

#[test]
fn wait_exit_kills_qemu_that_does_not_exit() {
    let dir = scratch();
    let spec = monitor_spec(&dir.root);
    let mut console = QemuConsole::spawn(&spec, Interrupt::new()).unwrap();
    console.expect(PROMPT, LONG).unwrap();
    let pid = console.pid();
    let err = console.wait_exit(Duration::from_millis(200)).unwrap_err();
    assert!(matches!(err, QemuError::ExitTimeout { .. }), "{err:?}");
    assert!(!is_running(pid), "QEMU (pid {pid}) survived");
}

#[test]
fn interrupt_stops_expect_and_kills_qemu() {
    let dir = scratch();
    let spec = monitor_spec(&dir.root);
    let interrupt = Interrupt::new();
    let mut console = QemuConsole::spawn(&spec, interrupt.clone()).unwrap();
    console.expect(PROMPT, LONG).unwrap();
    let pid = console.pid();
    interrupt.set();
    let err = console.expect("login:", LONG).unwrap_err();
    assert!(matches!(err, QemuError::Interrupted { .. }), "{err:?}");
    assert!(!is_running(pid), "QEMU (pid {pid}) survived");
}

#[test]
fn missing_binary_names_the_debian_package() {
    let dir = scratch();
    let spec = QemuSpec {
        binary: "/nonexistent/bin/qemu-system-sparc64".to_string(),
        args: vec![],
        console_log: dir.root.join("console.log"),
        package: Some("qemu-system-sparc".to_string()),
    };
    let err = match QemuConsole::spawn(&spec, Interrupt::new()) {
        Ok(_) => panic!("a QEMU at /nonexistent started"),
        Err(e) => e,
    };
    assert_eq!(
        err.to_string(),
        "`/nonexistent/bin/qemu-system-sparc64` is not installed: expected it at that path; \
         it comes with the Debian package `qemu-system-sparc`, install it with `apt-get install qemu-system-sparc`"
    );
    let err = qemu::interactive(&QemuSpec {
        binary: "qemu-system-rhbuild-test-absent".to_string(),
        package: None,
        ..spec
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`qemu-system-rhbuild-test-absent` is not installed: expected it on PATH; \
         install QEMU for this target (the target's QEMU_PACKAGE names its Debian package)"
    );
}

#[test]
fn interactive_returns_qemu_status() {
    require_qemu();
    let dir = scratch();
    let spec = QemuSpec {
        binary: QEMU.to_string(),
        args: vec!["-version".to_string()],
        console_log: dir.root.join("console.log"),
        package: None,
    };
    assert!(qemu::interactive(&spec).unwrap().success());
    let spec = QemuSpec {
        args: vec!["-M".to_string(), "no-such-board".to_string()],
        ..spec
    };
    assert!(!qemu::interactive(&spec).unwrap().success());
}

#[test]
fn qemu_stderr_reaches_the_log_and_the_error() {
    let dir = scratch();
    let mut spec = monitor_spec(&dir.root);
    spec.args[1] = "no-such-board".to_string();
    let mut console = QemuConsole::spawn(&spec, Interrupt::new()).unwrap();
    let err = console.expect(PROMPT, LONG).unwrap_err();
    let QemuError::Exited { status, tail, .. } = &err else {
        panic!("expected Exited, got {err:?}");
    };
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{err}");
    assert!(tail.contains("unsupported machine type"), "{err}");
    let log = std::fs::read_to_string(&spec.console_log).unwrap();
    assert!(log.contains("unsupported machine type"), "log: {log}");
}

/// A link planted at the console log's name is refused, not appended
/// through, and QEMU is not started.
#[test]
fn a_link_planted_at_the_console_log_is_not_written_through() {
    let dir = scratch();
    let victim = dir.root.join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    let log = dir.root.join("console.log");
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    let spec = QemuSpec {
        binary: "/nonexistent/bin/qemu-system-sh4".to_string(),
        args: vec![],
        console_log: log.clone(),
        package: None,
    };
    let err = match QemuConsole::spawn(&spec, Interrupt::new()) {
        Ok(_) => panic!("started with a link at the console log"),
        Err(e) => e,
    };
    assert!(matches!(err, QemuError::Log { .. }), "{err}");
    assert!(err.to_string().contains(log.as_str()), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}
