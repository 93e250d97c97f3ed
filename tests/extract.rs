//! Extraction of real tarballs, built here with the tar crate and the
//! compression encoders (zstd with the host `zstd` tool), including hostile
//! ones crafted header by header.

use camino::{Utf8Path, Utf8PathBuf};
use rhbuild::extract::{Compression, ExtractError, detect, extract};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use tar::{EntryType, Header};

const MTIME: u64 = 1_600_000_000;

/// A tarball under construction.
struct Tarball {
    builder: tar::Builder<Vec<u8>>,
}

impl Tarball {
    fn new() -> Self {
        Tarball {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// Append an entry whose name and link name are written verbatim into
    /// the header, so that hostile names get through.
    fn raw(
        &mut self,
        kind: EntryType,
        name: &str,
        link: &str,
        mode: u32,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(MTIME);
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }

    fn file(&mut self, name: &str, mode: u32, data: &str) -> &mut Self {
        self.raw(EntryType::Regular, name, "", mode, data.as_bytes())
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(EntryType::Directory, name, "", 0o755, b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Symlink, name, target, 0o777, b"")
    }

    fn hard_link(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Link, name, target, 0o644, b"")
    }

    fn bytes(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        builder.into_inner().unwrap()
    }

    /// Write the tarball to `path`, compressed as asked.
    fn write(&mut self, path: &Utf8Path, compression: Compression) -> Utf8PathBuf {
        let tar = self.bytes();
        let data = match compression {
            Compression::None => tar,
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&tar).unwrap();
                e.finish().unwrap()
            }
            Compression::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(&tar).unwrap();
                e.finish().unwrap()
            }
            Compression::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(&tar).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => {
                let plain = path.with_extension("plain");
                fs::write(&plain, &tar).unwrap();
                let status = Command::new("zstd")
                    .args(["-q", "-f", "-o"])
                    .arg(path)
                    .arg(&plain)
                    .status()
                    .unwrap_or_else(|e| {
                        panic!("`zstd` is needed for this test ({e}): apt-get install zstd")
                    });
                assert!(status.success());
                fs::remove_file(&plain).unwrap();
                return path.to_owned();
            }
        };
        fs::write(path, data).unwrap();
        path.to_owned()
    }
}

fn tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    (dir, path)
}

/// The names in `dir`, sorted.
fn listing(dir: &Utf8Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn package() -> Tarball {
    let mut t = Tarball::new();
    t.dir("pkg-1.0/")
        .file("pkg-1.0/README", 0o644, "read me\n")
        .file("pkg-1.0/bin/run.sh", 0o755, "#!/bin/sh\necho hi\n")
        .dir("pkg-1.0/sub/")
        .file("pkg-1.0/sub/deep/data.txt", 0o600, "data\n")
        .symlink("pkg-1.0/link", "README")
        .symlink("pkg-1.0/sub/up", "../bin/run.sh")
        .hard_link("pkg-1.0/README.hard", "pkg-1.0/README");
    t
}

fn check_package(dest: &Utf8Path) {
    assert_eq!(
        fs::read_to_string(dest.join("README")).unwrap(),
        "read me\n"
    );
    let run = fs::metadata(dest.join("bin/run.sh")).unwrap();
    assert_eq!(
        run.permissions().mode() & 0o777,
        0o755,
        "executable bit kept"
    );
    let data = fs::metadata(dest.join("sub/deep/data.txt")).unwrap();
    assert_eq!(data.permissions().mode() & 0o777, 0o600);
    assert_eq!(data.mtime() as u64, MTIME, "mtime kept");
    assert_eq!(
        fs::read_link(dest.join("link")).unwrap().to_str(),
        Some("README")
    );
    assert_eq!(
        fs::read_link(dest.join("sub/up")).unwrap().to_str(),
        Some("../bin/run.sh")
    );
    assert_eq!(
        fs::read_to_string(dest.join("sub/up")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    let hard = fs::metadata(dest.join("README.hard")).unwrap();
    assert_eq!(hard.ino(), fs::metadata(dest.join("README")).unwrap().ino());
    assert_eq!(
        fs::metadata(dest.join("sub")).unwrap().mtime() as u64,
        MTIME
    );
}

fn extracts_with(compression: Compression, name: &str) {
    let (_tmp, dir) = tempdir();
    let archive = package().write(&dir.join(name), compression);
    assert_eq!(detect(&archive).unwrap(), compression);
    let dest = dir.join("out/src");
    extract(&archive, &dest).unwrap();
    check_package(&dest);
    assert_eq!(listing(&dir.join("out")), ["src"], "no staging left behind");
}

#[test]
fn extracts_plain_tar() {
    extracts_with(Compression::None, "pkg.tar");
}

#[test]
fn extracts_gzip() {
    extracts_with(Compression::Gzip, "pkg.tar.gz");
}

#[test]
fn extracts_bzip2() {
    extracts_with(Compression::Bzip2, "pkg.tar.bz2");
}

#[test]
fn extracts_xz() {
    extracts_with(Compression::Xz, "pkg.tar.xz");
}

#[test]
fn extracts_zstd() {
    extracts_with(Compression::Zstd, "pkg.tar.zst");
}

#[test]
fn compression_is_told_by_magic_not_name() {
    extracts_with(Compression::Xz, "pkg.tar.gz");
    extracts_with(Compression::Gzip, "pkg.tgz.bz2");
}

#[test]
fn tarball_from_system_tar_extracts_like_tar() {
    let (_tmp, dir) = tempdir();
    let tree = dir.join("busybox-1.35.0");
    fs::create_dir_all(tree.join("scripts/kconfig")).unwrap();
    fs::write(tree.join("Makefile"), "all:\n").unwrap();
    fs::write(tree.join("scripts/kconfig/conf.c"), "int main(){}\n").unwrap();
    fs::write(tree.join("scripts/gen.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(
        tree.join("scripts/gen.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("kconfig/conf.c", tree.join("scripts/conf.c")).unwrap();
    let long = "x".repeat(150);
    fs::write(tree.join(&long), "long name\n").unwrap();
    let archive = dir.join("busybox-1.35.0.tar.xz");
    let status = Command::new("tar")
        .args([
            "-cJf",
            archive.as_str(),
            "-C",
            dir.as_str(),
            "busybox-1.35.0",
        ])
        .env("XZ_OPT", "-1")
        .status()
        .expect("`tar` and `xz` are needed: apt-get install tar xz-utils");
    assert!(status.success());
    let dest = dir.join("src");
    extract(&archive, &dest).unwrap();
    assert_eq!(fs::read_to_string(dest.join("Makefile")).unwrap(), "all:\n");
    assert_eq!(fs::read_to_string(dest.join(&long)).unwrap(), "long name\n");
    assert_eq!(
        fs::read_to_string(dest.join("scripts/conf.c")).unwrap(),
        "int main(){}\n"
    );
    let mode = fs::metadata(dest.join("scripts/gen.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[test]
fn several_top_level_entries_are_not_stripped() {
    let (_tmp, dir) = tempdir();
    let archive = Tarball::new()
        .file("a/one", 0o644, "1")
        .file("b", 0o644, "2")
        .write(&dir.join("t.tar"), Compression::None);
    let dest = dir.join("dest");
    extract(&archive, &dest).unwrap();
    assert_eq!(listing(&dest), ["a", "b"]);
    assert_eq!(fs::read_to_string(dest.join("a/one")).unwrap(), "1");
}

#[test]
fn single_top_level_file_is_not_stripped() {
    let (_tmp, dir) = tempdir();
    let archive = Tarball::new()
        .file("only", 0o644, "x")
        .write(&dir.join("t.tar.gz"), Compression::Gzip);
    let dest = dir.join("dest");
    extract(&archive, &dest).unwrap();
    assert_eq!(listing(&dest), ["only"]);
}

#[test]
fn dot_slash_prefix_and_root_entry_are_stripped() {
    let (_tmp, dir) = tempdir();
    let archive = Tarball::new()
        .dir("./")
        .dir("./pkg/")
        .file("./pkg/f", 0o644, "f")
        .write(&dir.join("t.tar"), Compression::None);
    let dest = dir.join("dest");
    extract(&archive, &dest).unwrap();
    assert_eq!(listing(&dest), ["f"]);
}

#[test]
fn read_only_directories_are_kept_read_only() {
    let (_tmp, dir) = tempdir();
    let archive = Tarball::new()
        .raw(EntryType::Directory, "p/ro/", "", 0o555, b"")
        .file("p/ro/f", 0o444, "f")
        .write(&dir.join("t.tar"), Compression::None);
    let dest = dir.join("dest");
    extract(&archive, &dest).unwrap();
    let ro = fs::metadata(dest.join("ro")).unwrap().permissions().mode();
    assert_eq!(ro & 0o777, 0o555);
    assert_eq!(fs::read_to_string(dest.join("ro/f")).unwrap(), "f");
    fs::set_permissions(dest.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn existing_destination_is_refused_and_kept() {
    let (_tmp, dir) = tempdir();
    let archive = package().write(&dir.join("p.tar"), Compression::None);
    let dest = dir.join("dest");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("mine"), "keep").unwrap();
    let err = extract(&archive, &dest).unwrap_err();
    assert!(matches!(err, ExtractError::DestExists { .. }), "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(listing(&dest), ["mine"]);
    assert_eq!(listing(&dir), ["dest", "p.tar"]);
}

#[test]
fn truncated_archive_fails_and_leaves_nothing() {
    let (_tmp, dir) = tempdir();
    let archive = package().write(&dir.join("p.tar.xz"), Compression::Xz);
    let data = fs::read(&archive).unwrap();
    fs::write(&archive, &data[..data.len() / 2]).unwrap();
    let dest = dir.join("dest");
    let err = extract(&archive, &dest).unwrap_err();
    assert!(matches!(err, ExtractError::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("p.tar.xz") && msg.contains("xz"), "{msg}");
    assert_eq!(listing(&dir), ["p.tar.xz"]);
}

/// Extract a hostile archive: it must fail naming `entry` and the archive,
/// leave no `dest` and no staging directory, and write none of `outside`.
fn refused(t: &mut Tarball, dir: &Utf8Path, entry: &str, outside: &[&Utf8Path]) -> String {
    let archive = t.write(&dir.join("evil.tar.gz"), Compression::Gzip);
    let before = listing(dir);
    let dest = dir.join("dest");
    let err = extract(&archive, &dest).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ExtractError::Unsafe { .. }), "{msg}");
    assert_eq!(err.entry(), Some(entry), "{msg}");
    assert!(msg.contains(&format!("entry `{entry}`")), "{msg}");
    assert!(msg.contains(archive.as_str()), "{msg}");
    assert!(!dest.exists(), "{dest} must not exist");
    assert_eq!(listing(dir), before, "nothing left next to the archive");
    for path in outside {
        assert!(
            fs::symlink_metadata(path).is_err(),
            "{path} was written outside the destination"
        );
    }
    msg
}

#[test]
fn absolute_path_is_refused() {
    let (_tmp, dir) = tempdir();
    let outside = dir.join("abs-target");
    let name = outside.as_str().to_owned();
    let msg = refused(
        Tarball::new()
            .file("ok", 0o644, "fine")
            .file(&name, 0o644, "evil"),
        &dir,
        &name,
        &[&outside],
    );
    assert!(msg.contains("absolute path"), "{msg}");
}

#[test]
fn dot_dot_is_refused() {
    let (_tmp, dir) = tempdir();
    let msg = refused(
        Tarball::new()
            .file("pkg/ok", 0o644, "x")
            .file("pkg/../../escaped", 0o644, "evil"),
        &dir,
        "pkg/../../escaped",
        &[&dir.join("escaped"), &dir.parent().unwrap().join("escaped")],
    );
    assert!(msg.contains("`..`"), "{msg}");
}

#[test]
fn absolute_symlink_is_refused_and_nothing_is_written_through_it() {
    let (_tmp, dir) = tempdir();
    let target = dir.join("outside-dir");
    fs::create_dir(&target).unwrap();
    let msg = refused(
        Tarball::new()
            .symlink("a", target.as_str())
            .file("a/evil", 0o644, "evil"),
        &dir,
        "a",
        &[&target.join("evil")],
    );
    assert!(msg.contains("absolute path"), "{msg}");
}

#[test]
fn relative_symlink_climbing_out_is_refused() {
    let (_tmp, dir) = tempdir();
    let msg = refused(
        Tarball::new()
            .dir("pkg/")
            .symlink("pkg/sub/up", "../../../outside")
            .file("pkg/sub/up/evil", 0o644, "evil"),
        &dir,
        "pkg/sub/up",
        &[&dir.join("outside"), &dir.join("outside/evil")],
    );
    assert!(msg.contains("resolves outside"), "{msg}");
}

#[test]
fn symlink_chain_climbing_out_is_refused() {
    let (_tmp, dir) = tempdir();
    // `d/l` alone points at the top; `x` through it climbs one level more.
    refused(
        Tarball::new()
            .dir("d/")
            .symlink("x", "d/l/../escaped")
            .symlink("d/l", ".."),
        &dir,
        "x",
        &[&dir.join("escaped")],
    );
}

#[test]
fn symlink_climbing_out_of_stripped_top_is_refused() {
    let (_tmp, dir) = tempdir();
    // Inside the archive this stays in `pkg`, but `pkg` becomes `dest`.
    refused(
        Tarball::new()
            .file("pkg/f", 0o644, "f")
            .symlink("pkg/l", "../pkg/f"),
        &dir,
        "pkg/l",
        &[],
    );
}

#[test]
fn writing_through_an_inner_symlink_is_refused() {
    let (_tmp, dir) = tempdir();
    let msg = refused(
        Tarball::new()
            .dir("pkg/real/")
            .symlink("pkg/a", "real")
            .file("pkg/a/evil", 0o644, "evil"),
        &dir,
        "pkg/a/evil",
        &[],
    );
    assert!(msg.contains("symbolic link"), "{msg}");
}

#[test]
fn hard_link_climbing_out_is_refused() {
    let (_tmp, dir) = tempdir();
    let secret = dir.join("secret");
    fs::write(&secret, "secret").unwrap();
    let msg = refused(
        Tarball::new()
            .file("pkg/ok", 0o644, "x")
            .hard_link("pkg/stolen", "../secret"),
        &dir,
        "pkg/stolen",
        &[],
    );
    assert!(msg.contains("hard link"), "{msg}");
    assert_eq!(fs::metadata(&secret).unwrap().nlink(), 1);
}

#[test]
fn absolute_hard_link_is_refused() {
    let (_tmp, dir) = tempdir();
    let secret = dir.join("secret");
    fs::write(&secret, "secret").unwrap();
    refused(
        Tarball::new().hard_link("stolen", secret.as_str()),
        &dir,
        "stolen",
        &[],
    );
    assert_eq!(fs::metadata(&secret).unwrap().nlink(), 1);
}

#[test]
fn device_nodes_and_fifos_are_refused() {
    for (kind, word) in [
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
        (EntryType::Fifo, "fifo"),
    ] {
        let (_tmp, dir) = tempdir();
        let msg = refused(
            Tarball::new()
                .file("pkg/ok", 0o644, "x")
                .raw(kind, "pkg/node", "", 0o644, b""),
            &dir,
            "pkg/node",
            &[],
        );
        assert!(msg.contains(word), "{msg}");
    }
}

#[test]
fn pax_global_header_is_skipped_and_later_entries_replace_earlier_ones() {
    let (_tmp, dir) = tempdir();
    let comment = b"52 comment=0123456789abcdef0123456789abcdef01234567\n";
    let archive = Tarball::new()
        .raw(
            EntryType::XGlobalHeader,
            "pax_global_header",
            "",
            0o666,
            comment,
        )
        .file("pkg/f", 0o644, "old")
        .file("pkg/f", 0o755, "new")
        .symlink("pkg/l", "f")
        .file("pkg/l", 0o644, "file wins")
        .write(&dir.join("t.tar"), Compression::None);
    let dest = dir.join("dest");
    extract(&archive, &dest).unwrap();
    assert_eq!(listing(&dest), ["f", "l"]);
    assert_eq!(fs::read_to_string(dest.join("f")).unwrap(), "new");
    let mode = fs::metadata(dest.join("f")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert!(fs::symlink_metadata(dest.join("l")).unwrap().is_file());
}

#[test]
fn hard_link_to_a_symlink_is_the_same_symlink() {
    let (_tmp, dir) = tempdir();
    let archive = Tarball::new()
        .file("pkg/sub/f", 0o644, "f")
        .symlink("pkg/sub/l", "f")
        .hard_link("pkg/sub/l2", "pkg/sub/l")
        .write(&dir.join("t.tar"), Compression::None);
    let dest = dir.join("nested/deeper/dest");
    extract(&archive, &dest).unwrap();
    assert_eq!(
        fs::read_link(dest.join("sub/l2")).unwrap().to_str(),
        Some("f")
    );
    assert_eq!(fs::read_to_string(dest.join("sub/l2")).unwrap(), "f");
}
