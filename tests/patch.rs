//! Patching a source tree with the host's GNU `patch`.

use camino::{Utf8Path, Utf8PathBuf};
use rhbuild::patch::{FailedHunk, PatchError, apply_patches, list_patches};
use std::fs;
use std::process::Command;

const ORIGINAL: &str = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n";

const GOOD: &str = "\
--- a/src/numbers.txt
+++ b/src/numbers.txt
@@ -1,5 +1,5 @@
 one
-two
+TWO
 three
 four
 five
";

/// Hunk 1 would apply; hunk 2 expects lines the file does not have.
const BAD: &str = "\
--- a/src/numbers.txt
+++ b/src/numbers.txt
@@ -6,5 +6,5 @@
 six
 seven
-eight
+EIGHT
 nine
 ten
@@ -20,3 +20,3 @@
 twenty
-twenty-one
+XXI
 twenty-two
";

/// Builds on GOOD: expects `TWO`.
const AFTER_GOOD: &str = "\
--- a/src/numbers.txt
+++ b/src/numbers.txt
@@ -1,3 +1,3 @@
 one
-TWO
+2
 three
";

/// Builds on AFTER_GOOD: expects `2`, and adds a file.
const USER: &str = "\
--- a/src/numbers.txt
+++ b/src/numbers.txt
@@ -1,3 +1,3 @@
 one
-2
+deux
 three
--- /dev/null
+++ b/NEWS
@@ -0,0 +1 @@
+patched by the user
";

fn need_patch() {
    let found = Command::new("patch")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "GNU `patch` is needed: apt-get install patch");
}

struct Tree {
    _tmp: tempfile::TempDir,
    dir: Utf8PathBuf,
    src: Utf8PathBuf,
    log: Utf8PathBuf,
}

fn tree() -> Tree {
    need_patch();
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(tmp.path().to_owned()).unwrap();
    let src = dir.join("pkg-1.0");
    fs::create_dir_all(src.join("src")).unwrap();
    fs::write(src.join("src/numbers.txt"), ORIGINAL).unwrap();
    let log = dir.join("logs/pkg.log");
    Tree {
        _tmp: tmp,
        dir,
        src,
        log,
    }
}

fn write(dir: &Utf8Path, name: &str, text: &str) -> Utf8PathBuf {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

fn numbers(t: &Tree) -> String {
    fs::read_to_string(t.src.join("src/numbers.txt")).unwrap()
}

/// Every file name under `dir`, relative, sorted.
fn files(dir: &Utf8Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = Utf8PathBuf::from_path_buf(entry.unwrap().path()).unwrap();
        if path.is_dir() {
            for sub in files(&path) {
                out.push(format!("{}/{sub}", path.file_name().unwrap()));
            }
        } else {
            out.push(path.file_name().unwrap().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn missing_patch_dir_lists_nothing() {
    let t = tree();
    assert!(list_patches(&t.dir.join("nowhere")).unwrap().is_empty());
}

#[test]
fn patches_are_listed_in_name_order() {
    let t = tree();
    let dir = t.dir.join("patches");
    write(&dir, "0002-second.patch", GOOD);
    write(&dir, "0001-first.patch", GOOD);
    write(&dir, "0010-tenth.patch", GOOD);
    write(&dir, "README", "not a patch");
    write(&dir, "old.patch.orig", GOOD);
    write(&dir, ".#0003-lock.patch", GOOD);
    fs::create_dir(dir.join("dir.patch")).unwrap();
    let names: Vec<_> = list_patches(&dir)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["0001-first.patch", "0002-second.patch", "0010-tenth.patch"]
    );
}

#[test]
fn good_patch_applies_and_is_logged() {
    let t = tree();
    let patch = write(&t.dir.join("patches"), "0001-two.patch", GOOD);
    apply_patches(&t.src, std::slice::from_ref(&patch), &t.log).unwrap();
    assert_eq!(numbers(&t), ORIGINAL.replace("two", "TWO"));
    let log = fs::read_to_string(&t.log).unwrap();
    assert!(log.contains(patch.as_str()), "{log}");
    assert!(log.contains("patching file src/numbers.txt"), "{log}");
    assert_eq!(files(&t.src), ["src/numbers.txt"], "no .orig or .rej left");
}

#[test]
fn failing_patch_changes_nothing_and_names_the_hunk() {
    let t = tree();
    let patch = write(&t.dir.join("patches"), "0002-bad.patch", BAD);
    let err = apply_patches(&t.src, std::slice::from_ref(&patch), &t.log).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&format!("patch `{patch}`")), "{msg}");
    assert!(
        msg.contains("hunk #2 of `src/numbers.txt` (at line 20)"),
        "{msg}"
    );
    assert!(
        msg.contains("Hunk #2 FAILED at 20"),
        "patch's output: {msg}"
    );
    let PatchError::DoesNotApply {
        failed,
        dry_run_passed,
        ..
    } = err
    else {
        panic!("unexpected error: {msg}");
    };
    assert_eq!(
        failed,
        [FailedHunk {
            file: "src/numbers.txt".into(),
            hunk: 2,
            line: 20
        }]
    );
    assert!(!dry_run_passed);
    assert_eq!(numbers(&t), ORIGINAL, "hunk 1 must not have been applied");
    assert_eq!(files(&t.src), ["src/numbers.txt"], "no .orig or .rej left");
}

#[test]
fn patching_stops_at_the_first_failure() {
    let t = tree();
    let dir = t.dir.join("patches");
    let good = write(&dir, "0001-good.patch", GOOD);
    let bad = write(&dir, "0002-bad.patch", BAD);
    let after = write(&dir, "0003-after.patch", AFTER_GOOD);
    let err = apply_patches(&t.src, &[good, bad.clone(), after], &t.log).unwrap_err();
    assert!(err.to_string().contains(bad.as_str()), "{err}");
    assert_eq!(numbers(&t), ORIGINAL.replace("two", "TWO"));
}

#[test]
fn already_applied_patch_fails() {
    let t = tree();
    let patch = write(&t.dir.join("patches"), "0001-two.patch", GOOD);
    apply_patches(&t.src, std::slice::from_ref(&patch), &t.log).unwrap();
    let err = apply_patches(&t.src, &[patch], &t.log).unwrap_err();
    assert!(
        err.to_string().contains("hunk #1 of `src/numbers.txt`"),
        "{err}"
    );
    assert_eq!(numbers(&t), ORIGINAL.replace("two", "TWO"));
}

#[test]
fn package_patches_then_user_patches_apply_in_order() {
    let t = tree();
    let package = t.dir.join("packages/pkg");
    let user = t.dir.join("user-patches/pkg");
    // Names chosen so that a merged sort would put the user's first.
    write(&package, "0002-after-good.patch", AFTER_GOOD);
    write(&package, "0001-good.patch", GOOD);
    write(&user, "0000-user.patch", USER);
    let mut patches = list_patches(&package).unwrap();
    patches.extend(list_patches(&user).unwrap());
    apply_patches(&t.src, &patches, &t.log).unwrap();
    assert_eq!(numbers(&t), ORIGINAL.replace("two", "deux"));
    assert_eq!(
        fs::read_to_string(t.src.join("NEWS")).unwrap(),
        "patched by the user\n"
    );
    let log = fs::read_to_string(&t.log).unwrap();
    let at = |name: &str| log.find(name).unwrap_or_else(|| panic!("{name} in {log}"));
    assert!(at("0001-good.patch") < at("0002-after-good.patch"));
    assert!(at("0002-after-good.patch") < at("0000-user.patch"));
}

#[test]
fn missing_source_is_reported() {
    let t = tree();
    let patch = write(&t.dir.join("patches"), "0001-two.patch", GOOD);
    let err = apply_patches(&t.dir.join("absent"), &[patch], &t.log).unwrap_err();
    assert!(matches!(err, PatchError::NoSource { .. }), "{err}");
}
