//! Keys generated in the HSM ahead of demand (`[keys] ready`). An RSA key takes the token a
//! tenth of a second or more, far longer than the rest of an issuance; keeping a few ready makes
//! a burst of issuances with server-generated RSA keys as quick as one from a CSR.
//!
//! Each key is generated exactly as issuance would generate it (in the token, after the entropy
//! gate), exported once as PKCS#8 into zeroizing memory, and held only in this process: it is
//! never written anywhere, it is given to one certificate, and a key not used is wiped when the
//! daemon stops. The pool refills from the sealed stock (`ca::key_stock`) in batches while it
//! has keys, and otherwise one key at a time, so it never takes more than one CPU from the
//! requests it serves.

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

    /// The algorithms kept ready, and how many of each.
    pub fn targets(&self) -> &[(KeyAlgorithm, usize)] {
        &self.targets
    }

    /// How many keys of `algorithm` are kept ready (0: none).
    pub fn target(&self, algorithm: KeyAlgorithm) -> usize {
        count_of(&self.targets, algorithm)
    }

    /// The first algorithm below its target, and how many it lacks.
    fn wanted(&self) -> Option<(KeyAlgorithm, usize)> {
        self.targets.iter().find_map(|&(algorithm, target)| {
            let missing = target.saturating_sub(self.ready(algorithm));
            (missing > 0).then_some((algorithm, missing))
        })
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

/// The count `counts` gives `algorithm` (0 when it names none).
pub fn count_of(counts: &[(KeyAlgorithm, usize)], algorithm: KeyAlgorithm) -> usize {
    counts
        .iter()
        .find(|(a, _)| *a == algorithm)
        .map_or(0, |(_, count)| *count)
}

/// Keeps `app`'s pool full, one key at a time, for as long as the daemon runs.
pub async fn refill(app: Arc<App>) {
    loop {
        let Some((algorithm, missing)) = app.key_pool.wanted() else {
            app.key_pool.taken.notified().await;
            continue;
        };
        match super::key_stock::take(&app, algorithm, missing).await {
            Ok(stocked) if !stocked.is_empty() => {
                for key in stocked {
                    app.key_pool.keep(algorithm, key);
                }
                continue;
            }
            Ok(_) => {}
            // Generating here still serves the pool.
            Err(error) => log::warn!("taking {algorithm:?} keys from the stock failed: {error}"),
        }
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
