//! STUB (replaced on merge)
use camino::Utf8Path;
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("image stub")]
pub struct ImageError;
pub fn check_root_filesystem(_root: &Utf8Path) -> Result<(), ImageError> { Err(ImageError) }
pub fn write_initramfs(_root: &Utf8Path, _out: &Utf8Path, _mtime: Option<u64>) -> Result<(), ImageError> { Err(ImageError) }
pub fn write_squashfs(_root: &Utf8Path, _out: &Utf8Path) -> Result<(), ImageError> { Err(ImageError) }
pub fn write_ext2(_root: &Utf8Path, _out: &Utf8Path, _size_mb: Option<u64>) -> Result<(), ImageError> { Err(ImageError) }
pub fn create_blank_ext2(_out: &Utf8Path, _size_mb: u64) -> Result<(), ImageError> { Err(ImageError) }
