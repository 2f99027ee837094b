//! Integration tests of the key store against real SoftHSM2 tokens (one test binary: linking
//! dominates build time on two cores).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod cli;
mod errors;
mod keystore;
mod seal;
mod signer;
