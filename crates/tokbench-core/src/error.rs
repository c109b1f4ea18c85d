//! Errors that decide the exit code.

use std::process::ExitCode;

/// Bad input from the user (a flag, a file, a size the device cannot hold): exit code 2.
/// Everything else that fails is exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(String);

impl InputError {
    /// An input error with a message naming the input and what to do about it.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Exit codes, documented in `--help` and the README.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A regression was found, a result is invalid, or the run failed.
    pub const FAILURE: u8 = 1;
    /// Usage or input error: nothing was measured.
    pub const USAGE: u8 = 2;
    /// Stopped by Ctrl-C or SIGTERM; the finished workloads are saved (128 + SIGINT).
    pub const INTERRUPTED: u8 = 130;
}

/// The exit code for an error: 2 when any cause in its chain is an [`InputError`], else 1.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|e| e.is::<InputError>()) {
        ExitCode::from(exit::USAGE)
    } else {
        ExitCode::from(exit::FAILURE)
    }
}
