//! The appliance's root of trust: keys that live in a PKCS#11 HSM and never leave it in clear.
//!
//! * [`KeyStore`] is the seam the rest of the workspace sees: generate CA key pairs inside the
//!   token, read public keys, sign, list, destroy, draw random bytes. [`Pkcs11KeyStore`] implements
//!   it on `cryptoki` with a pool of logged-in sessions; nothing else in the workspace imports
//!   cryptoki.
//! * [`Sealer`] seals every secret the daemon stores (leaf private keys, plugin credentials, ACME
//!   account keys) with AES-256-GCM performed inside the token, under a key-encryption key that
//!   cannot be extracted, in a versioned [`envelope`] so the KEK can be rotated.
//! * [`HsmSigner`] lets `rcgen` sign certificates and CRLs with an HSM key, and verifies every
//!   signature before returning it.
//! * Keys are named by RFC 7512 URIs ([`KeyUri`]); a key reference never carries a PIN. The PIN is a
//!   [`Pin`] read from a file and zeroized on drop.
//! * Every key generation first asks the entropy [`HealthMonitor`](lemur_entropy::HealthMonitor).

pub mod admin;
mod algorithm;
mod config;
pub mod der;
pub mod envelope;
mod error;
mod keystore;
mod pin;
mod pkcs11;
pub mod self_test;
mod signer;
mod stats;
mod uri;
mod verify;

pub use algorithm::{KeyAlgorithm, SignatureScheme};
pub use config::{DEFAULT_MODULE_PATHS, HsmConfig, resolve_module};
pub use error::{Error, Result};
pub use keystore::{ExportableKeyPair, KeyClass, KeyInfo, KeyStore, PublicKey, Sealer};
pub use pin::Pin;
pub use pkcs11::{ExtractionProbe, KekInfo, Pkcs11KeyStore};
pub use signer::HsmSigner;
pub use stats::{HsmStats, Operation, OperationCount};
pub use uri::{KeyUri, ObjectType};
pub use verify::verify_signature;
