//! Image writers, checked with the real tools that read the images: cpio
//! (apt-get install cpio), unsquashfs (squashfs-tools), debugfs and e2fsck
//! (e2fsprogs). The trees are owned by uid 1000 before the images are
//! written, and every image must still say root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};
use rhbuild::image::{
    check_root_filesystem, create_blank_ext2, write_ext2, write_initramfs, write_squashfs,
};

use crate::util::require_tool;

const MTIME: u64 = 1_700_000_000;

fn utf8(p: &std::path::Path) -> &Utf8Path {
    Utf8Path::from_path(p).unwrap()
}

fn set_mode(path: &Utf8Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A small root filesystem, every entry then given to uid/gid 1000.
fn small_root(dir: &Utf8Path) -> Utf8PathBuf {
    let root = dir.join("root");
    for d in ["bin", "sbin", "etc", "dev", "usr/bin", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    set_mode(&root, 0o700);
    std::fs::write(root.join("init"), "#!/bin/sh\nexec /bin/sh\n").unwrap();
    set_mode(&root.join("init"), 0o755);
    // Not a multiple of 4, spanning several blocks: padding and data both show.
    let busybox: Vec<u8> = (0..10_001u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join("bin/busybox"), &busybox).unwrap();
    std::fs::hard_link(root.join("bin/busybox"), root.join("bin/busybox.hard")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("../bin/busybox", root.join("sbin/init")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/shadow"), "root::1:0:99999:7:::\n").unwrap();
    set_mode(&root.join("etc/shadow"), 0o600);
    std::fs::write(root.join("etc/a \"quoted\" name"), "x").unwrap();
    set_mode(&root.join("tmp"), 0o1777);
    let fifo = std::ffi::CString::new(root.join("dev/initctl").as_str()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    chown_tree(&root, 1000);
    // After the chown, which clears setuid bits.
    set_mode(&root.join("bin/busybox"), 0o4755);
    root
}

fn chown_tree(path: &Utf8Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(utf8(&e.unwrap().path()), id);
        }
    }
}

/// (path, mode as `ls` shows it, size) of every entry but the root.
fn expected_entries() -> Vec<(&'static str, &'static str)> {
    vec![
        ("bin", "drwxr-xr-x"),
        ("bin/busybox", "-rwsr-xr-x"),
        ("bin/busybox.hard", "-rwsr-xr-x"),
        ("bin/sh", "lrwxrwxrwx"),
        ("dev", "drwxr-xr-x"),
        ("dev/initctl", "prw-------"),
        ("etc", "drwxr-xr-x"),
        ("etc/a \"quoted\" name", "-rw-r--r--"),
        ("etc/passwd", "-rw-r--r--"),
        ("etc/shadow", "-rw-------"),
        ("init", "-rwxr-xr-x"),
        ("sbin", "drwxr-xr-x"),
        ("sbin/init", "lrwxrwxrwx"),
        ("tmp", "drwxrwxrwt"),
        ("usr", "drwxr-xr-x"),
        ("usr/bin", "drwxr-xr-x"),
    ]
}

fn sh(script: &str, cwd: &Utf8Path) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{script}` failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn initramfs_is_a_root_owned_sorted_newc_cpio() {
    require_tool("cpio", "cpio");
    require_tool("zcat", "gzip");
    let dir = tempfile::tempdir().unwrap();
    let dir = utf8(dir.path());
    let root = small_root(dir);
    let out = dir.join("initramfs.cpio.gz");
    write_initramfs(&root, &out, Some(MTIME)).unwrap();
    assert!(!dir.join("initramfs.cpio.gz.part").exists());

    // `cpio -tv` prints: mode links uid gid size month day year name.
    let listing = sh(
        &format!("zcat '{out}' | cpio -t -v --numeric-uid-gid --quiet"),
        dir,
    );
    let mut entries = Vec::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((f[2], f[3]), ("0", "0"), "not owned by root: {line}");
        assert_eq!(f[7], "2023", "mtime not applied: {line}");
        let name = f[8..].join(" ");
        let name = name.split(" -> ").next().unwrap().to_string();
        entries.push((name, f[0].to_string()));
        if f[0].starts_with('l') {
            assert!(
                line.ends_with("bin/sh -> busybox")
                    || line.ends_with("sbin/init -> ../bin/busybox"),
                "{line}"
            );
        }
    }
    let expected: Vec<(String, String)> = expected_entries()
        .into_iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    assert_eq!(entries, expected);

    // The contents come back, hard links as full copies.
    let x = dir.join("x");
    std::fs::create_dir(&x).unwrap();
    sh(&format!("zcat '{out}' | cpio -i -d -m --quiet"), &x);
    let original = std::fs::read(root.join("bin/busybox")).unwrap();
    assert_eq!(std::fs::read(x.join("bin/busybox")).unwrap(), original);
    assert_eq!(std::fs::read(x.join("bin/busybox.hard")).unwrap(), original);
    assert_eq!(
        std::fs::read_link(x.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    assert_eq!(
        std::fs::read_to_string(x.join("init")).unwrap(),
        "#!/bin/sh\nexec /bin/sh\n"
    );
    assert_eq!(
        std::fs::metadata(x.join("init")).unwrap().mtime(),
        MTIME as i64
    );

    // Same tree, same mtime: same bytes.
    let again = dir.join("again.cpio.gz");
    write_initramfs(&root, &again, Some(MTIME)).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());

    // Without an mtime, each file keeps its own.
    let own = dir.join("own.cpio.gz");
    write_initramfs(&root, &own, None).unwrap();
    let listing = sh(
        &format!("zcat '{own}' | cpio -t -v --numeric-uid-gid --quiet"),
        dir,
    );
    assert!(!listing.contains(" 2023 "), "{listing}");
}

#[test]
fn squashfs_is_root_owned() {
    require_tool("mksquashfs", "squashfs-tools");
    require_tool("unsquashfs", "squashfs-tools");
    let dir = tempfile::tempdir().unwrap();
    let dir = utf8(dir.path());
    let root = small_root(dir);
    let out = dir.join("root.sqf");
    write_squashfs(&root, &out).unwrap();
    assert!(!dir.join("root.sqf.part").exists());

    // `unsquashfs -lln` prints: mode uid/gid size date time path [-> target].
    let listing = sh(&format!("unsquashfs -lln '{out}'"), dir);
    let mut entries = Vec::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[1], "0/0", "not owned by root: {line}");
        let path = f[5..].join(" ");
        let path = path.split(" -> ").next().unwrap();
        if let Some(rel) = path.strip_prefix("squashfs-root/") {
            entries.push((rel.to_string(), f[0].to_string()));
        }
    }
    let expected: Vec<(String, String)> = expected_entries()
        .into_iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    assert_eq!(entries, expected);
    assert!(
        listing.contains("squashfs-root/sbin/init -> ../bin/busybox"),
        "{listing}"
    );
}

/// (mode, uid, gid, size) for every entry of `dir` in the image, from
/// `debugfs ls -p`, which prints `/inode/mode/uid/gid/name/size/`.
fn debugfs_ls(image: &Utf8Path, dir: &str) -> Vec<(String, String, String, String, String)> {
    let out = sh(
        &format!("debugfs -R 'ls -p \"{dir}\"' '{image}' 2>/dev/null"),
        image.parent().unwrap(),
    );
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('/').collect();
            (
                f[5].to_string(),
                f[2].to_string(),
                f[3].to_string(),
                f[4].to_string(),
                f[6].to_string(),
            )
        })
        .filter(|e| e.0 != "." && e.0 != "..")
        .collect()
}

fn assert_ext2_root_owned(image: &Utf8Path) {
    let mut seen = Vec::new();
    let mut dirs = vec![String::from("/")];
    while let Some(d) = dirs.pop() {
        for (name, mode, uid, gid, _size) in debugfs_ls(image, &d) {
            let path = format!("{}{name}", d);
            assert_eq!(
                (uid.as_str(), gid.as_str()),
                ("0", "0"),
                "`{path}` is not root's"
            );
            if mode.starts_with("04") && name != "lost+found" {
                dirs.push(format!("{path}/"));
            }
            seen.push((path, mode));
        }
    }
    seen.sort();
    let modes: Vec<(&str, &str)> = seen.iter().map(|(p, m)| (p.as_str(), m.as_str())).collect();
    assert_eq!(
        modes,
        vec![
            ("/bin", "040755"),
            ("/bin/busybox", "104755"),
            ("/bin/busybox.hard", "104755"),
            ("/bin/sh", "120777"),
            ("/dev", "040755"),
            ("/dev/initctl", "010600"),
            ("/etc", "040755"),
            ("/etc/a \"quoted\" name", "100644"),
            ("/etc/passwd", "100644"),
            ("/etc/shadow", "100600"),
            ("/init", "100755"),
            ("/lost+found", "040700"),
            ("/sbin", "040755"),
            ("/sbin/init", "120777"),
            ("/tmp", "041777"),
            ("/usr", "040755"),
            ("/usr/bin", "040755"),
        ]
    );
}

#[test]
fn ext2_is_root_owned_and_sized() {
    require_tool("debugfs", "e2fsprogs");
    require_tool("e2fsck", "e2fsprogs");
    let dir = tempfile::tempdir().unwrap();
    let dir = utf8(dir.path());
    let root = small_root(dir);

    let out = dir.join("root.ext2");
    write_ext2(&root, &out, None).unwrap();
    assert!(!dir.join("root.ext2.part").exists());
    sh(&format!("e2fsck -f -n '{out}'"), dir);
    assert_ext2_root_owned(&out);
    let copy = dir.join("busybox.copy");
    sh(
        &format!("debugfs -R 'dump /bin/busybox {copy}' '{out}' 2>/dev/null"),
        dir,
    );
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(root.join("bin/busybox")).unwrap()
    );
    let root_dir = sh(&format!("debugfs -R 'stat /' '{out}' 2>/dev/null"), dir);
    assert!(
        root_dir.contains("User:     0   Group:     0"),
        "{root_dir}"
    );

    let sized = dir.join("sized.ext2");
    write_ext2(&root, &sized, Some(16)).unwrap();
    assert_eq!(std::fs::metadata(&sized).unwrap().len(), 16 * 1024 * 1024);
    sh(&format!("e2fsck -f -n '{sized}'"), dir);
    assert_ext2_root_owned(&sized);

    // Too small for the content: mke2fs says so, and nothing is left behind.
    std::fs::write(root.join("big"), vec![1u8; 3 * 1024 * 1024]).unwrap();
    let small = dir.join("small.ext2");
    let err = write_ext2(&root, &small, Some(2)).unwrap_err().to_string();
    assert!(
        err.contains("needs about 5 MiB and the image was asked to be 2 MiB"),
        "{err}"
    );
    assert!(!small.exists() && !dir.join("small.ext2.part").exists());
}

#[test]
fn blank_ext2_is_sparse_and_empty() {
    require_tool("debugfs", "e2fsprogs");
    require_tool("e2fsck", "e2fsprogs");
    let dir = tempfile::tempdir().unwrap();
    let dir = utf8(dir.path());
    let out = dir.join("home.ext2");
    create_blank_ext2(&out, 64).unwrap();
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.len(), 64 * 1024 * 1024);
    assert!(
        meta.blocks() * 512 < meta.len() / 4,
        "not sparse: {} blocks",
        meta.blocks()
    );
    sh(&format!("e2fsck -f -n '{out}'"), dir);
    let entries = debugfs_ls(&out, "/");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, "lost+found");
    let root_dir = sh(&format!("debugfs -R 'stat /' '{out}' 2>/dev/null"), dir);
    assert!(
        root_dir.contains("User:     0   Group:     0"),
        "{root_dir}"
    );
    assert_eq!(
        create_blank_ext2(&dir.join("zero.ext2"), 0)
            .unwrap_err()
            .to_string(),
        format!(
            "an image size of 0 MiB was asked for `{}`: give a size of at least 1 MiB",
            dir.join("zero.ext2")
        )
    );
}

#[test]
fn root_filesystem_needs_an_executable_init() {
    let dir = tempfile::tempdir().unwrap();
    let dir = utf8(dir.path());
    let root = small_root(dir);
    check_root_filesystem(&root).unwrap();

    // sbin/init alone, through a symlink, is enough.
    std::fs::remove_file(root.join("init")).unwrap();
    check_root_filesystem(&root).unwrap();

    // An absolute link target means inside the root, not on the host.
    std::fs::remove_file(root.join("sbin/init")).unwrap();
    std::os::unix::fs::symlink("/bin/sh", root.join("sbin/init")).unwrap();
    check_root_filesystem(&root).unwrap();
    std::fs::remove_file(root.join("bin/sh")).unwrap();
    assert_eq!(
        check_root_filesystem(&root).unwrap_err().to_string(),
        format!(
            "`{root}` is not a root filesystem: it has no executable `init` or `sbin/init`: \
             `sbin/init` is a symlink to `/bin/sh`, but `/bin/sh` does not exist in the root"
        )
    );
    std::fs::remove_file(root.join("sbin/init")).unwrap();
    std::os::unix::fs::symlink("../../../../../../usr/bin/env", root.join("sbin/init")).unwrap();
    assert_eq!(
        check_root_filesystem(&root).unwrap_err().to_string(),
        format!(
            "`{root}` is not a root filesystem: it has no executable `init` or `sbin/init`: \
             `sbin/init` is a symlink to `../../../../../../usr/bin/env`, but `/usr/bin/env` \
             does not exist in the root"
        )
    );

    std::fs::write(root.join("init"), "#!/bin/sh\n").unwrap();
    set_mode(&root.join("init"), 0o644);
    assert_eq!(
        check_root_filesystem(&root).unwrap_err().to_string(),
        format!(
            "`{root}` is not a root filesystem: it has no executable `init` or `sbin/init`: \
             `init` is not executable (mode 644); `sbin/init` is a symlink to \
             `../../../../../../usr/bin/env`, but `/usr/bin/env` does not exist in the root"
        )
    );

    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(
        check_root_filesystem(&empty).unwrap_err().to_string(),
        format!(
            "`{empty}` is not a root filesystem: it has neither `init` nor `sbin/init`, one of \
             which must be an executable"
        )
    );
    std::fs::create_dir(empty.join("init")).unwrap();
    assert_eq!(
        check_root_filesystem(&empty).unwrap_err().to_string(),
        format!(
            "`{empty}` is not a root filesystem: it has no executable `init` or `sbin/init`: \
             `init` is not a regular file"
        )
    );
    assert_eq!(
        check_root_filesystem(&dir.join("nowhere"))
            .unwrap_err()
            .to_string(),
        format!(
            "`{}` is not a root filesystem: cannot read it: No such file or directory (os error 2)",
            dir.join("nowhere")
        )
    );
}

/// The same tree built twice, in different places, at different times and
/// with different file times, gives byte-identical images when an epoch is
/// given: what makes two clean builds of a system image comparable. The
/// second time its tools run in the sandbox, each writing its image only.
#[test]
fn images_with_an_epoch_are_reproducible() {
    require_tool("mksquashfs", "squashfs-tools");
    require_tool("mke2fs", "e2fsprogs");
    require_tool("debugfs", "e2fsprogs");
    // The second build runs its tools in a sandbox that lets no command
    // write anything: each tool is granted the one image it makes.
    let mut sandbox =
        rhbuild::sandbox::Sandbox::new(rhbuild::sandbox::Level::Auto, Vec::new()).unwrap();
    sandbox.exe = env!("CARGO_BIN_EXE_rhbuild").into();
    let mut outputs: Vec<Vec<Vec<u8>>> = Vec::new();
    for (n, stamp) in [(0, 1_600_000_000i64), (1, 1_700_000_000i64)] {
        let tools = rhbuild::image::Tools {
            sandbox: (n == 1).then_some(&sandbox),
            interrupt: None,
            epoch: Some(1_672_531_200),
        };
        let dir = tempfile::tempdir().unwrap();
        let dir = utf8(dir.path()).join(format!("build-{n}"));
        std::fs::create_dir(&dir).unwrap();
        let root = small_root(&dir);
        sh(
            &format!("find root -exec touch -h -d @{stamp} {{}} +"),
            &dir,
        );
        if n == 1 {
            // A second apart: the writers must not read the clock.
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let mut made = Vec::new();
        let cpio = dir.join("initramfs.cpio");
        rhbuild::image::write_initramfs_with(&root, &cpio, tools.epoch, &tools).unwrap();
        let sqf = dir.join("root.sqf");
        rhbuild::image::write_squashfs_with(&root, &sqf, &tools).unwrap();
        let ext2 = dir.join("root.ext2");
        rhbuild::image::write_ext2_with(&root, &ext2, Some(8), &tools).unwrap();
        let blank = dir.join("blank.ext2");
        rhbuild::image::create_blank_ext2_with(&blank, 4, &tools).unwrap();
        for f in [&cpio, &sqf, &ext2, &blank] {
            made.push(std::fs::read(f).unwrap());
        }
        outputs.push(made);
    }
    for (i, name) in ["initramfs", "squashfs", "ext2", "blank ext2"]
        .iter()
        .enumerate()
    {
        assert!(
            outputs[0][i] == outputs[1][i],
            "two {name} images of one tree differ"
        );
    }
}

/// A link planted at the output's name or at its `.part` name, pointing at
/// a file outside, is replaced, never written through: for every writer.
#[test]
fn links_planted_at_the_output_and_its_part_are_not_written_through() {
    require_tool("mksquashfs", "squashfs-tools");
    require_tool("mke2fs", "e2fsprogs");
    let dir = tempfile::tempdir().unwrap();
    let dir = utf8(dir.path());
    let root = small_root(dir);
    let victim = dir.join("victim");
    type Writer<'a> = Box<dyn Fn(&Utf8Path) -> Result<(), rhbuild::image::ImageError> + 'a>;
    let writers: Vec<(&str, Writer)> = vec![
        (
            "initramfs",
            Box::new(|o| write_initramfs(&root, o, Some(MTIME))),
        ),
        ("squashfs", Box::new(|o| write_squashfs(&root, o))),
        ("ext2", Box::new(|o| write_ext2(&root, o, None))),
        ("blank ext2", Box::new(|o| create_blank_ext2(o, 2))),
    ];
    for (what, write) in writers {
        for planted in ["out.img", "out.img.part"] {
            std::fs::write(&victim, "keep me").unwrap();
            let out = dir.join("out.img");
            let _ = std::fs::remove_file(&out);
            std::os::unix::fs::symlink(&victim, dir.join(planted)).unwrap();
            write(&out).unwrap_or_else(|e| panic!("{what} with a link at {planted}: {e}"));
            assert_eq!(
                std::fs::read_to_string(&victim).unwrap(),
                "keep me",
                "{what} wrote through a link at {planted}"
            );
            let meta = std::fs::symlink_metadata(&out).unwrap();
            assert!(meta.is_file(), "{what}: {out} is not a regular file");
            assert!(meta.len() > 0, "{what}: {out} is empty");
            assert!(!dir.join("out.img.part").exists(), "{what} left its part");
        }
    }
}

/// The attack on the window between the walk of the tree and the archiving
/// of each entry: a file of the root is swapped, again and again, for a link
/// of the same length to a secret outside the root. Every archive written
/// must hold the file or fail; none may hold the secret.
#[test]
fn a_file_swapped_for_a_link_while_archived_is_not_followed() {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let dir = utf8(dir.path());
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("init"), "#!/bin/sh\n").unwrap();
    set_mode(&root.join("init"), 0o755);
    // Walked after the swapped file, archived after it too: a wide window.
    std::fs::create_dir_all(root.join("zfill")).unwrap();
    for i in 0..400 {
        std::fs::write(root.join(format!("zfill/{i:04}")), "x").unwrap();
    }
    let secret = dir.join("secret");
    std::fs::write(&secret, "SECRET!!").unwrap();
    let name = root.join("etc/harmless");
    std::fs::write(&name, "harmless").unwrap();
    assert_eq!("harmless".len(), "SECRET!!".len());

    let stop = AtomicBool::new(false);
    let (mut ok, mut failed) = (0, 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let (link, file) = (root.join("etc/.link"), root.join("etc/.file"));
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&secret, &link).unwrap();
                std::fs::rename(&link, &name).unwrap();
                std::fs::write(&file, "harmless").unwrap();
                std::fs::rename(&file, &name).unwrap();
            }
        });
        // Stops the swapper however this thread leaves the loop (a failed
        // assertion too: the scope waits for the swapper before unwinding).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        // On a loaded machine the swapper may sit out many whole runs, so
        // the runs go on until both outcomes have been seen (the runs are
        // what the test asks for, not their time).
        let mut run = 0;
        while run < 200 || (failed == 0 || ok == 0) && run < 20_000 {
            run += 1;
            let out = dir.join(format!("initramfs-{run}.cpio.gz"));
            match write_initramfs(&root, &out, Some(MTIME)) {
                Ok(()) => {
                    let mut cpio = Vec::new();
                    flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap())
                        .read_to_end(&mut cpio)
                        .unwrap();
                    let leaked = cpio.windows(8).any(|w| w == b"SECRET!!");
                    assert!(!leaked, "run {run}: the archive holds the secret");
                    ok += 1;
                }
                Err(e) => {
                    assert!(!out.exists(), "run {run} failed ({e}) but left {out}");
                    failed += 1;
                }
            }
            let _ = std::fs::remove_file(&out);
        }
    });
    eprintln!("{ok} archives written, {failed} writes refused");
    // Neither outcome alone proves much: the swap must have raced the
    // archiving in some runs and missed it in others.
    assert!(
        failed > 0,
        "the swap never raced the archive ({ok} runs passed; is the machine starved?)"
    );
    assert!(ok > 0, "every run failed ({failed})");
}
