//! Sealing secrets with AES-256-GCM inside the token, under versioned key-encryption keys.
//!
//! The KEK family `lemur-kek` lives in the token as `lemur-kek-v1`, `lemur-kek-v2` ...: AES-256,
//! sensitive, not extractable, encrypt/decrypt only. Sealing uses the newest version; unsealing uses
//! the version named in the envelope, so rotation never strands old secrets. Nonces are 96 bits from
//! the token's RNG; at the GCM bound of 2^32 random nonces per key, rotate long before.

use super::{Pkcs11KeyStore, objects};
use crate::envelope::{self, Header, NONCE_LEN};
use crate::stats::Operation;
use crate::{Error, KeyUri, ObjectType, Result, Sealer};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use serde::Serialize;
use std::sync::{Mutex, PoisonError};
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

/// How long a KEK that looks unprotected is looked at again before it is refused.
const KEK_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

impl Pkcs11KeyStore {
    /// Fails unless KEK `version` is a protected 256-bit AES key in the token (anyone who can log
    /// in could otherwise plant an extractable key under the next version's label); checked once
    /// per version and process.
    ///
    /// A refusal is confirmed over [`KEK_SETTLE`] first: another process's token library may be
    /// midway through writing a new version's attributes (SoftHSM writes them one by one), and a
    /// key seen then looks imported.
    fn ensure_kek_protected(&self, version: u32) -> Result<()> {
        let deadline = std::time::Instant::now() + KEK_SETTLE;
        loop {
            match self.check_kek_protected(version) {
                Err(Error::KeyNotProtected { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::park_timeout(KEK_SETTLE / 10);
                }
                checked => return checked,
            }
        }
    }

    fn check_kek_protected(&self, version: u32) -> Result<()> {
        if self
            .checked_keks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&version)
        {
            return Ok(());
        }
        let info = crate::KeyStore::describe(self, &self.kek_uri(version))?;
        info.ensure_protected()?;
        let wrong = if info.key_type != "aes256" {
            Some(format!(
                "a KEK must be a 256-bit AES key, not {}",
                info.key_type
            ))
        } else if !info.local {
            Some("a KEK must be generated in the token; this one was imported".to_owned())
        } else {
            None
        };
        if let Some(reason) = wrong {
            return Err(Error::KeyNotProtected {
                uri: info.uri.to_string(),
                reason,
            });
        }
        self.checked_keks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(version);
        Ok(())
    }

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
        let uri = self.kek_uri(version);
        self.pool.run_alone(|lease| {
            // Another process may be creating the same version: the label must be free before,
            // and ours alone after, or ours is destroyed and theirs stands.
            if objects::find(lease, &uri, ObjectClass::SECRET_KEY)?.is_some() {
                return Err(Error::KekExists {
                    label: self.kek_label.clone(),
                    version,
                });
            }
            let ours = lease.generate_key(&Mechanism::AesKeyGen, &template)?;
            let unique = matches!(lease.find_objects(&objects::template(&uri, ObjectClass::SECRET_KEY))?.as_slice(), [one] if *one == ours);
            if unique {
                Ok(())
            } else {
                lease.destroy_object(ours)?;
                Err(Error::KekExists {
                    label: self.kek_label.clone(),
                    version,
                })
            }
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
            // Several rotations may have happened since the last look.
            Some(mut version) => {
                while self
                    .pool
                    .run(|lease| {
                        objects::find(lease, &self.kek_uri(version + 1), ObjectClass::SECRET_KEY)
                    })?
                    .is_some()
                {
                    version += 1;
                }
                version
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

/// Sealing nonces, unique by construction (NIST SP 800-38D's deterministic construction): a
/// 64-bit prefix per process, then a 32-bit counter. The prefix hashes a random draw (through the
/// entropy gate) with what differs between processes without any RNG (boot id, process id, the
/// time), so even a token RNG stuck on one output gives each process, on each machine and at each
/// start, its own prefix. A new prefix is made before the counter wraps.
#[derive(Debug, Default)]
pub(super) struct NonceSequence(Mutex<Option<([u8; 8], u32)>>);

impl NonceSequence {
    /// The next nonce, drawing a prefix with `draw` when there is none or the counter is spent.
    pub(super) fn next(
        &self,
        draw: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<[u8; NONCE_LEN]> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (prefix, counter) = match *state {
            Some((prefix, counter)) if counter < u32::MAX => (prefix, counter),
            _ => {
                let mut random = [0u8; 8];
                draw(&mut random)?;
                (process_unique_prefix(&random), 0)
            }
        };
        *state = Some((prefix, counter + 1));
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&prefix);
        nonce[8..].copy_from_slice(&counter.to_be_bytes());
        Ok(nonce)
    }
}

/// 8 bytes of SHA-256 over `random`, the boot id, the process id and the time.
fn process_unique_prefix(random: &[u8]) -> [u8; 8] {
    let boot_id = std::fs::read("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    // Not a time to reason with, only a value that differs between two starts of a process.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(random);
    context.update(&boot_id);
    context.update(&std::process::id().to_be_bytes());
    context.update(&started.to_be_bytes());
    let digest = context.finish();
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest.as_ref()[..8]);
    prefix
}

/// Fails when the token replaced the IV it was given: some HSMs in FIPS mode (CloudHSM, Luna)
/// generate the GCM IV themselves and write it back, and an envelope holding the IV we asked
/// for would never open again.
fn iv_kept(asked: &[u8], used: &[u8]) -> Result<()> {
    if asked == used {
        Ok(())
    } else {
        Err(Error::Unsupported(
            "the token generated its own AES-GCM IV; sealing needs a token that uses the IV it is given"
                .into(),
        ))
    }
}

impl Sealer for Pkcs11KeyStore {
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        self.counters.count(Operation::Seal, || {
            let version = self.current_kek_version()?;
            self.ensure_kek_protected(version)?;
            let nonce = self
                .nonces
                .next(|prefix| crate::KeyStore::random(self, prefix))?;
            let header = Header {
                kek_label: self.kek_label.clone(),
                kek_version: version,
                nonce,
            };
            let aad = header.aad(context)?;
            let (sealed, iv) = self.with_handle(&self.kek_uri(version), |session, kek| {
                let mut iv = nonce;
                let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into())?;
                let sealed = session.encrypt(&Mechanism::AesGcm(params), kek, plaintext)?;
                Ok((sealed, iv))
            })?;
            iv_kept(&nonce, &iv)?;
            let mut envelope = header.encode()?;
            envelope.extend_from_slice(&sealed);
            Ok(envelope)
        })
    }

    fn unseal(&self, envelope: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.counters.count(Operation::Unseal, || {
            let (header, body) = envelope::parse(envelope)?;
            if header.kek_label != self.kek_label {
                return Err(Error::KekNotFound {
                    label: header.kek_label,
                    version: header.kek_version,
                });
            }
            let aad = header.aad(context)?;
            match self.ensure_kek_protected(header.kek_version) {
                Err(Error::KeyNotFound { .. }) => {
                    return Err(Error::KekNotFound {
                        label: header.kek_label,
                        version: header.kek_version,
                    });
                }
                checked => checked?,
            }
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_never_repeat_even_when_the_rng_does() {
        let sequence = NonceSequence::default();
        let stuck = |prefix: &mut [u8]| {
            prefix.fill(7);
            Ok(())
        };
        let first = sequence.next(stuck).unwrap();
        let second = sequence.next(stuck).unwrap();
        assert_ne!(first, second);
        assert_eq!(first[..8], second[..8], "one prefix per process");
        let another_start = NonceSequence::default().next(stuck).unwrap();
        assert_ne!(
            first[..8],
            another_start[..8],
            "a stuck RNG still gives another start another prefix"
        );
        let refused = NonceSequence::default().next(|_| Err(Error::Unsupported("stuck".into())));
        assert!(refused.is_err(), "no nonce without a healthy draw");
    }

    #[test]
    fn an_iv_the_token_replaced_is_refused() {
        assert!(iv_kept(&[1; NONCE_LEN], &[1; NONCE_LEN]).is_ok());
        assert!(iv_kept(&[1; NONCE_LEN], &[2; NONCE_LEN]).is_err());
    }
}
