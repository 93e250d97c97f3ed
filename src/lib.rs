//! rhbuild: a build system for Linux on foreign CPUs.
//!
//! The library holds the primitives (plain Rust, unit-tested without Rhai),
//! the engine that exposes them to scripts, and the CLI. See ARCHITECTURE.md.

pub mod airlock;
pub mod api;
pub mod ccwrap;
pub mod check;
pub mod checksum;
pub mod cli;
pub mod confine;
pub mod ctx_fs;
pub mod diag;
pub mod distcc;
pub mod engine;
pub mod extract;
pub mod fetch;
pub mod fsutil;
pub mod image;
pub mod interrupt;
pub mod jobserver;
pub mod kconfig;
pub mod lock;
pub mod manifest;
pub mod matrix;
pub mod package;
pub mod patch;
pub mod project;
pub mod qemu;
pub mod sandbox;
pub mod serve;
pub mod settings;
pub mod sources;
pub mod stage;
pub mod target;
