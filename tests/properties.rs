//! Property tests, bounded in cases so that they run in seconds: random
//! archives thrown at the extractor (nothing ever lands outside the
//! destination, and no link in what it made leads out), random lines at the
//! kconfig parser (never a panic; what it renders parses back the same),
//! and random trees through the cpio writer (read back, they are the tree).

use crate::util::walk;
use camino::{Utf8Path, Utf8PathBuf};
use proptest::prelude::*;
use std::io::{Read, Write};
use tar::{EntryType, Header};

// ---------------------------------------------------------------------------
// The extractor

#[derive(Clone, Debug)]
enum Kind {
    File,
    Dir,
    Symlink(String),
    HardLink(String),
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    kind: Kind,
}

/// A path of 1 to 4 components from a small alphabet that includes `..`,
/// `.` and empty components, sometimes absolute: the shapes that break
/// extractors.
fn path() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.1),
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "c", "..", ".", ""]),
            1..5,
        ),
    )
        .prop_map(|(abs, parts)| {
            let p = parts.join("/");
            if abs { format!("/{p}") } else { p }
        })
}

fn entry() -> impl Strategy<Value = Entry> {
    let kind = prop_oneof![
        3 => Just(Kind::File),
        2 => Just(Kind::Dir),
        4 => path().prop_map(Kind::Symlink),
        1 => path().prop_map(Kind::HardLink),
    ];
    (path(), kind).prop_map(|(name, kind)| Entry { name, kind })
}

fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = Header::new_gnu();
        let name = e.name.as_bytes();
        let n = name.len().min(99);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        let (kind, link, data): (EntryType, &str, &[u8]) = match &e.kind {
            Kind::File => (EntryType::Regular, "", b"data"),
            Kind::Dir => (EntryType::Directory, "", b""),
            Kind::Symlink(t) => (EntryType::Symlink, t, b""),
            Kind::HardLink(t) => (EntryType::Link, t, b""),
        };
        let l = link.len().min(99);
        h.as_old_mut().linkname[..l].copy_from_slice(&link.as_bytes()[..l]);
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if matches!(e.kind, Kind::Dir) {
            0o755
        } else {
            0o644
        });
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Where `path` (inside `tree`) leads when every link on the way is
/// followed as the kernel would, continuing lexically past the first
/// missing component. `None` when a loop is found.
fn resolve_on_disk(path: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::path::{Component, PathBuf};
    let mut out = PathBuf::from("/");
    let mut todo: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&c);
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                let target = std::fs::read_link(&next).ok()?;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                for tc in target.components().rev() {
                    match tc {
                        Component::Normal(s) => todo.push(s.to_os_string()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => out = next,
        }
    }
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn nothing_an_archive_holds_lands_or_leads_outside(entries in prop::collection::vec(entry(), 1..12)) {
        let t = tempfile::tempdir().unwrap();
        let base = Utf8PathBuf::from_path_buf(t.path().canonicalize().unwrap()).unwrap();
        std::fs::create_dir_all(base.join("sentinel")).unwrap();
        std::fs::write(base.join("sentinel/file"), "s").unwrap();
        let tarball = base.join("a.tar");
        std::fs::write(&tarball, archive(&entries)).unwrap();
        let out = base.join("out");
        let result = rhbuild::extract::extract(&tarball, &out.join("tree"));
        // Nothing appeared beside the destination.
        let mut all = Vec::new();
        walk(&base, &mut all);
        for p in &all {
            prop_assert!(
                p.starts_with(&out) || p == &base.join("sentinel") || p == &base.join("sentinel/file") || p == &tarball,
                "{p} appeared outside the destination ({entries:?})"
            );
        }
        match result {
            Err(_) => {
                let mut left = Vec::new();
                walk(&out, &mut left);
                prop_assert!(left.is_empty(), "a failed extraction left {left:?}");
            }
            Ok(()) => {
                let tree = out.join("tree");
                let mut made = Vec::new();
                walk(&tree, &mut made);
                for p in made {
                    if p.is_symlink() {
                        let to = resolve_on_disk(p.as_std_path());
                        if let Some(to) = to {
                            prop_assert!(
                                to.starts_with(tree.as_std_path()),
                                "{p} leads to {} ({entries:?})", to.display()
                            );
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The kconfig parser

fn config_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        (
            "[A-Z0-9_]{1,12}",
            prop::sample::select(vec![
                "y",
                "m",
                "n",
                "12",
                "0x1f",
                "\"s p\"",
                "yes",
                "",
                "\"unterminated"
            ])
        )
            .prop_map(|(s, v)| format!("CONFIG_{s}={v}")),
        "[A-Z0-9_]{1,12}".prop_map(|s| format!("# CONFIG_{s} is not set")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, .. ProptestConfig::default() })]

    #[test]
    fn the_kconfig_parser_never_panics_and_round_trips(lines in prop::collection::vec(config_line(), 0..20)) {
        let text = lines.join("\n");
        let file = Utf8Path::new("x.config");
        let parsed = rhbuild::kconfig::Miniconfig::parse_str(&text, file);
        let problems = rhbuild::kconfig::malformed_lines(&text);
        prop_assert_eq!(parsed.is_err(), !problems.is_empty());
        if let Ok(mini) = parsed {
            let again = rhbuild::kconfig::Miniconfig::parse_str(&mini.render(), file).unwrap();
            prop_assert_eq!(again.render(), mini.render());
        }
    }
}

// ---------------------------------------------------------------------------
// The cpio writer

/// A tree description: relative path -> contents (`None`: a directory).
fn tree() -> impl Strategy<Value = Vec<(String, Option<Vec<u8>>)>> {
    prop::collection::vec(
        (
            prop::collection::vec("[a-z]{1,3}", 1..4).prop_map(|p| p.join("/")),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..300)),
        ),
        1..15,
    )
}

/// The entries of a gzipped newc archive: name -> (mode, data).
fn read_newc(path: &Utf8Path) -> Vec<(String, u32, Vec<u8>)> {
    let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    let mut all = Vec::new();
    gz.read_to_end(&mut all).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    let hex = |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    loop {
        let h = &all[pos..pos + 110];
        assert_eq!(&h[..6], b"070701");
        let mode = hex(&h[14..22]);
        let size = hex(&h[54..62]) as usize;
        let namesize = hex(&h[94..102]) as usize;
        let name = String::from_utf8(all[pos + 110..pos + 110 + namesize - 1].to_vec()).unwrap();
        let mut p = pos + 110 + namesize;
        p = (p + 3) & !3;
        let data = all[p..p + size].to_vec();
        p += size;
        pos = (p + 3) & !3;
        if name == "TRAILER!!!" {
            break;
        }
        out.push((name, mode, data));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, .. ProptestConfig::default() })]

    #[test]
    fn the_cpio_writer_stores_the_tree_as_it_is(spec in tree()) {
        let t = tempfile::tempdir().unwrap();
        let base = Utf8Path::from_path(t.path()).unwrap();
        let root = base.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let mut want = std::collections::BTreeMap::new();
        for (rel, data) in &spec {
            let p = root.join(rel);
            // A later entry may sit under a file an earlier one made: skip it.
            if p.ancestors().skip(1).any(|a| a.is_file()) || p.exists() {
                continue;
            }
            match data {
                None => { std::fs::create_dir_all(&p).unwrap(); }
                Some(d) => {
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::File::create(&p).unwrap().write_all(d).unwrap();
                }
            }
        }
        let mut all = Vec::new();
        walk(&root, &mut all);
        for p in all {
            let rel = p.strip_prefix(&root).unwrap().to_string();
            let data = if p.is_dir() { None } else { Some(std::fs::read(&p).unwrap()) };
            want.insert(rel, data);
        }
        let out = base.join("initramfs.cpio.gz");
        rhbuild::image::write_initramfs(&root, &out, Some(1_000_000)).unwrap();
        let got: std::collections::BTreeMap<String, Option<Vec<u8>>> = read_newc(&out)
            .into_iter()
            .map(|(name, mode, data)| {
                let is_dir = mode & 0o170000 == 0o040000;
                (name, if is_dir { None } else { Some(data) })
            })
            .collect();
        prop_assert_eq!(got, want);
    }
}
