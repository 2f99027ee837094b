//! Keys generated in the HSM ahead of demand (`[keys] ready`). An RSA key takes the token a
//! tenth of a second or more, far longer than the rest of an issuance; keeping a few ready makes
//! a burst of issuances with server-generated RSA keys as quick as one from a CSR.
//!
//! Each key is generated exactly as issuance would generate it (in the token, after the entropy
//! gate), exported once as PKCS#8 into zeroizing memory, and held only in this process: it is
//! never written anywhere, it is given to one certificate, and a key not used is wiped when the
//! daemon stops. The pool refills one key at a time, so it never takes more than one CPU from
//! the requests it serves.

use crate::App;
use lemur_hsm::{ExportableKeyPair, KeyAlgorithm};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long the refiller waits before trying again after a failure (entropy unhealthy, HSM
/// unavailable).
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Ready keys by algorithm, and how many of each to keep.
pub struct KeyPool {
    targets: Vec<(KeyAlgorithm, usize)>,
    ready: Mutex<HashMap<KeyAlgorithm, Vec<ExportableKeyPair>>>,
    /// Wakes the refiller when a key is taken.
    taken: tokio::sync::Notify,
}

impl KeyPool {
    /// A pool keeping `targets` keys ready (empty at first: [`refill`] fills it).
    pub fn new(targets: Vec<(KeyAlgorithm, usize)>) -> Self {
        Self {
            targets,
            ready: Mutex::new(HashMap::new()),
            taken: tokio::sync::Notify::new(),
        }
    }

    /// A ready key of `algorithm`, if there is one; the refiller replaces it.
    pub fn take(&self, algorithm: KeyAlgorithm) -> Option<ExportableKeyPair> {
        let key = self
            .ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&algorithm)?
            .pop();
        if key.is_some() {
            self.taken.notify_one();
        }
        key
    }

    /// How many keys of `algorithm` are ready.
    pub fn ready(&self, algorithm: KeyAlgorithm) -> usize {
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&algorithm)
            .map_or(0, Vec::len)
    }

    /// Each algorithm kept ready: how many are ready, and the target.
    pub fn status(&self) -> Vec<(KeyAlgorithm, usize, usize)> {
        self.targets
            .iter()
            .map(|&(algorithm, target)| (algorithm, self.ready(algorithm), target))
            .collect()
    }

    /// The first algorithm below its target.
    fn wanted(&self) -> Option<KeyAlgorithm> {
        self.targets
            .iter()
            .find(|(algorithm, target)| self.ready(*algorithm) < *target)
            .map(|(algorithm, _)| *algorithm)
    }

    fn keep(&self, algorithm: KeyAlgorithm, key: ExportableKeyPair) {
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(algorithm)
            .or_default()
            .push(key);
    }
}

/// Keeps `app`'s pool full, one key at a time, for as long as the daemon runs.
pub async fn refill(app: Arc<App>) {
    loop {
        let Some(algorithm) = app.key_pool.wanted() else {
            app.key_pool.taken.notified().await;
            continue;
        };
        let generated = match app.entropy.ensure_healthy() {
            Ok(()) => {
                app.hsm(move |keys| Ok(keys.generate_exportable_key_pair(algorithm)?))
                    .await
            }
            Err(error) => Err(error.into()),
        };
        match generated {
            Ok(key) => app.key_pool.keep(algorithm, key),
            Err(error) => {
                log::warn!(
                    "generating a {algorithm:?} key ahead of demand failed ({error}); retrying in {} s",
                    RETRY_AFTER.as_secs()
                );
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}
