//! STUB (replaced on merge)
use crate::interrupt::Interrupt;
use camino::{Utf8Path, Utf8PathBuf};
use std::collections::BTreeMap;
#[derive(Clone, Debug)]
pub struct Airlock { pub path: Vec<Utf8PathBuf>, pub env: BTreeMap<String, String>, pub interrupt: Interrupt }
#[derive(Clone, Debug)]
pub struct Command { pub argv: Vec<String>, pub cwd: Utf8PathBuf, pub env: BTreeMap<String, String>, pub log: Utf8PathBuf, pub package: String }
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("airlock stub")]
pub struct RunError;
impl Airlock {
    pub fn run(&self, _cmd: &Command) -> Result<(), RunError> { Err(RunError) }
    pub fn output(&self, _cmd: &Command) -> Result<String, RunError> { Err(RunError) }
}
pub fn populate_host_bin(_bin: &Utf8Path, _tools: &[String], _host_path: &str) -> std::io::Result<Vec<String>> { Ok(vec![]) }
