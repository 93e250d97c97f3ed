//! The compiler wrapper: rhbuild run under a compiler's name.
//!
//! The cross-compiler stage puts links named `<triple>-gcc`, `<triple>-cc`
//! (and `-g++`, `-c++`) to the rhbuild binary in `cross-compiler/bin/`. Run
//! that way, rhbuild points an external gcc (Debian's, say) at the
//! toolchain's own musl headers, start files and libraries, and nothing of
//! the host's: no host or glibc headers, no glibc libraries. Everything is
//! found relative to the link's own location, so the toolchain directory
//! can be moved or tarred anywhere.
//!
//! `<root>/ccwrap.conf` (root = the link's directory's parent) says which
//! compiler to run:
//!
//! ```text
//! cc=/usr/bin/sh4-linux-gnu-gcc
//! cxx=/usr/bin/sh4-linux-gnu-g++
//! libgcc=/usr/lib/gcc-cross/sh4-linux-gnu/12
//! flags=-fplugin=$ROOT/lib/gcc-plugin.so
//! libs=-lgccfix
//! ```
//!
//! `$ROOT` is replaced by the toolchain root. As the original's `ccwrap`
//! did, flags that already opt out (`-nostdinc`, `-nostdlib`, ...) are
//! respected: the kernel and musl itself build freestanding through the
//! same wrapper.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The wrapper's configuration, read from `ccwrap.conf`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub cc: String,
    pub cxx: String,
    /// gcc's own directory (crtbegin*.o, libgcc.a, include/).
    pub libgcc: String,
    /// Extra flags for every compile, `$ROOT` already replaced.
    pub flags: Vec<String>,
    /// Libraries linked before libgcc (replacements for broken helpers).
    pub libs: Vec<String>,
}

impl Config {
    pub fn parse(text: &str, root: &Path) -> Result<Config, String> {
        let mut c = Config::default();
        let root = root.to_string_lossy();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!(
                    "ccwrap.conf line {}: expected key=value, found `{line}`",
                    n + 1
                ));
            };
            let v = v.replace("$ROOT", &root);
            match k.trim() {
                "cc" => c.cc = v,
                "cxx" => c.cxx = v,
                "libgcc" => c.libgcc = v,
                "flags" => c.flags.extend(v.split_whitespace().map(str::to_owned)),
                "libs" => c.libs.extend(v.split_whitespace().map(str::to_owned)),
                other => return Err(format!("ccwrap.conf line {}: unknown key `{other}`", n + 1)),
            }
        }
        if c.cc.is_empty() || c.libgcc.is_empty() {
            return Err("ccwrap.conf must set `cc` and `libgcc`".into());
        }
        Ok(c)
    }
}

/// What the wrapper was asked to do, from the arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    pub cxx: bool,
    /// `-c`, `-S`, `-E` or dependency-only: no link step.
    pub compile_only: bool,
    pub nostdinc: bool,
    pub nostdlib: bool,
    pub nostartfiles: bool,
    pub nodefaultlibs: bool,
    pub shared: bool,
    /// `-v`/`--version`/`-print-*` and friends with nothing to build.
    pub query: bool,
}

pub fn mode_of(name: &str, args: &[String]) -> Mode {
    let mut m = Mode {
        cxx: name.ends_with("++"),
        ..Mode::default()
    };
    let mut inputs = 0;
    let mut skip_next = false;
    for a in args {
        if skip_next {
            skip_next = false;
            continue;
        }
        match a.as_str() {
            // `-r` is a partial link (busybox links its built-in.o files
            // that way): no start files, no libraries.
            "-c" | "-S" | "-E" | "-M" | "-MM" | "-r" => m.compile_only = true,
            "-nostdinc" => m.nostdinc = true,
            "-nostdlib" => m.nostdlib = true,
            "-nostartfiles" => m.nostartfiles = true,
            "-nodefaultlibs" => m.nodefaultlibs = true,
            "-shared" => m.shared = true,
            "-o" | "-x" | "-include" | "-isystem" | "-I" | "-L" | "-MF" | "-MT" | "-MQ"
            | "-Xlinker" | "-T" => skip_next = true,
            "-v" | "--version" | "-dumpversion" | "-dumpmachine" | "--help" => m.query = true,
            s if s.starts_with("-print-") => m.query = true,
            s if !s.starts_with('-') => inputs += 1,
            _ => {}
        }
    }
    if inputs == 0 {
        m.query = true;
    }
    m
}

/// The real compiler's full argument list for `args` given to the wrapper.
pub fn rewrite(cfg: &Config, root: &Path, mode: &Mode, args: &[String]) -> Vec<String> {
    let root = root.to_string_lossy().to_string();
    let inc = format!("{root}/include");
    let lib = format!("{root}/lib");
    let mut out: Vec<String> = cfg.flags.clone();
    if mode.query {
        out.extend(args.iter().cloned());
        return out;
    }
    if !mode.nostdinc {
        out.push("-nostdinc".into());
        if mode.cxx {
            out.push("-isystem".into());
            out.push(format!("{root}/include/c++"));
        }
        out.push("-isystem".into());
        out.push(inc);
        // gcc's own headers (stddef.h, stdarg.h, ...), but not its
        // include-fixed: those are fix-ups of glibc's headers.
        out.push("-isystem".into());
        out.push(format!("{}/include", cfg.libgcc));
    }
    let linking = !mode.compile_only;
    let own_libs = linking && !mode.nostdlib && !mode.nodefaultlibs;
    let own_start = linking && !mode.nostdlib && !mode.nostartfiles;
    if linking {
        // Never let gcc add its (glibc) start files and libraries.
        out.push("-nostdlib".into());
        if !mode.shared {
            out.push("-static".into());
        }
        out.push(format!("-L{lib}"));
        out.push(format!("-L{}", cfg.libgcc));
    }
    // musl's start files only. gcc's crtbegin/crtend are left out: musl
    // runs constructors from .init_array without them, and an external
    // compiler's copies carry whatever bugs that compiler has (Debian 12's
    // sh4 crtbeginT.o branches on a stale T bit and crashes every program).
    if own_start {
        if !mode.shared {
            out.push(format!("{lib}/crt1.o"));
        }
        out.push(format!("{lib}/crti.o"));
    }
    out.extend(args.iter().cloned());
    if own_libs {
        if mode.cxx {
            out.push("-lstdc++".into());
        }
        out.extend(["-Wl,--start-group", "-lc"].map(String::from));
        out.extend(cfg.libs.iter().cloned());
        out.extend(["-lgcc", "-Wl,--end-group"].map(String::from));
    } else if linking && !mode.nostdlib {
        out.push("-lgcc".into());
    }
    if own_start {
        out.push(format!("{lib}/crtn.o"));
    }
    out
}

/// Where the program was run from: argv[0] itself when it has a slash,
/// else its first match in PATH. Links are not followed: the link's own
/// directory is what locates the toolchain.
fn invoked_path(argv0: &str) -> Option<PathBuf> {
    if argv0.contains('/') {
        return Some(PathBuf::from(argv0));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(argv0))
        .find(|p| p.is_file())
}

/// When rhbuild runs under a compiler's name, act as the wrapper and never
/// return from a successful exec.
pub fn dispatch() -> Option<ExitCode> {
    let mut argv = std::env::args_os();
    let argv0 = argv.next()?.to_string_lossy().to_string();
    let name = Path::new(&argv0).file_name()?.to_string_lossy().to_string();
    let is_compiler = ["-gcc", "-cc", "-g++", "-c++"]
        .iter()
        .any(|s| name.ends_with(s))
        || ["cc", "gcc", "c++", "g++"].contains(&name.as_str());
    if !is_compiler {
        return None;
    }
    let args: Vec<String> = argv
        .map(|a: OsString| a.to_string_lossy().to_string())
        .collect();
    let fail = |m: String| {
        eprintln!("{name} (rhbuild compiler wrapper): {m}");
        Some(ExitCode::from(2))
    };
    let Some(path) = invoked_path(&argv0) else {
        return fail(format!("cannot find where `{argv0}` was run from"));
    };
    let Some(root) = path.parent().and_then(Path::parent).map(Path::to_path_buf) else {
        return fail(format!(
            "`{}` is not inside a toolchain's bin/",
            path.display()
        ));
    };
    let root = std::path::absolute(&root).unwrap_or(root);
    let conf = root.join("ccwrap.conf");
    let text = match std::fs::read_to_string(&conf) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read `{}`: {e}", conf.display())),
    };
    let cfg = match Config::parse(&text, &root) {
        Ok(c) => c,
        Err(e) => return fail(format!("{}: {e}", conf.display())),
    };
    let mode = mode_of(&name, &args);
    let real = if mode.cxx { &cfg.cxx } else { &cfg.cc };
    if real.is_empty() {
        return fail("this toolchain has no C++ compiler (`cxx` is not set in ccwrap.conf)".into());
    }
    let full = rewrite(&cfg, &root, &mode, &args);
    if std::env::var_os("CCWRAP_DEBUG").is_some() {
        eprintln!("{real} {}", full.join(" "));
    }
    let err = std::process::Command::new(real).args(&full).exec();
    fail(format!("cannot run `{real}`: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn cfg() -> Config {
        Config::parse(
            "cc=/usr/bin/x-gcc\nlibgcc=/gcc\nflags=-fplugin=$ROOT/lib/p.so\n",
            Path::new("/tc"),
        )
        .unwrap()
    }

    #[test]
    fn compile_gets_only_our_headers() {
        let args = s(&["-c", "a.c", "-o", "a.o"]);
        let m = mode_of("x-cc", &args);
        let out = rewrite(&cfg(), Path::new("/tc"), &m, &args);
        assert_eq!(out[0], "-fplugin=/tc/lib/p.so");
        assert!(out.contains(&"-nostdinc".to_string()));
        assert!(out.contains(&"/tc/include".to_string()));
        assert!(!out.iter().any(|a| a.contains("crt1.o") || a == "-lc"));
    }

    #[test]
    fn link_uses_our_start_files_and_libc() {
        let args = s(&["a.o", "-o", "a"]);
        let m = mode_of("x-cc", &args);
        let out = rewrite(&cfg(), Path::new("/tc"), &m, &args);
        let crt1 = out.iter().position(|a| a == "/tc/lib/crt1.o").unwrap();
        let obj = out.iter().position(|a| a == "a.o").unwrap();
        let lc = out.iter().position(|a| a == "-lc").unwrap();
        assert!(crt1 < obj && obj < lc);
        assert!(out.contains(&"-nostdlib".to_string()) && out.contains(&"-static".to_string()));
        assert_eq!(out.last().unwrap(), "/tc/lib/crtn.o");
    }

    #[test]
    fn freestanding_builds_pass_through() {
        let args = s(&["-nostdinc", "-nostdlib", "-c", "k.c"]);
        let m = mode_of("x-gcc", &args);
        let out = rewrite(&cfg(), Path::new("/tc"), &m, &args);
        assert_eq!(
            out,
            s(&[
                "-fplugin=/tc/lib/p.so",
                "-nostdinc",
                "-nostdlib",
                "-c",
                "k.c"
            ])
        );
    }

    #[test]
    fn partial_links_get_no_start_files() {
        let args = s(&["-nostdlib", "-r", "-o", "built-in.o", "a.o", "b.o"]);
        let m = mode_of("x-gcc", &args);
        let out = rewrite(&cfg(), Path::new("/tc"), &m, &args);
        assert!(
            !out.iter()
                .any(|a| a.ends_with("crt1.o") || a == "-lc" || a == "-static"),
            "{out:?}"
        );
    }

    #[test]
    fn queries_are_untouched() {
        let args = s(&["-print-file-name=plugin"]);
        let m = mode_of("x-gcc", &args);
        assert!(m.query);
        assert_eq!(rewrite(&cfg(), Path::new("/tc"), &m, &args).len(), 2);
    }

    #[test]
    fn bad_config_is_named() {
        assert!(
            Config::parse("cc=/x\n", Path::new("/"))
                .unwrap_err()
                .contains("libgcc")
        );
        assert!(
            Config::parse("bogus\n", Path::new("/"))
                .unwrap_err()
                .contains("line 1")
        );
    }
}
