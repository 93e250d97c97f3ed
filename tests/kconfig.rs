//! Miniconfig parsing, the survival check, and shrinking: against a small
//! Kconfig model written here (for the search logic), and for real against
//! busybox 1.35.0's Kconfig (needs `apt-get source`, gcc, make, tar, bzip2).

use std::collections::BTreeMap;
use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};
use rhbuild::kconfig::{
    ALLCONFIG_FILE, DotConfig, Entry, ExpandMethod, KconfigError, Miniconfig, check_expanded,
    expand, make_expander, make_expander_with, missing, shrink, shrink_over,
};

fn render(err: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(200)
        .render_report(&mut out, err)
        .unwrap();
    out
}

fn values(mini: &Miniconfig) -> Vec<(String, String)> {
    mini.entries
        .iter()
        .map(|e| (e.symbol.clone(), e.value.clone()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(s, v)| (s.to_string(), v.to_string()))
        .collect()
}

#[test]
fn parses_every_kind_of_line() {
    let text = "\
# Serial console: the board's SCIF is the second port.
CONFIG_SERIAL_SH_SCI=y
CONFIG_SERIAL_SH_SCI_CONSOLE=y

# CONFIG_MODULES is not set
CONFIG_MEMORY_START=0x0c000000
CONFIG_NR_CPUS=-1
CONFIG_CMDLINE=\"console=ttySC1 root=/dev/sda \\\"quoted\\\"\"
CONFIG_EXT2_FS=m   \r
#CONFIG_COMMENTED_OUT=y
";
    let mini = Miniconfig::parse_str(text, Utf8Path::new("targets/sh4/linux.config")).unwrap();
    assert_eq!(
        values(&mini),
        pairs(&[
            ("SERIAL_SH_SCI", "y"),
            ("SERIAL_SH_SCI_CONSOLE", "y"),
            ("MODULES", "n"),
            ("MEMORY_START", "0x0c000000"),
            ("NR_CPUS", "-1"),
            ("CMDLINE", "\"console=ttySC1 root=/dev/sda \\\"quoted\\\"\""),
            ("EXT2_FS", "m"),
        ])
    );
    assert_eq!(
        mini.get("MODULES"),
        Some(&Entry {
            symbol: "MODULES".into(),
            value: "n".into(),
            file: "targets/sh4/linux.config".into(),
            line: 5,
        })
    );
    assert_eq!(
        mini.render(),
        "CONFIG_SERIAL_SH_SCI=y\nCONFIG_SERIAL_SH_SCI_CONSOLE=y\n# CONFIG_MODULES is not set\n\
         CONFIG_MEMORY_START=0x0c000000\nCONFIG_NR_CPUS=-1\n\
         CONFIG_CMDLINE=\"console=ttySC1 root=/dev/sda \\\"quoted\\\"\"\nCONFIG_EXT2_FS=m\n"
    );
    let again = Miniconfig::parse_str(&mini.render(), Utf8Path::new("x")).unwrap();
    assert_eq!(values(&again), values(&mini));
}

#[test]
fn later_files_override_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let base = dir.join("base.config");
    let board = dir.join("board.config");
    std::fs::write(&base, "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=\"x\"\n").unwrap();
    std::fs::write(
        &board,
        "# CONFIG_B is not set\nCONFIG_D=y\nCONFIG_C=\"y\"\n",
    )
    .unwrap();
    let mini = Miniconfig::parse_files(&[base.clone(), board.clone()]).unwrap();
    assert_eq!(
        values(&mini),
        pairs(&[("A", "y"), ("B", "n"), ("C", "\"y\""), ("D", "y")])
    );
    let b = mini.get("B").unwrap();
    assert_eq!((b.file.as_path(), b.line), (board.as_path(), 1));
    let a = mini.get("A").unwrap();
    assert_eq!((a.file.as_path(), a.line), (base.as_path(), 1));

    let err = Miniconfig::parse_files(&[base, dir.join("absent.config")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read `{}`: No such file or directory (os error 2)",
            dir.join("absent.config")
        )
    );
}

#[test]
fn malformed_line_names_file_line_and_column() {
    let text = "CONFIG_A=y\n# a comment\nCONFIG_SERIAL = y\n";
    let err = Miniconfig::parse_str(text, Utf8Path::new("targets/sh4/linux.config")).unwrap_err();
    assert_eq!(
        render(&err),
        "kconfig::malformed

  × malformed line in `targets/sh4/linux.config` at line 3, column 14: expected `=` right after `CONFIG_SERIAL`, found ` `
   ╭─[targets/sh4/linux.config:3:14]
 2 │ # a comment
 3 │ CONFIG_SERIAL = y
   ·              ┬
   ·              ╰── `=` expected here
   ╰────
  help: each line is `CONFIG_NAME=y` (or m, n, a number, 0x-hex, a \"quoted string\"), `# CONFIG_NAME is not set`, a `#` comment or blank
"
    );
}

#[test]
fn malformed_values_and_lines() {
    let cases = [
        (
            "SERIAL=y",
            "at line 1, column 1: expected `CONFIG_NAME=value` or `# CONFIG_NAME is not set`, found `SERIAL=y`",
        ),
        (
            "CONFIG_=y",
            "at line 1, column 8: expected a symbol name after `CONFIG_`",
        ),
        (
            "CONFIG_X=yes",
            "at line 1, column 10: expected y, m, n, a number, 0x-hex or a \"quoted string\" for `CONFIG_X`, found `yes`",
        ),
        (
            "CONFIG_X=",
            "at line 1, column 10: expected a value after `CONFIG_X=` (y, m, n, a number, 0x-hex or a \"quoted string\"), found the end of the line",
        ),
        (
            "  CONFIG_CMDLINE=\"console=ttySC1",
            "at line 1, column 18: unterminated string for `CONFIG_CMDLINE`: no closing `\"`",
        ),
        (
            "CONFIG_S=\"a\" b",
            "at line 1, column 13: unexpected text after the string for `CONFIG_S`: ` b`",
        ),
        (
            "CONFIG_X=0xZZ",
            "at line 1, column 10: expected y, m, n, a number, 0x-hex or a \"quoted string\" for `CONFIG_X`, found `0xZZ`",
        ),
    ];
    for (line, expected) in cases {
        let err = Miniconfig::parse_str(line, Utf8Path::new("m.config")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("malformed line in `m.config` {expected}"),
            "for {line:?}"
        );
    }
}

#[test]
fn dot_config_reads_values_and_not_set() {
    let cfg = DotConfig::parse_str(
        "#\n# Automatically generated file; DO NOT EDIT.\n#\nCONFIG_A=y\n# CONFIG_B is not set\n\
         CONFIG_S=\"x y\"\n# General setup\nCONFIG_H=0x10\n",
    );
    assert_eq!(cfg.get("A"), Some("y"));
    assert_eq!(cfg.get("B"), Some("n"));
    assert_eq!(cfg.get("S"), Some("\"x y\""));
    assert_eq!(cfg.get("H"), Some("0x10"));
    assert_eq!(cfg.get("C"), None);
    assert_eq!(cfg.len(), 4);
    let reordered = DotConfig::parse_str(
        "CONFIG_H=0x10\nCONFIG_S=\"x y\"\nCONFIG_A=y\n# CONFIG_B is not set\n",
    );
    assert_eq!(cfg, reordered);
    assert_ne!(cfg, DotConfig::parse_str("CONFIG_A=y\n"));
}

#[test]
fn missing_lists_every_symbol_that_did_not_survive() {
    let mini = Miniconfig::parse_str(
        "CONFIG_FOO=y\nCONFIG_KEPT=y\n# CONFIG_SEL is not set\nCONFIG_BAR=y\nCONFIG_START=0x0c000000\n\
         # CONFIG_ABSENT_N is not set\n",
        Utf8Path::new("targets/sh4/linux.config"),
    )
    .unwrap();
    let cfg = DotConfig::parse_str(
        "CONFIG_KEPT=y\nCONFIG_SEL=y\n# CONFIG_BAR is not set\nCONFIG_START=0x08000000\n",
    );
    let found: Vec<(&str, usize, String)> = missing(&mini, &cfg)
        .into_iter()
        .map(|(e, f)| (e.symbol.as_str(), e.line, f))
        .collect();
    assert_eq!(
        found,
        vec![
            ("FOO", 1, "n".to_string()),
            ("SEL", 3, "y".to_string()),
            ("BAR", 4, "n".to_string()),
            ("START", 5, "0x08000000".to_string()),
        ]
    );
    let err = check_expanded(&mini, &cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "4 symbols from the miniconfig did not survive `make allnoconfig`: \
         CONFIG_FOO=y (targets/sh4/linux.config:1) is not set; \
         # CONFIG_SEL is not set (targets/sh4/linux.config:3) is y; \
         CONFIG_BAR=y (targets/sh4/linux.config:4) is n; \
         CONFIG_START=0x0c000000 (targets/sh4/linux.config:5) is 0x08000000 \
         — they do not exist in this source tree or their dependencies are missing \
         (a symbol asked to be `n` may be selected by another one); \
         run `make menuconfig` and search for them"
    );

    let one = Miniconfig::parse_str("CONFIG_FOO=y\n", Utf8Path::new("m.config")).unwrap();
    assert_eq!(
        check_expanded(&one, &cfg).unwrap_err().to_string(),
        "1 symbol from the miniconfig did not survive `make allnoconfig`: \
         CONFIG_FOO=y (m.config:1) is not set — it does not exist in this source tree or its \
         dependencies are missing; run `make menuconfig` and search for it"
    );
    let fine = Miniconfig::parse_str("CONFIG_KEPT=y\n", Utf8Path::new("m.config")).unwrap();
    assert!(check_expanded(&fine, &cfg).is_ok());
}

// ---------------------------------------------------------------------------
// A small Kconfig model: enough semantics (prompts, depends on, select,
// defaults of hidden and int symbols) to exercise the shrinking search.

#[derive(Clone)]
enum Kind {
    /// A bool with a prompt: `n` in allnoconfig unless asked for.
    Prompt,
    /// A bool without prompt: `y` whenever its dependency holds.
    Hidden,
    /// An int with a prompt and a default, absent when its dependency fails.
    Int(i64),
}

#[derive(Clone)]
struct Symbol {
    name: String,
    kind: Kind,
    depends: Option<String>,
    selects: Vec<String>,
}

fn sym(name: &str, kind: Kind, depends: Option<&str>, selects: &[&str]) -> Symbol {
    Symbol {
        name: name.into(),
        kind,
        depends: depends.map(str::to_string),
        selects: selects.iter().map(|s| s.to_string()).collect(),
    }
}

/// What `make allnoconfig KCONFIG_ALLCONFIG=mini` would write for `model`.
fn model_expand(model: &[Symbol], mini: &Miniconfig) -> DotConfig {
    let mut value: BTreeMap<String, Option<String>> = BTreeMap::new();
    for _ in 0..50 {
        let mut next = BTreeMap::new();
        let on = |v: &BTreeMap<String, Option<String>>, s: &str| {
            v.get(s).cloned().flatten().as_deref() == Some("y")
        };
        for s in model {
            let visible = s.depends.as_deref().is_none_or(|d| on(&value, d));
            let selected = model
                .iter()
                .any(|o| o.selects.contains(&s.name) && on(&value, &o.name));
            let asked = mini.get(&s.name).map(|e| e.value.clone());
            let v = match s.kind {
                Kind::Prompt => {
                    let mine = visible && asked.as_deref() == Some("y");
                    Some(if mine || selected { "y" } else { "n" }.to_string())
                }
                Kind::Hidden => Some(if visible || selected { "y" } else { "n" }.to_string()),
                Kind::Int(default) => visible.then(|| asked.unwrap_or(default.to_string())),
            };
            next.insert(s.name.clone(), v);
        }
        if next == value {
            break;
        }
        value = next;
    }
    let mut text = String::new();
    for s in model {
        match value[&s.name].as_deref() {
            Some("n") => text.push_str(&format!("# CONFIG_{} is not set\n", s.name)),
            Some(v) => text.push_str(&format!("CONFIG_{}={v}\n", s.name)),
            None => {}
        }
    }
    DotConfig::parse_str(&text)
}

/// 64 applets, each selecting a library, with a feature and a size.
fn applet_model() -> Vec<Symbol> {
    let mut model = vec![sym("HIDDEN", Kind::Hidden, Some("APPLET_0"), &[])];
    for i in 0..64 {
        let (a, f, l) = (
            format!("APPLET_{i}"),
            format!("FEATURE_{i}"),
            format!("LIB_{i}"),
        );
        model.push(sym(&a, Kind::Prompt, None, &[&l]));
        model.push(sym(&f, Kind::Prompt, Some(&a), &[]));
        model.push(sym(&l, Kind::Prompt, None, &[]));
        model.push(sym(&format!("SIZE_{i}"), Kind::Int(10 * i), Some(&f), &[]));
    }
    model
}

fn ask(list: &[(String, &str)]) -> Miniconfig {
    let text: String = list
        .iter()
        .map(|(s, v)| format!("CONFIG_{s}={v}\n"))
        .collect();
    Miniconfig::parse_str(&text, Utf8Path::new("wanted.config")).unwrap()
}

#[test]
fn shrink_finds_the_symbols_that_matter_in_few_expansions() {
    let model = applet_model();
    let mut wanted = Vec::new();
    for i in (0..64).step_by(2) {
        wanted.push((format!("APPLET_{i}"), "y"));
        if i % 4 == 0 {
            wanted.push((format!("FEATURE_{i}"), "y"));
        }
    }
    wanted.push(("SIZE_8".to_string(), "999"));
    let full = model_expand(&model, &ask(&wanted));
    assert_eq!(full.get("LIB_2"), Some("y"));
    assert_eq!(full.get("SIZE_4"), Some("40"));

    let mut expansions = 0;
    let mut expander = |mini: &Miniconfig| {
        expansions += 1;
        Ok(model_expand(&model, mini))
    };
    let mini = shrink(&full, &mut expander).unwrap();
    let candidates = full
        .iter()
        .filter(|(s, v)| {
            model_expand(&model, &Miniconfig::default())
                .get(s)
                .unwrap_or("n")
                != *v
        })
        .count();

    let mut got: Vec<(String, String)> = values(&mini);
    got.sort();
    let mut expected: Vec<(String, String)> = wanted
        .iter()
        .map(|(s, v)| (s.clone(), v.to_string()))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(model_expand(&model, &mini), full);
    // Entries point at the .config line they came from.
    let e = mini.get("SIZE_8").unwrap();
    assert_eq!((e.file.as_str(), e.value.as_str()), (".config", "999"));
    assert_eq!(full.iter().nth(e.line - 1).unwrap().0, "SIZE_8");
    // 2 + 2*log2(candidates) probes + the removals: far below one per symbol.
    assert_eq!(candidates, 32 + 16 + 32 + 16 + 1);
    assert!(
        expansions <= 20,
        "{expansions} expansions for {candidates} candidates"
    );
}

#[test]
fn shrink_keeps_one_of_two_symbols_that_select_each_other() {
    let model = vec![
        sym("A", Kind::Prompt, None, &["B"]),
        sym("B", Kind::Prompt, None, &["A"]),
        sym("C", Kind::Prompt, None, &[]),
    ];
    let full = model_expand(&model, &ask(&[("A".into(), "y")]));
    let mut expander = |mini: &Miniconfig| Ok(model_expand(&model, mini));
    let mini = shrink(&full, &mut expander).unwrap();
    assert_eq!(mini.entries.len(), 1, "{:?}", values(&mini));
    assert_eq!(model_expand(&model, &mini), full);
}

/// An overlay on a base file (a target's linux.config on
/// base-linux.config): what the base already asks for is not repeated,
/// even a symbol of the base that survives only with the overlay (SERIAL
/// depends on the board's BOARD).
#[test]
fn shrink_over_a_base_leaves_out_what_the_base_asks_for() {
    let model = vec![
        sym("BOARD", Kind::Prompt, None, &[]),
        sym("SERIAL", Kind::Prompt, Some("BOARD"), &[]),
        sym("NET", Kind::Prompt, None, &[]),
        sym("OTHER", Kind::Prompt, None, &[]),
    ];
    let base = ask(&[("SERIAL".into(), "y"), ("NET".into(), "y")]);
    let full = model_expand(
        &model,
        &ask(&[
            ("SERIAL".into(), "y"),
            ("NET".into(), "y"),
            ("BOARD".into(), "y"),
        ]),
    );
    let mut expander = |mini: &Miniconfig| {
        let mut all = base.clone();
        all.merge(mini.clone());
        Ok(model_expand(&model, &all))
    };
    let mini = shrink_over(&full, &base, &mut expander).unwrap();
    assert_eq!(values(&mini), [("BOARD".to_string(), "y".to_string())]);
    // Without knowing the base, SERIAL looks needed: the old answer.
    let mini = shrink(&full, &mut expander).unwrap();
    assert_eq!(mini.entries.len(), 2, "{:?}", values(&mini));
}

#[test]
fn shrink_refuses_a_config_kconfig_cannot_produce() {
    let model = applet_model();
    let mut full_text = String::new();
    for (s, v) in model_expand(&model, &ask(&[("APPLET_1".into(), "y")])).iter() {
        // A library that nothing selects and nobody asked for: as if the
        // .config came from another version of the tree.
        let v = if s == "LIB_5" || s == "HIDDEN" {
            "y"
        } else {
            v
        };
        full_text.push_str(&format!("CONFIG_{s}={v}\n"));
    }
    full_text.push_str("CONFIG_GONE=y\n");
    let full = DotConfig::parse_str(&full_text);
    let mut expander = |mini: &Miniconfig| Ok(model_expand(&model, mini));
    let err = shrink(&full, &mut expander).unwrap_err();
    assert!(matches!(err, KconfigError::Unreproducible { .. }));
    assert_eq!(
        err.to_string(),
        "the full .config cannot be reproduced from a miniconfig: asking `make allnoconfig` for \
         the 5 symbols that differ from a plain allnoconfig gives a .config that differs in 2 \
         symbols: CONFIG_HIDDEN is n, expected y; CONFIG_GONE is absent, expected y — the .config \
         was probably written by another version of this source tree or with another compiler; \
         run `make oldconfig` on it with this tree first"
    );
}

#[test]
fn expander_errors_name_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let mut argvs = Vec::new();
    let mut expander = make_expander_with(
        ExpandMethod::Allnoconfig,
        &dir.join("linux"),
        rhbuild::confine::Root::create(&dir.join("out")).unwrap(),
        vec!["ARCH=sh".into(), "CROSS_COMPILE=sh4-linux-musl-".into()],
        |argv: &[String], cwd: &Utf8Path| {
            argvs.push((argv.to_vec(), cwd.to_owned()));
            Err("exit status 2; last lines of the log: ...".to_string())
        },
    );
    let err = expander(&Miniconfig::default()).unwrap_err();
    let allconfig = dir.join("out").join(ALLCONFIG_FILE);
    assert_eq!(
        err.to_string(),
        format!(
            "expanding a miniconfig with `make -C {d}/linux O={d}/out ARCH=sh \
             CROSS_COMPILE=sh4-linux-musl- allnoconfig KCONFIG_ALLCONFIG={allconfig}` failed: \
             exit status 2; last lines of the log: ...",
            d = dir
        )
    );
    drop(expander);
    assert_eq!(argvs.len(), 1);
    assert_eq!(argvs[0].1, dir.join("linux"));
}

// ---------------------------------------------------------------------------
// For real: busybox 1.35.0's own Kconfig.

const BUSYBOX_SHA256: &str = "faeeb244c35a348a334f4a59e44626ee870fb07b6884d68c10ae8bc19f83a694";

use crate::util::require_tool;

fn run_ok(argv: &[&str], cwd: &Utf8Path) {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", argv.join(" ")));
    assert!(
        out.status.success(),
        "`{}` in `{cwd}` failed with {}:\n{}\n{}",
        argv.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// busybox_1.35.0.orig.tar.bz2 from Debian's source archive, downloaded
/// once into the target directory and checked against upstream's SHA-256.
fn busybox_tarball() -> Utf8PathBuf {
    let cache = Utf8PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-cache/busybox");
    let tarball = cache.join("busybox_1.35.0.orig.tar.bz2");
    if !tarball.exists() {
        require_tool("apt-get", "apt");
        std::fs::create_dir_all(&cache).unwrap();
        let download = tempfile::tempdir_in(&cache).unwrap();
        let download = Utf8Path::from_path(download.path()).unwrap();
        run_ok(
            &["apt-get", "source", "--download-only", "busybox"],
            download,
        );
        std::fs::rename(download.join("busybox_1.35.0.orig.tar.bz2"), &tarball).unwrap();
    }
    let sha = rhbuild::checksum::sha256_file(&tarball).unwrap();
    assert_eq!(
        sha, BUSYBOX_SHA256,
        "`{tarball}` is not busybox 1.35.0: delete it"
    );
    tarball
}

fn command_runner(log: Utf8PathBuf) -> impl FnMut(&[String], &Utf8Path) -> Result<(), String> {
    move |argv: &[String], cwd: &Utf8Path| {
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(cwd)
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", argv[0]))?;
        let mut text = out.stdout;
        text.extend_from_slice(&out.stderr);
        std::fs::write(&log, &text).unwrap();
        if out.status.success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&text);
            let tail: Vec<&str> = text.lines().rev().take(10).collect();
            Err(format!(
                "{}; last lines of the output:\n{}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ))
        }
    }
}

#[test]
fn shrink_busybox_defconfig_for_real() {
    for (tool, package) in [
        ("make", "make"),
        ("gcc", "gcc"),
        ("tar", "tar"),
        ("bzip2", "bzip2"),
    ] {
        require_tool(tool, package);
    }
    let tarball = busybox_tarball();
    let tmp = tempfile::tempdir().unwrap();
    let tmp = Utf8Path::from_path(tmp.path()).unwrap();
    run_ok(&["tar", "-xjf", tarball.as_str()], tmp);
    let src = tmp.join("busybox-1.35.0");
    assert_eq!(ExpandMethod::detect(&src), ExpandMethod::DefconfigAllno);

    // One output directory for everything: each new one builds busybox's
    // `conf` again.
    let out = tmp.join("out");
    std::fs::create_dir(&out).unwrap();
    run_ok(
        &["make", "-C", src.as_str(), &format!("O={out}"), "defconfig"],
        &src,
    );
    let full_path = tmp.join("full.config");
    std::fs::copy(out.join(".config"), &full_path).unwrap();
    let full = DotConfig::parse_file(&full_path).unwrap();

    let mut expansions = 0;
    let mut expander = make_expander(
        &src,
        rhbuild::confine::Root::create(&out).unwrap(),
        vec![],
        command_runner(tmp.join("shrink.log")),
    );
    let mut counted = |mini: &Miniconfig| {
        expansions += 1;
        expander(mini)
    };
    let mini = shrink(&full, &mut counted).unwrap();
    let candidates = {
        let base = expander(&Miniconfig::default()).unwrap();
        full.iter()
            .filter(|(s, v)| base.get(s).unwrap_or("n") != *v)
            .count()
    };
    let full_lines = std::fs::read_to_string(&full_path).unwrap().lines().count();
    eprintln!(
        "busybox defconfig: {} symbols, {candidates} differ from allnoconfig, miniconfig has {} \
         ({} lines of .config vs {}), {expansions} expansions",
        full.len(),
        mini.entries.len(),
        full_lines,
        mini.render().lines().count(),
    );

    // A fresh expander (it has learnt no symbols from the shrink) gives the
    // same .config back, and every requested symbol survives.
    let mut fresh = make_expander(
        &src,
        rhbuild::confine::Root::create(&out).unwrap(),
        vec![],
        command_runner(tmp.join("check.log")),
    );
    let again = expand(&mini, &mut fresh).unwrap();
    assert_eq!(full.differences(&again), vec![]);
    assert_eq!(again, full);

    // Defaults that follow other symbols were dropped, applets were kept.
    assert!(mini.get("FEATURE_EDITING_MAX_LEN").is_none());
    assert!(mini.get("PID_FILE_PATH").is_none());
    assert_eq!(mini.get("ASH").map(|e| e.value.as_str()), Some("y"));
    assert!(mini.entries.len() < candidates);
    // Every applet busybox's defconfig enables is a switch allnoconfig turns
    // off, so most symbols stay; what goes is what Kconfig derives.
    assert!(mini.render().lines().count() * 4 < full_lines * 3);
    assert!(expansions * 10 < candidates, "{expansions} expansions");
    assert!(mini.entries.iter().all(|e| e.file == full_path));

    // busybox's allnoconfig resets every boolean, whatever KCONFIG_ALLCONFIG
    // asks: the survival check is what catches that.
    let mut plain = make_expander_with(
        ExpandMethod::Allnoconfig,
        &src,
        rhbuild::confine::Root::create(&out).unwrap(),
        vec![],
        command_runner(tmp.join("plain.log")),
    );
    let small = Miniconfig::parse_str(
        "CONFIG_ASH=y\nCONFIG_FEATURE_EDITING=y\nCONFIG_FEATURE_EDITING_MAX_LEN=512\n",
        Utf8Path::new("busybox.config"),
    )
    .unwrap();
    let err = expand(&small, &mut plain).unwrap_err();
    assert_eq!(
        err.to_string(),
        "3 symbols from the miniconfig did not survive `make allnoconfig`: CONFIG_ASH=y \
         (busybox.config:1) is n; CONFIG_FEATURE_EDITING=y (busybox.config:2) is n; \
         CONFIG_FEATURE_EDITING_MAX_LEN=512 (busybox.config:3) is 0 — they do not exist in this \
         source tree or their dependencies are missing; run `make menuconfig` and search for them"
    );
    let mut proper = make_expander(
        &src,
        rhbuild::confine::Root::create(&out).unwrap(),
        vec![],
        command_runner(tmp.join("proper.log")),
    );
    let cfg = expand(&small, &mut proper).unwrap();
    assert_eq!(cfg.get("FEATURE_EDITING_MAX_LEN"), Some("512"));
    // Sub-options default to y in busybox's Kconfig, but a miniconfig
    // means allnoconfig: they stay off unless asked for.
    assert_eq!(cfg.get("ASH_JOB_CONTROL"), Some("n"));
}
