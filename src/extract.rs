//! STUB (replaced on merge)
use camino::Utf8Path;
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("extract stub")]
pub struct ExtractError;
pub fn extract(_archive: &Utf8Path, _dest: &Utf8Path) -> Result<(), ExtractError> { Err(ExtractError) }
