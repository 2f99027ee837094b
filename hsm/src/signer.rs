//! The seam where `rcgen` signs certificates and CRLs with a key that lives in the HSM.
//!
//! rcgen calls [`rcgen::SigningKey::sign`] with the TBS bytes; the signer sends them to the key
//! store and verifies the returned signature against the public key in software before handing it
//! back, so a faulty HSM cannot produce a certificate with a bad signature. rcgen's error type has
//! no room for detail, so the last failure is kept for [`HsmSigner::take_error`].

use crate::{Error, KeyAlgorithm, KeyStore, KeyUri, PublicKey, Result, SignatureScheme};
use std::sync::{Arc, Mutex, PoisonError};

/// An HSM key as an rcgen signing key.
pub struct HsmSigner {
    store: Arc<dyn KeyStore>,
    key: KeyUri,
    public: PublicKey,
    scheme: SignatureScheme,
    last_error: Mutex<Option<Error>>,
}

impl HsmSigner {
    /// A signer for `key`, with the default scheme of its algorithm (ECDSA with the curve's hash,
    /// RSA PKCS#1 v1.5 with SHA-256; rcgen has no RSA-PSS certificate profile).
    pub fn new(store: Arc<dyn KeyStore>, key: KeyUri) -> Result<Self> {
        let public = store.public_key(&key)?;
        Ok(Self::with_public_key(store, key, public))
    }

    /// A signer for `key` whose public half the caller already holds (read earlier with
    /// [`KeyStore::public_key`]), saving a token round trip per signer. Signatures are verified
    /// against `public`, so a stale or wrong key fails loudly rather than signing silently.
    pub fn with_public_key(store: Arc<dyn KeyStore>, key: KeyUri, public: PublicKey) -> Self {
        Self {
            scheme: public.algorithm().default_scheme(),
            store,
            key,
            public,
            last_error: Mutex::new(None),
        }
    }

    /// The key's public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key's URI.
    pub fn key(&self) -> &KeyUri {
        &self.key
    }

    /// Why the last [`rcgen::SigningKey::sign`] call failed, if it did.
    pub fn take_error(&self) -> Option<Error> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn sign_verified(&self, message: &[u8]) -> Result<Vec<u8>> {
        let signature = self.store.sign(&self.key, self.scheme, message)?;
        if crate::verify_signature(&self.public, self.scheme, message, &signature) {
            Ok(signature)
        } else {
            Err(Error::BadSignature {
                uri: self.key.to_string(),
            })
        }
    }
}

impl rcgen::PublicKeyData for HsmSigner {
    fn der_bytes(&self) -> &[u8] {
        self.public.key_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.public.algorithm() {
            KeyAlgorithm::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                &rcgen::PKCS_RSA_SHA256
            }
        }
    }
}

impl rcgen::SigningKey for HsmSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.sign_verified(message).map_err(|error| {
            *self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(error);
            rcgen::Error::RemoteKeyError
        })
    }
}
