//! Entropy health checks that gate key generation.
//!
//! A certificate authority is only as good as the randomness behind its keys. This crate runs the
//! continuous health tests of NIST SP 800-90B §4.4 (the Repetition Count Test and the Adaptive
//! Proportion Test) on samples drawn from every random source the appliance relies on (the kernel
//! CRNG through `getrandom`, and the HSM's `C_GenerateRandom` through [`EntropySource`]), and adds the
//! system checks an operator needs: is the kernel CRNG initialised, is a hardware RNG present, what
//! does the kernel report as available entropy.
//!
//! [`HealthMonitor`] keeps the latest verdict. Key generation asks it first
//! ([`HealthMonitor::ensure_healthy`]) and is refused with the failing test's reason until a later
//! check passes. Cutoffs are computed from the stated min-entropy per sample and the false-positive
//! rate, not copied from a table; see [`cutoff`].

pub mod cutoff;
mod error;
mod health;
mod source;
mod system;
mod tests_sp800_90b;

pub use error::{Error, SourceError};
pub use health::{
    CheckConfig, HealthMonitor, HealthReport, HealthState, PeriodicCheck, SourceReport,
};
pub use source::{DeviceSource, EntropySource, OsRng};
pub use system::{SystemReport, system_report};
pub use tests_sp800_90b::{AdaptiveProportionTest, Failure, RepetitionCountTest};
