//! Services for guests on the host's loopback: a file server, distccd.

use super::{RhaiResult, fail, lift};
use crate::serve::{Distccd, FileServer};
use crate::stage::Ctx;
use rhai::{Array, Dynamic, Engine};
use std::sync::{Arc, Mutex};

/// A file server on the host's loopback (see `serve`).
#[derive(Clone)]
pub struct Server {
    inner: Arc<Mutex<Option<FileServer>>>,
    port: i64,
}

/// The host's distccd on the loopback (see `serve`).
#[derive(Clone)]
pub struct Distcc {
    inner: Arc<Mutex<Distccd>>,
    port: i64,
    log: String,
}

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Server>("Server");
    engine.register_fn(
        "serve",
        |c: &mut Ctx, dir: &str, log: &str| -> RhaiResult<Server> {
            let dir = lift(c.readable(dir))?;
            let log = lift(c.writable(log))?;
            let s = FileServer::start(&dir, &log)
                .map_err(|e| fail(format!("cannot start a file server for `{dir}`: {e}")))?;
            Ok(Server {
                port: s.port as i64,
                inner: Arc::new(Mutex::new(Some(s))),
            })
        },
    );
    engine.register_get("port", |s: &mut Server| s.port);
    engine.register_fn("requests", |s: &mut Server| -> Array {
        s.inner
            .lock()
            .unwrap()
            .as_ref()
            .map(|f| f.requests().into_iter().map(Dynamic::from).collect())
            .unwrap_or_default()
    });
    engine.register_fn("stop", |s: &mut Server| {
        s.inner.lock().unwrap().take();
    });

    engine.register_type_with_name::<Distcc>("Distcc");
    engine.register_fn(
        "distccd",
        |c: &mut Ctx, compilers: &str, log: &str, jobs: i64| -> RhaiResult<Distcc> {
            let compilers = lift(c.readable(compilers))?;
            let log = lift(c.writable(log))?;
            // A compile request can run any program (gcc's -wrapper): say
            // what the sandbox cannot hold it to here.
            let gaps = c.frame.sandbox.status().map_err(fail)?.server_gaps();
            if !gaps.is_empty() {
                eprintln!(
                    "warning: the guest's compile requests run in a partial sandbox on this machine:\n  - {}",
                    gaps.join("\n  - ")
                );
            }
            let d = Distccd::start_confined(&compilers, &log, jobs.max(1) as u32, &c.frame.sandbox)
                .map_err(fail)?;
            Ok(Distcc {
                port: d.port as i64,
                log: log.to_string(),
                inner: Arc::new(Mutex::new(d)),
            })
        },
    );
    engine.register_get("port", |d: &mut Distcc| d.port);
    engine.register_get("log", |d: &mut Distcc| d.log.clone());
    engine.register_fn("compiles", |d: &mut Distcc| -> Array {
        d.inner
            .lock()
            .unwrap()
            .compiles()
            .into_iter()
            .map(Dynamic::from)
            .collect()
    });
    engine.register_fn("stop", |d: &mut Distcc| {
        d.inner.lock().unwrap().stop();
    });
}
