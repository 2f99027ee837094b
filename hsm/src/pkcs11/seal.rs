//! Sealing secrets with AES-256-GCM inside the token, under versioned key-encryption keys.
//!
//! The KEK family `lemur-kek` lives in the token as `lemur-kek-v1`, `lemur-kek-v2` ...: AES-256,
//! sensitive, not extractable, encrypt/decrypt only. Sealing uses the newest version; unsealing uses
//! the version named in the envelope, so rotation never strands old secrets. Nonces are 96 bits from
//! the token's RNG; at the GCM bound of 2^32 random nonces per key, rotate long before.

use super::{Pkcs11KeyStore, objects};
use crate::envelope::{self, Header, NONCE_LEN};
use crate::{Error, KeyUri, ObjectType, Result, Sealer};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use serde::Serialize;
use std::sync::PoisonError;
use zeroize::Zeroizing;

const TAG_BITS: u64 = 128;

/// A key-encryption key version in the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KekInfo {
    /// The family label.
    pub label: String,
    /// The version.
    pub version: u32,
    /// Its URI.
    #[serde(serialize_with = "display")]
    pub uri: KeyUri,
}

fn display<S: serde::Serializer>(uri: &KeyUri, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(uri)
}

impl Pkcs11KeyStore {
    fn kek_uri(&self, version: u32) -> KeyUri {
        KeyUri::labelled(
            self.token_label(),
            format!("{}-v{version}", self.kek_label),
            ObjectType::Secret,
        )
    }

    fn kek_info(&self, version: u32) -> KekInfo {
        KekInfo {
            label: self.kek_label.clone(),
            version,
            uri: self.kek_uri(version),
        }
    }

    /// Every KEK version in the token, oldest first.
    pub fn kek_versions(&self) -> Result<Vec<KekInfo>> {
        let prefix = format!("{}-v", self.kek_label);
        let mut versions = self.pool.run(|lease| {
            let mut versions = Vec::new();
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
            ];
            for handle in lease.find_objects(&template)? {
                for attribute in
                    lease.get_attributes(handle, &[cryptoki::object::AttributeType::Label])?
                {
                    if let Attribute::Label(label) = attribute {
                        let version = std::str::from_utf8(&label)
                            .ok()
                            .and_then(|l| l.strip_prefix(&prefix))
                            .and_then(|v| v.parse::<u32>().ok());
                        versions.extend(version);
                    }
                }
            }
            Ok(versions)
        })?;
        versions.sort_unstable();
        Ok(versions.into_iter().map(|v| self.kek_info(v)).collect())
    }

    /// Creates the first KEK version. Refused if one exists (use [`Self::rotate_kek`]).
    pub fn create_kek(&self) -> Result<KekInfo> {
        if let Some(newest) = self.kek_versions()?.last() {
            return Err(Error::KekExists {
                label: self.kek_label.clone(),
                version: newest.version,
            });
        }
        self.generate_kek(1)
    }

    /// Creates the next KEK version; new secrets are sealed with it, old envelopes still open.
    pub fn rotate_kek(&self) -> Result<KekInfo> {
        let next = self.kek_versions()?.last().map_or(1, |k| k.version + 1);
        self.generate_kek(next)
    }

    fn generate_kek(&self, version: u32) -> Result<KekInfo> {
        self.entropy.ensure_healthy()?;
        if !envelope::valid_label(&self.kek_label) {
            return Err(Error::Unsupported(format!(
                "KEK label {:?}",
                self.kek_label
            )));
        }
        let label = format!("{}-v{version}", self.kek_label);
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Derive(false),
            Attribute::Label(label.into_bytes()),
            Attribute::Id(format!("kek{version}").into_bytes()),
        ];
        self.pool.run(|lease| {
            lease
                .generate_key(&Mechanism::AesKeyGen, &template)
                .map_err(Error::from)
        })?;
        *self
            .current_kek
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(version);
        Ok(self.kek_info(version))
    }

    /// The newest KEK version, noticing versions another process added since the last look.
    fn current_kek_version(&self) -> Result<u32> {
        let cached = *self
            .current_kek
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let version = match cached {
            Some(version) => {
                let next = self.kek_uri(version + 1);
                let rotated = self
                    .pool
                    .run(|lease| objects::find(lease, &next, ObjectClass::SECRET_KEY))?
                    .is_some();
                if rotated { version + 1 } else { version }
            }
            None => self
                .kek_versions()?
                .last()
                .map(|k| k.version)
                .ok_or_else(|| Error::KekNotFound {
                    label: self.kek_label.clone(),
                    version: 0,
                })?,
        };
        *self
            .current_kek
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(version);
        Ok(version)
    }
}

impl Sealer for Pkcs11KeyStore {
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        let version = self.current_kek_version()?;
        let mut nonce = [0u8; NONCE_LEN];
        crate::KeyStore::random(self, &mut nonce)?;
        let header = Header {
            kek_label: self.kek_label.clone(),
            kek_version: version,
            nonce,
        };
        let aad = header.aad(context)?;
        let sealed = self.with_handle(&self.kek_uri(version), |session, kek| {
            let mut iv = nonce;
            let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into())?;
            session.encrypt(&Mechanism::AesGcm(params), kek, plaintext)
        })?;
        let mut envelope = header.encode()?;
        envelope.extend_from_slice(&sealed);
        Ok(envelope)
    }

    fn unseal(&self, envelope: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (header, body) = envelope::parse(envelope)?;
        if header.kek_label != self.kek_label {
            return Err(Error::KekNotFound {
                label: header.kek_label,
                version: header.kek_version,
            });
        }
        let aad = header.aad(context)?;
        let uri = self.kek_uri(header.kek_version);
        let opened = self.with_handle(&uri, |session, kek| {
            let mut iv = header.nonce;
            let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into())?;
            session.decrypt(&Mechanism::AesGcm(params), kek, body)
        });
        match opened {
            Ok(plaintext) => Ok(Zeroizing::new(plaintext)),
            Err(Error::KeyNotFound { .. }) => Err(Error::KekNotFound {
                label: header.kek_label,
                version: header.kek_version,
            }),
            Err(Error::Pkcs11 { .. }) => Err(Error::SealAuthentication),
            Err(other) => Err(other),
        }
    }
}
