//! The primitives as scripts see them: a thin adapter. Each function
//! converts its arguments, calls a primitive (`Ctx` and its file
//! primitives in `ctx_fs`, `kconfig`, `image`, `qemu`, `serve`, `matrix`),
//! and turns a failure into a script error at the call site. What decides
//! anything lives in those modules and is unit-tested there.
//!
//! One file per receiver: `ctx` (the run, stages, packages, files,
//! images), `dir` (commands and kconfig in a directory), `console` (QEMU),
//! `services` (servers for guests). The reference for script writers is
//! docs/primitives.md; keep it in step.

mod console;
mod ctx;
mod dir;
mod services;

use crate::stage::PrimResult;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, Position};
use std::collections::BTreeMap;

pub use dir::Dir;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

fn fail(msg: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(msg.into()),
        Position::NONE,
    ))
}

fn lift<T>(r: PrimResult<T>) -> RhaiResult<T> {
    r.map_err(fail)
}

/// An array of strings (numbers are accepted and printed).
fn strings(a: &Array, what: &str) -> RhaiResult<Vec<String>> {
    a.iter()
        .map(|v| {
            if v.is_string() || v.is_int() || v.is_float() || v.is_bool() {
                Ok(v.to_string())
            } else {
                Err(fail(format!(
                    "{what} must hold strings, found a `{}`",
                    v.type_name()
                )))
            }
        })
        .collect()
}

fn env_map(m: &Map) -> RhaiResult<BTreeMap<String, String>> {
    m.iter()
        .map(|(k, v)| {
            if v.is_string() || v.is_int() || v.is_bool() {
                Ok((k.to_string(), v.to_string()))
            } else {
                Err(fail(format!(
                    "environment variable `{k}` must be a string, found a `{}`",
                    v.type_name()
                )))
            }
        })
        .collect()
}

/// Register every primitive into `engine` (the composition root calls this).
pub fn register(engine: &mut Engine) {
    ctx::register(engine);
    dir::register(engine);
    console::register(engine);
    services::register(engine);
    plain::register(engine);
}

/// Functions of plain values: path text, time, JSON.
mod plain {
    use super::dynamic_to_json;
    use camino::Utf8Path;
    use rhai::{Array, Dynamic, Engine};

    pub fn register(engine: &mut Engine) {
        engine.register_fn("file_name", |p: &str| {
            Utf8Path::new(p).file_name().unwrap_or("").to_string()
        });
        engine.register_fn("file_stem", |p: &str| {
            Utf8Path::new(p).file_stem().unwrap_or("").to_string()
        });
        engine.register_fn("parent", |p: &str| {
            Utf8Path::new(p)
                .parent()
                .map(|p| p.to_string())
                .unwrap_or_default()
        });
        engine.register_fn("relative_path", |from: &str, to: &str| {
            crate::fsutil::relative_path(Utf8Path::new(from), Utf8Path::new(to)).to_string()
        });
        engine.register_fn("join", |a: Array, sep: &str| {
            a.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(sep)
        });
        // The host's clock, in whole seconds since 1970: a guest without a
        // battery-backed clock learns the time from its kernel command line.
        engine.register_fn("now", || crate::stage::unix_now() as i64);
        // `date -u`'s form of a time: what a build that stamps a date
        // (the kernel's `uname -v`) is given for SOURCE_DATE_EPOCH.
        engine.register_fn("utc_date", |epoch: i64| crate::fsutil::utc_date(epoch));
        engine.register_fn("iso_date", |epoch: i64| crate::fsutil::iso_date(epoch));
        engine.register_fn("sha256", |text: &str| {
            crate::checksum::sha256_bytes(text.as_bytes())
        });
        engine.register_fn("words", |s: &str| -> Array {
            s.split_whitespace()
                .map(|w| Dynamic::from(w.to_string()))
                .collect()
        });
        engine.register_fn("pretty_json", |v: Dynamic| {
            serde_json::to_string_pretty(&dynamic_to_json(&v)).unwrap_or_default()
        });
    }
}

/// A script value as JSON (maps, arrays, strings, numbers, booleans, ()).
pub fn dynamic_to_json(v: &Dynamic) -> serde_json::Value {
    use serde_json::Value;
    if v.is_unit() {
        Value::Null
    } else if let Some(b) = v.clone().try_cast::<bool>() {
        Value::Bool(b)
    } else if let Some(i) = v.clone().try_cast::<i64>() {
        Value::from(i)
    } else if let Some(f) = v.clone().try_cast::<f64>() {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    } else if let Some(a) = v.clone().try_cast::<Array>() {
        Value::Array(a.iter().map(dynamic_to_json).collect())
    } else if let Some(m) = v.clone().try_cast::<Map>() {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.to_string(), dynamic_to_json(v)))
                .collect(),
        )
    } else {
        Value::String(v.to_string())
    }
}

/// JSON as a script value.
pub fn json_to_dynamic(v: &serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from(i),
            None => Dynamic::from(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(a) => Dynamic::from(a.iter().map(json_to_dynamic).collect::<Array>()),
        Value::Object(o) => Dynamic::from(
            o.iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect::<Map>(),
        ),
    }
}
