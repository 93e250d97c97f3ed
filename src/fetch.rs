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

use crate::checksum::{self, Expected};
use crate::interrupt::{self, Interrupt};
use camino::{Utf8Path, Utf8PathBuf};
use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

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
}

impl Default for FetchOptions {
    /// 15 s connect timeout, 30 s stall timeout, 2 retries 1 s apart, no
    /// preferred mirror, no progress bar.
    fn default() -> Self {
        FetchOptions {
            preferred_mirror: None,
            connect_timeout: Duration::from_secs(15),
            stall_timeout: Duration::from_secs(30),
            retries: 2,
            retry_delay: Duration::from_secs(1),
            progress: false,
            interrupt: Interrupt::new(),
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
             set PREFERRED_MIRROR to a mirror that holds the file, or put a copy that matches \
             the checksum into `{cache}`"
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
        SourceCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Utf8Path {
        &self.dir
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
        std::fs::create_dir_all(&self.dir).map_err(|source| FetchError::Cache {
            dir: self.dir.clone(),
            source,
        })?;
        if let Some(hit) = self.look_in_cache(spec, Some(say)) {
            return Ok(hit);
        }

        let agent = http_agent(opts);
        let mut attempts = Vec::new();
        for (idx, cand) in plan(spec, opts.preferred_mirror.as_deref()) {
            let origin = &spec.origins[idx];
            let from = match &cand {
                Candidate::Http(url) => url.clone(),
                Candidate::Apt { package } => format!("debian source package {package}"),
            };
            if opts.interrupt.is_set() {
                return Err(FetchError::Interrupted {
                    package: spec.package.clone(),
                });
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
                    Candidate::Http(url) => self.http_once(&agent, url, origin, opts),
                    Candidate::Apt { package } => self.apt_once(package, origin, opts),
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
                Err(Failure::Interrupted) => {
                    return Err(FetchError::Interrupted {
                        package: spec.package.clone(),
                    });
                }
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
        Err(FetchError::AllFailed {
            package: spec.package.clone(),
            cache: self.dir.clone(),
            attempts,
        })
    }

    /// Looks only in the cache, with no network and no changes: returns the
    /// first origin's file that is present and matches that origin's checksum.
    pub fn cached(&self, spec: &SourceSpec) -> Option<Fetched> {
        self.look_in_cache(spec, None)
    }

    /// With `say`, files that match none of the origins naming them are
    /// deleted and reported.
    fn look_in_cache(
        &self,
        spec: &SourceSpec,
        mut say: Option<&mut dyn FnMut(&str)>,
    ) -> Option<Fetched> {
        let mut seen: Vec<&str> = Vec::new();
        for origin in &spec.origins {
            let file = origin.file_name();
            if seen.contains(&file) || check_file_name(file).is_err() {
                continue;
            }
            seen.push(file);
            let path = self.dir.join(file);
            if !path.is_file() {
                continue;
            }
            // Origins may share a file name with different contents (say, a
            // repacked tarball): the file is good if any of them vouches for it.
            let mut mismatch = None;
            for (idx, o) in spec.origins.iter().enumerate() {
                if o.file_name() != file || o.expected.is_empty() {
                    continue;
                }
                if stamp_holds(&path, &o.expected) {
                    return Some(Fetched {
                        path,
                        origin: idx,
                        from: "cache".to_string(),
                    });
                }
                match checksum::verify_file(&path, &o.expected) {
                    Ok(Ok(())) => {
                        write_stamp(&path, &o.expected);
                        return Some(Fetched {
                            path,
                            origin: idx,
                            from: "cache".to_string(),
                        });
                    }
                    Ok(Err(m)) => mismatch = Some(m.short()),
                    Err(e) => mismatch = Some(format!("cannot be read ({e})")),
                }
            }
            if let (Some(say), Some(why)) = (say.as_mut(), mismatch) {
                let _ = std::fs::remove_file(&path);
                say(&format!(
                    "cached `{file}` does not match its checksum ({why}): deleted it, fetching it again"
                ));
            }
        }
        None
    }

    fn new_part_file(&self, file: &str) -> Result<tempfile::NamedTempFile, Failure> {
        tempfile::Builder::new()
            .prefix(&format!("{file}."))
            .suffix(".part")
            .tempfile_in(&self.dir)
            .map_err(|e| Failure::Permanent(format!("cannot create a file in `{}`: {e}", self.dir)))
    }

    /// Verifies `src` against the origin and renames it into the cache.
    fn keep_if_verified(
        &self,
        src: &Utf8Path,
        origin: &Origin,
        from: &str,
    ) -> Result<Utf8PathBuf, Failure> {
        let file = origin.file_name();
        match checksum::verify_file(src, &origin.expected) {
            Ok(Ok(())) => {}
            Ok(Err(m)) => {
                return Err(Failure::Permanent(format!(
                    "checksum mismatch for `{file}` from {from}: {} (the file was not kept)",
                    m.short()
                )));
            }
            Err(e) => return Err(Failure::Permanent(format!("cannot read back `{src}`: {e}"))),
        }
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(src, std::fs::Permissions::from_mode(0o644));
        let dest = self.dir.join(file);
        std::fs::rename(src, &dest)
            .map_err(|e| Failure::Permanent(format!("cannot rename `{src}` to `{dest}`: {e}")))?;
        write_stamp(&dest, &origin.expected);
        Ok(dest)
    }

    /// Downloads on a worker thread so that an interrupt is honoured at once,
    /// even while a read blocks for up to `stall_timeout`; the `.part` file is
    /// removed before returning in every failure case.
    fn http_once(
        &self,
        agent: &ureq::Agent,
        url: &str,
        origin: &Origin,
        opts: &FetchOptions,
    ) -> Result<Utf8PathBuf, Failure> {
        let file = origin.file_name();
        let part = self.new_part_file(file)?;
        let part_path = utf8(part.path().to_path_buf())?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (agent, job_url, job_opts, job_file) = (
            agent.clone(),
            url.to_string(),
            opts.clone(),
            file.to_string(),
        );
        std::thread::spawn(move || {
            let _ = tx.send(download(&agent, &job_url, &job_opts, &job_file, part));
        });
        let part = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => break r?,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if opts.interrupt.is_set() {
                        // The worker still holds the file open; unlinking is
                        // enough, and it ends at its next read.
                        let _ = std::fs::remove_file(&part_path);
                        return Err(Failure::Interrupted);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = std::fs::remove_file(&part_path);
                    return Err(Failure::Permanent("the download thread died".to_string()));
                }
            }
        };
        // On failure `tmp_path` is dropped and removes the file; on success
        // the file has been renamed and `keep` stops that.
        let tmp_path = part.into_temp_path();
        let kept = self.keep_if_verified(&part_path, origin, url)?;
        let _ = tmp_path.keep();
        Ok(kept)
    }

    fn apt_once(
        &self,
        package: &str,
        origin: &Origin,
        opts: &FetchOptions,
    ) -> Result<Utf8PathBuf, Failure> {
        check_debian_package(package).map_err(Failure::Permanent)?;
        let file = origin.file_name();
        let from = format!("debian source package {package}");
        // Inside the cache so the final rename stays on one file system.
        let tmp = tempfile::Builder::new()
            .prefix(".apt-source.")
            .tempdir_in(&self.dir)
            .map_err(|e| {
                Failure::Permanent(format!("cannot create a directory in `{}`: {e}", self.dir))
            })?;
        let tmp_dir = utf8(tmp.path().to_path_buf())?;
        let shown = format!("apt-get source --download-only {package}");
        let out = run_apt_source(package, &tmp_dir, &opts.interrupt).map_err(|e| match e {
            AptError::Interrupted => Failure::Interrupted,
            AptError::Missing => Failure::Permanent(
                "`apt-get` is not installed: a Debian origin needs a Debian or Ubuntu host \
                 (or drop the origin)"
                    .to_string(),
            ),
            AptError::Io(e) => Failure::Permanent(format!("cannot run `{shown}`: {e}")),
        })?;
        let downloaded = list_dir(&tmp_dir);
        let got = tmp_dir.join(file);
        // Only the named file matters, and it is verified below: apt-get
        // failing on another file of the source package (a .debian.tar.xz
        // the archive no longer has, say) does not make it unusable.
        if !out.success && !got.is_file() {
            return Err(apt_failure(&shown, &out.output, &downloaded));
        }
        if !got.is_file() {
            return Err(Failure::Permanent(format!(
                "`{shown}` did not download `{file}`; it downloaded {} (the archive may carry \
                 another version: update the origin, or pin one with `{package}=VERSION`)",
                describe_list(&downloaded)
            )));
        }
        // `tmp` is removed when it goes out of scope, whatever happens here.
        self.keep_if_verified(&got, origin, &from)
    }
}

/// One GET of `url` into `part`; returns it complete and synced to disk.
fn download(
    agent: &ureq::Agent,
    url: &str,
    opts: &FetchOptions,
    file: &str,
    mut part: tempfile::NamedTempFile,
) -> Result<tempfile::NamedTempFile, Failure> {
    let (proxy, via) = match proxy_for(url, &|k| std::env::var(k).ok()) {
        Ok(Some((var, value))) => {
            let p = ureq::Proxy::new(&value).map_err(|e| {
                Failure::Permanent(format!("the proxy `{value}` in `{var}` is not usable: {e}"))
            })?;
            (
                Some(p),
                format!(" (through the proxy `{value}` from `{var}`)"),
            )
        }
        Ok(None) => (None, String::new()),
        Err(e) => return Err(Failure::Permanent(e)),
    };
    let resp = agent
        .get(url)
        // Bytes as stored: a server that gzips a .tar.gz again would
        // otherwise have it unpacked once on the way.
        .header("Accept-Encoding", "identity")
        .config()
        .proxy(proxy)
        .build()
        .call()
        .map_err(|e| match classify(e, opts) {
            Failure::Transient(r) => Failure::Transient(r + via.as_str()),
            Failure::Permanent(r) => Failure::Permanent(r + via.as_str()),
            Failure::Interrupted => Failure::Interrupted,
        })?;
    let status = resp.status();
    if !status.is_success() {
        let text = format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        let text = text.trim_end().to_string();
        return Err(if is_transient_status(status.as_u16()) {
            Failure::Transient(text)
        } else {
            Failure::Permanent(text)
        });
    }
    let total = resp.body().content_length();
    let mut body = resp.into_body().into_reader();
    let bar = progress_bar(opts, total, file);
    let mut buf = vec![0u8; 64 * 1024];
    let mut got: u64 = 0;
    loop {
        if opts.interrupt.is_set() {
            return Err(Failure::Interrupted);
        }
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let mut f = classify(ureq::Error::from(e), opts);
                if let (Failure::Transient(r), Some(total)) = (&mut f, total) {
                    *r = format!("{r} after {got} of {total} bytes");
                }
                return Err(f);
            }
        };
        part.write_all(&buf[..n]).map_err(|e| {
            Failure::Permanent(format!("cannot write to `{}`: {e}", part.path().display()))
        })?;
        got += n as u64;
        if let Some(bar) = &bar {
            bar.set_position(got);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(total) = total
        && got != total
    {
        return Err(Failure::Transient(format!(
            "connection closed after {got} of {total} bytes"
        )));
    }
    part.as_file()
        .sync_all()
        .map_err(|e| Failure::Permanent(format!("cannot sync: {e}")))?;
    Ok(part)
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

fn check_debian_package(package: &str) -> Result<(), String> {
    let ok = !package.is_empty()
        && !package.starts_with('-')
        && package
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.=:~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{package}` is not a Debian source package name (expected lowercase letters, digits \
             and + - . with an optional =VERSION)"
        ))
    }
}

fn utf8(p: std::path::PathBuf) -> Result<Utf8PathBuf, Failure> {
    Utf8PathBuf::from_path_buf(p)
        .map_err(|p| Failure::Permanent(format!("`{}` is not a UTF-8 path", p.display())))
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

fn http_agent(opts: &FetchOptions) -> ureq::Agent {
    ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_resolve(Some(opts.connect_timeout))
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_per_read(Some(opts.stall_timeout))
        .user_agent(concat!("rhbuild/", env!("CARGO_PKG_VERSION")))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(root_certs())
                .build(),
        )
        .build()
        .new_agent()
}

/// The system's CA bundle, as curl and apt use it (so that a site-local CA,
/// such as an intercepting proxy's, is trusted the same way), or Mozilla's
/// built-in roots where the system has no bundle. `SSL_CERT_FILE` overrides.
fn root_certs() -> ureq::tls::RootCerts {
    let candidates = std::env::var("SSL_CERT_FILE")
        .ok()
        .filter(|s| !s.is_empty())
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ]
            .map(String::from),
        );
    for path in candidates {
        let Ok(pem) = std::fs::read(&path) else {
            continue;
        };
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if !certs.is_empty() {
            return ureq::tls::RootCerts::new_with_certs(&certs);
        }
    }
    ureq::tls::RootCerts::WebPki
}

fn is_transient_status(code: u16) -> bool {
    code >= 500 || code == 408 || code == 429
}

fn classify(e: ureq::Error, opts: &FetchOptions) -> Failure {
    use std::io::ErrorKind as K;
    use ureq::Timeout as T;
    match e {
        ureq::Error::Timeout(T::Resolve | T::Connect) => Failure::Permanent(format!(
            "could not connect within {} s",
            opts.connect_timeout.as_secs_f32()
        )),
        ureq::Error::Timeout(_) => Failure::Transient(format!(
            "stalled: no data for {} s",
            opts.stall_timeout.as_secs_f32()
        )),
        ureq::Error::HostNotFound => {
            Failure::Permanent("host not found (check DNS, or the proxy settings)".to_string())
        }
        ureq::Error::ConnectionFailed => Failure::Permanent("connection failed".to_string()),
        ureq::Error::Io(e) => match e.kind() {
            K::ConnectionRefused => Failure::Permanent("connection refused".to_string()),
            K::UnexpectedEof => Failure::Transient("connection closed early".to_string()),
            K::TimedOut | K::WouldBlock => Failure::Transient(format!(
                "stalled: no data for {} s",
                opts.stall_timeout.as_secs_f32()
            )),
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                Failure::Transient(format!("connection lost ({e})"))
            }
            // Name resolution, permissions, and other local or lasting trouble.
            _ => Failure::Permanent(e.to_string()),
        },
        ureq::Error::Protocol(p) => Failure::Transient(format!("bad HTTP response ({p})")),
        other => Failure::Permanent(other.to_string()),
    }
}

fn progress_bar(
    opts: &FetchOptions,
    total: Option<u64>,
    file: &str,
) -> Option<indicatif::ProgressBar> {
    if !opts.progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let target = indicatif::ProgressDrawTarget::stderr();
    let bar = match total {
        Some(len) => indicatif::ProgressBar::with_draw_target(Some(len), target).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .ok()?
            .progress_chars("=> "),
        ),
        None => indicatif::ProgressBar::with_draw_target(None, target).with_style(
            indicatif::ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}")
                .ok()?,
        ),
    };
    bar.set_message(file.to_string());
    // A failed download's bar disappears too: say() reports the failure.
    Some(bar.with_finish(indicatif::ProgressFinish::AndClear))
}

/// The proxy for `url` as (variable name, value), from `get` (the
/// environment): `http_proxy` for http, `https_proxy`/`HTTPS_PROXY` for
/// https, then `all_proxy`/`ALL_PROXY`; none for hosts in
/// `no_proxy`/`NO_PROXY` and for loopback hosts, which no proxy can reach.
fn proxy_for(
    url: &str,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(String, String)>, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "`{url}` is not a URL (expected http://… or https://…)"
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    let vars: &[&str] = match scheme.as_str() {
        // Uppercase HTTP_PROXY is ignored, as curl does: CGI sets it from a
        // request header.
        "http" => &["http_proxy", "all_proxy", "ALL_PROXY"],
        "https" => &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"],
        _ => return Err(format!("`{url}` is neither http:// nor https://")),
    };
    let host = url_host(rest);
    if is_loopback(&host) {
        return Ok(None);
    }
    let no_proxy = get("no_proxy")
        .or_else(|| get("NO_PROXY"))
        .unwrap_or_default();
    if no_proxy_matches(&no_proxy, &host) {
        return Ok(None);
    }
    for var in vars {
        if let Some(v) = get(var).filter(|v| !v.trim().is_empty()) {
            return Ok(Some((var.to_string(), v.trim().to_string())));
        }
    }
    Ok(None)
}

/// The lowercase host of what follows `scheme://`, without user info, port
/// or IPv6 brackets.
fn url_host(rest: &str) -> String {
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    host.to_ascii_lowercase()
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// `no_proxy` semantics as curl has them: `*` matches every host; an entry
/// matches the host itself and its subdomains; a leading `.` or `*.` is
/// ignored; a `:port` suffix on an entry is ignored.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.trim_start_matches('*').trim_start_matches('.');
            let entry = match entry.rsplit_once(':') {
                Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
                    h
                }
                _ => entry,
            };
            let entry = entry
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            !entry.is_empty()
                && (host == entry
                    || host
                        .strip_suffix(entry.as_str())
                        .is_some_and(|p| p.ends_with('.')))
        })
}

struct AptOutput {
    success: bool,
    output: String,
}

enum AptError {
    Missing,
    Interrupted,
    Io(std::io::Error),
}

/// Runs `apt-get source --download-only PACKAGE` in `dir`, in a process group
/// of its own so an interrupt can kill it with its download helpers.
fn run_apt_source(package: &str, dir: &Utf8Path, stop: &Interrupt) -> Result<AptOutput, AptError> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new("apt-get");
    // As root, apt drops to the `_apt` user, which cannot write into our
    // private temporary directory; it then warns and downloads as root anyway.
    // SAFETY: geteuid(2) has no preconditions and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        cmd.args(["-o", "APT::Sandbox::User=root"]);
    }
    cmd.args(["source", "--download-only", package])
        .current_dir(dir)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AptError::Missing,
        _ => AptError::Io(e),
    })?;
    let collect = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let mut bytes = Vec::new();
                let _ = r.read_to_end(&mut bytes);
                s = String::from_utf8_lossy(&bytes).into_owned();
            }
            s
        })
    };
    let out = collect(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = collect(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(AptError::Io(e)),
        }
        if stop.is_set() {
            interrupt::kill_group(child.id());
            let _ = child.wait();
            return Err(AptError::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = out.join().unwrap_or_default();
    output.push_str(&err.join().unwrap_or_default());
    Ok(AptOutput {
        success: status.success(),
        output,
    })
}

fn apt_failure(shown: &str, output: &str, downloaded: &[String]) -> Failure {
    if output.contains("You must put some 'deb-src' URIs in your sources.list") {
        return Failure::Permanent(format!(
            "`{shown}` found no deb-src entries: add a `Types: deb-src` entry (with the same \
             URIs and Suites as your `Types: deb` entry) to a file in /etc/apt/sources.list.d/, \
             then run `apt-get update`"
        ));
    }
    if output.contains("Unable to find a source package for") {
        return Failure::Permanent(format!(
            "`{shown}` found no such source package: run `apt-get update` (its deb-src index may \
             be missing or stale), or check the package name"
        ));
    }
    let last: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = last[last.len().saturating_sub(4)..].join(" / ");
    let text = format!(
        "`{shown}` failed: {tail}; it downloaded {}",
        describe_list(downloaded)
    );
    if output.contains("Failed to fetch") || output.contains("Temporary failure resolving") {
        Failure::Transient(text)
    } else {
        Failure::Permanent(text)
    }
}

fn list_dir(dir: &Utf8Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn describe_list(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where the verification stamp of a cached file lives: beside it, hidden.
fn stamp_path(path: &Utf8Path) -> Utf8PathBuf {
    let name = path.file_name().unwrap_or("");
    path.with_file_name(format!(".{name}.verified"))
}

/// What a stamp holds: the checksums the file matched and the metadata it
/// had then. The inode change time moves on any write, rename or chmod and
/// cannot be set back by a user, so a file whose metadata still matches is
/// the one that was verified.
fn stamp_text(path: &Utf8Path, expected: &checksum::Expected) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "{:?} {:?} size={} ino={} mtime={}.{} ctime={}.{}\n",
        expected.sha256,
        expected.sha1,
        m.size(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

fn write_stamp(path: &Utf8Path, expected: &checksum::Expected) {
    if let Some(text) = stamp_text(path, expected) {
        // A stamp is only a shortcut: failing to write one costs a re-hash.
        let _ = std::fs::write(stamp_path(path), text);
    }
}

/// Whether `path` still is the file that was verified against `expected`,
/// so re-hashing it can be skipped (a second `rhbuild fetch` with
/// everything cached then costs a few `stat` calls).
fn stamp_holds(path: &Utf8Path, expected: &checksum::Expected) -> bool {
    match (
        std::fs::read_to_string(stamp_path(path)),
        stamp_text(path, expected),
    ) {
        (Ok(stored), Some(now)) => stored == now,
        _ => false,
    }
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
        let p = |u: &str| proxy_for(u, &e).unwrap().map(|(_, v)| v);
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
        assert_eq!(proxy_for("http://a/b", &upper_http_only).unwrap(), None);
        let all = env(&[("ALL_PROXY", "http://p3:1"), ("NO_PROXY", "*")]);
        assert_eq!(proxy_for("http://a/b", &all).unwrap(), None);
        assert!(proxy_for("ftp://a/b", &all).is_err());
    }

    #[test]
    fn statuses_worth_retrying() {
        assert!(is_transient_status(503));
        assert!(is_transient_status(429));
        assert!(!is_transient_status(404));
        assert!(!is_transient_status(403));
    }

    #[test]
    fn debian_package_names_cannot_be_options() {
        assert!(check_debian_package("busybox").is_ok());
        assert!(check_debian_package("busybox=1:1.35.0-4+deb12u1").is_ok());
        assert!(check_debian_package("-oDir=/").is_err());
        assert!(check_debian_package("a b").is_err());
    }

    #[test]
    fn apt_without_deb_src_says_how_to_add_it() {
        let f = apt_failure(
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
    }
}
