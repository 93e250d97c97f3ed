//! Shared test helpers: a fresh project directory per test and a command
//! builder for the rhbuild binary that, on failure, prints the command, its
//! output and a listing of the directory.

#![allow(dead_code)]

use camino::{Utf8Path, Utf8PathBuf};
use std::process::Command;

/// A temporary rhbuild project: `scripts/`, `packages/`, `targets/`,
/// `stdlib/`, removed when dropped.
pub struct TestProject {
    _tmp: tempfile::TempDir,
    pub root: Utf8PathBuf,
}

impl TestProject {
    /// An empty project (the four folders, nothing in them).
    pub fn empty() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
        for d in ["scripts", "packages", "targets", "stdlib"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        TestProject { _tmp: tmp, root }
    }

    /// A copy of this repository's scripts, packages, targets and stdlib.
    pub fn copy_of_repo() -> Self {
        let p = Self::empty();
        let repo = repo_root();
        for d in ["scripts", "packages", "targets", "stdlib"] {
            let status = Command::new("cp")
                .args(["-a", "-T"])
                .arg(repo.join(d))
                .arg(p.root.join(d))
                .status()
                .unwrap();
            assert!(status.success());
        }
        p
    }

    pub fn write(&self, rel: &str, text: &str) -> Utf8PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap()
    }

    /// `rhbuild ARGS` run in the project's root, with Debian's cross
    /// compilers (TOOLCHAIN=debian: building gcc is for the long tests).
    pub fn rhbuild(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rhbuild"));
        cmd.args(args)
            .current_dir(&self.root)
            .env("NO_COLOR", "1")
            .env("RHBUILD_SET_TOOLCHAIN", "debian")
            .env_remove("CROSS_COMPILE")
            .env_remove("ARCH");
        Run {
            cmd,
            root: self.root.clone(),
        }
    }

    /// `rhbuild ARGS` as `rhbuild` sets it up, started in the background
    /// with its output piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        let mut run = self.rhbuild(args);
        run.cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// A minimal valid target folder.
    pub fn add_target(&self, name: &str) {
        self.write(
            &format!("targets/{name}/target.rhai"),
            &minimal_target(name),
        );
        self.write(&format!("targets/{name}/linux.config"), "CONFIG_PRINTK=y\n");
    }
}

pub fn minimal_target(name: &str) -> String {
    format!(
        r#"export const DESCRIPTION = "test target {name}";
export const TRIPLE = "sh4-linux-musl";
export const KARCH = "sh";
export const KERNEL_IMAGE = "arch/sh/boot/zImage";
export const DEBIAN_CROSS_COMPILE = "sh4-linux-gnu-";
export const CROSS_PACKAGE = "gcc-sh4-linux-gnu";
export const QEMU = "qemu-system-sh4";
export const QEMU_PACKAGE = "qemu-system-misc";
export const QEMU_MACHINE = "-M r2d";
export const QEMU_USER = "qemu-sh4-static";
export const CONSOLE = "ttySC1";
"#
    )
}

pub fn repo_root() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command about to run, with what is needed to explain a failure.
pub struct Run {
    pub cmd: Command,
    root: Utf8PathBuf,
}

/// What a finished command said.
pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn output(mut self) -> Output {
        let o = self.cmd.output().expect("run rhbuild");
        Output {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn explain(&self, o: &Output) -> String {
        format!(
            "command: {:?}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}\n--- files\n{}",
            self.cmd,
            o.status,
            o.stdout,
            o.stderr,
            listing(&self.root)
        )
    }

    /// Run and require success.
    pub fn success(self) -> Output {
        let o = Self::output_of(&self);
        assert!(o.status.success(), "expected success\n{}", self.explain(&o));
        o
    }

    /// Run and require failure.
    pub fn failure(self) -> Output {
        let o = Self::output_of(&self);
        assert!(
            !o.status.success(),
            "expected failure\n{}",
            self.explain(&o)
        );
        o
    }

    fn output_of(&self) -> Output {
        let mut cmd = Command::new(self.cmd.get_program());
        cmd.args(self.cmd.get_args());
        for (k, v) in self.cmd.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(d) = self.cmd.get_current_dir() {
            cmd.current_dir(d);
        }
        let o = cmd.output().expect("run rhbuild");
        Output {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Every path under `root`, one per line, for failure messages.
pub fn listing(root: &Utf8Path) -> String {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = Utf8PathBuf::from_path_buf(e.path()).unwrap();
            if p.is_dir() && !p.is_symlink() && out.len() < 400 {
                todo.push(p.clone());
            }
            out.push(p.strip_prefix(root).unwrap_or(&p).to_string());
        }
    }
    out.sort();
    out.truncate(400);
    out.join("\n")
}

/// Fail with the install command when a host tool a test needs is absent
/// (looking in PATH and the sbin directories a normal user's PATH lacks).
pub fn require_tool(tool: &str, package: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| d.join(tool).is_file());
    assert!(
        found,
        "`{tool}` is not installed; this test needs it: apt-get install {package}"
    );
}

/// Every path beneath `dir` (not `dir` itself), directories before what
/// they hold; links are listed, not followed. Unreadable directories are
/// skipped.
pub fn walk(dir: &Utf8Path, out: &mut Vec<Utf8PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = Utf8PathBuf::from_path_buf(e.path()).unwrap();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            out.push(p.clone());
            if is_dir {
                walk(&p, out);
            }
        }
    }
}

/// Wait up to 10 s for `path` to appear (a background run got that far).
pub fn wait_for(path: &Utf8Path) {
    for _ in 0..400 {
        if path.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("{path} never appeared");
}

/// Assert that `text` (a command's output) contains `what`, showing it
/// otherwise.
pub fn says(text: &str, what: &str) {
    assert!(text.contains(what), "expected {what:?} in:\n{text}");
}
