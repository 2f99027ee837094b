//! What the kernel says about its random number generator.
//!
//! A freshly booted VM may not have seeded its CRNG yet; a key generated then is the classic
//! embedded-device failure. The appliance refuses key generation until the CRNG reports ready, and
//! shows the operator whether a hardware RNG feeds it.

use rustix::rand::{GetRandomFlags, getrandom};
use serde::Serialize;
use std::path::Path;

const HW_RNG_CURRENT: &str = "/sys/class/misc/hw_random/rng_current";
const ENTROPY_AVAIL: &str = "/proc/sys/kernel/random/entropy_avail";

/// The kernel's view of its RNG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemReport {
    /// The kernel CRNG is initialised: a non-blocking `getrandom` succeeds.
    pub crng_ready: bool,
    /// The hardware RNG feeding the kernel (`rng_current`), or `None` when there is none.
    pub hw_rng: Option<String>,
    /// `entropy_avail` as the kernel reports it (a constant 256 on Linux ≥ 5.18, informational).
    pub entropy_avail: Option<u32>,
}

/// Reads the kernel's RNG state.
pub fn system_report() -> SystemReport {
    SystemReport {
        crng_ready: crng_ready(),
        hw_rng: hw_rng(Path::new(HW_RNG_CURRENT)),
        entropy_avail: entropy_avail(Path::new(ENTROPY_AVAIL)),
    }
}

/// `getrandom(GRND_NONBLOCK)` fails with `EAGAIN` exactly while the CRNG is not yet initialised.
fn crng_ready() -> bool {
    let mut probe = [0u8; 1];
    getrandom(&mut probe[..], GetRandomFlags::NONBLOCK).is_ok()
}

fn hw_rng(path: &Path) -> Option<String> {
    let current = std::fs::read_to_string(path).ok()?;
    let current = current.trim();
    (!current.is_empty() && current != "none").then(|| current.to_owned())
}

fn entropy_avail(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crng_of_a_running_test_machine_is_ready() {
        assert!(system_report().crng_ready);
    }

    #[test]
    fn hw_rng_reads_the_current_device_and_treats_none_as_absent() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("lemur-entropy-hwrng-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("rng_current");
        std::fs::write(&file, "tpm-rng-0\n")?;
        assert_eq!(hw_rng(&file).as_deref(), Some("tpm-rng-0"));
        std::fs::write(&file, "none\n")?;
        assert_eq!(hw_rng(&file), None);
        assert_eq!(hw_rng(&dir.join("missing")), None);
        std::fs::write(&file, "256\n")?;
        assert_eq!(entropy_avail(&file), Some(256));
        std::fs::remove_dir_all(&dir)
    }
}
