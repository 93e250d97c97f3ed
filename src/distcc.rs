//! Spreading a build's compiles over distcc servers (`DISTCC_HOSTS`).
//!
//! `DISTCC_HOSTS` names the servers in distcc's own syntax
//! (`127.0.0.1:3632/2 192.168.1.5/8`). Build commands run in an empty
//! network namespace, so they cannot reach those servers themselves: the
//! sandbox forwards one port on the namespace's loopback to each server
//! (see `sandbox`), and the commands see `DISTCC_HOSTS` rewritten to those
//! ports. This module owns the setting's syntax, that rewriting, and the
//! airlock's distcc directory:
//!
//! - `bin/distcc`: the host's distcc;
//! - `prefix/distcc`: rhbuild itself, ccache's `CCACHE_PREFIX`. ccache
//!   calls its prefix with the compiler's absolute path, which distccd
//!   refuses to run (it runs only compilers named as in `/usr/lib/distcc`);
//!   under this name rhbuild runs distcc with the compiler's bare name,
//!   which distcc finds in the airlock's `PATH` as ccache did;
//! - `host/` and `cross/`: masquerade links (`gcc`, `<triple>-gcc`, ...
//!   leading to distcc), first in `PATH` when compiles do not go through
//!   ccache; distcc runs the next compiler of that name in `PATH` for the
//!   preprocessor and sends the name to the server.
//!
//! Which compiles go out is the scripts' choice: those through ccache (the
//! toolchain's host side, the kernel, busybox) when ccache is used, else
//! those of the host compiler and, outside the stages that build the
//! toolchain, of the toolchain's compiler. Every server needs the same
//! compilers under those names (see docs/targets.md).

use crate::sandbox::Forward;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::process::ExitCode;

/// distccd's port when a host names none.
pub const DEFAULT_PORT: u16 = 3632;

/// distcc's own limit for a host that names none.
const DEFAULT_LIMIT: u32 = 4;

/// The masquerade names of the host's compiler.
pub const HOST_COMPILERS: &[&str] = &["cc", "gcc", "c++", "g++"];

/// The name rhbuild answers to as ccache's prefix.
pub const PREFIX_NAME: &str = "distcc";

/// One entry of `DISTCC_HOSTS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// distcc's `localhost`: compile slots on this machine, no connection.
    Local { limit: Option<u32> },
    /// A distccd reached over TCP.
    Tcp {
        addr: SocketAddrV4,
        limit: Option<u32>,
        lzo: bool,
    },
}

/// The servers `DISTCC_HOSTS` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hosts {
    pub hosts: Vec<Host>,
    randomize: bool,
}

fn bad(token: &str, why: &str) -> String {
    format!(
        "`DISTCC_HOSTS`: `{token}` {why}; expected HOST[:PORT][/LIMIT][,lzo] entries separated by spaces, HOST an IPv4 address or a name (for example `127.0.0.1:3632/2 192.168.1.5/8`); ssh hosts (`@host`), pump mode (`,cpp`) and IPv6 are not supported"
    )
}

impl Hosts {
    /// Parse the setting; names are resolved now, to IPv4 addresses.
    pub fn parse(text: &str) -> Result<Hosts, String> {
        let mut hosts = Vec::new();
        let mut randomize = false;
        for token in text.split_whitespace() {
            if token == "--randomize" {
                randomize = true;
                continue;
            }
            if token.starts_with('-') {
                return Err(bad(token, "is an option rhbuild does not pass on"));
            }
            if token.contains('@') {
                return Err(bad(token, "is an ssh host"));
            }
            let (spec, opts) = token.split_once(',').unwrap_or((token, ""));
            let mut lzo = false;
            for o in opts.split(',').filter(|o| !o.is_empty()) {
                match o {
                    "lzo" => lzo = true,
                    _ => return Err(bad(token, &format!("has the option `{o}`"))),
                }
            }
            let (spec, limit) = match spec.split_once('/') {
                Some((s, l)) => match l.parse::<u32>() {
                    Ok(n) if n > 0 => (s, Some(n)),
                    _ => return Err(bad(token, "has a limit that is not a positive number")),
                },
                None => (spec, None),
            };
            if spec.starts_with('[') {
                return Err(bad(token, "is an IPv6 address"));
            }
            if spec == "localhost" {
                if lzo {
                    return Err(bad(token, "compresses a local slot"));
                }
                hosts.push(Host::Local { limit });
                continue;
            }
            let (name, port) = match spec.rsplit_once(':') {
                Some((n, p)) => match p.parse::<u16>() {
                    Ok(p) if p > 0 => (n, p),
                    _ => {
                        return Err(bad(
                            token,
                            "has a port that is not a number from 1 to 65535",
                        ));
                    }
                },
                None => (spec, DEFAULT_PORT),
            };
            if name.is_empty() || name.contains(':') {
                return Err(bad(token, "names no host"));
            }
            let addr = match name.parse::<std::net::Ipv4Addr>() {
                Ok(ip) => SocketAddrV4::new(ip, port),
                Err(_) => (name, port)
                    .to_socket_addrs()
                    .map_err(|e| bad(token, &format!("cannot be resolved ({e})")))?
                    .find_map(|a| match a {
                        SocketAddr::V4(v4) => Some(v4),
                        SocketAddr::V6(_) => None,
                    })
                    .ok_or_else(|| bad(token, "has no IPv4 address"))?,
            };
            if hosts
                .iter()
                .any(|h| matches!(h, Host::Tcp { addr: a, .. } if *a == addr))
            {
                return Err(bad(token, &format!("names {addr} a second time")));
            }
            hosts.push(Host::Tcp { addr, limit, lzo });
        }
        if !hosts.iter().any(|h| matches!(h, Host::Tcp { .. })) {
            return Err(format!(
                "`DISTCC_HOSTS` is `{text}`, which names no server; name at least one as HOST[:PORT][/LIMIT] (for example `127.0.0.1:3632/2`), or leave it empty to compile here"
            ));
        }
        Ok(Hosts { hosts, randomize })
    }

    /// The servers, in order.
    pub fn servers(&self) -> Vec<SocketAddrV4> {
        self.hosts
            .iter()
            .filter_map(|h| match h {
                Host::Tcp { addr, .. } => Some(*addr),
                Host::Local { .. } => None,
            })
            .collect()
    }

    /// The port on the sandbox's loopback that leads to each server: a
    /// server on 127.0.0.1 keeps its port; another (127.0.0.2 too) gets
    /// the first port from 3632 up that nothing else uses.
    pub fn forwards(&self) -> Vec<Forward> {
        let servers = self.servers();
        let mut used: Vec<u16> = servers
            .iter()
            .filter(|a| *a.ip() == Ipv4Addr::LOCALHOST)
            .map(|a| a.port())
            .collect();
        let mut next = DEFAULT_PORT;
        servers
            .into_iter()
            .map(|target| {
                let local = if *target.ip() == Ipv4Addr::LOCALHOST {
                    target.port()
                } else {
                    while used.contains(&next) {
                        next = next.wrapping_add(1).max(1024);
                    }
                    used.push(next);
                    next
                };
                Forward { local, target }
            })
            .collect()
    }

    /// `DISTCC_HOSTS` as build commands see it: the forwarded ports on
    /// 127.0.0.1 when `forwarded`, else the servers themselves.
    pub fn for_commands(&self, forwarded: bool) -> String {
        let forwards = self.forwards();
        let mut words = Vec::new();
        if self.randomize {
            words.push("--randomize".to_string());
        }
        let mut i = 0;
        for h in &self.hosts {
            let limit = |l: &Option<u32>| l.map(|n| format!("/{n}")).unwrap_or_default();
            match h {
                Host::Local { limit: l } => words.push(format!("localhost{}", limit(l))),
                Host::Tcp {
                    addr,
                    limit: l,
                    lzo,
                } => {
                    let shown = if forwarded {
                        format!("127.0.0.1:{}", forwards[i].local)
                    } else {
                        addr.to_string()
                    };
                    i += 1;
                    let opts = if *lzo { ",lzo" } else { "" };
                    words.push(format!("{shown}{}{opts}", limit(l)));
                }
            }
        }
        words.join(" ")
    }

    /// How many compiles the servers take at once (distcc's default of
    /// four for a host without a limit).
    pub fn slots(&self) -> u32 {
        self.hosts
            .iter()
            .map(|h| match h {
                Host::Tcp { limit, .. } => limit.unwrap_or(DEFAULT_LIMIT),
                Host::Local { .. } => 0,
            })
            .sum()
    }
}

/// The masquerade names of a toolchain whose tools are `<triple>-*`.
pub fn cross_compilers(triple: &str) -> Vec<String> {
    ["gcc", "cc", "g++", "c++"]
        .iter()
        .map(|t| format!("{triple}-{t}"))
        .collect()
}

/// Fill the airlock's distcc directory `rel` beneath `root` (replacing
/// what was there): `bin/distcc` (the host's `distcc`), `prefix/distcc`
/// (`rhbuild`, ccache's prefix), and the masquerade directories `host/`
/// and, with a triple, `cross/`.
pub fn populate(
    root: &crate::confine::Root,
    rel: &camino::Utf8Path,
    distcc: &camino::Utf8Path,
    rhbuild: &camino::Utf8Path,
    triple: Option<&str>,
) -> std::io::Result<()> {
    root.remove_all(rel, None)?;
    root.mkdir_all(rel)?;
    for d in ["bin", "prefix", "host", "cross"] {
        root.mkdir(&rel.join(d), 0o755)?;
    }
    root.symlink(distcc.as_str(), &rel.join("bin/distcc"))?;
    root.symlink(rhbuild.as_str(), &rel.join("prefix").join(PREFIX_NAME))?;
    for name in HOST_COMPILERS {
        root.symlink(distcc.as_str(), &rel.join("host").join(name))?;
    }
    for name in triple.map(cross_compilers).unwrap_or_default() {
        root.symlink(distcc.as_str(), &rel.join("cross").join(name))?;
    }
    Ok(())
}

/// rhbuild run as `prefix/distcc` (ccache's `CCACHE_PREFIX`): run
/// `../bin/distcc` with the compiler (the first argument) by its bare
/// name. `None` when rhbuild runs under another name.
pub fn dispatch() -> Option<ExitCode> {
    use std::os::unix::process::CommandExt;
    let mut argv = std::env::args_os();
    let argv0 = std::path::PathBuf::from(argv.next()?);
    if argv0.file_name()? != PREFIX_NAME {
        return None;
    }
    let fail = |m: String| {
        eprintln!("distcc (rhbuild, ccache's prefix): {m}");
        Some(ExitCode::from(2))
    };
    let Some(real) = argv0
        .parent()
        .and_then(std::path::Path::parent)
        .filter(|_| argv0.is_absolute())
        .map(|d| d.join("bin/distcc"))
    else {
        return fail(format!(
            "run as `{}`: expected the absolute path of the airlock's prefix/distcc",
            argv0.display()
        ));
    };
    let args: Vec<std::ffi::OsString> = argv.collect();
    let Some(compiler) = args.first() else {
        return fail("expected a compiler and its arguments".into());
    };
    let bare = std::path::Path::new(compiler)
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| compiler.clone());
    let e = std::process::Command::new(&real)
        .arg0("distcc")
        .arg(bare)
        .args(&args[1..])
        .exec();
    fail(format!("cannot run `{}`: {e}", real.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_and_forward_to_loopback_ports() {
        let h = Hosts::parse(
            "127.0.0.1:3633/2  10.1.2.3/8,lzo localhost/1 127.0.0.1:3632 127.0.0.2:3632",
        )
        .unwrap();
        assert_eq!(h.slots(), 2 + 8 + 4 + 4);
        let f = h.forwards();
        let pairs: Vec<(u16, String)> = f.iter().map(|f| (f.local, f.target.to_string())).collect();
        // The loopback servers keep their ports; the other gets the first
        // one free from 3632 up.
        assert_eq!(
            pairs,
            [
                (3633, "127.0.0.1:3633".to_string()),
                (3634, "10.1.2.3:3632".to_string()),
                (3632, "127.0.0.1:3632".to_string()),
                (3635, "127.0.0.2:3632".to_string()),
            ]
        );
        assert_eq!(
            h.for_commands(true),
            "127.0.0.1:3633/2 127.0.0.1:3634/8,lzo localhost/1 127.0.0.1:3632 127.0.0.1:3635"
        );
        assert_eq!(
            h.for_commands(false),
            "127.0.0.1:3633/2 10.1.2.3:3632/8,lzo localhost/1 127.0.0.1:3632 127.0.0.2:3632"
        );
        assert_eq!(
            Hosts::parse("--randomize localhost:4000")
                .unwrap()
                .for_commands(true),
            "--randomize 127.0.0.1:4000"
        );
    }

    #[test]
    fn what_cannot_be_forwarded_is_refused_naming_the_setting() {
        for (text, says) in [
            ("@build1", "ssh host"),
            ("user@build1/4", "ssh host"),
            ("10.0.0.1,cpp,lzo", "`cpp`"),
            ("[::1]:3632", "IPv6"),
            ("10.0.0.1:99999", "port"),
            ("10.0.0.1/0", "limit"),
            ("--localslots=4 10.0.0.1", "option"),
            ("10.0.0.1 10.0.0.1:3632", "a second time"),
            ("localhost/2", "names no server"),
            ("", "names no server"),
        ] {
            let e = Hosts::parse(text).unwrap_err();
            assert!(e.contains("`DISTCC_HOSTS`"), "{text}: {e}");
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
