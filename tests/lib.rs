//! Every integration test, compiled into one binary so the suite links once.

mod util;

mod airlock;
mod qemu;
mod check;
