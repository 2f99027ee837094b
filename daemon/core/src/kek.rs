//! Key-encryption key rotation: once a new KEK version exists in the token, every stored secret
//! (the private keys in the inventory, the locked files) is sealed again under it, while the
//! daemon keeps serving.
//!
//! Daemons notice the new version at their next seal, but a key sealed just before may be
//! stored just after a pass went by, and a row is replaced only if it still holds the envelope
//! read (a concurrent change wins). So the inventory is passed over until a pass finds nothing
//! left, then again after a moment for seals in flight, when keys that failed are tried once
//! more; whatever is still under an older version is counted and reported. Old versions stay in
//! the token, so envelopes in backups still open.

use crate::App;
use crate::ca::{key_context_of, pending_key_context};
use crate::error::{Error, Result};
use crate::locked::{self, Outcome};
use crate::model::{KeyHolder, LogEntry, Resealed, SealedKey};
use crate::policy::{Action, Subject, authorize};
use lemur_hsm::envelope;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Rows read and sealed again per transaction.
const PAGE: i64 = 512;
/// Passes over the inventory before giving up on keys that keep arriving under an old version.
const MAX_PASSES: usize = 10;
/// How long seals in flight (sealed under the old version, not yet stored) are given.
const SETTLE: Duration = Duration::from_secs(2);

/// What a rotation moved.
#[derive(Debug, Default)]
pub struct Rotation {
    /// The KEK version everything is now sealed under.
    pub version: u32,
    /// Private keys sealed again.
    pub private_keys: u64,
    /// Locked files sealed again.
    pub files: Vec<PathBuf>,
    /// Private keys that could not be opened (on their second try): where they are held, and
    /// why.
    pub failed: BTreeMap<(KeyHolder, i64), String>,
    /// Private keys still under an older version at the end (the failed ones among them).
    pub left_behind: u64,
}

/// Seals every stored private key and every locked file among `files` again under KEK
/// version `newest` (which must exist already).
pub async fn reseal_everything(
    app: &App,
    subject: &Subject,
    newest: u32,
    files: &[PathBuf],
) -> Result<Rotation> {
    authorize(subject, Action::RotateKek)?;
    let mut rotation = Rotation {
        version: newest,
        ..Rotation::default()
    };
    rotation.private_keys += converge(app, subject, newest, &mut rotation.failed).await?;
    tokio::time::sleep(SETTLE).await;
    rotation.failed.clear();
    rotation.private_keys += converge(app, subject, newest, &mut rotation.failed).await?;
    rotation.left_behind = count_left_behind(app, newest).await?;
    rotation.files = reseal_files(app, newest, files).await?;
    let details = format!(
        "key-encryption key v{newest}: {} private keys and {} locked files sealed again, {} left under an older version",
        rotation.private_keys,
        rotation.files.len(),
        rotation.left_behind
    );
    let log = LogEntry {
        certificate_id: None,
        log_type: "kek_rotated",
        user_id: subject.user_id(),
        source_address: subject.source(),
        details: &details,
    };
    app.store.log(&log, app.clock.unix()).await?;
    Ok(rotation)
}

/// Passes until one finds no key left to move (but those that failed); the keys moved.
async fn converge(
    app: &App,
    subject: &Subject,
    newest: u32,
    failed: &mut BTreeMap<(KeyHolder, i64), String>,
) -> Result<u64> {
    let mut moved = 0;
    for holder in KeyHolder::ALL {
        for _ in 0..MAX_PASSES {
            let (found, pass_moved) = reseal_pass(app, subject, holder, newest, failed).await?;
            moved += pass_moved;
            if found == 0 {
                break;
            }
        }
    }
    Ok(moved)
}

/// One pass over the inventory: the keys it found under an older version (not counting those
/// that failed before) and the keys it moved.
async fn reseal_pass(
    app: &App,
    subject: &Subject,
    holder: KeyHolder,
    newest: u32,
    failed: &mut BTreeMap<(KeyHolder, i64), String>,
) -> Result<(u64, u64)> {
    let (mut found, mut moved) = (0, 0);
    let mut after = 0;
    loop {
        let page = app.store.sealed_private_keys(holder, after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok((found, moved));
        };
        after = last.id;
        let stale: Vec<SealedKey> = page
            .into_iter()
            .filter(|key| {
                sealed_before(&key.sealed, newest) && !failed.contains_key(&(holder, key.id))
            })
            .collect();
        if stale.is_empty() {
            continue;
        }
        found += stale.len() as u64;
        let mut changes = Vec::with_capacity(stale.len());
        for outcome in reseal_keys(app, holder, stale).await? {
            match outcome {
                Ok(change) => changes.push(change),
                Err((id, reason)) => {
                    failed.insert((holder, id), reason);
                }
            }
        }
        if changes.is_empty() {
            continue;
        }
        let details = format!(
            "{} private keys sealed again under key-encryption key v{newest}",
            changes.len()
        );
        let log = LogEntry {
            certificate_id: None,
            log_type: "keys_resealed",
            user_id: subject.user_id(),
            source_address: subject.source(),
            details: &details,
        };
        moved += app
            .store
            .replace_sealed_private_keys(holder, &changes, &log, app.clock.unix())
            .await?;
    }
}

/// Keys still under a version older than `newest`.
async fn count_left_behind(app: &App, newest: u32) -> Result<u64> {
    let mut left = 0;
    for holder in KeyHolder::ALL {
        let mut after = 0;
        loop {
            let page = app.store.sealed_private_keys(holder, after, PAGE).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.id;
            left += page
                .iter()
                .filter(|key| sealed_before(&key.sealed, newest))
                .count() as u64;
        }
    }
    Ok(left)
}

/// Whether `sealed` names a KEK version older than `newest` (an envelope that does not parse
/// is tried too, so its failure is reported).
fn sealed_before(sealed: &[u8], newest: u32) -> bool {
    envelope::parse(sealed).map_or(true, |(header, _)| header.kek_version < newest)
}

/// Unseals and seals `keys` again in the HSM, spread over one blocking task per CPU.
async fn reseal_keys(
    app: &App,
    holder: KeyHolder,
    keys: Vec<SealedKey>,
) -> Result<Vec<std::result::Result<Resealed, (i64, String)>>> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_worker = keys.len().div_ceil(workers).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    let mut keys = keys.into_iter();
    loop {
        let chunk: Vec<SealedKey> = keys.by_ref().take(per_worker).collect();
        if chunk.is_empty() {
            break;
        }
        let hsm = Arc::clone(&app.hsm);
        tasks.spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|key| reseal_key(&*hsm, holder, key))
                .collect::<Vec<_>>()
        });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        outcomes.extend(done.map_err(Error::task("an HSM call"))?);
    }
    Ok(outcomes)
}

/// One key, bound (as when it was stored) to the hash of its certificate's body, of its
/// pending certificate's CSR, or to its stocked key's token and public key.
fn reseal_key(
    hsm: &dyn crate::app::Hsm,
    holder: KeyHolder,
    key: SealedKey,
) -> std::result::Result<Resealed, (i64, String)> {
    let id = key.id;
    let failed = move |reason: String| (id, reason);
    let context = match holder {
        KeyHolder::Certificate => key_context_of(&key.bound_to),
        KeyHolder::Pending => pending_key_context(&key.bound_to),
        KeyHolder::Stock => Ok(crate::ca::key_stock::context(&key.bound_to)),
    }
    .map_err(|e| failed(e.to_string()))?;
    let clear = hsm
        .unseal(&key.sealed, &context)
        .map_err(|e| failed(e.to_string()))?;
    let new = hsm
        .seal(&clear, &context)
        .map_err(|e| failed(e.to_string()))?;
    Ok(Resealed {
        id: key.id,
        old: key.sealed,
        new,
    })
}

/// Seals the locked ones among `files` again; the files it moved.
async fn reseal_files(app: &App, newest: u32, files: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let files = files.to_vec();
    app.hsm(move |hsm| {
        let mut moved = Vec::new();
        for file in files {
            if locked::reseal(&file, &**hsm, newest)? == Outcome::Done {
                moved.push(file);
            }
        }
        Ok(moved)
    })
    .await
}
