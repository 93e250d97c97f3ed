//! The shape ARCHITECTURE.md promises, checked against the source: the
//! host names no target or board, its modules import only downwards, and
//! every setting a script reads is documented.

use camino::{Utf8Path, Utf8PathBuf};
use std::collections::BTreeMap;

fn repo() -> Utf8PathBuf {
    crate::util::repo_root()
}

/// Every `.rs` file under `src/`, with its unit tests cut off (test data
/// may name a target).
fn sources() -> Vec<(Utf8PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![repo().join("src")];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = Utf8PathBuf::from_path_buf(e.path()).unwrap();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension() == Some("rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let code = match text.find("#[cfg(test)]") {
                    Some(i) => text[..i].to_string(),
                    None => text,
                };
                out.push((p.strip_prefix(repo()).unwrap().to_owned(), code));
            }
        }
    }
    out.sort();
    out
}

/// The target folders and the QEMU boards they name (`-M BOARD`).
fn targets_and_boards() -> Vec<String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(repo().join("targets")).unwrap().flatten() {
        let p = Utf8PathBuf::from_path_buf(e.path()).unwrap();
        if !p.is_dir() {
            continue;
        }
        names.push(p.file_name().unwrap().to_string());
        if let Ok(t) = std::fs::read_to_string(p.join("target.rhai")) {
            for line in t.lines().filter(|l| l.contains("QEMU_MACHINE")) {
                let mut words = line.split(|c: char| c.is_whitespace() || c == '"');
                while let Some(w) = words.next() {
                    if w == "-M"
                        && let Some(board) = words.next()
                    {
                        names.push(board.split(',').next().unwrap().to_string());
                    }
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn nothing_in_src_names_a_target_or_a_board() {
    let names = targets_and_boards();
    assert!(names.contains(&"sh4".to_string()) && names.contains(&"r2d".to_string()));
    let mut found = Vec::new();
    for (file, code) in sources() {
        for (n, line) in code.lines().enumerate() {
            // Comments say why with a real case, and help texts give real
            // examples: both may name a target. Code may not.
            let t = line.trim_start();
            if t.starts_with("//") || line.contains("after_help") || line.contains("for example") {
                continue;
            }
            for name in &names {
                // As a word of its own: `sh4` in `"sh4"` or `sh4-linux`, not
                // inside another word.
                let hit = line.match_indices(name.as_str()).any(|(i, _)| {
                    let before = line[..i].chars().next_back();
                    let after = line[i + name.len()..].chars().next();
                    let word =
                        |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
                    !word(before) && !word(after)
                });
                if hit {
                    found.push(format!("{file}:{}: `{name}`: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "src/ names targets or boards:\n{}",
        found.join("\n")
    );
}

/// The layers, lowest first: a module may use its own layer and those
/// below it, never one above.
const LAYERS: &[&[&str]] = &[
    &[
        "checksum",
        "confine",
        "interrupt",
        "sandbox",
        "extract",
        "fetch",
        "patch",
        "kconfig",
        "image",
        "qemu",
        "serve",
        "airlock",
        "manifest",
        "lock",
        "diag",
        "project",
        "matrix",
        "ccwrap",
        "distcc",
        "fsutil",
        "jobserver",
        "settings",
    ],
    &["engine"],
    &["package", "target", "check"],
    &["stage", "ctx_fs", "sources"],
    &["api"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

#[test]
fn modules_import_only_downwards() {
    let mut wrong = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (file, code) in sources() {
        let module = file
            .strip_prefix("src")
            .unwrap()
            .components()
            .next()
            .unwrap()
            .as_str()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            wrong.push(format!(
                "{file}: module `{module}` is in no layer of this test"
            ));
            continue;
        };
        seen.insert(module.clone(), own);
        for (n, line) in code.lines().enumerate() {
            for (i, _) in line.match_indices("crate::") {
                let used: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if let Some(l) = layer_of(&used)
                    && l > own
                {
                    wrong.push(format!(
                        "{file}:{}: `{module}` uses `{used}`, a layer above it",
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(seen.contains_key("engine") && seen.contains_key("api"));
}

#[test]
fn the_engine_knows_nothing_of_the_primitives() {
    let text = std::fs::read_to_string(repo().join("src/engine.rs")).unwrap();
    for word in ["crate::api", "crate::stage", "Ctx"] {
        assert!(!text.contains(word), "src/engine.rs mentions `{word}`");
    }
}

#[test]
fn every_setting_a_script_reads_is_documented() {
    let project = rhbuild::project::Project::find(&repo()).unwrap();
    let engine = rhbuild::engine::ScriptEngine::new(project).unwrap();
    let reads = rhbuild::check::settings_read(&engine);
    assert!(reads.contains_key("TRIPLE") && reads.contains_key("SYSIMAGE_TYPE"));
    let docs = std::fs::read_to_string(repo().join("docs/targets.md")).unwrap();
    let missing: Vec<String> = reads
        .iter()
        .filter(|(name, _)| !docs.contains(&format!("`{name}`")))
        .map(|(name, r)| format!("{name} (read at {}:{})", r[0].file, r[0].line))
        .collect();
    assert!(
        missing.is_empty(),
        "settings the scripts read but docs/targets.md does not list:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_primitive_is_documented() {
    let docs = std::fs::read_to_string(repo().join("docs/primitives.md")).unwrap();
    let mut engine = rhai::Engine::new();
    rhbuild::api::register(&mut engine);
    let mut missing = Vec::new();
    for sig in engine.gen_fn_signatures(false) {
        let name = sig
            .trim_start_matches("pub ")
            .trim_start_matches("fn ")
            .split('(')
            .next()
            .unwrap()
            .trim()
            .to_string();
        let name = name.strip_prefix("get$").unwrap_or(&name).to_string();
        if name.starts_with("set$") || name == "to_string" {
            continue;
        }
        let known = docs.contains(&format!(".{name}"))
            || docs.contains(&format!("`{name}("))
            || docs.contains(&format!("{name}("))
            || docs.contains(&format!("`{name}`"));
        if !known {
            missing.push(name);
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "primitives docs/primitives.md does not mention: {missing:?}"
    );
}

#[test]
fn src_has_no_architecture_defaults() {
    for (file, code) in sources() {
        assert!(
            !code.contains("default_value = \"sh4\""),
            "{file} defaults an architecture"
        );
    }
    let _ = Utf8Path::new("");
}
