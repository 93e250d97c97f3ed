//! The package list, fast: tiny packages in a temporary project (no
//! compiler, no guest). What PACKAGES names and what those packages
//! `depends` on is built in order, once each; a circle, an unknown name and
//! a malformed declaration are errors naming the package; a package's
//! declarations reach scripts (`ctx.package_info`). The guest half (each
//! real package's `check` in a booted sh4) is in tests/pipeline.rs.

use crate::util::TestProject;

/// A package `name` that needs `depends`, whose build appends its name
/// to `opts.root`/order.
fn package(p: &TestProject, name: &str, depends: &[&str]) {
    let deps: Vec<String> = depends.iter().map(|d| format!("\"{d}\"")).collect();
    p.write(
        &format!("packages/{name}.rhai"),
        &format!(
            r#"export const name = "{name}";
export const version = "1";
export const license = "MIT";
export const depends = [{}];
export const check = #{{ run: "{name} --version", expect: "{name} 1" }};
export const sources = [ #{{ url: "http://127.0.0.1:1/{name}-1.tar.gz", sha256: "{}" }} ];
fn build(ctx) {{
    let f = `${{ctx.opts.root}}/order`;
    let before = if ctx.exists(f) {{ ctx.read(f) }} else {{ "" }};
    ctx.write(f, before + "{name}\n");
}}
"#,
            deps.join(", "),
            "0".repeat(64)
        ),
    );
}

/// `rhbuild run scripts/root.rhai` with PACKAGES=`list`.
fn root(p: &TestProject, list: &str, extra: &[&str]) -> crate::util::Run {
    let set = format!("PACKAGES={list}");
    let mut args = vec!["run", "scripts/root.rhai", "--arch", "t", "--set", &set];
    args.extend_from_slice(extra);
    p.rhbuild(&args)
}

fn project() -> TestProject {
    let p = TestProject::empty();
    p.add_target("t");
    p.write(
        "scripts/root.rhai",
        r#"export const output = "root";
for name in ctx.build_order(words(ctx.setting("PACKAGES", ""))) {
    ctx.build(name, #{ root: ctx.out });
}
let info = ctx.package_info("dropbear");
print(`info: ${info.name} ${info.version} ${info.license} ${info.depends} ${info.check.expect}`);
"#,
    );
    package(&p, "zlib", &[]);
    package(&p, "dropbear", &["zlib"]);
    package(&p, "lua", &[]);
    package(&p, "tool", &["lua", "zlib"]);
    p
}

#[test]
fn what_packages_need_is_built_first_and_once() {
    let p = project();
    let o = root(&p, "tool dropbear", &[]).success();
    let order = p.read("build/t/root/order");
    assert_eq!(order, "lua\nzlib\ntool\ndropbear\n", "{}", o.stdout);
    assert!(
        o.stdout
            .contains("info: dropbear 1 MIT [\"zlib\"] dropbear 1"),
        "{}",
        o.stdout
    );
    // A changed list rebuilds the stage.
    let o = root(&p, "lua", &["--explain"]).success();
    assert!(o.stdout.contains("PACKAGES"), "{}", o.stdout);
    assert_eq!(p.read("build/t/root/order"), "lua\n");
}

#[test]
fn a_circle_of_packages_is_named() {
    let p = project();
    package(&p, "a", &["b"]);
    package(&p, "b", &["a"]);
    let o = root(&p, "a", &[]).failure();
    assert!(o.stderr.contains("a -> b -> a"), "{}", o.stderr);
    assert!(!p.root.join("build/t/root").exists());
}

#[test]
fn an_unknown_package_in_the_list_is_named() {
    let p = project();
    let o = root(&p, "lua nope", &[]).failure();
    assert!(o.stderr.contains("no package `nope`"), "{}", o.stderr);
}

#[test]
fn check_refuses_bad_declarations() {
    let p = project();
    package(&p, "needy", &["missing"]);
    package(&p, "selfish", &["selfish"]);
    p.write(
        "packages/odd.rhai",
        r#"export const name = "odd";
export const version = "1";
export const license = "";
export const license_files = ["/etc/passwd"];
export const depends = "zlib";
export const check = #{ run: "x" };
export const sources = [ #{ url: "http://127.0.0.1:1/odd.tar.gz", sha256: "0000000000000000000000000000000000000000000000000000000000000000" } ];
"#,
    );
    let o = p.rhbuild(&["check"]).failure();
    for want in [
        "package `needy` depends on `missing`, but `packages/missing.rhai` does not exist",
        "package `selfish` depends on itself",
        "package `license` must be an SPDX licence expression",
        "package `license_files` must be an array of paths inside the source tree",
        "package `depends` must be an array of package names",
        "package `check` must be a map with `run`",
    ] {
        assert!(o.stderr.contains(want), "expected {want:?}:\n{}", o.stderr);
    }
}
