//! Reproducible outputs: the same tree packed twice, in two build
//! directories at different times, gives the same bytes (the toolchain's
//! dist/<triple>-cross.tar.gz is packed by stdlib/pack). The image writers'
//! half is tests/image.rs's `images_with_an_epoch_are_reproducible`.

use crate::util::{TestProject, repo_root};

#[test]
fn two_packs_of_one_tree_are_byte_identical() {
    let p = TestProject::empty();
    p.add_target("t");
    p.write(
        "stdlib/pack.rhai",
        &std::fs::read_to_string(repo_root().join("stdlib/pack.rhai")).unwrap(),
    );
    p.write(
        "scripts/host.rhai",
        "export const output = \"host\";\nexport const tools = true;\nctx.host_tools([\"tar\", \"gzip\"], []);\n",
    );
    // A tree made afresh on each run: new times, new inodes, files created
    // in an order that is not the name order, a link and an empty directory.
    p.write(
        "scripts/tree.rhai",
        r#"export const output = "tree";
import "stdlib/pack" as pack;
ctx.stage("host");
let out = ctx.out;
for name in ["zeta", "alpha", "mid/dle", "mid/a"] {
    ctx.write(`${out}/${name}`, `${name}\n`);
}
ctx.mkdir(`${out}/empty`);
ctx.symlink("alpha", `${out}/link`);
ctx.chmod(`${out}/zeta`, 0o755);
ctx.mkdir(`${out}/dist`);
pack::tarball(ctx, out, "tree", "dist", "dist/tree.tar.gz");
"#,
    );
    let mut packs = Vec::new();
    for build in ["build-one", "build-two"] {
        for _ in 0..2 {
            p.rhbuild(&[
                "run",
                "scripts/tree.rhai",
                "--arch",
                "t",
                "--build-dir",
                build,
                "--force",
                "tree",
            ])
            .success();
            packs.push(std::fs::read(p.root.join(build).join("t/tree/dist/tree.tar.gz")).unwrap());
            // Times differ by a second at least between the packs.
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
    }
    for (i, pack) in packs.iter().enumerate().skip(1) {
        assert!(pack == &packs[0], "pack {i} differs from the first");
    }
    // It is a gzip'd tar with the entries the tree has, under `tree/`.
    let list = std::process::Command::new("tar")
        .args(["-tvzf"])
        .arg(p.root.join("build-one/t/tree/dist/tree.tar.gz"))
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert!(list.contains("0/0"), "{list}");
    assert!(list.contains("2023-01-01 00:00"), "{list}");
    assert!(!list.contains("dist"), "{list}");
    assert!(
        names.contains(&"tree/mid/dle") && names.contains(&"alpha"),
        "{names:?}"
    );
}
