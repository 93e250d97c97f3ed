//! The fetch primitive against a real HTTP server on 127.0.0.1 and real
//! `apt-get source`.

use crate::http_server::{HttpServer, Route};
use camino::{Utf8Path, Utf8PathBuf};
use rhbuild::checksum::{Expected, sha256_bytes};
use rhbuild::fetch::{
    FetchError, FetchOptions, Fetched, Origin, OriginKind, SourceCache, SourceSpec,
};
use std::time::Duration;

/// A small gzipped tarball whose contents depend on `seed`.
fn tarball(seed: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for i in 0..20 {
        let body = format!("{seed}: file {i}\n").repeat(200);
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, format!("pkg-1.0/f{i}.txt"), body.as_bytes())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn sha256(data: &[u8]) -> Expected {
    Expected {
        sha1: None,
        sha256: Some(sha256_bytes(data)),
    }
}

fn url_origin(url: String, mirrors: Vec<String>, expected: Expected) -> Origin {
    Origin {
        kind: OriginKind::Url(url),
        mirrors,
        expected,
        size: None,
    }
}

fn spec(origins: Vec<Origin>) -> SourceSpec {
    SourceSpec {
        package: "pkg".into(),
        origins,
    }
}

/// Options for fast tests: no pauses between retries, a short stall timeout.
fn opts() -> FetchOptions {
    FetchOptions {
        retry_delay: Duration::ZERO,
        stall_timeout: Duration::from_secs(1),
        ..FetchOptions::default()
    }
}

struct Cache {
    _dir: tempfile::TempDir,
    cache: SourceCache,
}

fn new_cache() -> Cache {
    let dir = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::from_path_buf(dir.path().join("cache")).unwrap();
    Cache {
        _dir: dir,
        cache: SourceCache::new(path),
    }
}

/// Everything in the cache directory (including hidden and `.part` files),
/// without the verification stamps kept beside them and the lock files.
fn listing(dir: &Utf8Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !(n.starts_with('.') && n.ends_with(".verified")) && n != ".locks")
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Runs a fetch and records what it said.
fn fetch(
    c: &Cache,
    spec: &SourceSpec,
    o: &FetchOptions,
) -> (Result<Fetched, FetchError>, Vec<String>) {
    let mut said = Vec::new();
    let r = c
        .cache
        .fetch(spec, o, &mut |line| said.push(line.to_string()));
    (r, said)
}

#[test]
fn fetch_downloads_verifies_and_then_uses_the_cache() {
    let srv = HttpServer::start();
    let data = tarball("a");
    srv.route("/dl/pkg-1.0.tar.gz", Route::Bytes(data.clone()));
    let c = new_cache();
    let s = spec(vec![url_origin(
        srv.url("/dl/pkg-1.0.tar.gz"),
        vec![],
        sha256(&data),
    )]);
    assert_eq!(c.cache.cached(&s), None);

    let (r, said) = fetch(&c, &s, &opts());
    let got = r.unwrap();
    assert_eq!(got.path, c.cache.dir().join("pkg-1.0.tar.gz"));
    assert_eq!(got.origin, 0);
    assert_eq!(got.from, srv.url("/dl/pkg-1.0.tar.gz"));
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(listing(c.cache.dir()), ["pkg-1.0.tar.gz"]);

    let (again, _) = fetch(&c, &s, &opts());
    let again = again.unwrap();
    assert_eq!(again.from, "cache");
    assert_eq!(again.path, got.path);
    assert_eq!(srv.hits("/dl/pkg-1.0.tar.gz"), 1);
    assert_eq!(c.cache.cached(&s).unwrap().from, "cache");
}

#[test]
fn checksum_mismatch_names_both_checksums_and_keeps_nothing() {
    let srv = HttpServer::start();
    let data = tarball("served");
    let wanted = tarball("wanted");
    srv.route("/pkg-1.0.tar.gz", Route::Bytes(data.clone()));
    let c = new_cache();
    let url = srv.url("/pkg-1.0.tar.gz");
    let s = spec(vec![url_origin(url.clone(), vec![], sha256(&wanted))]);

    let err = fetch(&c, &s, &opts()).0.unwrap_err();
    let msg = err.to_string();
    let expected = format!(
        "checksum mismatch for `pkg-1.0.tar.gz` from {url}: expected sha256 {}…, got {}… (the file was not kept)",
        &sha256_bytes(&wanted)[..12],
        &sha256_bytes(&data)[..12]
    );
    assert!(
        msg.contains(&expected),
        "{msg}\nwanted it to contain\n{expected}"
    );
    assert!(matches!(err, FetchError::AllFailed { .. }));
    assert_eq!(listing(c.cache.dir()), Vec::<String>::new());
    // A mismatch is not a transient failure: no retry.
    assert_eq!(srv.hits("/pkg-1.0.tar.gz"), 1);
}

#[test]
fn a_404_falls_through_to_a_mirror_without_retrying() {
    let srv = HttpServer::start();
    let data = tarball("b");
    srv.route("/gone/pkg-1.0.tar.gz", Route::Status(404));
    srv.route("/mirror/pkg-1.0.tar.gz", Route::Bytes(data.clone()));
    let c = new_cache();
    let s = spec(vec![url_origin(
        srv.url("/gone/pkg-1.0.tar.gz"),
        vec![srv.url("/mirror/")],
        sha256(&data),
    )]);

    let (r, said) = fetch(&c, &s, &opts());
    let got = r.unwrap();
    assert_eq!(got.from, srv.url("/mirror/pkg-1.0.tar.gz"));
    assert_eq!(
        srv.requests(),
        ["/gone/pkg-1.0.tar.gz", "/mirror/pkg-1.0.tar.gz"]
    );
    assert!(
        said.iter().any(|l| l.contains("HTTP 404 Not Found")),
        "{said:?}"
    );
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
}

#[test]
fn preferred_mirror_is_tried_first() {
    let srv = HttpServer::start();
    let data = tarball("c");
    srv.route("/upstream/pkg-1.0.tar.gz", Route::Bytes(data.clone()));
    srv.route("/preferred/pkg-1.0.tar.gz", Route::Bytes(data.clone()));
    let c = new_cache();
    let s = spec(vec![url_origin(
        srv.url("/upstream/pkg-1.0.tar.gz"),
        vec![],
        sha256(&data),
    )]);
    let o = FetchOptions {
        preferred_mirror: Some(srv.url("/preferred")),
        ..opts()
    };

    let got = fetch(&c, &s, &o).0.unwrap();
    assert_eq!(got.from, srv.url("/preferred/pkg-1.0.tar.gz"));
    assert_eq!(srv.requests(), ["/preferred/pkg-1.0.tar.gz"]);
    assert_eq!(srv.hits("/upstream/pkg-1.0.tar.gz"), 0);
}

#[test]
fn preferred_mirror_without_the_file_falls_back_to_the_url() {
    let srv = HttpServer::start();
    let data = tarball("c2");
    srv.route("/upstream/pkg-1.0.tar.gz", Route::Bytes(data.clone()));
    let c = new_cache();
    let s = spec(vec![url_origin(
        srv.url("/upstream/pkg-1.0.tar.gz"),
        vec![],
        sha256(&data),
    )]);
    let o = FetchOptions {
        preferred_mirror: Some(srv.url("/empty/")),
        ..opts()
    };

    let got = fetch(&c, &s, &o).0.unwrap();
    assert_eq!(got.from, srv.url("/upstream/pkg-1.0.tar.gz"));
    assert_eq!(
        srv.requests(),
        ["/empty/pkg-1.0.tar.gz", "/upstream/pkg-1.0.tar.gz"]
    );
}

#[test]
fn connection_closed_mid_body_is_retried_and_leaves_no_cache_entry() {
    let srv = HttpServer::start();
    let data = tarball("d");
    srv.route("/pkg-1.0.tar.gz", Route::Truncate(data.clone()));
    let c = new_cache();
    let url = srv.url("/pkg-1.0.tar.gz");
    let s = spec(vec![url_origin(url.clone(), vec![], sha256(&data))]);
    let o = FetchOptions {
        retries: 2,
        ..opts()
    };

    let (r, said) = fetch(&c, &s, &o);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains(&format!("of {} bytes", data.len())), "{msg}");
    assert_eq!(srv.hits("/pkg-1.0.tar.gz"), 3, "{said:?}");
    assert_eq!(
        said.iter().filter(|l| l.contains("retrying")).count(),
        2,
        "{said:?}"
    );
    assert_eq!(listing(c.cache.dir()), Vec::<String>::new());
}

#[test]
fn server_errors_are_retried_then_the_next_origin_is_used() {
    let srv = HttpServer::start();
    let data = tarball("e");
    srv.route("/busy/pkg-1.0.tar.gz", Route::Status(503));
    srv.route("/ok/pkg-1.0.tar.gz", Route::Bytes(data.clone()));
    let c = new_cache();
    let s = spec(vec![url_origin(
        srv.url("/busy/pkg-1.0.tar.gz"),
        vec![srv.url("/ok")],
        sha256(&data),
    )]);

    let got = fetch(
        &c,
        &s,
        &FetchOptions {
            retries: 2,
            ..opts()
        },
    )
    .0
    .unwrap();
    assert_eq!(got.from, srv.url("/ok/pkg-1.0.tar.gz"));
    assert_eq!(srv.hits("/busy/pkg-1.0.tar.gz"), 3);
}

#[test]
fn corrupted_cache_file_is_deleted_and_fetched_again() {
    let srv = HttpServer::start();
    let data = tarball("f");
    srv.route("/pkg-1.0.tar.gz", Route::Bytes(data.clone()));
    let c = new_cache();
    let s = spec(vec![url_origin(
        srv.url("/pkg-1.0.tar.gz"),
        vec![],
        sha256(&data),
    )]);
    let first = fetch(&c, &s, &opts()).0.unwrap();

    let mut bad = data.clone();
    bad[100] ^= 0xff;
    std::fs::write(&first.path, &bad).unwrap();
    assert_eq!(c.cache.cached(&s), None);
    // `cached` only looks: the bad file is still there.
    assert!(first.path.exists());

    let (r, said) = fetch(&c, &s, &opts());
    let got = r.unwrap();
    assert_eq!(got.from, srv.url("/pkg-1.0.tar.gz"));
    assert!(
        said[0].contains("cached `pkg-1.0.tar.gz` does not match its checksum")
            && said[0].contains("deleted"),
        "{said:?}"
    );
    assert_eq!(std::fs::read(&got.path).unwrap(), data);
    assert_eq!(srv.hits("/pkg-1.0.tar.gz"), 2);
}

#[test]
fn a_stalled_download_is_abandoned_for_the_next_origin() {
    let srv = HttpServer::start();
    let data = tarball("g");
    srv.route("/stall/pkg-1.0.tar.gz", Route::Stall(data.clone()));
    srv.route("/mirror/pkg-1.0.tar.gz", Route::Bytes(data.clone()));
    let c = new_cache();
    let s = spec(vec![url_origin(
        srv.url("/stall/pkg-1.0.tar.gz"),
        vec![srv.url("/mirror")],
        sha256(&data),
    )]);
    let o = FetchOptions {
        retries: 1,
        stall_timeout: Duration::from_secs(1),
        ..opts()
    };

    let (r, said) = fetch(&c, &s, &o);
    let got = r.unwrap();
    assert_eq!(got.from, srv.url("/mirror/pkg-1.0.tar.gz"));
    assert_eq!(
        srv.hits("/stall/pkg-1.0.tar.gz"),
        2,
        "a stall is retried once: {said:?}"
    );
    assert!(
        said.iter().any(|l| l.contains("stalled: no data for 1 s")),
        "{said:?}"
    );
    assert_eq!(listing(c.cache.dir()), ["pkg-1.0.tar.gz"]);
}

#[test]
fn the_error_lists_every_origin_tried() {
    let srv = HttpServer::start();
    let data = tarball("h");
    srv.route("/a/pkg-1.0.tar.gz", Route::Status(404));
    let c = new_cache();
    let s = spec(vec![
        url_origin(
            srv.url("/a/pkg-1.0.tar.gz"),
            vec![srv.url("/b")],
            sha256(&data),
        ),
        url_origin(srv.url("/c/pkg-1.0.tar.xz"), vec![], sha256(&data)),
    ]);
    let err = fetch(&c, &s, &opts()).0.unwrap_err();
    let msg = err.to_string();
    for path in [
        "/a/pkg-1.0.tar.gz",
        "/b/pkg-1.0.tar.gz",
        "/c/pkg-1.0.tar.xz",
    ] {
        assert!(
            msg.contains(&format!("- {}: HTTP 404 Not Found", srv.url(path))),
            "{msg}"
        );
    }
    let help = miette::Diagnostic::help(&err).unwrap().to_string();
    assert!(help.contains(c.cache.dir().as_str()), "{help}");
}

#[test]
fn an_origin_without_checksum_is_never_downloaded() {
    let srv = HttpServer::start();
    srv.route("/pkg-1.0.tar.gz", Route::Bytes(tarball("i")));
    let c = new_cache();
    let s = spec(vec![url_origin(
        srv.url("/pkg-1.0.tar.gz"),
        vec![],
        Expected::default(),
    )]);
    let msg = fetch(&c, &s, &opts()).0.unwrap_err().to_string();
    assert!(msg.contains("has no sha256 or sha1"), "{msg}");
    assert_eq!(srv.requests(), Vec::<String>::new());
}

#[test]
fn an_interrupt_stops_before_any_request() {
    let srv = HttpServer::start();
    srv.route("/pkg-1.0.tar.gz", Route::Bytes(tarball("j")));
    let c = new_cache();
    let s = spec(vec![url_origin(
        srv.url("/pkg-1.0.tar.gz"),
        vec![],
        sha256(b"x"),
    )]);
    let o = opts();
    o.interrupt.set();
    let err = fetch(&c, &s, &o).0.unwrap_err();
    assert!(matches!(err, FetchError::Interrupted { .. }), "{err}");
    assert_eq!(srv.requests(), Vec::<String>::new());
    assert_eq!(listing(c.cache.dir()), Vec::<String>::new());
}

#[test]
fn an_interrupt_during_a_stall_leaves_nothing() {
    let srv = HttpServer::start();
    let data = tarball("k");
    srv.route("/pkg-1.0.tar.gz", Route::Stall(data.clone()));
    let c = new_cache();
    let s = spec(vec![url_origin(
        srv.url("/pkg-1.0.tar.gz"),
        vec![],
        sha256(&data),
    )]);
    let o = FetchOptions {
        retries: 3,
        ..opts()
    };
    let flag = o.interrupt.clone();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        flag.set();
    });
    let err = fetch(&c, &s, &o).0.unwrap_err();
    setter.join().unwrap();
    assert!(matches!(err, FetchError::Interrupted { .. }), "{err}");
    assert_eq!(listing(c.cache.dir()), Vec::<String>::new());
}

/// The real `busybox_1.35.0.orig.tar.bz2`, as Debian 12 ships it.
const BUSYBOX_ORIG: &str = "busybox_1.35.0.orig.tar.bz2";
const BUSYBOX_ORIG_SHA256: &str =
    "faeeb244c35a348a334f4a59e44626ee870fb07b6884d68c10ae8bc19f83a694";
const BUSYBOX_ORIG_SHA1: &str = "36a1766206c8148bc06aca4e1f134016d40912d0";

fn require_apt_get() {
    let found = std::process::Command::new("apt-get")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        found,
        "this test needs `apt-get` with deb-src entries (a Debian host): run `apt-get install apt`, \
         add a `Types: deb-src` entry to /etc/apt/sources.list.d/, then `apt-get update`"
    );
}

fn debian_origin(file: &str, sha1: &str, sha256: &str) -> Origin {
    Origin {
        kind: OriginKind::Debian {
            package: "busybox".into(),
            file: file.into(),
        },
        mirrors: vec![],
        expected: Expected {
            sha1: Some(sha1.into()),
            sha256: Some(sha256.into()),
        },
        size: None,
    }
}

#[test]
fn debian_origin_fetches_busybox_with_apt_get_source() {
    require_apt_get();
    let c = new_cache();
    let s = SourceSpec {
        package: "busybox".into(),
        origins: vec![debian_origin(
            BUSYBOX_ORIG,
            BUSYBOX_ORIG_SHA1,
            BUSYBOX_ORIG_SHA256,
        )],
    };
    let (r, said) = fetch(&c, &s, &opts());
    let got = r.unwrap_or_else(|e| panic!("{e}\n{said:?}"));
    assert_eq!(got.from, "debian source package busybox");
    assert_eq!(got.path, c.cache.dir().join(BUSYBOX_ORIG));
    assert_eq!(
        rhbuild::checksum::sha256_file(&got.path).unwrap(),
        BUSYBOX_ORIG_SHA256
    );
    // The temporary apt directory is gone; only the verified file remains.
    assert_eq!(listing(c.cache.dir()), [BUSYBOX_ORIG]);
    assert_eq!(c.cache.cached(&s).unwrap().from, "cache");
}

#[test]
fn debian_origin_names_what_apt_downloaded_when_the_file_is_missing() {
    require_apt_get();
    let c = new_cache();
    let s = SourceSpec {
        package: "busybox".into(),
        origins: vec![debian_origin(
            "busybox_0.1.orig.tar.bz2",
            &"0".repeat(40),
            &"0".repeat(64),
        )],
    };
    let msg = fetch(&c, &s, &opts()).0.unwrap_err().to_string();
    assert!(
        msg.contains("did not download `busybox_0.1.orig.tar.bz2`"),
        "{msg}"
    );
    assert!(msg.contains(&format!("`{BUSYBOX_ORIG}`")), "{msg}");
    assert!(msg.contains(".dsc`"), "{msg}");
    assert_eq!(listing(c.cache.dir()), Vec::<String>::new());
}

#[test]
fn a_file_changed_behind_the_caches_back_is_hashed_again_even_with_its_old_size_and_time() {
    let srv = HttpServer::start();
    let data = tarball("stamp");
    srv.route("/dl/pkg-1.0.tar.gz", Route::Bytes(data.clone()));
    let c = new_cache();
    let s = spec(vec![url_origin(
        srv.url("/dl/pkg-1.0.tar.gz"),
        vec![],
        sha256(&data),
    )]);
    let (r, _) = fetch(&c, &s, &opts());
    let path = r.unwrap().path;
    assert!(c.cache.cached(&s).is_some());
    // Same length, same modification time, different bytes: only the
    // inode change time tells, and it must.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bad = data.clone();
    bad[0] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), data.len() as u64);
    assert_eq!(
        c.cache.cached(&s),
        None,
        "a changed file was taken on the strength of its stamp"
    );
}

/// A gzipped tarball of `files` (path, contents).
fn tarball_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, path, *body).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// A project whose package `wrapped` comes as a tarball holding the real
/// source tarball (as Debian's gcc-12 does), named by `inner`, and a stage
/// that copies a file of the extracted source into its output.
fn wrapped_package_project(srv: &HttpServer, inner: &str) -> crate::util::TestProject {
    let source = tarball_of(&[("src-1.0/hello.txt", b"from the inner tarball\n")]);
    let outer = tarball_of(&[
        ("wrapped-1.0/README", b"a wrapper\n"),
        ("wrapped-1.0/inner/src-1.0.tar.gz", &source),
    ]);
    srv.route("/wrapped-1.0.tar.gz", Route::Bytes(outer.clone()));
    let p = crate::util::TestProject::empty();
    p.add_target("t");
    p.write(
        "packages/wrapped.rhai",
        &format!(
            r#"export const name = "wrapped";
export const version = "1.0";
export const sources = [
    #{{ url: "{}", sha256: "{}", inner: "{inner}" }},
];
fn build(ctx) {{
    ctx.copy(`${{ctx.source()}}/hello.txt`, `${{ctx.out}}/hello.txt`);
}}
"#,
            srv.url("/wrapped-1.0.tar.gz"),
            sha256_bytes(&outer)
        ),
    );
    p.write(
        "scripts/show.rhai",
        "export const output = \"show\";\nctx.build(\"wrapped\");\n",
    );
    p
}

#[test]
fn a_source_inside_the_verified_tarball_is_extracted_as_the_package_source() {
    let srv = HttpServer::start();
    let p = wrapped_package_project(&srv, "inner/src-1.0.tar.gz");
    p.rhbuild(&["run", "scripts/show.rhai", "--arch", "t"])
        .success();
    assert_eq!(p.read("build/t/show/hello.txt"), "from the inner tarball\n");
}

#[test]
fn a_missing_inner_tarball_is_named_and_leaves_no_source_tree() {
    let srv = HttpServer::start();
    let p = wrapped_package_project(&srv, "inner/nope.tar.gz");
    let o = p
        .rhbuild(&["run", "scripts/show.rhai", "--arch", "t"])
        .failure();
    assert!(
        o.stderr
            .contains("holds no `inner/nope.tar.gz` (package `wrapped`'s `inner`)"),
        "{}",
        o.stderr
    );
    // Nothing half-extracted that a later run could take as the source.
    let src = p.root.join("build/src");
    let left: Vec<String> = std::fs::read_dir(&src)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left in build/src: {left:?}");
    assert!(!p.root.join("build/t/show").exists());
}

#[test]
fn an_inner_path_leaving_the_tarball_is_refused_by_check() {
    let srv = HttpServer::start();
    let p = wrapped_package_project(&srv, "../outside.tar.gz");
    let o = p.rhbuild(&["check", "packages/wrapped.rhai"]).failure();
    assert!(
        o.stderr
            .contains("`inner` must be a relative path inside the tarball"),
        "{}",
        o.stderr
    );
}
