//! STUB (replaced on merge)
use camino::{Utf8Path, Utf8PathBuf};
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("patch stub")]
pub struct PatchError;
pub fn list_patches(_dir: &Utf8Path) -> std::io::Result<Vec<Utf8PathBuf>> { Ok(vec![]) }
pub fn apply_patches(_src: &Utf8Path, patches: &[Utf8PathBuf], _log: &Utf8Path) -> Result<(), PatchError> { if patches.is_empty() { Ok(()) } else { Err(PatchError) } }
