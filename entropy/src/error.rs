//! The crate's error type: why key generation is refused, or why a source could not be read.

use std::fmt;

/// A random source could not deliver samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// What failed, in words an operator can act on (never contains random data).
    pub detail: String,
}

impl SourceError {
    /// Wraps a description of the failure.
    pub fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for SourceError {}

/// Why the entropy health gate refuses key generation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The latest health check failed; key generation stays refused until a later check passes.
    #[error(
        "entropy health check failed: {reason}; key generation is refused until a later check passes"
    )]
    Unhealthy {
        /// The failing test and source, e.g. `hsm: repetition count test: value 0x00 repeated 6 times`.
        reason: String,
    },
    /// No health check has completed yet (the start-up self-test has not run).
    #[error(
        "entropy health has not been checked yet; key generation waits for the start-up self-test"
    )]
    NotChecked,
}
