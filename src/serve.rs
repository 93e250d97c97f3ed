//! Services on the host's loopback for emulated guests.
//!
//! Guests run behind QEMU's user network with `restrict=on`: they reach
//! nothing but what a `guestfwd` rule names. Each rule runs `rhbuild relay
//! 127.0.0.1:PORT` per connection (QEMU's `cmd:` chardev), which copies the
//! connection to a port on the host's loopback and refuses any other
//! address, so a guest can only ever talk to services on 127.0.0.1.
//!
//! `FileServer` is the simplest such service: a static HTTP server on
//! 127.0.0.1 for a directory, which records each request line; it answers
//! one request per connection, in HTTP/1.1 with `Connection: close` (toybox's
//! wget takes nothing else). `Distccd`
//! runs the host's distcc server on 127.0.0.1 with a PATH that holds only
//! the target's cross compiler, for compiles sent from inside a guest.

use camino::{Utf8Path, Utf8PathBuf};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A static file server on 127.0.0.1, stopped when dropped.
///
/// It serves only regular files beneath its root, resolved by the kernel
/// (`confine::Root`): `..`, hidden names and links that lead out of the
/// root are 404s. Each client gets a thread of its own (at most
/// `MAX_CLIENTS` at once; past that, a 503), so a slow client stalls no
/// other; a request's line and headers are bounded in size and time.
pub struct FileServer {
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Clients served at once.
pub const MAX_CLIENTS: usize = 64;
/// The longest request line or header line read.
const MAX_LINE: u64 = 8 * 1024;
/// The most header lines read.
const MAX_HEADERS: usize = 100;

impl FileServer {
    /// Serve `root` on a free loopback port; each request line is also
    /// appended to `log` (never through a link at its name: the lines are
    /// the guest's words).
    pub fn start(root: &Utf8Path, log: &Utf8Path) -> std::io::Result<FileServer> {
        let dir = Arc::new(crate::confine::Root::open(root)?);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(log)?,
        ));
        let (r, s) = (requests.clone(), stop.clone());
        let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        if busy.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                            busy.fetch_sub(1, Ordering::SeqCst);
                            let mut conn = conn;
                            let _ = conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                            continue;
                        }
                        let (dir, r, log, busy) =
                            (dir.clone(), r.clone(), log.clone(), busy.clone());
                        std::thread::spawn(move || {
                            // Recorded before the answer is sent: a client that
                            // has its answer finds its request in the record.
                            serve_one(conn, &dir, |line| {
                                if let Ok(mut f) = log.lock() {
                                    let _ = writeln!(f, "{line}");
                                }
                                r.lock().unwrap().push(line);
                            });
                            busy.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(FileServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        })
    }

    /// The request lines served so far ("GET /path 200").
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Read one line of at most `MAX_LINE` bytes (`None`: too long, or the
/// connection failed).
fn read_line(reader: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    let n = reader.take(MAX_LINE).read_line(&mut line).ok()?;
    if n as u64 >= MAX_LINE && !line.ends_with('\n') {
        return None;
    }
    Some(line)
}

/// Answer one request; records "METHOD PATH STATUS".
fn serve_one(
    mut conn: TcpStream,
    root: &crate::confine::Root,
    record: impl FnOnce(String),
) -> Option<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    conn.set_write_timeout(Some(Duration::from_secs(60))).ok()?;
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let first = read_line(&mut reader)?;
    // Skip the headers, a bounded number of bounded lines.
    for _ in 0..MAX_HEADERS {
        let h = read_line(&mut reader)?;
        if h.trim().is_empty() {
            break;
        }
    }
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let file = if method == "GET" {
        open(root, &path)
    } else {
        None
    };
    let (status, len) = match (&*method, &file) {
        ("GET", Some((_, len))) => ("200 OK", *len),
        ("GET", None) => ("404 Not Found", 10),
        _ => ("405 Method Not Allowed", 9),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    );
    let code = status.split(' ').next().unwrap_or("");
    record(format!("{method} {path} {code}"));
    conn.write_all(head.as_bytes()).ok()?;
    match (file, &*method) {
        (Some((mut f, len)), _) => {
            std::io::copy(&mut (&mut f).take(len), &mut conn).ok()?;
        }
        (None, "GET") => conn.write_all(b"not found\n").ok()?,
        (None, _) => conn.write_all(b"GET only\n").ok()?,
    }
    Some(())
}

/// `/a/b` beneath `root`: a regular file, reached by the kernel without
/// leaving the root; `..` and hidden names are refused. The open file and
/// its length.
fn open(root: &crate::confine::Root, path: &str) -> Option<(std::fs::File, u64)> {
    let rel = path.split('?').next()?.trim_start_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == ".." || c.starts_with('.')) {
        return None;
    }
    let f = root.open_file(Utf8Path::new(rel)).ok()?;
    let m = f.metadata().ok()?;
    m.is_file().then_some((f, m.len()))
}

/// The host's `distccd`, listening on 127.0.0.1 only, on a free port, with
/// `compilers` (a directory of `cc`, `gcc`, `c++`, `g++` links to the
/// target's cross compiler) as its whole PATH and a private temporary
/// directory. Stopped when dropped.
///
/// Whoever connects chooses the compiler's arguments, and gcc's arguments
/// can run any program (`-wrapper`), so a guest's distccd runs in a
/// sandbox (`start_confined`): it writes only its temporary directory,
/// binds only its port and connects nowhere.
pub struct Distccd {
    pub port: u16,
    pub log: Utf8PathBuf,
    child: Option<std::process::Child>,
    /// Its TMPDIR, removed after it stops.
    tmp: Option<tempfile::TempDir>,
}

impl Distccd {
    /// Unconfined, as a build machine named in `DISTCC_HOSTS` runs it (the
    /// tests' stand-ins for those machines).
    pub fn start(compilers: &Utf8Path, log: &Utf8Path, jobs: u32) -> Result<Distccd, String> {
        Self::start_listing(compilers, log, jobs, None)
    }

    /// For a guest: inside `sandbox` (its writable directories replaced by
    /// the server's temporary directory, see `Sandbox::serving`).
    pub fn start_confined(
        compilers: &Utf8Path,
        log: &Utf8Path,
        jobs: u32,
        sandbox: &crate::sandbox::Sandbox,
    ) -> Result<Distccd, String> {
        Self::start_in(compilers, log, jobs, None, Some(sandbox))
    }

    /// The same, running only the compiler names listed in the file
    /// `names` (distccd's DISTCC_CMDLIST, one name per line) instead of
    /// those in /usr/lib/distcc: how a server takes `<triple>-gcc` of a
    /// toolchain Debian does not ship.
    pub fn start_listing(
        compilers: &Utf8Path,
        log: &Utf8Path,
        jobs: u32,
        names: Option<&Utf8Path>,
    ) -> Result<Distccd, String> {
        Self::start_in(compilers, log, jobs, names, None)
    }

    fn start_in(
        compilers: &Utf8Path,
        log: &Utf8Path,
        jobs: u32,
        names: Option<&Utf8Path>,
        sandbox: Option<&crate::sandbox::Sandbox>,
    ) -> Result<Distccd, String> {
        let Some(binary) = crate::airlock::host_program("distccd") else {
            return Err("distccd is not installed on the host: apt-get install distcc".into());
        };
        // A free port: the kernel picks one; distccd takes it over at once.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free loopback port: {e}"))?
            .port();
        let _ = std::fs::remove_file(log);
        if let Some(dir) = log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // Its own temporary directory: started as root, distccd gives up
        // its privileges for an unprivileged user's, who must write there
        // (and may not reach the build directory).
        let tmp = tempfile::Builder::new()
            .prefix("rhbuild-distccd-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary directory for distccd: {e}"))?;
        let tmp_path = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf())
            .map_err(|p| format!("`{}` is not UTF-8", p.display()))?;
        std::fs::set_permissions(&tmp_path, std::fs::Permissions::from_mode(0o1777))
            .map_err(|e| format!("cannot open `{tmp_path}` to distccd: {e}"))?;
        let args: Vec<String> = [
            "--daemon",
            "--no-detach",
            "--listen",
            "127.0.0.1",
            "--allow",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--jobs",
            &jobs.max(1).to_string(),
            // Its log comes through us: as root, distccd gives up its
            // privileges and could not open a file in the build directory.
            "--log-level",
            "info",
            "--log-stderr",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let mut cmd = match sandbox {
            Some(sandbox) => sandbox
                .serving(vec![tmp_path.clone()], port)
                .command("distccd", &binary, &args),
            None => {
                let mut c = std::process::Command::new(binary.as_str());
                c.args(&args);
                c
            }
        };
        cmd.env_clear()
            .env("PATH", compilers.as_str())
            .env("HOME", compilers.as_str())
            .env("TMPDIR", tmp_path.as_str())
            .envs(names.map(|n| ("DISTCC_CMDLIST", n.as_str())))
            .envs(names.map(|_| ("DISTCC_CMDLIST_NUMWORDS", "1")))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        // Its own process group, so stopping it stops its workers too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start `{binary}`: {e}"))?;
        // Never through a link planted at the log's name since it was
        // checked (the caller's `ctx.writable`) and removed above.
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(log)
            .map_err(|e| format!("cannot write `{log}`: {e}"))?;
        if let Some(mut err) = child.stderr.take() {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut err, &mut file);
            });
        }
        let mut d = Distccd {
            port,
            log: log.to_owned(),
            child: Some(child),
            tmp: Some(tmp),
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        for _ in 0..100 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(d);
            }
            if let Some(c) = d.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!(
                    "distccd exited ({status}) before listening on 127.0.0.1:{port}; its log: {log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "distccd did not listen on 127.0.0.1:{port} within 5 s; its log: {log}"
        ))
    }

    /// The log's lines for compiles that succeeded.
    pub fn compiles(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("COMPILE_OK"))
            .map(str::to_owned)
            .collect()
    }

    /// Stop it and every worker. SIGKILL, not SIGTERM: in the sandbox the
    /// group holds the set-up and the first process of distccd's PID
    /// namespace, which ignores any other signal from outside; its death
    /// takes the namespace (distccd, which made itself a group of its own,
    /// and its workers) with it. Unconfined, the group is distccd's.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling the process group we created.
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
            let _ = c.wait();
        }
        self.tmp.take();
    }
}

impl Drop for Distccd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `rhbuild relay 127.0.0.1:PORT`: copy standard input to a loopback port
/// and the port's answers to standard output. QEMU runs it for each guest
/// connection a `guestfwd` rule accepts. Anything but a loopback address is
/// refused.
pub fn relay(target: &str) -> Result<(), String> {
    let addr: SocketAddr = target
        .parse()
        .map_err(|_| format!("relay: `{target}` is not an address like 127.0.0.1:8080"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "relay: `{target}` is not on the loopback interface; guests may reach only 127.0.0.1"
        ));
    }
    let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("relay: cannot connect to {addr}: {e}"))?;
    let mut up = conn.try_clone().map_err(|e| e.to_string())?;
    let to_host = std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let _ = copy(&mut stdin, &mut up);
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    let mut down = conn;
    let mut stdout = std::io::stdout().lock();
    let _ = copy(&mut down, &mut stdout);
    // The host side closed: the guest's connection ends with it.
    drop(to_host);
    Ok(())
}

fn copy(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buf = [0u8; 65536];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_refuses_other_addresses() {
        let e = relay("10.0.2.2:80").unwrap_err();
        assert!(e.contains("not on the loopback interface"), "{e}");
        let e = relay("example.org:80").unwrap_err();
        assert!(e.contains("not an address"), "{e}");
    }

    #[test]
    fn a_link_at_the_request_log_is_refused_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let base = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(base.join("victim"), "keep me").unwrap();
        std::os::unix::fs::symlink(base.join("victim"), base.join("requests.log")).unwrap();
        let e = FileServer::start(base, &base.join("requests.log")).err();
        assert_eq!(e.map(|e| e.raw_os_error()), Some(Some(libc::ELOOP)));
        assert_eq!(
            std::fs::read_to_string(base.join("victim")).unwrap(),
            "keep me"
        );
    }

    #[test]
    fn serves_files_and_records_requests() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(root.join("hello.txt"), "hi there\n").unwrap();
        std::fs::write(root.join(".hidden"), "no\n").unwrap();
        let server = FileServer::start(root, &root.join("requests.log")).unwrap();
        let get = |path: &str| {
            let mut c = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            write!(c, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            s
        };
        let ok = get("/hello.txt");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nhi there\n"), "{ok}");
        assert!(get("/../etc/passwd").starts_with("HTTP/1.1 404"));
        assert!(get("/.hidden").starts_with("HTTP/1.1 404"));
        assert_eq!(
            server.requests(),
            vec![
                "GET /hello.txt 200",
                "GET /../etc/passwd 404",
                "GET /.hidden 404"
            ]
        );
        let log = std::fs::read_to_string(root.join("requests.log")).unwrap();
        assert_eq!(log.lines().count(), 3);
    }

    #[test]
    fn links_out_of_the_root_and_non_files_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let base = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("www/sub")).unwrap();
        std::fs::write(base.join("secret"), "secret\n").unwrap();
        std::fs::write(base.join("www/sub/ok"), "ok\n").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), base.join("www/abs")).unwrap();
        std::os::unix::fs::symlink("../secret", base.join("www/rel")).unwrap();
        std::os::unix::fs::symlink("sub/ok", base.join("www/inside")).unwrap();
        std::os::unix::fs::symlink("..", base.join("www/sub/up")).unwrap();
        let server = FileServer::start(&base.join("www"), &base.join("log")).unwrap();
        let get = |path: &str| {
            let mut c = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            write!(c, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            s
        };
        for p in [
            "/abs",
            "/rel",
            "/sub/up/../secret",
            "/sub",
            "/sub/up/up/secret",
        ] {
            let r = get(p);
            assert!(r.starts_with("HTTP/1.1 404"), "{p}: {r}");
            assert!(!r.contains("secret\n"), "{p}: {r}");
        }
        assert!(get("/inside").ends_with("ok\n"));
    }

    #[test]
    fn a_slow_client_does_not_stall_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(root.join("f"), "fast\n").unwrap();
        let server = FileServer::start(root, &root.join("log")).unwrap();
        // A client that connects and sends nothing.
        let _slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(c, "GET /f HTTP/1.0\r\n\r\n").unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        assert!(s.ends_with("fast\n"), "{s}");
    }

    #[test]
    fn an_endless_request_line_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(dir.path()).unwrap();
        let server = FileServer::start(root, &root.join("log")).unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let junk = vec![b'a'; 64 * 1024];
        // The server stops reading after its limit and closes: writing on
        // fails or the read ends; either way it does not hang.
        let _ = c.write_all(&junk);
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut s = Vec::new();
        let _ = c.read_to_end(&mut s);
        assert!(server.requests().is_empty());
    }
}
