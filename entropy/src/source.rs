//! Where samples come from: the [`EntropySource`] seam and the kernel CRNG behind `getrandom`.

use crate::SourceError;

/// A source of random bytes whose output is health-tested.
///
/// The HSM crate implements it for the token's `C_GenerateRandom`, so this crate does not depend on
/// PKCS#11; tests implement it for deliberately broken sources.
pub trait EntropySource: Send + Sync {
    /// A short stable name used in reports and error messages (`os`, `hsm`).
    fn name(&self) -> &str;
    /// Fills `buf` entirely with samples, one byte per sample.
    fn fill(&self, buf: &mut [u8]) -> Result<(), SourceError>;
}

/// The operating system's CRNG, read through `getrandom(2)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRng;

impl EntropySource for OsRng {
    fn name(&self) -> &str {
        "os"
    }

    fn fill(&self, buf: &mut [u8]) -> Result<(), SourceError> {
        getrandom::fill(buf).map_err(|e| SourceError::new(format!("getrandom failed: {e}")))
    }
}
