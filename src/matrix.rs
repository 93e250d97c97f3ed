//! One script for many targets: each target runs as a child `rhbuild run
//! SCRIPT --arch A` in a process group of its own, at most `parallel` at a
//! time, its output in a log of its own and its stage events (see
//! `stage::Run::event`) in `events/<arch>.jsonl`. A failing target does not
//! stop the others; Ctrl-C stops them all (each child cleans up after itself
//! as it would on a terminal's Ctrl-C).

use crate::interrupt::Interrupt;
use camino::{Utf8Path, Utf8PathBuf};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The rhbuild binary.
    pub exe: Utf8PathBuf,
    /// The script, relative to the project root.
    pub script: Utf8PathBuf,
    pub arches: Vec<String>,
    /// Targets running at once.
    pub parallel: usize,
    /// `-j` for each target.
    pub jobs: usize,
    /// Extra arguments for every child (`--set`, `--source`, `--build-dir`).
    pub args: Vec<String>,
    /// Where `logs/<arch>.log` and `events/<arch>.jsonl` go.
    pub dir: Utf8PathBuf,
    /// `dir` opened beneath the build directory, when it lies there: its
    /// files are then made, read and removed through it, never through a
    /// link a script planted (`None`: plain paths, for tests).
    pub dir_root: Option<std::sync::Arc<crate::confine::Root>>,
    pub project_root: Utf8PathBuf,
}

/// How one target's run ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub arch: String,
    /// The child's exit code (130 when interrupted, -1 when it could not start).
    pub exit: i32,
    pub seconds: f64,
    pub log: Utf8PathBuf,
    /// The child's events, one JSON object each, in order.
    pub events: Vec<serde_json::Value>,
}

struct Running {
    arch: String,
    child: Child,
    started: Instant,
}

impl Plan {
    fn log(&self, arch: &str) -> Utf8PathBuf {
        self.dir.join("logs").join(format!("{arch}.log"))
    }

    fn events(&self, arch: &str) -> Utf8PathBuf {
        self.dir.join("events").join(format!("{arch}.jsonl"))
    }

    /// A fresh log for `arch`.
    fn create_log(&self, arch: &str) -> std::io::Result<File> {
        match &self.dir_root {
            Some(root) => root.create_file(&Utf8PathBuf::from(format!("logs/{arch}.log")), 0o644),
            None => File::create(self.log(arch)),
        }
    }

    fn events_rel(arch: &str) -> Utf8PathBuf {
        Utf8PathBuf::from(format!("events/{arch}.jsonl"))
    }

    /// The events `arch`'s run wrote (see [`read_events`]).
    fn read_events(&self, arch: &str) -> Vec<serde_json::Value> {
        match &self.dir_root {
            Some(root) => parse_events(
                &root
                    .read_to_string(&Self::events_rel(arch))
                    .unwrap_or_default(),
            ),
            None => read_events(&self.events(arch)),
        }
    }

    fn spawn(&self, arch: &str) -> std::io::Result<Child> {
        let log = self.create_log(arch)?;
        let events = self.events(arch);
        match &self.dir_root {
            Some(root) => root.remove_all(&Self::events_rel(arch), None)?,
            None => {
                let _ = std::fs::remove_file(&events);
            }
        }
        Command::new(&self.exe)
            .current_dir(&self.project_root)
            .arg("run")
            .arg(&self.script)
            .args(["--arch", arch])
            .args(["-j", &self.jobs.to_string()])
            .arg("--events")
            .arg(&events)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
    }
}

/// Run the plan; `finished` is told about each target as it ends.
pub fn run(
    plan: &Plan,
    interrupt: &Interrupt,
    mut finished: impl FnMut(&Outcome),
) -> std::io::Result<Vec<Outcome>> {
    for sub in ["logs", "events"] {
        match &plan.dir_root {
            Some(root) => root.mkdir_all(Utf8Path::new(sub))?,
            None => std::fs::create_dir_all(plan.dir.join(sub))?,
        }
    }
    let mut waiting: Vec<String> = plan.arches.iter().rev().cloned().collect();
    let mut running: Vec<Running> = Vec::new();
    let mut done: Vec<Outcome> = Vec::new();
    let mut forwarded = false;
    while !waiting.is_empty() || !running.is_empty() {
        if interrupt.is_set() {
            waiting.clear();
            if !forwarded {
                // The children clean up as on a terminal's Ctrl-C.
                for r in &running {
                    // SAFETY: kill(2) on a process group we created; no memory is touched.
                    unsafe {
                        libc::kill(-(r.child.id() as libc::pid_t), libc::SIGINT);
                    }
                }
                forwarded = true;
            }
        }
        while running.len() < plan.parallel.max(1)
            && let Some(arch) = waiting.pop()
        {
            let started = Instant::now();
            match plan.spawn(&arch) {
                Ok(child) => running.push(Running {
                    arch,
                    child,
                    started,
                }),
                Err(e) => {
                    let log = plan.log(&arch);
                    if let Ok(mut f) = plan.create_log(&arch) {
                        let _ = std::io::Write::write_all(
                            &mut f,
                            format!("cannot start `{}`: {e}\n", plan.exe).as_bytes(),
                        );
                    }
                    let o = Outcome {
                        arch,
                        exit: -1,
                        seconds: 0.0,
                        log,
                        events: Vec::new(),
                    };
                    finished(&o);
                    done.push(o);
                }
            }
        }
        let mut i = 0;
        while i < running.len() {
            if let Some(status) = running[i].child.try_wait()? {
                let r = running.remove(i);
                let o = Outcome {
                    exit: status.code().unwrap_or(128 + 2),
                    seconds: r.started.elapsed().as_secs_f64(),
                    log: plan.log(&r.arch),
                    events: plan.read_events(&r.arch),
                    arch: r.arch,
                };
                finished(&o);
                done.push(o);
            } else {
                i += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // In the order asked for, not the order finished.
    done.sort_by_key(|o| plan.arches.iter().position(|a| a == &o.arch));
    Ok(done)
}

/// The events a child wrote; lines that do not parse (a child killed
/// mid-write) are skipped.
pub fn read_events(path: &Utf8Path) -> Vec<serde_json::Value> {
    parse_events(&std::fs::read_to_string(path).unwrap_or_default())
}

fn parse_events(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The arguments every child run gets: the same build directory, the
/// parent's options that `flags` holds (`--cache-dir`, `--sandbox`, ...),
/// its `--set` settings and `--source` overrides.
pub fn child_args(
    build_dir: &camino::Utf8Path,
    flags: &[String],
    cli_settings: &std::collections::BTreeMap<String, String>,
    overrides: &std::collections::BTreeMap<String, camino::Utf8PathBuf>,
) -> Vec<String> {
    let mut args = vec!["--build-dir".to_string(), build_dir.to_string()];
    args.extend(flags.iter().cloned());
    for (k, v) in cli_settings {
        args.push("--set".into());
        args.push(format!("{k}={v}"));
    }
    for (k, v) in overrides {
        args.push("--source".into());
        args.push(format!("{k}={v}"));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for rhbuild: writes one event and fails for `bad`.
    fn fake_exe(dir: &Utf8Path) -> Utf8PathBuf {
        let exe = dir.join("fake-rhbuild");
        std::fs::write(
            &exe,
            r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case $1 in --arch) arch=$2; shift;; --events) events=$2; shift;; esac; shift
done
echo "building $arch"
printf '{"event":"done","arch":"%s","stage":"host-tools","seconds":0.5}\n' "$arch" > "$events"
[ "$arch" != bad ]
"#,
        )
        .unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        exe
    }

    #[test]
    fn runs_every_target_past_failures_in_the_order_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        let plan = Plan {
            exe: fake_exe(dir),
            script: "scripts/smoketest.rhai".into(),
            arches: ["one", "bad", "three", "four"].map(String::from).to_vec(),
            parallel: 2,
            jobs: 1,
            args: vec![],
            dir: dir.join("report"),
            dir_root: None,
            project_root: dir.to_owned(),
        };
        let mut seen = Vec::new();
        let out = run(&plan, &Interrupt::new(), |o| seen.push(o.arch.clone())).unwrap();
        let arches: Vec<&str> = out.iter().map(|o| o.arch.as_str()).collect();
        assert_eq!(arches, ["one", "bad", "three", "four"]);
        assert_eq!(seen.len(), 4);
        let exits: Vec<i32> = out.iter().map(|o| o.exit).collect();
        assert_eq!(exits, [0, 1, 0, 0]);
        for o in &out {
            assert_eq!(o.events.len(), 1);
            assert_eq!(o.events[0]["arch"], o.arch.as_str());
            let log = std::fs::read_to_string(&o.log).unwrap();
            assert_eq!(log, format!("building {}\n", o.arch));
        }
    }

    #[test]
    fn unreadable_event_lines_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let f = Utf8Path::from_path(tmp.path()).unwrap().join("e.jsonl");
        std::fs::write(&f, "{\"event\": \"start\"}\n{\"event\": \"do").unwrap();
        assert_eq!(read_events(&f).len(), 1);
    }
}
