//! Fetching source files into the verified cache.
//!
//! Invariant: a file under its final name in the cache directory has matched
//! the checksum of the origin that produced it. Downloads stream into a
//! uniquely named `.part` file in the same directory and are renamed into
//! place only after verification; on every failure the `.part` file is
//! removed, so an interrupted or failed fetch leaves the cache as it was.
//!
//! Order of attempts: the cache, then `preferred_mirror` for each URL origin,
//! then each URL origin's own URL followed by its mirrors, then the Debian
//! origins (their mirrors, then `apt-get source --download-only`).
//!
//! Every transfer is bounded: in size (an origin's `size`, else
//! `FetchOptions::max_bytes`) and in time (`FetchOptions::deadline` for the
//! whole file, besides the stall timeout between bytes). Past either, the
//! transfer stops, its `.part` file goes, and the next place is tried.
//!
//! The parts: `cache` (the directory, its stamps and locks), `http` (one
//! download), `debian` (the Debian origin through `apt-get source`).
//!
//! Tests: `tests/fetch.rs` against a loopback server, and the fetch rows of
//! `tests/faults.rs` (endless body, trickle, 404/500, corrupt cache).

mod cache;
mod debian;
mod http;

use crate::checksum::Expected;
use crate::confine::Root;
use crate::interrupt::Interrupt;
use cache::CacheDir;
use camino::{Utf8Path, Utf8PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where one variant of a source comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginKind {
    /// A plain HTTP or HTTPS URL; the cache file name is its last path segment.
    Url(String),
    /// A file of a Debian source package, fetched with
    /// `apt-get source --download-only PACKAGE`. `package` may pin a version
    /// (`busybox=1:1.35.0-4`).
    Debian { package: String, file: String },
}

/// One origin of a source: where it comes from, alternative base URLs that
/// hold the same file, and the digests that file must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub kind: OriginKind,
    /// Base URLs; the file name is appended after a `/`.
    pub mirrors: Vec<String>,
    pub expected: Expected,
    /// The file's size in bytes, when the package gives it: a download is
    /// stopped past it.
    pub size: Option<u64>,
}

impl Origin {
    /// The name this origin's file has in the cache: the last path segment of
    /// the URL (without query or fragment), or the Debian file name.
    pub fn file_name(&self) -> &str {
        match &self.kind {
            OriginKind::Url(url) => url_file_name(url),
            OriginKind::Debian { file, .. } => file,
        }
    }
}

/// A package's source: one file, available from several origins, each with
/// its own checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSpec {
    pub package: String,
    pub origins: Vec<Origin>,
}

/// How to fetch.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// A base URL tried before every other network origin (`PREFERRED_MIRROR`).
    pub preferred_mirror: Option<String>,
    /// Limit for resolving a host name and for opening a connection.
    pub connect_timeout: Duration,
    /// A download that receives no byte for this long is abandoned.
    pub stall_timeout: Duration,
    /// Extra attempts per URL after a transient failure (connection reset or
    /// closed early, HTTP 5xx, 408 or 429, stall). A 404 is never retried.
    pub retries: u32,
    /// Pause before the first retry; doubled for each further one.
    pub retry_delay: Duration,
    /// Draw a progress bar when stderr is a terminal.
    pub progress: bool,
    /// Checked between chunks; a set flag abandons the fetch.
    pub interrupt: Interrupt,
    /// The longest one file's transfer may take, from one place.
    pub deadline: Duration,
    /// The most bytes a download may bring when its origin gives no `size`.
    pub max_bytes: u64,
}

impl Default for FetchOptions {
    /// 15 s connect timeout, 30 s stall timeout, 2 retries 1 s apart, no
    /// preferred mirror, no progress bar, 30 minutes and 4 GiB per file.
    fn default() -> Self {
        FetchOptions {
            preferred_mirror: None,
            connect_timeout: Duration::from_secs(15),
            stall_timeout: Duration::from_secs(30),
            retries: 2,
            retry_delay: Duration::from_secs(1),
            progress: false,
            interrupt: Interrupt::new(),
            deadline: Duration::from_secs(30 * 60),
            max_bytes: 4 << 30,
        }
    }
}

impl FetchOptions {
    /// The defaults, with `preferred_mirror` taken from a non-empty
    /// `PREFERRED_MIRROR` environment variable.
    pub fn from_env() -> Self {
        FetchOptions {
            preferred_mirror: std::env::var("PREFERRED_MIRROR")
                .ok()
                .filter(|s| !s.is_empty()),
            ..FetchOptions::default()
        }
    }
}

/// A verified file in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub path: Utf8PathBuf,
    /// Index into `SourceSpec::origins` of the origin whose checksum it matched.
    pub origin: usize,
    /// `"cache"`, the URL it was downloaded from, or
    /// `"debian source package NAME"`.
    pub from: String,
}

/// One failed attempt, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Index into `SourceSpec::origins`.
    pub origin: usize,
    /// The URL or `debian source package NAME`.
    pub from: String,
    pub reason: String,
}

/// Why a fetch failed. The cache holds no new file in every case.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum FetchError {
    #[error("could not fetch the source of `{package}`: every origin failed:{}", list_attempts(.attempts))]
    #[diagnostic(
        code(rhbuild::fetch::failed),
        help(
            "check the network (and http_proxy, https_proxy, no_proxy if you need a proxy), \
             set PREFERRED_MIRROR to a mirror that holds the file, put a copy that matches \
             the checksum into `{cache}`, or build from a copy you trust with \
             `--source {package}=PATH` (a tarball or a directory; the manifest records it as \
             unverified)"
        )
    )]
    AllFailed {
        package: String,
        cache: Utf8PathBuf,
        attempts: Vec<Attempt>,
    },

    #[error("`{package}` has no source origins")]
    #[diagnostic(
        code(rhbuild::fetch::no_origins),
        help(
            "add a source (a `url` or a `debian` package, with a sha256) to the package's `sources`"
        )
    )]
    NoOrigins { package: String },

    #[error("fetching the source of `{package}` was interrupted (nothing was kept)")]
    #[diagnostic(
        code(rhbuild::fetch::interrupted),
        help("run the command again to resume")
    )]
    Interrupted { package: String },

    #[error("cannot use the source cache `{dir}`: {source}")]
    #[diagnostic(
        code(rhbuild::fetch::cache),
        help("check that the build directory is writable and its file system is not full")
    )]
    Cache {
        dir: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn list_attempts(attempts: &[Attempt]) -> String {
    let mut s = String::new();
    for a in attempts {
        s.push_str(&format!("\n  - {}: {}", a.from, a.reason));
    }
    s
}

/// The directory of verified source files (`build/cache/`), shared by all
/// targets and safe to share between concurrent processes.
#[derive(Clone, Debug)]
pub struct SourceCache {
    dir: Utf8PathBuf,
    /// The directory, opened beneath whatever holds it (`None`: opened, and
    /// created, by its path at each fetch).
    root: Option<Arc<Root>>,
}

/// Why one attempt failed.
#[derive(Debug)]
enum Failure {
    /// Worth another try at the same place.
    Transient(String),
    /// Move on to the next place.
    Permanent(String),
    Interrupted,
}

/// One place to get a file from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Candidate {
    Http(String),
    Apt { package: String },
}

impl SourceCache {
    /// A cache in `dir`; the directory is created on the first fetch.
    pub fn new(dir: impl Into<Utf8PathBuf>) -> Self {
        SourceCache {
            dir: dir.into(),
            root: None,
        }
    }

    /// A cache in a directory already opened (beneath the build directory,
    /// say).
    pub fn in_root(root: Root) -> Self {
        SourceCache {
            dir: root.path().to_owned(),
            root: Some(Arc::new(root)),
        }
    }

    pub fn dir(&self) -> &Utf8Path {
        &self.dir
    }

    fn open(&self) -> Result<CacheDir, FetchError> {
        match &self.root {
            Some(r) => Ok(CacheDir { root: r.clone() }),
            None => Root::create(&self.dir)
                .map(|r| CacheDir { root: Arc::new(r) })
                .map_err(|source| FetchError::Cache {
                    dir: self.dir.clone(),
                    source,
                }),
        }
    }

    /// Returns a file in the cache that matched the checksum of the origin
    /// named by `Fetched::origin`, fetching it if needed. A cached file that
    /// fails verification is deleted (and reported through `say`) before
    /// anything is downloaded. `say` gets one line per place tried and per
    /// failure.
    pub fn fetch(
        &self,
        spec: &SourceSpec,
        opts: &FetchOptions,
        say: &mut dyn FnMut(&str),
    ) -> Result<Fetched, FetchError> {
        if spec.origins.is_empty() {
            return Err(FetchError::NoOrigins {
                package: spec.package.clone(),
            });
        }
        let cache = self.open()?;
        let interrupted = || FetchError::Interrupted {
            package: spec.package.clone(),
        };
        // Every name this source may have in the cache, locked in order: no
        // other fetch writes them meanwhile, and their `.part` files are
        // orphans.
        let mut names: Vec<&str> = spec
            .origins
            .iter()
            .map(Origin::file_name)
            .filter(|f| check_file_name(f).is_ok())
            .collect();
        names.sort();
        names.dedup();
        let mut locks = Vec::new();
        for n in names {
            match cache.lock(n, &opts.interrupt) {
                Ok(l) => locks.push(l),
                Err(Failure::Interrupted) => return Err(interrupted()),
                Err(Failure::Permanent(reason) | Failure::Transient(reason)) => {
                    return Err(FetchError::Cache {
                        dir: self.dir.clone(),
                        source: std::io::Error::other(reason),
                    });
                }
            }
        }
        if let Some(hit) = cache.look(spec, Some(say), &opts.interrupt) {
            return Ok(hit);
        }

        let agent = http::http_agent(opts);
        let mut attempts = Vec::new();
        for (idx, cand) in plan(spec, opts.preferred_mirror.as_deref()) {
            let origin = &spec.origins[idx];
            let from = match &cand {
                Candidate::Http(url) => url.clone(),
                Candidate::Apt { package } => format!("debian source package {package}"),
            };
            if opts.interrupt.is_set() {
                return Err(interrupted());
            }
            let file = origin.file_name();
            if let Err(reason) = check_file_name(file) {
                attempts.push(Attempt {
                    origin: idx,
                    from,
                    reason,
                });
                continue;
            }
            if origin.expected.is_empty() {
                let reason = format!(
                    "origin {} of `{}` has no sha256 or sha1, and unverified files are never kept",
                    idx + 1,
                    spec.package
                );
                attempts.push(Attempt {
                    origin: idx,
                    from,
                    reason,
                });
                continue;
            }
            say(&format!("fetching `{file}` from {from}"));
            let mut tries = 0;
            let result = loop {
                let r = match &cand {
                    Candidate::Http(url) => http_once(&cache, &agent, url, origin, opts),
                    Candidate::Apt { package } => debian::fetch(&cache, package, origin, opts),
                };
                match r {
                    Err(Failure::Transient(reason)) if tries < opts.retries => {
                        tries += 1;
                        say(&format!(
                            "{from}: {reason}; retrying ({tries} of {})",
                            opts.retries
                        ));
                        let delay = opts.retry_delay.saturating_mul(1 << (tries - 1).min(16));
                        if !sleep_unless_interrupted(delay, &opts.interrupt) {
                            break Err(Failure::Interrupted);
                        }
                    }
                    other => break other,
                }
            };
            match result {
                Ok(path) => {
                    return Ok(Fetched {
                        path,
                        origin: idx,
                        from,
                    });
                }
                Err(Failure::Interrupted) => return Err(interrupted()),
                Err(Failure::Transient(reason) | Failure::Permanent(reason)) => {
                    say(&format!("{from}: {reason}"));
                    attempts.push(Attempt {
                        origin: idx,
                        from,
                        reason,
                    });
                }
            }
        }
        drop(locks);
        Err(FetchError::AllFailed {
            package: spec.package.clone(),
            cache: self.dir.clone(),
            attempts,
        })
    }

    /// Looks only in the cache, with no network and no changes: returns the
    /// first origin's file that is present and matches that origin's checksum.
    pub fn cached(&self, spec: &SourceSpec) -> Option<Fetched> {
        self.open().ok()?.look(spec, None, &Interrupt::new())
    }
}

/// One download of `url` into a `.part` file, on a worker thread so that an
/// interrupt or the deadline is honoured at once, even while a read blocks
/// for up to `stall_timeout`; verified and renamed into the cache, or the
/// `.part` file removed.
fn http_once(
    cache: &CacheDir,
    agent: &ureq::Agent,
    url: &str,
    origin: &Origin,
    opts: &FetchOptions,
) -> Result<Utf8PathBuf, Failure> {
    let file = origin.file_name().to_string();
    let max_bytes = origin.size.unwrap_or(opts.max_bytes);
    let (part_name, part) = cache.new_part(&file)?;
    // Set to stop the worker when this side gives up on it.
    let stop = Interrupt::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let (agent, job_url, mut job_opts) = (agent.clone(), url.to_string(), opts.clone());
    job_opts.interrupt = stop.clone();
    let watched = opts.interrupt.clone();
    std::thread::spawn(move || {
        let _ = tx.send(http::download(
            &agent, &job_url, &job_opts, &file, max_bytes, part,
        ));
    });
    let deadline = Instant::now() + opts.deadline;
    let outcome = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => break r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if watched.is_set() {
                    break Err(Failure::Interrupted);
                }
                if Instant::now() > deadline {
                    break Err(Failure::Permanent(format!(
                        "the transfer took longer than {} s (FETCH_DEADLINE) and was stopped",
                        opts.deadline.as_secs()
                    )));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break Err(Failure::Permanent("the download thread died".to_string()));
            }
        }
    };
    match outcome {
        Ok(()) => cache.keep_if_verified(&part_name, origin, url, &opts.interrupt),
        Err(f) => {
            // The worker ends at its next read; its file is gone already.
            stop.set();
            cache.discard(&part_name);
            Err(f)
        }
    }
}

/// Every place to try, in order, with the index of the origin it belongs to.
fn plan(spec: &SourceSpec, preferred: Option<&str>) -> Vec<(usize, Candidate)> {
    let mut out: Vec<(usize, Candidate)> = Vec::new();
    let mut push = |idx: usize, c: Candidate| {
        if !out.iter().any(|(_, have)| *have == c) {
            out.push((idx, c));
        }
    };
    let urls = || {
        spec.origins
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o.kind, OriginKind::Url(_)))
    };
    if let Some(base) = preferred.filter(|b| !b.is_empty()) {
        for (idx, o) in urls() {
            push(idx, Candidate::Http(join_url(base, o.file_name())));
        }
    }
    for (idx, o) in urls() {
        if let OriginKind::Url(url) = &o.kind {
            push(idx, Candidate::Http(url.clone()));
        }
        for m in &o.mirrors {
            push(idx, Candidate::Http(join_url(m, o.file_name())));
        }
    }
    for (idx, o) in spec.origins.iter().enumerate() {
        if let OriginKind::Debian { package, .. } = &o.kind {
            for m in &o.mirrors {
                push(idx, Candidate::Http(join_url(m, o.file_name())));
            }
            push(
                idx,
                Candidate::Apt {
                    package: package.clone(),
                },
            );
        }
    }
    out
}

/// The last path segment of a URL, ignoring query and fragment.
fn url_file_name(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let path = &url[..end];
    let after_scheme = path.find("://").map_or(0, |i| i + 3);
    let path = &path[after_scheme..];
    match path.find('/') {
        Some(slash) => path[slash..].rsplit('/').next().unwrap_or(""),
        None => "",
    }
}

/// `base` + `/` + `file`, with exactly one slash between them.
pub fn join_url(base: &str, file: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), file)
}

fn check_file_name(file: &str) -> Result<(), String> {
    if file.is_empty() || file == "." || file == ".." || file.contains(['/', '\0']) {
        return Err(format!(
            "`{file}` is not usable as a file name in the cache: give a URL that ends in the \
             file name, or a plain Debian file name"
        ));
    }
    Ok(())
}

fn sleep_unless_interrupted(total: Duration, interrupt: &Interrupt) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < total {
        if interrupt.is_set() {
            return false;
        }
        std::thread::sleep((total - start.elapsed()).min(Duration::from_millis(50)));
    }
    !interrupt.is_set()
}

/// Fetch several sources, `workers` at a time (at most 4: mirrors do not
/// like more). `say(package, line)` reports progress, one line per event,
/// including `(cached)` for sources already in the cache. Returns the
/// failures by package; the others are in the cache, verified.
pub fn fetch_many(
    cache: &SourceCache,
    specs: &[SourceSpec],
    opts: &FetchOptions,
    workers: usize,
    say: &(dyn Fn(&str, &str) + Sync),
) -> Vec<(String, FetchError)> {
    let next = std::sync::Mutex::new(specs.iter());
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, 4) {
            s.spawn(|| {
                loop {
                    let Some(spec) = next.lock().unwrap().next() else {
                        break;
                    };
                    if let Some(f) = cache.cached(spec) {
                        say(
                            &spec.package,
                            &format!("{} (cached)", f.path.file_name().unwrap_or("")),
                        );
                        continue;
                    }
                    let mut line = |l: &str| say(&spec.package, l);
                    match cache.fetch(spec, opts, &mut line) {
                        Ok(f) => say(
                            &spec.package,
                            &format!("{} ({})", f.path.file_name().unwrap_or(""), f.from),
                        ),
                        Err(e) => failures.lock().unwrap().push((spec.package.clone(), e)),
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_origin(url: &str, mirrors: &[&str]) -> Origin {
        Origin {
            kind: OriginKind::Url(url.to_string()),
            mirrors: mirrors.iter().map(|m| m.to_string()).collect(),
            expected: Expected {
                sha1: None,
                sha256: Some("00".repeat(32)),
            },
            size: None,
        }
    }

    #[test]
    fn file_name_is_the_last_url_segment_without_query() {
        let o = url_origin("https://busybox.net/downloads/busybox-1.35.0.tar.bz2", &[]);
        assert_eq!(o.file_name(), "busybox-1.35.0.tar.bz2");
        let o = url_origin("https://example.org/a/b/x.tar.gz?raw=1#frag", &[]);
        assert_eq!(o.file_name(), "x.tar.gz");
        assert_eq!(url_origin("https://example.org/dir/", &[]).file_name(), "");
        assert_eq!(url_origin("https://example.org", &[]).file_name(), "");
        assert_eq!(url_origin("https://example.org?x=/y", &[]).file_name(), "");
        let d = Origin {
            kind: OriginKind::Debian {
                package: "busybox".into(),
                file: "busybox_1.35.0.orig.tar.bz2".into(),
            },
            mirrors: vec![],
            expected: Expected::default(),
            size: None,
        };
        assert_eq!(d.file_name(), "busybox_1.35.0.orig.tar.bz2");
    }

    #[test]
    fn unusable_file_names_are_refused() {
        for bad in ["", ".", "..", "a/b", "x\0y"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_file_name("linux-6.1.tar.xz").is_ok());
    }

    #[test]
    fn join_url_puts_exactly_one_slash() {
        assert_eq!(join_url("http://m/x", "f.tar"), "http://m/x/f.tar");
        assert_eq!(join_url("http://m/x/", "f.tar"), "http://m/x/f.tar");
        assert_eq!(join_url("http://m/x//", "f.tar"), "http://m/x/f.tar");
    }

    #[test]
    fn plan_orders_preferred_then_urls_and_mirrors_then_debian() {
        let spec = SourceSpec {
            package: "p".into(),
            origins: vec![
                Origin {
                    kind: OriginKind::Debian {
                        package: "p".into(),
                        file: "p_1.orig.tar.gz".into(),
                    },
                    mirrors: vec![],
                    expected: Expected::default(),
                    size: None,
                },
                url_origin("http://up/p-1.tar.gz", &["http://m1/", "http://m2"]),
            ],
        };
        let got = plan(&spec, Some("http://pref"));
        let want = vec![
            (1, Candidate::Http("http://pref/p-1.tar.gz".into())),
            (1, Candidate::Http("http://up/p-1.tar.gz".into())),
            (1, Candidate::Http("http://m1/p-1.tar.gz".into())),
            (1, Candidate::Http("http://m2/p-1.tar.gz".into())),
            (
                0,
                Candidate::Apt {
                    package: "p".into(),
                },
            ),
        ];
        assert_eq!(got, want);
        // A mirror equal to the preferred one is tried once.
        let got = plan(&spec, Some("http://m1"));
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn proxy_follows_scheme_and_no_proxy() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = env(&[
            ("http_proxy", "http://p1:3128"),
            ("https_proxy", "http://p2:3128"),
            ("no_proxy", "internal.example, .corp:8080"),
        ]);
        let p = |u: &str| http::proxy_for(u, &e).unwrap().map(|(_, v)| v);
        assert_eq!(p("http://ftp.gnu.org/x").as_deref(), Some("http://p1:3128"));
        assert_eq!(
            p("https://ftp.gnu.org/x").as_deref(),
            Some("http://p2:3128")
        );
        assert_eq!(p("https://internal.example/x"), None);
        assert_eq!(p("https://a.internal.example:8443/x"), None);
        assert_eq!(
            p("https://xinternal.example/x").as_deref(),
            Some("http://p2:3128")
        );
        assert_eq!(p("http://git.corp/x"), None);
        assert_eq!(p("http://127.0.0.1:8000/x"), None);
        assert_eq!(p("http://user:pw@[::1]:80/x"), None);
        let upper_http_only = env(&[("HTTP_PROXY", "http://evil:1")]);
        assert_eq!(
            http::proxy_for("http://a/b", &upper_http_only).unwrap(),
            None
        );
        let all = env(&[("ALL_PROXY", "http://p3:1"), ("NO_PROXY", "*")]);
        assert_eq!(http::proxy_for("http://a/b", &all).unwrap(), None);
        assert!(http::proxy_for("ftp://a/b", &all).is_err());
    }

    #[test]
    fn statuses_worth_retrying() {
        assert!(http::is_transient_status(503));
        assert!(http::is_transient_status(429));
        assert!(!http::is_transient_status(404));
        assert!(!http::is_transient_status(403));
    }

    #[test]
    fn debian_package_names_cannot_be_options() {
        assert!(debian::check_debian_package("busybox").is_ok());
        assert!(debian::check_debian_package("busybox=1:1.35.0-4+deb12u1").is_ok());
        assert!(debian::check_debian_package("-oDir=/").is_err());
        assert!(debian::check_debian_package("a b").is_err());
    }

    #[test]
    fn apt_without_deb_src_says_how_to_add_it() {
        let f = debian::apt_failure(
            "apt-get source --download-only busybox",
            "Reading package lists...\nE: You must put some 'deb-src' URIs in your sources.list\n",
            &[],
        );
        let Failure::Permanent(msg) = f else {
            panic!("{f:?}")
        };
        assert!(msg.contains("Types: deb-src"), "{msg}");
        assert!(msg.contains("/etc/apt/sources.list.d/"), "{msg}");
    }

    #[test]
    fn error_lists_every_attempt() {
        let e = FetchError::AllFailed {
            package: "busybox".into(),
            cache: "build/cache".into(),
            attempts: vec![
                Attempt {
                    origin: 0,
                    from: "http://a/x".into(),
                    reason: "HTTP 404 Not Found".into(),
                },
                Attempt {
                    origin: 1,
                    from: "debian source package busybox".into(),
                    reason: "nope".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "could not fetch the source of `busybox`: every origin failed:\n  \
             - http://a/x: HTTP 404 Not Found\n  - debian source package busybox: nope"
        );
        let help = miette::Diagnostic::help(&e).unwrap().to_string();
        assert!(help.contains("`build/cache`"), "{help}");
        assert!(help.contains("`--source busybox=PATH`"), "{help}");
    }
}
