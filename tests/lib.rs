//! Every integration test, compiled into one binary so the suite links once.

mod util;

mod airlock;
mod check;
mod cli;
mod distcc;
mod extract;
mod faults;
mod fetch;
mod http_server;
mod image;
mod kconfig;
mod packages;
mod patch;
mod pipeline;
mod properties;
mod qemu;
mod rebuild;
mod reproducible;
mod structure;
mod toolchain;
