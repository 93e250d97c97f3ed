//! STUB (replaced on merge)
use crate::interrupt::Interrupt;
use camino::Utf8PathBuf;
use std::time::Duration;
#[derive(Clone, Debug)]
pub struct QemuSpec { pub binary: String, pub args: Vec<String>, pub console_log: Utf8PathBuf }
pub struct QemuConsole;
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("qemu stub")]
pub struct QemuError;
impl QemuConsole {
    pub fn spawn(_spec: &QemuSpec, _interrupt: Interrupt) -> Result<Self, QemuError> { Err(QemuError) }
    pub fn expect(&mut self, _pattern: &str, _timeout: Duration) -> Result<String, QemuError> { Err(QemuError) }
    pub fn send_line(&mut self, _line: &str) -> Result<(), QemuError> { Err(QemuError) }
    pub fn run(&mut self, _line: &str, _prompt: &str, _timeout: Duration) -> Result<String, QemuError> { Err(QemuError) }
    pub fn wait_exit(&mut self, _timeout: Duration) -> Result<std::process::ExitStatus, QemuError> { Err(QemuError) }
    pub fn tail(&self, _lines: usize) -> String { String::new() }
    pub fn kill(&mut self) {}
}
pub fn interactive(_spec: &QemuSpec) -> Result<std::process::ExitStatus, QemuError> { Err(QemuError) }
