//! STUB (replaced on merge)
use crate::checksum::Expected;
use crate::interrupt::Interrupt;
use camino::{Utf8Path, Utf8PathBuf};
use std::time::Duration;
#[derive(Clone, Debug)]
pub enum OriginKind { Url(String), Debian { package: String, file: String } }
#[derive(Clone, Debug)]
pub struct Origin { pub kind: OriginKind, pub mirrors: Vec<String>, pub expected: Expected }
impl Origin { pub fn file_name(&self) -> &str { match &self.kind { OriginKind::Url(u) => u.rsplit('/').next().unwrap_or(u), OriginKind::Debian { file, .. } => file } } }
#[derive(Clone, Debug)]
pub struct SourceSpec { pub package: String, pub origins: Vec<Origin> }
#[derive(Clone, Debug)]
pub struct FetchOptions { pub preferred_mirror: Option<String>, pub connect_timeout: Duration, pub stall_timeout: Duration, pub retries: u32, pub progress: bool, pub interrupt: Interrupt }
impl Default for FetchOptions { fn default() -> Self { Self { preferred_mirror: None, connect_timeout: Duration::from_secs(15), stall_timeout: Duration::from_secs(30), retries: 2, progress: false, interrupt: Interrupt::new() } } }
pub struct SourceCache { dir: Utf8PathBuf }
pub struct Fetched { pub path: Utf8PathBuf, pub origin: usize, pub from: String }
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("fetch stub")]
pub struct FetchError;
impl SourceCache {
    pub fn new(dir: impl Into<Utf8PathBuf>) -> Self { Self { dir: dir.into() } }
    pub fn dir(&self) -> &Utf8Path { &self.dir }
    pub fn fetch(&self, _spec: &SourceSpec, _opts: &FetchOptions, _say: &mut dyn FnMut(&str)) -> Result<Fetched, FetchError> { Err(FetchError) }
    pub fn cached(&self, _spec: &SourceSpec) -> Option<Fetched> { None }
}
