//! The toolchain built from source (binutils, gcc, musl), and the checks
//! every cross compiler must pass, whoever built it.
//!
//! The builds take tens of minutes per target on 2 cores. sh4's, the
//! default path of the README's first command, runs in the suite; the
//! other targets' are ignored by a plain `cargo test`; one command runs
//! them all:
//!
//!     cargo test --release -- --ignored toolchain
//!
//! They keep their build directory (target/tmp/toolchain-build, or
//! RHBUILD_BUILD_DIR when set) between runs, so a second run only checks.

use crate::util::{require_tool, walk};
use camino::{Utf8Path, Utf8PathBuf};
use std::process::Command;
use std::sync::Mutex;

const LINUX_SOURCE: &str = "/usr/src/linux-source-6.1.tar.xz";

/// One toolchain build at a time: two gcc builds on 2 cores help no one.
static BUILD: Mutex<()> = Mutex::new(());

/// The long tests' build directory: RHBUILD_BUILD_DIR when set (to reuse
/// toolchains already built there), else one under target/tmp.
fn build_dir() -> Utf8PathBuf {
    match std::env::var("RHBUILD_BUILD_DIR") {
        Ok(dir) if !dir.is_empty() => Utf8PathBuf::from(dir),
        _ => Utf8PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("toolchain-build"),
    }
}

/// What the checks need to know about a target.
pub struct Toolchain<'a> {
    /// The toolchain's root: bin/<triple>-cc lives under it.
    pub root: &'a Utf8Path,
    pub triple: &'a str,
    /// The user-mode emulator that runs the target's programs.
    pub qemu_user: &'a str,
    /// Whether every file the linker takes must come from `root` (ours);
    /// a wrapped external compiler brings its own libgcc.
    pub self_contained: bool,
}

impl Toolchain<'_> {
    fn cc(&self) -> Utf8PathBuf {
        self.root.join(format!("bin/{}-cc", self.triple))
    }

    /// Compile `source` (C text) to `out` with extra `args`.
    fn compile(&self, source: &str, out: &str, args: &[&str]) -> std::process::Output {
        let src = self.root.join(format!("{out}.c"));
        std::fs::write(&src, source).unwrap();
        Command::new(self.cc().as_str())
            .args(args)
            .arg("-o")
            .arg(self.root.join(out).as_str())
            .arg(src.as_str())
            .output()
            .unwrap()
    }

    fn run(&self, program: &str) -> String {
        let ran = Command::new(self.qemu_user)
            .arg(self.root.join(program).as_str())
            .output()
            .unwrap();
        String::from_utf8_lossy(&ran.stdout).into_owned()
    }
}

/// A toolchain, wherever it lies now, compiles and links a program that
/// runs under the emulator, finds no header of the host's, and links
/// nothing of the host's C library (and, when self-contained, nothing from
/// outside itself at all).
pub fn check_toolchain(t: &Toolchain) {
    // Compiled, then linked on its own, so every file the linker reads
    // (named in the link map) is either ours or the toolchain's.
    let out = t.compile(
        "#include <stdio.h>\nint main(void) { printf(\"moved: OK\\n\"); return 0; }\n",
        "hello.o",
        &["-O2", "-c"],
    );
    assert!(
        out.status.success(),
        "{} from {}: {}",
        t.cc(),
        t.root,
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(t.cc().as_str())
        .arg(t.root.join("hello.o").as_str())
        .arg("-o")
        .arg(t.root.join("hello").as_str())
        .arg(format!("-Wl,-Map={}", t.root.join("hello.map")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.run("hello"), "moved: OK\n");

    // A header the host has but the toolchain does not must not be found.
    let host_header = Utf8PathBuf::from("/usr/local/include/rhbuild-host-only-test.h");
    if std::fs::write(&host_header, "#define HOST_ONLY 1\n").is_ok() {
        let out = t.compile(
            "#include <rhbuild-host-only-test.h>\nint main(void) { return HOST_ONLY; }\n",
            "host-header",
            &["-c"],
        );
        let _ = std::fs::remove_file(&host_header);
        assert!(
            !out.status.success(),
            "a host header leaked into the cross compiler"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("rhbuild-host-only-test.h"), "{err}");
    }

    // The link map names the toolchain's own libc.a, nothing of Debian's
    // glibc, and (self-contained) no file from outside the toolchain.
    let map = std::fs::read_to_string(t.root.join("hello.map")).unwrap();
    let root = std::fs::canonicalize(t.root).unwrap();
    let root = root.to_string_lossy();
    // Each file once, as the map names it (through `lib64 -> lib` where
    // gcc looks in lib64: compared by their real paths).
    let linked: std::collections::BTreeSet<String> = map
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(|w| w.split('(').next().unwrap_or(w).to_string())
        .filter(|w| w.ends_with(".a") || w.ends_with(".o"))
        .collect();
    assert!(
        linked
            .iter()
            .map(|p| canonical(p))
            .any(|p| p.ends_with("/lib/libc.a") && p.starts_with(&*root)),
        "libc.a is not the toolchain's: {linked:?}"
    );
    // Debian's glibc and its start files live in /usr/<triple>-linux-gnu/lib.
    assert!(
        !linked.iter().any(|p| p.contains("-linux-gnu/lib/")),
        "Debian's glibc or its start files were linked: {linked:?}"
    );
    if t.self_contained {
        for p in &linked {
            assert!(
                canonical(p).starts_with(&*root),
                "the linker took `{p}` from outside the toolchain ({root})"
            );
        }
    }
}

fn canonical(p: &str) -> String {
    std::fs::canonicalize(p)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| p.to_string())
}

/// `rhbuild run SCRIPT --arch ARCH` with the default toolchain (built from
/// source), in the long tests' build directory.
fn rhbuild(arch: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rhbuild"));
    cmd.args(args)
        .args(["--arch", arch, "-j", "2", "--source"])
        .arg(format!("linux={LINUX_SOURCE}"))
        .arg("--build-dir")
        .arg(build_dir().as_str())
        .current_dir(crate::util::repo_root())
        .env("NO_COLOR", "1")
        .env_remove("RHBUILD_SET_TOOLCHAIN")
        .env_remove("CROSS_COMPILE")
        .env_remove("ARCH");
    cmd
}

/// `rhbuild ARGS --arch ARCH` as above, which must succeed; its stdout.
fn succeeds(arch: &str, args: &[&str]) -> String {
    let o = rhbuild(arch, args).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Build ARCH's toolchain from source and its system, boot it, then check
/// the toolchain from a copy elsewhere and from its tarball unpacked
/// elsewhere.
fn from_source(arch: &str, triple: &str, qemu_user: &str) {
    let _lock = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    require_tool(qemu_user, "qemu-user-static");
    require_tool("g++", "g++");
    assert!(
        Utf8Path::new(LINUX_SOURCE).is_file(),
        "this test needs {LINUX_SOURCE}: apt-get install linux-source-6.1"
    );
    succeeds(arch, &["run", "scripts/smoketest.rhai"]);
    let built = build_dir().join(arch).join("cross-compiler");
    // Our own gcc, not the wrapper around somebody else's.
    assert!(!built.join("ccwrap.conf").exists());
    let gcc = built.join(format!("bin/{triple}-gcc"));
    assert!(
        !std::fs::symlink_metadata(&gcc).unwrap().is_symlink(),
        "{gcc} is a link, not a compiler"
    );

    assert_host_programs_stripped(&built, triple);
    assert_names_no_build_path(&built);

    // Moved: a copy somewhere else entirely.
    let tmp = tempfile::tempdir().unwrap();
    let moved = Utf8PathBuf::from_path_buf(tmp.path().join("moved")).unwrap();
    let status = Command::new("cp")
        .args(["-a", built.as_str(), moved.as_str()])
        .status()
        .unwrap();
    assert!(status.success());
    check_toolchain(&Toolchain {
        root: &moved,
        triple,
        qemu_user,
        self_contained: true,
    });

    // Unpacked from its tarball, as another machine would.
    let tarball = built.join(format!("dist/{triple}-cross.tar.gz"));
    let status = Command::new("tar")
        .args(["-xzf", tarball.as_str(), "-C"])
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(status.success(), "cannot unpack {tarball}");
    let unpacked = Utf8PathBuf::from_path_buf(tmp.path().join(format!("{triple}-cross"))).unwrap();
    assert!(!unpacked.join("dist").exists(), "the tarball holds itself");
    check_toolchain(&Toolchain {
        root: &unpacked,
        triple,
        qemu_user,
        self_contained: true,
    });

    // C++ too, where libstdc++ was built.
    let cxx = unpacked.join(format!("bin/{triple}-g++"));
    if cxx.exists() {
        let src = unpacked.join("hello.cc");
        std::fs::write(
            &src,
            "#include <string>\n#include <cstdio>\nint main() { std::string s(\"c++: \"); s += \"OK\"; std::puts(s.c_str()); }\n",
        )
        .unwrap();
        let out = Command::new(cxx.as_str())
            .args(["-O2", "-static", "-o"])
            .arg(unpacked.join("hello-cc").as_str())
            .arg(src.as_str())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ran = Command::new(qemu_user)
            .arg(unpacked.join("hello-cc").as_str())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&ran.stdout), "c++: OK\n");
    }

    // Nothing changed: the rerun skips every stage, quickly.
    let o = rhbuild(arch, &["run", "scripts/cross-compiler.rhai"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("up to date"), "{out}");
}

/// One ignored test per target whose toolchain is built from source.
macro_rules! from_source_test {
    ($name:ident, $arch:literal, $triple:literal, $qemu_user:literal) => {
        #[test]
        #[ignore = "builds gcc from source (about 12 minutes cold, then a kernel and a boot); run with `cargo test --release -- --ignored toolchain`"]
        fn $name() {
            from_source($arch, $triple, $qemu_user);
        }
    };
}

/// The default path, which every user's first command takes: sh4's
/// toolchain from source, then its system, booted. Not ignored: the suite
/// (and so CI) runs it.
#[test]
fn toolchain_sh4_from_source() {
    from_source("sh4", "sh4-linux-musl", "qemu-sh4-static");
}
from_source_test!(
    toolchain_armv5l_from_source,
    "armv5l",
    "armv5l-linux-musleabi",
    "qemu-arm-static"
);
from_source_test!(
    toolchain_mipsel_from_source,
    "mipsel",
    "mipsel-linux-musl",
    "qemu-mipsel-static"
);
from_source_test!(
    toolchain_aarch64_from_source,
    "aarch64",
    "aarch64-linux-musl",
    "qemu-aarch64-static"
);
from_source_test!(
    toolchain_riscv64_from_source,
    "riscv64",
    "riscv64-linux-musl",
    "qemu-riscv64-static"
);
from_source_test!(
    toolchain_armv4tl_from_source,
    "armv4tl",
    "armv4tl-linux-musleabi",
    "qemu-arm-static"
);
from_source_test!(
    toolchain_mips64_from_source,
    "mips64",
    "mips64-linux-musl",
    "qemu-mips64-static"
);
from_source_test!(
    toolchain_aarch64_be_from_source,
    "aarch64_be",
    "aarch64_be-linux-musl",
    "qemu-aarch64_be-static"
);
from_source_test!(
    toolchain_i486_from_source,
    "i486",
    "i486-linux-musl",
    "qemu-i386-static"
);
from_source_test!(
    toolchain_sh4eb_from_source,
    "sh4eb",
    "sh4eb-linux-musl",
    "qemu-sh4eb-static"
);
from_source_test!(
    toolchain_x86_64_from_source,
    "x86_64",
    "x86_64-linux-musl",
    "qemu-x86_64-static"
);
from_source_test!(
    toolchain_armv7l_from_source,
    "armv7l",
    "armv7l-linux-musleabihf",
    "qemu-arm-static"
);
from_source_test!(
    toolchain_i686_from_source,
    "i686",
    "i686-linux-musl",
    "qemu-i386-static"
);
from_source_test!(
    toolchain_mips_from_source,
    "mips",
    "mips-linux-musl",
    "qemu-mips-static"
);
from_source_test!(
    toolchain_mips64el_from_source,
    "mips64el",
    "mips64el-linux-musl",
    "qemu-mips64el-static"
);
from_source_test!(
    toolchain_powerpc_from_source,
    "powerpc",
    "powerpc-linux-musl",
    "qemu-ppc-static"
);
from_source_test!(
    toolchain_powerpc64_from_source,
    "powerpc64",
    "powerpc64-linux-musl",
    "qemu-ppc64-static"
);
from_source_test!(
    toolchain_powerpc64le_from_source,
    "powerpc64le",
    "powerpc64le-linux-musl",
    "qemu-ppc64le-static"
);
from_source_test!(
    toolchain_m68k_from_source,
    "m68k",
    "m68k-linux-musl",
    "qemu-m68k-static"
);
from_source_test!(
    toolchain_s390x_from_source,
    "s390x",
    "s390x-linux-musl",
    "qemu-s390x-static"
);

/// No file of the toolchain records where it was built: not the build
/// directory (the tests' differs from every user's) and not the stage's
/// temporary output name, which gcc's driver, the binutils' scripts and
/// the target libraries' debug information would otherwise carry. What
/// bench/reproducible.sh shows over two whole builds, checked here on one.
fn assert_names_no_build_path(built: &Utf8Path) {
    let dir = build_dir();
    let needles = [dir.as_str().as_bytes(), b".cross-compiler.part-".as_slice()];
    let mut paths = Vec::new();
    walk(built, &mut paths);
    let dist = built.join("dist");
    let mut offenders: Vec<String> = paths
        .iter()
        .filter(|p| !p.starts_with(&dist) && p.file_name() != Some("manifest.json"))
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            needles
                .iter()
                .any(|n| bytes.windows(n.len()).any(|w| w == *n))
        })
        .map(|p| p.strip_prefix(built).unwrap().to_string())
        .collect();
    offenders.sort();
    assert!(
        offenders.is_empty(),
        "{} files of the toolchain name the build directory {dir} or the temporary output: {}",
        offenders.len(),
        offenders.join(", ")
    );
}

/// The programs of the toolchain that run on the build host (the driver,
/// the compilers proper, the assembler and linker) carry neither debug
/// information nor a symbol table; nothing of link-time optimisation is
/// built.
fn assert_host_programs_stripped(built: &Utf8Path, triple: &str) {
    let libexec = gcc_libexec(built, triple);
    assert!(!libexec.join("lto1").exists(), "lto1 was built");
    let mut programs = vec![
        built.join(format!("bin/{triple}-gcc")),
        built.join(format!("bin/{triple}-as")),
        built.join(format!("bin/{triple}-ld")),
        built.join(format!("bin/{triple}-objdump")),
        libexec.join("cc1"),
        libexec.join("collect2"),
    ];
    if libexec.join("cc1plus").exists() {
        programs.push(libexec.join("cc1plus"));
    }
    assert_stripped(&programs);
}

/// `<prefix>/libexec/gcc/<triple>/<version>`, the compilers proper.
fn gcc_libexec(prefix: &Utf8Path, triple: &str) -> Utf8PathBuf {
    let libexec = prefix.join(format!("libexec/gcc/{triple}"));
    let version = only_entry(&libexec);
    libexec.join(version)
}

/// The name of the one entry of `dir` (gcc's directory per target triple,
/// per version).
fn only_entry(dir: &Utf8Path) -> String {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .next()
        .unwrap_or_else(|| panic!("{dir} is empty"))
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned()
}

/// Each program has neither debug information nor a symbol table
/// (`readelf` reads the section headers of any machine's ELF files).
fn assert_stripped(programs: &[Utf8PathBuf]) {
    for program in programs {
        let out = Command::new("readelf")
            .args(["-S", "-W", program.as_str()])
            .output()
            .unwrap();
        assert!(out.status.success(), "readelf {program}");
        let sections = String::from_utf8_lossy(&out.stdout);
        for section in [".debug_info", ".symtab"] {
            assert!(
                !sections.contains(section),
                "{program} keeps {section}: not stripped"
            );
        }
    }
}

#[test]
fn a_failing_toolchain_package_names_itself_and_leaves_no_toolchain() {
    require_tool("qemu-sh4-static", "qemu-user-static");
    require_tool("g++", "g++");
    // binutils, the first package of the toolchain from source, fails.
    let p = crate::util::TestProject::copy_of_repo();
    let pkg = p.read("packages/binutils.rhai");
    let at = pkg.find("fn build(ctx) {").unwrap() + "fn build(ctx) {".len();
    let broken = format!(
        "{}\n    ctx.dir(ctx.work_dir(\"binutils\").path).run([\"sh\", \"-c\", \"echo checking the assembler; echo 'configure: error: no assembler here' >&2; exit 1\"]);{}",
        &pkg[..at],
        &pkg[at..]
    );
    p.write("packages/binutils.rhai", &broken);
    let mut run = p.rhbuild(&["run", "scripts/cross-compiler.rhai", "--arch", "sh4"]);
    run.cmd.env_remove("RHBUILD_SET_TOOLCHAIN");
    let o = run.failure();
    assert!(o.stderr.contains("binutils"), "{}", o.stderr);
    assert!(
        o.stderr.contains("configure: error: no assembler here"),
        "the log's tail is not shown: {}",
        o.stderr
    );
    assert!(o.stderr.contains("logs/binutils.log"), "{}", o.stderr);
    // No toolchain, complete-looking or partial, where the next stage
    // would look.
    let arch = p.root.join("build/sh4");
    assert!(!arch.join("cross-compiler").exists());
    let parts: Vec<String> = std::fs::read_dir(&arch)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".part"))
        .collect();
    assert!(parts.is_empty(), "left behind: {parts:?}");
}

/// The smoketest with the native compiler in the image (booted from a
/// disk: it is too big for an initramfs).
const NATIVE_SMOKETEST: [&str; 6] = [
    "run",
    "scripts/smoketest.rhai",
    "--set",
    "NATIVE_TOOLCHAIN=1",
    "--set",
    "SYSIMAGE_TYPE=squashfs",
];

/// The native compiler inside the sh4 system: `cc hello.c` and
/// `./configure && make` of GNU make in the guest (the smoketest variant).
#[test]
#[ignore = "builds the native compiler and compiles inside the emulator (about an hour); run with `cargo test --release -- --ignored toolchain`"]
fn toolchain_sh4_native_compiler_builds_inside_the_guest() {
    let _lock = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    require_tool("qemu-system-sh4", "qemu-system-misc");
    let out = succeeds("sh4", &NATIVE_SMOKETEST);
    assert!(out.contains("native make:"), "{out}");
    assert!(
        out.contains(
            "compiled hello.c and built make-4.3 with ./configure && make inside the guest"
        ),
        "{out}"
    );
    assert_native_compiler_runs_on("sh4", "Renesas SH");
}

/// Everything in ARCH's native compiler is a static program for the
/// target (`file` says `machine`): no host binary slipped in.
fn assert_native_compiler_runs_on(arch: &str, machine: &str) {
    let usr = build_dir().join(arch).join("native-compiler/usr");
    let bin = usr.join("bin");
    let mut programs = vec![];
    for tool in ["gcc", "cc", "g++", "as", "ld", "make", "bash", "distcc"] {
        let o = Command::new("file")
            .arg("-L")
            .arg(bin.join(tool).as_str())
            .output()
            .unwrap();
        let what = String::from_utf8_lossy(&o.stdout);
        assert!(
            what.contains(machine) && what.contains("statically linked"),
            "{tool}: {what}"
        );
        programs.push(bin.join(tool));
    }
    // Stripped: the image carries programs, not their symbols (the target
    // libraries keep their debug information).
    let triple = only_entry(&usr.join("libexec/gcc"));
    let libexec = gcc_libexec(&usr, &triple);
    for program in ["cc1", "cc1plus", "collect2"] {
        programs.push(libexec.join(program));
    }
    assert_stripped(&programs);
    // ...while the target's libgcc keeps what a debugger needs.
    let gcc_lib = usr.join(format!("lib/gcc/{triple}"));
    let libgcc = gcc_lib.join(only_entry(&gcc_lib)).join("libgcc.a");
    let out = Command::new("readelf")
        .args(["-S", "-W", libgcc.as_str()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(".debug_info"),
        "{libgcc} lost its debug information"
    );
}

/// ARCH's native compiler at work in its own guest: the smoketest's
/// probes (`cc hello.c` and `c++ hello.cc`, compiled and run there), the
/// long configure+make left to sh4's test above.
fn native_probe(arch: &str, qemu: [&str; 2], machine: &str) {
    let _lock = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    require_tool(qemu[0], qemu[1]);
    let out = succeeds(
        arch,
        &[&NATIVE_SMOKETEST[..], &["--set", "NATIVE_BUILD=0"]].concat(),
    );
    assert!(
        out.contains("compiled and ran hello.c and hello.cc inside the guest"),
        "{out}"
    );
    assert_native_compiler_runs_on(arch, machine);
}

/// One ignored native probe per family (ARM, POWER, 68k, z, x86, MIPS).
macro_rules! native_probe_test {
    ($name:ident, $arch:literal, $qemu:expr, $machine:literal) => {
        #[test]
        #[ignore = "builds the cross and native compilers (about 45 minutes of CPU cold), then compiles inside the emulator; run with `cargo test --release -- --ignored toolchain`"]
        fn $name() {
            native_probe($arch, $qemu, $machine);
        }
    };
}
native_probe_test!(
    toolchain_armv7l_native_probe,
    "armv7l",
    ["qemu-system-arm", "qemu-system-arm"],
    "ARM, EABI5"
);
native_probe_test!(
    toolchain_powerpc64le_native_probe,
    "powerpc64le",
    ["qemu-system-ppc64", "qemu-system-ppc"],
    "64-bit PowerPC"
);
native_probe_test!(
    toolchain_m68k_native_probe,
    "m68k",
    ["qemu-system-m68k", "qemu-system-misc"],
    "Motorola m68k"
);
native_probe_test!(
    toolchain_s390x_native_probe,
    "s390x",
    ["qemu-system-s390x", "qemu-system-misc"],
    "IBM S/390"
);
native_probe_test!(
    toolchain_i686_native_probe,
    "i686",
    ["qemu-system-i386", "qemu-system-x86"],
    "Intel 80386"
);
native_probe_test!(
    toolchain_mips64el_native_probe,
    "mips64el",
    ["qemu-system-mips64el", "qemu-system-mips"],
    "MIPS, MIPS64"
);

/// The development environment, unattended: a control image builds GNU
/// make inside sh4 with its compiles sent to distccd on the host, and the
/// result comes out of /home without root.
#[test]
#[ignore = "needs the native compiler (about an hour on its own); run with `cargo test --release -- --ignored toolchain`"]
fn toolchain_sh4_dev_environment_sends_compiles_to_the_host() {
    let _lock = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    require_tool("distccd", "distcc");
    require_tool("debugfs", "e2fsprogs");
    let tmp = tempfile::tempdir().unwrap();
    let control = Utf8PathBuf::from_path_buf(tmp.path().join("control")).unwrap();
    std::fs::create_dir_all(&control).unwrap();
    let tarball = build_dir().join("sh4/native-compiler/src/make-4.3.tar.gz");
    let o = rhbuild("sh4", &["run", "scripts/native-compiler.rhai"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::copy(&tarball, control.join("make-4.3.tar.gz")).unwrap();
    std::fs::write(
        control.join("init"),
        "#!/bin/sh\nset -e\necho \"PATH=$PATH DISTCC_HOSTS=$DISTCC_HOSTS\"\ncd /home\nrm -rf make-4.3 results\ntar -xzf /mnt/make-4.3.tar.gz\ncd make-4.3\n./configure > ../configure.log 2>&1\nmake -j2 > ../make.log 2>&1\nmkdir -p /home/results\ncp make /home/results/\n./make --version | head -n 1\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(control.join("init"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(control.join("init"), perms).unwrap();
    let _ = std::fs::remove_file(build_dir().join("sh4/hdb.img"));
    succeeds(
        "sh4",
        &[
            "run",
            "scripts/dev-environment.rhai",
            "--set",
            "NATIVE_TOOLCHAIN=1",
            "--set",
            "SYSIMAGE_TYPE=squashfs",
            "--set",
            &format!("MY_DEV_CONTROL={control}"),
            "--set",
            "HDB_MEGS=256",
        ],
    );
    // The compiles were done by the host's distccd.
    let log = std::fs::read_to_string(build_dir().join("sh4/logs/distccd.log")).unwrap();
    let done = log.lines().filter(|l| l.contains("COMPILE_OK")).count();
    assert!(done >= 20, "only {done} compiles reached the host:\n{log}");
    // The result comes out of /home with debugfs, no root or mount needed.
    let out_dir = Utf8PathBuf::from_path_buf(tmp.path().join("out")).unwrap();
    std::fs::create_dir_all(&out_dir).unwrap();
    let status = Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump /results {out_dir}"))
        .arg(build_dir().join("sh4/hdb.img").as_str())
        .status()
        .unwrap();
    assert!(status.success());
    let o = Command::new("file")
        .arg(out_dir.join("results/make").as_str())
        .output()
        .unwrap();
    let what = String::from_utf8_lossy(&o.stdout);
    assert!(what.contains("Renesas SH"), "{what}");
}
