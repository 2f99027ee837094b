//! Keys generated in the HSM ahead of demand and kept sealed in the database (`[keys] stock`).
//!
//! The daemon's memory pool (`ca::key_pool`) serves a few dozen keys at once; an RSA key takes
//! the token a tenth of a second or more, so a burst beyond the pool (a mass re-issue after an
//! incident) would run at key generation's pace. The stock holds many more, sealed under the
//! KEK like every stored key: it outlasts restarts and upgrades, it is shared by every daemon on
//! the database, and the memory pool refills from it in batches.
//!
//! Keys are made one at a time on a thread of the lowest CPU priority (nice 19), so the stock
//! grows from idle CPU time and never slows the requests being served. Each key passes the
//! entropy gate, is exported once from the token as PKCS#8 and sealed at once, bound to a random
//! token and its public key; it is deleted from the stock as it is taken, so it is given to one
//! certificate only, by whichever daemon takes it.

use crate::App;
use crate::ca::key_pool::count_of;
use crate::error::{Error, Result};
use crate::model::StockedKey;
use lemur_entropy::HealthMonitor;
use lemur_hsm::{ExportableKeyPair, KeyAlgorithm, PublicKey};
use std::sync::Arc;
use std::time::Duration;

/// How long the filler waits after a failure (entropy unhealthy, HSM or database unavailable).
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// How often the filler looks again while the stock is full: another daemon may have taken keys.
const RECOUNT_EVERY: Duration = Duration::from_secs(60);
/// The nice value of the thread that makes keys: the lowest priority there is.
const LOWEST_PRIORITY: i32 = 19;
/// How long a stopping daemon waits for the key being made: an RSA key at the lowest priority
/// on a busy machine takes seconds (over 10 s was seen for an RSA-2048 one while another daemon
/// made keys); systemd's stop timeout (60 s) leaves room for it after the requests in flight.
const FINISH_WITHIN: Duration = Duration::from_secs(25);

/// The stock's targets, and a signal that keys were taken.
pub struct KeyStock {
    targets: Vec<(KeyAlgorithm, usize)>,
    taken: tokio::sync::Notify,
}

impl KeyStock {
    /// A stock kept at `targets` by [`fill`].
    pub fn new(targets: Vec<(KeyAlgorithm, usize)>) -> Self {
        Self {
            targets,
            taken: tokio::sync::Notify::new(),
        }
    }

    /// How many keys of `algorithm` the stock is kept at (0: none).
    pub fn target(&self, algorithm: KeyAlgorithm) -> usize {
        count_of(&self.targets, algorithm)
    }

    /// The algorithms with a stock, and their targets.
    pub fn targets(&self) -> &[(KeyAlgorithm, usize)] {
        &self.targets
    }
}

/// The name a stocked key is bound under: its key type and token (`RSA2048:9f0c...`).
pub fn label(algorithm: KeyAlgorithm, token: &str) -> String {
    format!("{}:{token}", algorithm.lemur_name())
}

/// What a stocked key's envelope is bound to: its [`label`] and its public key, so none of the
/// three can be changed in the database (a row relabelled as another key type, or copied under
/// a new token) without the key failing to unseal.
pub fn binding(label: &str, public_key: &[u8]) -> String {
    format!("{label}:{}", crate::ca::x509::sha256_hex(public_key))
}

/// The sealing context of a stocked key with this [`binding`].
pub fn context(binding: &str) -> Vec<u8> {
    format!("lemur:stocked-private-key:{binding}").into_bytes()
}

/// Keys dropped in a row (envelopes that do not open) after which a take stops and puts the rest
/// back: a token that fails every decryption should not empty a stock other daemons share.
const DROPS_IN_A_ROW: usize = 3;

/// Takes at most `limit` keys of `algorithm` out of the stock, unsealed; none when the stock is
/// empty or the algorithm has none. A key whose envelope does not open is dropped and reported
/// (a few in a row stop the take); keys not unsealed for any other reason (the token or its KEK
/// unavailable) go back into the stock, so an outage does not drain it. Keys taken and then not
/// used (the daemon stopping) are lost, never given twice.
pub async fn take(
    app: &App,
    algorithm: KeyAlgorithm,
    limit: usize,
) -> Result<Vec<ExportableKeyPair>> {
    if app.key_stock.target(algorithm) == 0 || limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let stocked = app.store.take_stocked_keys(algorithm, limit).await?;
    if stocked.is_empty() {
        return Ok(Vec::new());
    }
    app.key_stock.taken.notify_one();
    let Unsealed {
        keys,
        untouched,
        stopped_by,
    } = app.hsm(move |hsm| Ok(unseal_all(&**hsm, stocked))).await?;
    if !untouched.is_empty()
        && let Err(error) = app.store.stock_keys(&untouched, app.clock.unix()).await
    {
        log::error!(
            "{} stocked {algorithm:?} keys could not be put back and are lost: {error}",
            untouched.len()
        );
    }
    match stopped_by {
        Some(error) if keys.is_empty() => Err(error.into()),
        _ => Ok(keys),
    }
}

/// What [`unseal_all`] made of a batch.
struct Unsealed {
    /// The keys unsealed.
    keys: Vec<ExportableKeyPair>,
    /// The keys left sealed, to go back into the stock.
    untouched: Vec<StockedKey>,
    /// Why it stopped before the end.
    stopped_by: Option<lemur_hsm::Error>,
}

/// Unseals `stocked`, dropping (and reporting) each key whose envelope does not open; stops at
/// any other failure, or after [`DROPS_IN_A_ROW`] drops.
fn unseal_all(hsm: &dyn lemur_hsm::Sealer, stocked: Vec<StockedKey>) -> Unsealed {
    let mut keys = Vec::with_capacity(stocked.len());
    let mut dropped_in_a_row = 0;
    let mut queue = stocked.into_iter();
    while let Some(key) = queue.next() {
        let bound = binding(&label(key.algorithm, &key.token), &key.public_key);
        let error = match hsm.unseal(&key.sealed, &context(&bound)) {
            Ok(pkcs8) => {
                dropped_in_a_row = 0;
                keys.push(ExportableKeyPair {
                    pkcs8,
                    public: PublicKey::new(key.algorithm, key.public_key),
                });
                continue;
            }
            Err(error) => error,
        };
        let altered = matches!(
            error,
            lemur_hsm::Error::SealAuthentication | lemur_hsm::Error::Envelope(_)
        );
        if altered {
            log::error!(
                "a stocked {:?} key ({}) does not unseal and was dropped: {error}",
                key.algorithm,
                key.token
            );
            dropped_in_a_row += 1;
        }
        if !altered || dropped_in_a_row == DROPS_IN_A_ROW {
            let untouched = (!altered).then_some(key).into_iter().chain(queue).collect();
            return Unsealed {
                keys,
                untouched,
                stopped_by: Some(error),
            };
        }
    }
    Unsealed {
        keys,
        untouched: Vec::new(),
        stopped_by: None,
    }
}

/// How many keys of each stocked algorithm are in the stock now.
pub async fn counts(app: &App) -> Result<Vec<(KeyAlgorithm, usize)>> {
    let stocked = app.store.stocked_key_counts().await?;
    Ok(app
        .key_stock
        .targets
        .iter()
        .map(|&(algorithm, _)| (algorithm, count_of(&stocked, algorithm)))
        .collect())
}

/// Keeps `app`'s stock at its targets until `stop` completes, then waits for the key being made
/// (if any): no thread may still be inside the token's library when the process exits, where
/// its teardown runs (SoftHSM2's crashed or hung under a key generation).
pub async fn fill(app: Arc<App>, stop: impl Future<Output = ()>) {
    if app.key_stock.targets.is_empty() {
        return;
    }
    let maker = match Maker::spawn(Arc::clone(&app.hsm), Arc::clone(&app.entropy)) {
        Ok(maker) => maker,
        Err(error) => {
            log::error!("the key stock is not kept: {error}");
            return;
        }
    };
    tokio::select! {
        () = keep_full(&app, &maker) => {}
        () = stop => {}
    }
    maker.finish().await;
}

/// Makes keys whenever the stock is below a target, for ever.
async fn keep_full(app: &App, maker: &Maker) {
    loop {
        match fill_once(app, maker).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = tokio::time::timeout(RECOUNT_EVERY, app.key_stock.taken.notified()).await;
            }
            Err(error) => {
                log::warn!(
                    "stocking keys failed ({error}); retrying in {} s",
                    RETRY_AFTER.as_secs()
                );
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// Makes and stores one key for the first algorithm below its target; `false` when none is.
async fn fill_once(app: &App, maker: &Maker) -> Result<bool> {
    let wanted = counts(app)
        .await?
        .into_iter()
        .find(|&(algorithm, count)| count < app.key_stock.target(algorithm));
    let Some((algorithm, _)) = wanted else {
        return Ok(false);
    };
    // Stored as soon as it is sealed: a KEK rotation gives seals in flight a moment to land
    // (`kek::SETTLE`), not the time a batch of keys takes at the lowest priority.
    let key = maker.make(algorithm).await?;
    app.store
        .stock_keys(std::slice::from_ref(&key), app.clock.unix())
        .await?;
    Ok(true)
}

/// A key asked of the [`Maker`], and where its answer goes.
type Job = (
    KeyAlgorithm,
    tokio::sync::oneshot::Sender<Result<StockedKey>>,
);

/// A thread of the lowest CPU priority that makes sealed keys on request, until
/// [`Maker::finish`].
struct Maker {
    jobs: std::sync::mpsc::Sender<Job>,
    /// Closed when the thread ends.
    ended: tokio::sync::oneshot::Receiver<()>,
}

impl Maker {
    /// Starts the thread; fails when it cannot lower its priority, since it would then take
    /// CPU time from requests (the daemon's unit must allow `setpriority`).
    fn spawn(hsm: Arc<dyn crate::app::Hsm>, entropy: Arc<HealthMonitor>) -> Result<Self> {
        let (jobs, inbox) = std::sync::mpsc::channel::<Job>();
        let (lowered, priority) = std::sync::mpsc::sync_channel(1);
        let (ending, ended) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("lemur-key-stock".into())
            .spawn(move || {
                let outcome = lower_priority();
                let ok = outcome.is_ok();
                let _ = lowered.send(outcome);
                if ok {
                    for (algorithm, answer) in inbox {
                        let _ = answer.send(make(&*hsm, &entropy, algorithm));
                    }
                }
                // Its last use of the token (the entropy monitor holds the token's RNG) ends
                // before the daemon hears it ended.
                drop((hsm, entropy));
                drop(ending);
            })
            .map_err(Error::io("starting the key stock's thread"))?;
        priority.recv().map_err(stopped)??;
        Ok(Self { jobs, ended })
    }

    /// Asks for no more keys and waits for the thread to end: at most the key being made, which
    /// is lost (never stored, so never given). A token that does not answer in [`FINISH_WITHIN`]
    /// is reported and left.
    async fn finish(self) {
        drop(self.jobs);
        if tokio::time::timeout(FINISH_WITHIN, self.ended)
            .await
            .is_err()
        {
            log::error!(
                "the key stock's thread was still making a key {} s after the daemon began \
                 stopping (is the token hung?)",
                FINISH_WITHIN.as_secs()
            );
        }
    }

    async fn make(&self, algorithm: KeyAlgorithm) -> Result<StockedKey> {
        let (answer, made) = tokio::sync::oneshot::channel();
        self.jobs.send((algorithm, answer)).map_err(stopped)?;
        made.await.map_err(stopped)?
    }
}

/// Puts the calling thread at nice 19, so its key generation takes only CPU time nothing else
/// wants (a thread's own nice value on Linux; unprivileged, since it only lowers priority).
fn lower_priority() -> Result<()> {
    let thread = rustix::thread::gettid();
    rustix::process::setpriority_process(Some(thread), LOWEST_PRIORITY).map_err(|error| {
        Error::Ca(format!(
            "its thread cannot lower its priority to nice {LOWEST_PRIORITY} ({error}; a unit's SystemCallFilter must allow setpriority)"
        ))
    })
}

/// The error of a call to a [`Maker`] whose thread has ended.
fn stopped<E>(_: E) -> Error {
    Error::Ca("the key stock's thread has stopped".into())
}

/// One key: entropy gate, generated in the token, exported once, sealed bound to a fresh token.
fn make(
    hsm: &dyn crate::app::Hsm,
    entropy: &HealthMonitor,
    algorithm: KeyAlgorithm,
) -> Result<StockedKey> {
    entropy.ensure_healthy()?;
    let pair = hsm.generate_exportable_key_pair(algorithm)?;
    let token = crate::files::random_hex(16)?.as_str().to_owned();
    let public_key = pair.public.key_bytes().to_vec();
    let bound = binding(&label(algorithm, &token), &public_key);
    let sealed = hsm.seal(&pair.pkcs8, &context(&bound))?;
    Ok(StockedKey {
        algorithm,
        token,
        public_key,
        sealed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    /// Unseals to the context itself, but for the tokens it refuses: `bad...` as altered, `gone`
    /// as an unavailable token, `kek` as sealed under a KEK the token lacks.
    struct Picky;

    impl lemur_hsm::Sealer for Picky {
        fn seal(&self, _: &[u8], context: &[u8]) -> lemur_hsm::Result<Vec<u8>> {
            Ok(context.to_vec())
        }

        fn unseal(&self, _: &[u8], context: &[u8]) -> lemur_hsm::Result<Zeroizing<Vec<u8>>> {
            let context = String::from_utf8_lossy(context);
            if context.contains(":bad") {
                Err(lemur_hsm::Error::SealAuthentication)
            } else if context.contains(":kek:") {
                Err(lemur_hsm::Error::KekNotFound {
                    label: "lemur-kek".into(),
                    version: 9,
                })
            } else if context.contains(":gone:") {
                Err(lemur_hsm::Error::TokenUnavailable {
                    label: "lemur".into(),
                    function: "C_Decrypt".into(),
                    rv: "CKR_DEVICE_REMOVED".into(),
                })
            } else {
                Ok(Zeroizing::new(context.as_bytes().to_vec()))
            }
        }
    }

    fn key(token: &str) -> StockedKey {
        StockedKey {
            algorithm: KeyAlgorithm::EcP256,
            token: token.into(),
            public_key: token.as_bytes().to_vec(),
            sealed: Vec::new(),
        }
    }

    #[test]
    fn altered_keys_are_dropped_and_an_outage_leaves_the_rest_sealed() {
        let stocked = ["a", "bad", "b", "gone", "c"]
            .map(key)
            .into_iter()
            .collect();
        let Unsealed {
            keys,
            untouched,
            stopped_by,
        } = unseal_all(&Picky, stocked);
        let unsealed: Vec<Vec<u8>> = keys
            .into_iter()
            .map(|k| k.public.key_bytes().to_vec())
            .collect();
        assert_eq!(unsealed, [b"a".to_vec(), b"b".to_vec()]);
        let untouched: Vec<&str> = untouched.iter().map(|k| k.token.as_str()).collect();
        assert_eq!(untouched, ["gone", "c"]);
        assert!(stopped_by.is_some_and(|e| e.is_unavailable()));
    }

    /// The tokens of the keys unsealed and of those left sealed, and why it stopped.
    fn outcome(tokens: &[&str]) -> (Vec<String>, Vec<String>, Option<lemur_hsm::Error>) {
        let outcome = unseal_all(&Picky, tokens.iter().map(|t| key(t)).collect());
        let names = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).unwrap();
        (
            outcome
                .keys
                .iter()
                .map(|k| names(k.public.key_bytes()))
                .collect(),
            outcome.untouched.iter().map(|k| k.token.clone()).collect(),
            outcome.stopped_by,
        )
    }

    #[test]
    fn a_missing_kek_puts_keys_back_and_drops_in_a_row_stop_a_take() {
        let (keys, untouched, stopped_by) = outcome(&["f", "kek", "g"]);
        assert_eq!(
            (keys, untouched),
            (vec!["f".into()], vec!["kek".into(), "g".into()])
        );
        assert!(matches!(
            stopped_by,
            Some(lemur_hsm::Error::KekNotFound { .. })
        ));
        let (keys, untouched, stopped_by) = outcome(&["bad1", "h", "bad2", "bad3", "bad4", "i"]);
        assert_eq!(keys, ["h"]);
        assert_eq!(untouched, ["i"], "three drops in a row stop the take");
        assert!(matches!(
            stopped_by,
            Some(lemur_hsm::Error::SealAuthentication)
        ));
    }

    #[test]
    fn a_key_is_bound_to_its_token_and_its_public_key() {
        let bound = binding(&label(KeyAlgorithm::Rsa2048, "t"), b"public");
        assert_ne!(
            bound,
            binding(&label(KeyAlgorithm::Rsa2048, "u"), b"public")
        );
        assert_ne!(
            bound,
            binding(&label(KeyAlgorithm::Rsa4096, "t"), b"public")
        );
        assert_ne!(bound, binding(&label(KeyAlgorithm::Rsa2048, "t"), b"other"));
        assert!(
            String::from_utf8(context(&bound))
                .unwrap()
                .starts_with("lemur:stocked-private-key:RSA2048:t:")
        );
    }
}
