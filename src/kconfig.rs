//! STUB (replaced on merge)
use camino::{Utf8Path, Utf8PathBuf};
#[derive(Clone, Debug)]
pub struct Entry { pub symbol: String, pub value: String, pub file: Utf8PathBuf, pub line: usize }
#[derive(Clone, Debug, Default)]
pub struct Miniconfig { pub entries: Vec<Entry> }
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("kconfig stub")]
pub struct KconfigError;
impl Miniconfig {
    pub fn parse_files(_paths: &[Utf8PathBuf]) -> Result<Self, KconfigError> { Err(KconfigError) }
    pub fn parse_str(_text: &str, _file: &Utf8Path) -> Result<Self, KconfigError> { Err(KconfigError) }
    pub fn render(&self) -> String { String::new() }
}
#[derive(Clone, Debug, Default)]
pub struct DotConfig;
impl DotConfig {
    pub fn parse_file(_p: &Utf8Path) -> Result<Self, KconfigError> { Err(KconfigError) }
    pub fn get(&self, _sym: &str) -> Option<&str> { None }
}
pub fn missing<'a>(_mini: &'a Miniconfig, _cfg: &DotConfig) -> Vec<(&'a Entry, String)> { vec![] }
pub fn shrink(_full: &DotConfig, _expand: &mut dyn FnMut(&Miniconfig) -> Result<DotConfig, KconfigError>) -> Result<Miniconfig, KconfigError> { Err(KconfigError) }
