//! The seams the rest of the workspace programs against: [`KeyStore`] for asymmetric keys in the
//! HSM and [`Sealer`] for secrets at rest. The daemon holds them as trait objects; only the binaries
//! choose the PKCS#11 backend.

use crate::{KeyAlgorithm, KeyUri, Result, SignatureScheme, der};
use serde::Serialize;
use zeroize::Zeroizing;

/// A public key read from the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    key: Vec<u8>,
}

impl PublicKey {
    /// `key` is the uncompressed EC point, or the PKCS#1 `RSAPublicKey` DER (as
    /// [`PublicKey::key_bytes`] gives it back, e.g. from a record of a key made earlier).
    pub fn new(algorithm: KeyAlgorithm, key: Vec<u8>) -> Self {
        Self { algorithm, key }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The key as it goes in the SubjectPublicKeyInfo BIT STRING.
    pub fn key_bytes(&self) -> &[u8] {
        &self.key
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        der::subject_public_key_info(self.algorithm, &self.key)
    }
}

/// A key pair generated for export: the private key as PKCS#8 DER (zeroized on drop), to be
/// sealed before it is stored, and its public half.
pub struct ExportableKeyPair {
    /// PKCS#8 `PrivateKeyInfo` DER.
    pub pkcs8: Zeroizing<Vec<u8>>,
    /// The public key.
    pub public: PublicKey,
}

/// The class of a key object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyClass {
    /// The private half of a key pair.
    Private,
    /// A symmetric key (a KEK).
    Secret,
}

/// What the key store knows about a key without using it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// Its RFC 7512 URI.
    #[serde(serialize_with = "serialize_display")]
    pub uri: KeyUri,
    /// CKA_LABEL.
    pub label: String,
    /// Private key or secret key.
    pub class: KeyClass,
    /// `p256`, `rsa2048` ..., or `aes256` for a KEK, or the raw type for keys this crate does not use.
    pub key_type: String,
    /// CKA_SENSITIVE.
    pub sensitive: bool,
    /// CKA_EXTRACTABLE.
    pub extractable: bool,
    /// A token object (persistent) rather than a session object.
    pub persistent: bool,
    /// CKA_LOCAL: generated inside the token, its value never known outside it (false for an
    /// imported or unwrapped key).
    pub local: bool,
}

fn serialize_display<S: serde::Serializer>(uri: &KeyUri, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(uri)
}

impl KeyInfo {
    /// Fails unless the key cannot leave the token: sensitive, not extractable, a token object.
    pub fn ensure_protected(&self) -> Result<()> {
        let problems: Vec<&str> = [
            (!self.sensitive, "not sensitive"),
            (self.extractable, "extractable"),
            (!self.persistent, "a session object"),
        ]
        .into_iter()
        .filter_map(|(bad, what)| bad.then_some(what))
        .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(crate::Error::KeyNotProtected {
                uri: self.uri.to_string(),
                reason: problems.join(", "),
            })
        }
    }
}

/// Asymmetric keys that live in an HSM.
///
/// Every method blocks on the HSM: call it from a blocking thread (`spawn_blocking`), never from an
/// async task directly.
pub trait KeyStore: Send + Sync {
    /// Generates a key pair inside the token (private half sensitive, not extractable). An
    /// `ephemeral` pair is a session object that disappears with the sessions (self-tests).
    /// Refused while the entropy health gate is closed.
    fn generate_key_pair(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        ephemeral: bool,
    ) -> Result<KeyInfo>;
    /// The public half of a key pair.
    fn public_key(&self, key: &KeyUri) -> Result<PublicKey>;
    /// Signs `message` (not a digest: hashing is part of the scheme). ECDSA signatures are DER.
    fn sign(&self, key: &KeyUri, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>>;
    /// Destroys a key pair (both halves).
    fn destroy(&self, key: &KeyUri) -> Result<()>;
    /// Every private and secret key in the token.
    fn list(&self) -> Result<Vec<KeyInfo>>;
    /// What the token says about the key `key`.
    fn describe(&self, key: &KeyUri) -> Result<KeyInfo>;
    /// Fills `buf` from the token's RNG.
    fn random(&self, buf: &mut [u8]) -> Result<()>;
    /// Generates an end-entity key pair in the token and exports it (the token's key generation
    /// and RNG, and the same entropy gate, for leaf keys as for CA keys). The objects are
    /// destroyed before this returns; the caller seals the PKCS#8 at once.
    fn generate_exportable_key_pair(&self, algorithm: KeyAlgorithm) -> Result<ExportableKeyPair>;
    /// Calls and failures per operation, and the session pool's use, for metrics; a key store
    /// that keeps none reports nothing.
    fn stats(&self) -> crate::HsmStats {
        crate::HsmStats::default()
    }
}

/// Seals secrets for storage with a key that never leaves the HSM.
pub trait Sealer: Send + Sync {
    /// Encrypts `plaintext` bound to `context` (what the secret belongs to, e.g.
    /// `certificate:42:private_key`); the same context is needed to unseal.
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>>;
    /// Decrypts an envelope made by [`Sealer::seal`] with any KEK version still in the token. Fails
    /// with [`crate::Error::SealAuthentication`] if the envelope or context was changed.
    fn unseal(&self, envelope: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(sensitive: bool, extractable: bool, persistent: bool) -> KeyInfo {
        KeyInfo {
            uri: "pkcs11:token=t;object=k;type=private"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
            label: "k".into(),
            class: KeyClass::Private,
            key_type: "p256".into(),
            sensitive,
            extractable,
            persistent,
            local: true,
        }
    }

    #[test]
    fn only_keys_that_cannot_leave_the_token_are_protected() {
        assert!(info(true, false, true).ensure_protected().is_ok());
        for (key, problem) in [
            (info(false, false, true), "not sensitive"),
            (info(true, true, true), "extractable"),
            (info(true, false, false), "session object"),
        ] {
            let error = key.ensure_protected().unwrap_err().to_string();
            assert!(error.contains(problem), "{error}");
        }
    }
}
