//! Short-lived copies of what nearly every request reads and almost nothing changes: a signed-in
//! user's session, an authority with its roles, and the sensitive domains. Issuance would
//! otherwise spend three of its database round trips on them. On PostgreSQL, the certificate
//! writer also keeps what a certificate's view joins in (its creator, rotation policy and
//! authority), so its statement stores rows without joining those to each.
//!
//! A write through this store forgets what it changes at once, so a change made through this
//! daemon is seen by its next request. A change made elsewhere (another daemon on the same
//! PostgreSQL database, or a `lemur` command such as `reset_password`) is seen within
//! [`FRESH_FOR`]: that is the longest a logged-out token or a removed role keeps working on
//! another daemon.

use crate::rows::Joined;
use lemur_core::model::{AuthorityRecord, NewCertificate, RoleRecord, UserSession};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a copy is trusted.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(2);

/// Copies kept at most, per cache: a bound on memory whatever the traffic.
const CAPACITY: usize = 10_000;

/// Values by key, each trusted for [`FRESH_FOR`] after it was read.
pub(crate) struct Recent<K, V> {
    state: Mutex<State<K, V>>,
}

struct State<K, V> {
    entries: HashMap<K, (Instant, V)>,
    /// Advanced by every [`Recent::clear`]: a value read before a clear is not kept after it.
    generation: u64,
}

/// When a read started, as [`Recent::put`] needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadStart(u64);

impl<K: Eq + Hash, V: Clone> Default for Recent<K, V> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                entries: HashMap::new(),
                generation: 0,
            }),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Recent<K, V> {
    fn state(&self) -> std::sync::MutexGuard<'_, State<K, V>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value for `key` read less than [`FRESH_FOR`] ago, or else when a read of it starts.
    pub(crate) fn get(&self, key: &K) -> Result<V, ReadStart> {
        let state = self.state();
        state
            .entries
            .get(key)
            .filter(|(read, _)| read.elapsed() < FRESH_FOR)
            .map(|(_, value)| value.clone())
            .ok_or(ReadStart(state.generation))
    }

    /// Keeps `value` for `key`, read since `started`, unless a write cleared the cache since
    /// (the value may predate it). A full cache first drops what is stale, and everything when
    /// nothing is.
    pub(crate) fn put(&self, started: ReadStart, key: K, value: V) {
        let mut state = self.state();
        if state.generation != started.0 {
            return;
        }
        if state.entries.len() >= CAPACITY {
            state
                .entries
                .retain(|_, (read, _)| read.elapsed() < FRESH_FOR);
            if state.entries.len() >= CAPACITY {
                state.entries.clear();
            }
        }
        state.entries.insert(key, (Instant::now(), value));
    }

    /// Forgets everything, after a write that may change any entry.
    pub(crate) fn clear(&self) {
        let mut state = self.state();
        state.entries.clear();
        state.generation += 1;
    }
}

/// The ids a certificate's view joins on: its creator, rotation policy and authority.
pub(crate) type JoinKey = (Option<i64>, Option<i64>, Option<i64>);

/// The [`JoinKey`] of a certificate to store.
pub(crate) fn join_key(new: &NewCertificate<'_>) -> JoinKey {
    (new.user_id, new.rotation_policy_id, new.authority_id)
}

/// An authority as issuance looks it up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum AuthorityName {
    /// By id.
    Id(i64),
    /// By name.
    Name(String),
}

/// The caches of one store.
#[derive(Default)]
pub(crate) struct Caches {
    /// Sessions by user id and token id.
    pub(crate) sessions: Recent<(i64, String), UserSession>,
    /// Authorities with their roles.
    pub(crate) authorities: Recent<AuthorityName, (AuthorityRecord, Vec<RoleRecord>)>,
    /// Every sensitive domain name, sorted.
    pub(crate) sensitive_domains: Recent<(), Arc<Vec<String>>>,
    /// What the view of a certificate joins in (its creator, rotation policy and authority),
    /// by their ids: what PostgreSQL's certificate writer answers with beside the rows it
    /// stores, rather than joining it to each.
    pub(crate) joined: Recent<JoinKey, Joined>,
}

#[cfg(test)]
mod tests {
    use super::Recent;

    #[test]
    fn a_copy_is_given_back_until_cleared() {
        let cache: Recent<i64, &str> = Recent::default();
        let started = cache.get(&1).unwrap_err();
        cache.put(started, 1, "one");
        assert_eq!(cache.get(&1).ok(), Some("one"));
        cache.clear();
        assert!(cache.get(&1).is_err());
    }

    #[test]
    fn a_value_read_before_a_clear_is_not_kept() {
        let cache: Recent<i64, &str> = Recent::default();
        let started = cache.get(&1).unwrap_err();
        cache.clear();
        cache.put(started, 1, "stale");
        assert!(cache.get(&1).is_err());
    }
}
