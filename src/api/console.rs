//! QEMU: `ctx.boot` (a console driven like `expect`) and `ctx.emulate`.

use super::{RhaiResult, fail, lift, strings};
use crate::qemu::{QemuConsole, QemuError, QemuSpec};
use crate::stage::{Ctx, PrimResult};
use camino::Utf8PathBuf;
use rhai::{Array, Engine, Map};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running emulator's serial console.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Mutex<Option<QemuConsole>>>,
    log: Utf8PathBuf,
    started: std::time::Instant,
}

impl Console {
    fn with<T>(&self, f: impl FnOnce(&mut QemuConsole) -> Result<T, QemuError>) -> RhaiResult<T> {
        let mut g = self.inner.lock().unwrap();
        let c = g
            .as_mut()
            .ok_or_else(|| fail("the emulator was already stopped"))?;
        f(c).map_err(|e| fail(format!("{e}")))
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

/// A QEMU invocation from a script's map: `#{ binary, args, log, debian_package }`
/// (the network rule is `qemu::check_network`'s).
fn spec(c: &Ctx, m: &Map) -> PrimResult<QemuSpec> {
    let binary = m
        .get("binary")
        .map(|v| v.to_string())
        .ok_or("the QEMU map needs `binary`")?;
    let args = m
        .get("args")
        .and_then(|v| v.clone().try_cast::<Array>())
        .ok_or("the QEMU map needs `args`, an array")?;
    let args = strings(&args, "the QEMU arguments").map_err(|e| e.to_string())?;
    crate::qemu::check_network(&args)?;
    let console_log = match m.get("log") {
        Some(l) => c.writable(&l.to_string())?,
        None => c
            .run
            .logs_dir()
            .join(format!("{}-console.log", c.frame.stage)),
    };
    Ok(QemuSpec {
        binary,
        args,
        console_log,
        package: m.get("debian_package").map(|p| p.to_string()),
    })
}

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Console>("Console");
    engine.register_fn("boot", |c: &mut Ctx, m: Map| -> RhaiResult<Console> {
        let spec = lift(spec(c, &m))?;
        let log = spec.console_log.clone();
        let console =
            QemuConsole::spawn(&spec, c.run.interrupt.clone()).map_err(|e| fail(format!("{e}")))?;
        Ok(Console {
            inner: Arc::new(Mutex::new(Some(console))),
            log,
            started: std::time::Instant::now(),
        })
    });
    engine.register_fn("emulate", |c: &mut Ctx, m: Map| -> RhaiResult<i64> {
        let spec = lift(spec(c, &m))?;
        let status = crate::qemu::interactive(&spec).map_err(|e| fail(format!("{e}")))?;
        Ok(status.code().unwrap_or(-1) as i64)
    });
    engine.register_get("log", |c: &mut Console| c.log.to_string());
    engine.register_get("seconds", |c: &mut Console| {
        c.started.elapsed().as_secs_f64()
    });
    engine.register_fn(
        "expect",
        |c: &mut Console, pat: &str, timeout: i64| -> RhaiResult<String> {
            c.with(|q| q.expect(pat, secs(timeout)))
        },
    );
    engine.register_fn("send", |c: &mut Console, line: &str| {
        c.with(|q| q.send_line(line))
    });
    engine.register_fn(
        "command",
        |c: &mut Console, line: &str, prompt: &str, timeout: i64| -> RhaiResult<String> {
            c.with(|q| q.run(line, prompt, secs(timeout)))
        },
    );
    engine.register_fn(
        "wait_exit",
        |c: &mut Console, timeout: i64| -> RhaiResult<i64> {
            let st = c.with(|q| q.wait_exit(secs(timeout)))?;
            Ok(st.code().unwrap_or(-1) as i64)
        },
    );
    engine.register_fn("tail", |c: &mut Console, n: i64| {
        c.with(|q| Ok(q.tail(n.max(0) as usize)))
    });
    engine.register_fn("stop", |c: &mut Console| {
        if let Some(mut q) = c.inner.lock().unwrap().take() {
            q.kill();
        }
    });
}
