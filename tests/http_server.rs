//! A small HTTP/1.1 server on 127.0.0.1 for tests, written with std::net.
//!
//! Each test starts its own on a free port, maps paths to behaviours, and
//! asks afterwards which paths were requested and how often. Every response
//! closes its connection. Unknown paths get a 404.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the server does for a path.
#[derive(Clone, Debug)]
pub enum Route {
    /// 200 with these bytes and a matching Content-Length.
    Bytes(Vec<u8>),
    /// This status with a short text body.
    Status(u16),
    /// 200 with a Content-Length for all of these bytes, then only the first
    /// half of them, then the connection is closed.
    Truncate(Vec<u8>),
    /// 200 headers promising these bytes, then nothing until the server is
    /// dropped.
    Stall(Vec<u8>),
    /// 200 without a Content-Length, then bytes without end until the
    /// client goes away (or the server is dropped).
    Endless,
    /// 200 with a Content-Length for these bytes, sent one byte per
    /// interval (never stalling long enough for a stall timeout).
    Trickle(Vec<u8>, Duration),
}

struct Shared {
    routes: Mutex<HashMap<String, Route>>,
    log: Mutex<Vec<String>>,
    stop: AtomicBool,
}

pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Listens on 127.0.0.1 on a free port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            routes: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = Arc::clone(&s);
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        HttpServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Sets what `path` (starting with `/`) does.
    pub fn route(&self, path: &str, route: Route) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(path.to_string(), route);
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// How many requests asked for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }

    /// Every requested path, in order of arrival.
    pub fn requests(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn serve(conn: TcpStream, s: &Shared) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    s.log.lock().unwrap().push(path.clone());
    let route = s.routes.lock().unwrap().get(&path).cloned();
    let mut out = conn;
    let head = |status: &str, len: usize| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
        )
    };
    let _ = match route {
        Some(Route::Bytes(b)) => out
            .write_all(head("200 OK", b.len()).as_bytes())
            .and_then(|_| out.write_all(&b)),
        Some(Route::Truncate(b)) => out
            .write_all(head("200 OK", b.len()).as_bytes())
            .and_then(|_| out.write_all(&b[..b.len() / 2])),
        Some(Route::Stall(b)) => {
            let _ = out.write_all(head("200 OK", b.len()).as_bytes());
            let _ = out.flush();
            while !s.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        }
        Some(Route::Endless) => {
            let _ = out.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
            );
            let chunk = vec![0u8; 64 * 1024];
            while !s.stop.load(Ordering::SeqCst) {
                if out.write_all(&chunk).is_err() {
                    break;
                }
            }
            Ok(())
        }
        Some(Route::Trickle(b, every)) => {
            let _ = out.write_all(head("200 OK", b.len()).as_bytes());
            for byte in b {
                if s.stop.load(Ordering::SeqCst) || out.write_all(&[byte]).is_err() {
                    break;
                }
                let _ = out.flush();
                std::thread::sleep(every);
            }
            Ok(())
        }
        Some(Route::Status(code)) => {
            let body = format!("status {code}\n");
            out.write_all(head(&format!("{code} {}", reason(code)), body.len()).as_bytes())
                .and_then(|_| out.write_all(body.as_bytes()))
        }
        None => {
            let body = "not found\n";
            out.write_all(head("404 Not Found", body.len()).as_bytes())
                .and_then(|_| out.write_all(body.as_bytes()))
        }
    };
    let _ = out.flush();
    let _ = out.shutdown(std::net::Shutdown::Both);
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
