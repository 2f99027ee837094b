//! Chains, stored once each and shared by the certificates that ship them. Their ids are
//! remembered once the transaction that stored them has committed (a chain row never changes),
//! so issuing under a known chain costs no statement at all.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The most chain ids remembered: an inventory has a handful of chains, so this only bounds
/// a pathological one.
const CAPACITY: usize = 10_000;

/// Chain ids known to be committed, by the chain's SHA-256 (hex).
#[derive(Default)]
pub(crate) struct KnownChains(Mutex<HashMap<String, i64>>);

impl KnownChains {
    fn get(&self, sha256: &str) -> Option<i64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sha256)
            .copied()
    }

    fn remember(&self, learned: Vec<(String, i64)>) {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() + learned.len() > CAPACITY {
            known.clear();
        }
        known.extend(learned);
    }
}

/// What one transaction knows of chain ids: the committed ones, and those it stored or read
/// itself, which become known only if it commits.
pub(crate) struct Chains<'k> {
    known: Option<&'k KnownChains>,
    learned: Vec<(String, i64)>,
}

impl<'k> Chains<'k> {
    /// For a transaction that will tell `known` what it learned once it commits.
    pub(crate) fn remembered_in(known: &'k KnownChains) -> Self {
        Self {
            known: Some(known),
            learned: Vec::new(),
        }
    }

    /// For a rare transaction that reads chain ids afresh and remembers none.
    pub(crate) fn unremembered() -> Self {
        Self {
            known: None,
            learned: Vec::new(),
        }
    }

    /// The committed id of the chain with this SHA-256, if known.
    pub(crate) fn known(&self, sha256: &str) -> Option<i64> {
        self.known?.get(sha256)
    }

    /// Notes a chain id this transaction stored or read.
    pub(crate) fn learned(&mut self, sha256: String, id: i64) {
        self.learned.push((sha256, id));
    }

    /// The transaction committed: what it learned is known from now on.
    pub(crate) fn committed(self) {
        if let Some(known) = self.known {
            known.remember(self.learned);
        }
    }
}
