//! The PKCS#11 backend of [`KeyStore`] and [`Sealer`](crate::Sealer), on `cryptoki`.

mod export;
mod module;
mod objects;
mod pool;
mod probe;
mod rng;
mod seal;

pub(crate) use module::load as load_module;
pub(crate) use pool::find_token;
pub use probe::ExtractionProbe;
pub use seal::KekInfo;

use crate::stats::{HsmStats, Operation, OperationCounters};
use crate::{
    Error, HsmConfig, KeyAlgorithm, KeyClass, KeyInfo, KeyStore, KeyUri, Pin, PublicKey, Result,
    SignatureScheme, der,
};
use cryptoki::error::RvError;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use lemur_entropy::{EntropySource, HealthMonitor};
use pool::{Lease, SessionPool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Keys in one PKCS#11 token, used through a pool of logged-in sessions.
pub struct Pkcs11KeyStore {
    pool: Arc<SessionPool>,
    entropy: Arc<HealthMonitor>,
    kek_label: String,
    /// Object handles by URI, valid for one pool generation: finding a key costs three PKCS#11
    /// calls, more than the signature itself on a fast HSM.
    handles: Mutex<HashMap<KeyUri, (u64, ObjectHandle)>>,
    /// The newest KEK version seen, so sealing does not list the token every time.
    current_kek: Mutex<Option<u32>>,
    /// Where sealing nonces come from.
    nonces: seal::NonceSequence,
    /// KEK versions whose attributes were checked.
    checked_keks: Mutex<std::collections::HashSet<u32>>,
    /// A digest of the last draw of 8 bytes or more: a token RNG that repeats itself is caught
    /// even when each draw alone looks random.
    last_draw: Mutex<Option<ring::digest::Digest>>,
    /// Calls and failures per operation, for metrics.
    counters: OperationCounters,
}

impl Pkcs11KeyStore {
    /// Opens the token named in `config`: loads the module, reads the PIN file, logs in once.
    /// Key generation will ask `entropy` first.
    pub fn open(config: &HsmConfig, entropy: Arc<HealthMonitor>) -> Result<Self> {
        let pin = Pin::from_file(&config.pin_file)?;
        Self::open_with_pin(config, pin, entropy)
    }

    /// Like [`Pkcs11KeyStore::open`] with a PIN the caller already holds (typed at a prompt).
    pub fn open_with_pin(
        config: &HsmConfig,
        pin: Pin,
        entropy: Arc<HealthMonitor>,
    ) -> Result<Self> {
        let pool = SessionPool::new(
            config.module_path(),
            config.token.clone(),
            pin,
            config.pool_size(),
            config.checkout_timeout(),
        )?;
        pool.run(|_| Ok(()))?;
        Ok(Self {
            pool: Arc::new(pool),
            entropy,
            kek_label: config.kek_label.clone(),
            handles: Mutex::new(HashMap::new()),
            counters: OperationCounters::default(),
            current_kek: Mutex::new(None),
            nonces: seal::NonceSequence::default(),
            checked_keks: Mutex::new(std::collections::HashSet::new()),
            last_draw: Mutex::new(None),
        })
    }

    /// The token's RNG as an entropy source, for the health monitor.
    pub fn rng_source(&self) -> Arc<dyn EntropySource> {
        Arc::new(rng::TokenRng::new(Arc::clone(&self.pool)))
    }

    /// The token label.
    pub fn token_label(&self) -> &str {
        self.pool.token_label()
    }

    /// Sessions the pool may open.
    pub fn pool_size(&self) -> usize {
        self.pool.capacity()
    }

    /// The entropy monitor gating key generation.
    pub fn entropy(&self) -> &Arc<HealthMonitor> {
        &self.entropy
    }

    /// Runs `operation` with the handle of the object `uri` names, from the cache when possible.
    /// A cached handle the token no longer knows is looked up again once.
    fn with_handle<T>(
        &self,
        uri: &KeyUri,
        operation: impl Fn(&Session, ObjectHandle) -> cryptoki::error::Result<T>,
    ) -> Result<T> {
        let class = objects::class_of(uri);
        self.pool.run(|lease| {
            let generation = lease.generation();
            if let Some(handle) = self.cached_handle(uri, generation) {
                match operation(lease, handle) {
                    Err(cryptoki::error::Error::Pkcs11(
                        RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid,
                        _,
                    )) => self.forget_handle(uri),
                    other => return other.map_err(Error::from),
                }
            }
            let handle = objects::find_required(lease, uri, class)?;
            self.lock_handles()
                .insert(uri.clone(), (generation, handle));
            operation(lease, handle).map_err(Error::from)
        })
    }

    fn lock_handles(&self) -> std::sync::MutexGuard<'_, HashMap<KeyUri, (u64, ObjectHandle)>> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached_handle(&self, uri: &KeyUri, generation: u64) -> Option<ObjectHandle> {
        self.lock_handles()
            .get(uri)
            .filter(|(cached_generation, _)| *cached_generation == generation)
            .map(|(_, handle)| *handle)
    }

    fn forget_handle(&self, uri: &KeyUri) {
        self.lock_handles().remove(uri);
    }

    /// Refuses keys of another token: a URI is only meaningful for the token it names.
    fn check_token(&self, uri: &KeyUri) -> Result<()> {
        if uri.token() == self.token_label() {
            Ok(())
        } else {
            Err(Error::InvalidUri {
                uri: uri.to_string(),
                reason: format!(
                    "names token {:?}, this key store serves {:?}",
                    uri.token(),
                    self.token_label()
                ),
            })
        }
    }

    /// A fresh object id for a new key, from the token's RNG.
    fn new_id(&self) -> Result<Vec<u8>> {
        let mut id = vec![0u8; 8];
        self.random(&mut id)?;
        Ok(id)
    }
}

fn pss_params() -> PkcsPssParams {
    PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    }
}

/// The repetition count test on the bytes of one draw: the health monitor judges samples, this
/// judges what is actually used, so a token RNG that sticks between checks is caught at once.
fn check_draw(bytes: &[u8]) -> Result<()> {
    let config = lemur_entropy::CheckConfig::default();
    let cutoff = lemur_entropy::cutoff::repetition_count(config.min_entropy_bits, config.alpha_exp);
    let mut test = lemur_entropy::RepetitionCountTest::new(cutoff);
    for &byte in bytes {
        test.feed(byte).map_err(|failure| {
            Error::Entropy(lemur_entropy::Error::Unhealthy {
                reason: format!("the token's random bytes: {failure}"),
            })
        })?;
    }
    Ok(())
}

/// How many times a leaf key is made when the token reports the one it has just made as gone.
const SESSION_KEY_TRIES: u32 = 3;

impl KeyStore for Pkcs11KeyStore {
    fn generate_key_pair(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        ephemeral: bool,
    ) -> Result<KeyInfo> {
        self.counters.count(Operation::GenerateKeyPair, || {
            self.entropy.ensure_healthy()?;
            if label.is_empty() {
                return Err(Error::Unsupported("an empty key label".into()));
            }
            let probe = KeyUri::labelled(self.token_label(), label, crate::ObjectType::Private);
            if self
                .pool
                .run(|lease| objects::find(lease, &probe, ObjectClass::PRIVATE_KEY))?
                .is_some()
            {
                return Err(Error::KeyExists {
                    label: label.to_owned(),
                });
            }
            let id = self.new_id()?;
            let (mechanism, public, private) =
                objects::key_pair_templates(algorithm, label, &id, !ephemeral);
            let generate = |lease: &Lease<'_>| {
                let (_, private_key) = lease.generate_key_pair(&mechanism, &public, &private)?;
                objects::describe(lease, self.token_label(), private_key, KeyClass::Private)
            };
            if ephemeral {
                self.pool.run(generate)
            } else {
                self.pool.run_alone(generate)
            }
        })
    }

    fn public_key(&self, key: &KeyUri) -> Result<PublicKey> {
        self.check_token(key)?;
        self.pool.run(|lease| objects::public_key(lease, key))
    }

    fn sign(&self, key: &KeyUri, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>> {
        self.counters.count(Operation::Sign, || {
            self.check_token(key)?;
            let digest;
            let (mechanism, data) = match scheme {
                SignatureScheme::EcdsaSha256 => {
                    digest = ring::digest::digest(&ring::digest::SHA256, message);
                    (Mechanism::Ecdsa, digest.as_ref())
                }
                SignatureScheme::EcdsaSha384 => {
                    digest = ring::digest::digest(&ring::digest::SHA384, message);
                    (Mechanism::Ecdsa, digest.as_ref())
                }
                SignatureScheme::RsaPkcs1Sha256 => (Mechanism::Sha256RsaPkcs, message),
                SignatureScheme::RsaPssSha256 => {
                    (Mechanism::Sha256RsaPkcsPss(pss_params()), message)
                }
            };
            let signature = self.with_handle(key, |session, handle| {
                session.sign(&mechanism, handle, data)
            })?;
            if scheme.is_rsa() {
                Ok(signature)
            } else {
                der::ecdsa_signature(&signature).ok_or_else(|| {
                    Error::Malformed(format!("ECDSA signature of {} bytes", signature.len()))
                })
            }
        })
    }

    fn destroy(&self, key: &KeyUri) -> Result<()> {
        self.check_token(key)?;
        let pair = key.clone().without_type();
        self.pool.run_alone(|lease| {
            let private = objects::find(lease, &pair, ObjectClass::PRIVATE_KEY)?;
            let public = objects::find(lease, &pair, ObjectClass::PUBLIC_KEY)?;
            if private.is_none() && public.is_none() {
                return Err(Error::KeyNotFound {
                    uri: key.to_string(),
                });
            }
            for handle in private.into_iter().chain(public) {
                lease.destroy_object(handle)?;
            }
            Ok(())
        })?;
        self.lock_handles()
            .retain(|uri, _| uri.clone().without_type() != pair);
        Ok(())
    }

    fn list(&self) -> Result<Vec<KeyInfo>> {
        self.pool.run(|lease| {
            let mut keys = Vec::new();
            for (class, kind) in [
                (ObjectClass::PRIVATE_KEY, KeyClass::Private),
                (ObjectClass::SECRET_KEY, KeyClass::Secret),
            ] {
                for handle in lease.find_objects(&[Attribute::Class(class)])? {
                    keys.push(objects::describe(lease, self.token_label(), handle, kind)?);
                }
            }
            keys.sort_by(|a, b| a.label.cmp(&b.label));
            Ok(keys)
        })
    }

    fn describe(&self, key: &KeyUri) -> Result<KeyInfo> {
        let class = objects::class_of(key);
        let kind = if class == ObjectClass::SECRET_KEY {
            KeyClass::Secret
        } else {
            KeyClass::Private
        };
        self.pool.run(|lease| {
            let handle = objects::find_required(lease, key, class)?;
            objects::describe(lease, self.token_label(), handle, kind)
        })
    }

    fn random(&self, buf: &mut [u8]) -> Result<()> {
        self.counters.count(Operation::Random, || {
            self.entropy.ensure_healthy()?;
            self.pool
                .run(|lease| lease.generate_random_slice(buf).map_err(Error::from))?;
            check_draw(buf)?;
            if buf.len() >= 8 {
                let digest = ring::digest::digest(&ring::digest::SHA256, buf);
                let mut last = self
                    .last_draw
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if last
                    .as_ref()
                    .is_some_and(|previous| previous.as_ref() == digest.as_ref())
                {
                    return Err(Error::Entropy(lemur_entropy::Error::Unhealthy {
                        reason: "the token's random bytes repeated the previous draw".into(),
                    }));
                }
                *last = Some(digest);
            }
            Ok(())
        })
    }

    fn generate_exportable_key_pair(
        &self,
        algorithm: KeyAlgorithm,
    ) -> Result<crate::ExportableKeyPair> {
        self.counters
            .count(Operation::GenerateExportableKeyPair, || {
                self.entropy.ensure_healthy()?;
                let mut tries = 0;
                loop {
                    tries += 1;
                    match self
                        .pool
                        .run_on_session_objects(|lease| export::generate(lease, algorithm))
                    {
                        // SoftHSM 2.6 at times reports a session key it has just made as gone
                        // (CKR_OBJECT_HANDLE_INVALID) while other sessions make and destroy
                        // keys of their own (seen about once in a dozen runs of a test where
                        // the ready pool and the stock both make keys): nothing of that key
                        // was kept, so another is made in its place.
                        Err(error) if error.is_object_gone() && tries < SESSION_KEY_TRIES => {
                            log::warn!("{error}; making the key again");
                        }
                        made => return made,
                    }
                }
            })
    }

    fn stats(&self) -> HsmStats {
        let (open, idle) = self.pool.usage();
        HsmStats::new(&self.counters, self.pool.capacity(), open, idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stuck_draw_is_refused() {
        assert!(check_draw(&[0x5a; 16]).is_err());
        assert!(check_draw(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]).is_ok());
    }
}
