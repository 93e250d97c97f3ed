//! Downloads over HTTP and HTTPS: one GET into a `.part` file, bounded in
//! size (the origin's `size`, or `FETCH_MAX_BYTES`); proxies as curl reads
//! them from the environment; the system's CA bundle.

use super::{Failure, FetchOptions};
use std::fs::File;
use std::io::{IsTerminal, Read, Write};

/// One GET of `url` into `part`, at most `max_bytes` of body (the
/// origin's `size` when it gives one); the body complete and synced to
/// disk, or the failure. The caller bounds the whole transfer in time.
pub(super) fn download(
    agent: &ureq::Agent,
    url: &str,
    opts: &FetchOptions,
    file: &str,
    max_bytes: u64,
    mut part: File,
) -> Result<(), Failure> {
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
    if let Some(total) = total
        && total > max_bytes
    {
        return Err(Failure::Permanent(format!(
            "the server announces {total} bytes, more than the {max_bytes} allowed (the origin's `size`, or FETCH_MAX_BYTES)"
        )));
    }
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
        got += n as u64;
        if got > max_bytes {
            return Err(Failure::Permanent(format!(
                "the server sent more than the {max_bytes} bytes allowed (the origin's `size`, or FETCH_MAX_BYTES); the transfer was stopped"
            )));
        }
        part.write_all(&buf[..n])
            .map_err(|e| Failure::Permanent(format!("cannot write `{file}.part`: {e}")))?;
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
    part.sync_all()
        .map_err(|e| Failure::Permanent(format!("cannot sync: {e}")))?;
    Ok(())
}

pub(super) fn http_agent(opts: &FetchOptions) -> ureq::Agent {
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

pub(super) fn is_transient_status(code: u16) -> bool {
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
pub(super) fn proxy_for(
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
