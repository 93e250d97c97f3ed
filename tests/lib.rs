//! Every integration test, compiled into one binary so the suite links once.

mod util;
mod extract;
mod patch;
