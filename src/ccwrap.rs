//! The compiler wrapper (filled in with the cross-compiler stage).

/// When rhbuild runs under a compiler's name, act as the wrapper.
pub fn dispatch() -> Option<std::process::ExitCode> {
    None
}
