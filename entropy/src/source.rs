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

/// A random-number device read as a file, such as a hardware RNG at `/dev/hwrng`: its output
/// feeds the kernel pool (through the kernel's hwrng thread or `rngd`), so a failing device is a
/// reason to stop generating keys even when the CRNG looks fine.
#[derive(Debug, Clone)]
pub struct DeviceSource {
    path: std::path::PathBuf,
    name: String,
}

impl DeviceSource {
    /// A source reading `path`, named after it in reports.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        let path = path.into();
        Self {
            name: path.display().to_string(),
            path,
        }
    }
}

impl EntropySource for DeviceSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// Opens the device for every sample so a replaced or re-plugged device is read afresh.
    fn fill(&self, buf: &mut [u8]) -> Result<(), SourceError> {
        use std::io::Read;
        std::fs::File::open(&self.path)
            .and_then(|mut device| device.read_exact(buf))
            .map_err(|e| SourceError::new(format!("reading {}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_fills_buffers_and_a_short_one_is_an_error() {
        let mut buf = [1u8; 64];
        DeviceSource::new("/dev/zero").fill(&mut buf).unwrap();
        assert_eq!(buf, [0u8; 64]);
        let empty = DeviceSource::new("/dev/null").fill(&mut buf).unwrap_err();
        assert!(empty.to_string().contains("/dev/null"), "{empty}");
    }
}
