//! Login throttling: failed logins slow down the account name and the client address they came
//! from, and password checks queue only so deep, so neither guessing nor a login flood gets far.
//!
//! Counts live in this daemon's memory: several daemons behind one proxy each keep their own,
//! which multiplies an attacker's attempts by their number, and a restart forgets them. Entries
//! are keyed by the login name as typed (lower-cased), whether or not such a user exists, so a
//! lockout tells nothing about which accounts exist.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Failures an account name may have before each further one blocks it.
const ACCOUNT_FREE_FAILURES: u32 = 5;
/// Failures a client address may have before each further one blocks it.
const ADDRESS_FREE_FAILURES: u32 = 20;
/// The longest block, in seconds.
const MAX_BLOCK_SECS: i64 = 900;
/// Seconds after the last failure that an entry is forgotten.
const FORGET_AFTER_SECS: i64 = 3600;
/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    count: u32,
    last: i64,
    blocked_until: i64,
}

/// Failure counts of one kind of key (account names, or client addresses).
#[derive(Debug)]
struct Counter {
    free: u32,
    entries: Mutex<HashMap<String, Failures>>,
}

impl Counter {
    fn new(free: u32) -> Self {
        Self {
            free,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds `key` must still wait, if it is blocked at `now`.
    fn blocked(&self, key: &str, now: i64) -> Option<i64> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .map(|f| f.blocked_until - now)
            .filter(|wait| *wait > 0)
    }

    /// Counts a failure: past the free ones, each blocks for twice as long as the one before.
    fn fail(&self, key: &str, now: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, f| now - f.last < FORGET_AFTER_SECS);
        }
        let entry = entries.entry(key.to_owned()).or_default();
        if now - entry.last >= FORGET_AFTER_SECS {
            *entry = Failures::default();
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if entry.count >= self.free {
            let doublings = (entry.count - self.free).min(10);
            // `now` is whole seconds: one more makes the block last at least its length.
            entry.blocked_until = now + (1_i64 << doublings).min(MAX_BLOCK_SECS) + 1;
        }
    }

    fn forget(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// The login throttle.
#[derive(Debug)]
pub struct LoginThrottle {
    accounts: Counter,
    addresses: Counter,
    /// Accounts with a password check under way: one at a time each, so parallel guesses
    /// cannot all pass the check before the first failure is counted.
    checking: Mutex<std::collections::HashSet<String>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            accounts: Counter::new(ACCOUNT_FREE_FAILURES),
            addresses: Counter::new(ADDRESS_FREE_FAILURES),
            checking: Mutex::new(std::collections::HashSet::new()),
        }
    }
}

/// The one password check under way for an account, ended when dropped.
#[derive(Debug)]
pub struct CheckInProgress<'a> {
    throttle: &'a LoginThrottle,
    account: String,
}

impl Drop for CheckInProgress<'_> {
    fn drop(&mut self) {
        self.throttle
            .checking
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.account);
    }
}

/// 429 with how long to wait.
fn too_many(wait: i64, what: &str) -> Error {
    Error::TooManyRequests {
        retry_after_secs: u64::try_from(wait).unwrap_or(1).max(1),
        reason: format!("too many failed logins {what}; retry later"),
    }
}

impl LoginThrottle {
    /// Refuses a login for `login` from `address` at `now` while either is blocked.
    pub fn check(&self, login: &str, address: &str, now: i64) -> Result<()> {
        if let Some(wait) = self.addresses.blocked(address, now) {
            return Err(too_many(wait, "from this address"));
        }
        if let Some(wait) = self.accounts.blocked(&login.to_lowercase(), now) {
            return Err(too_many(wait, "for this account"));
        }
        Ok(())
    }

    /// Starts the password check for `account` (its canonical name): 429 while another is under
    /// way.
    pub fn begin(&self, account: &str) -> Result<CheckInProgress<'_>> {
        let account = account.to_lowercase();
        let mut checking = self.checking.lock().unwrap_or_else(PoisonError::into_inner);
        if !checking.insert(account.clone()) {
            return Err(Error::TooManyRequests {
                retry_after_secs: 1,
                reason: "a login for this account is being checked; retry in a second".into(),
            });
        }
        Ok(CheckInProgress {
            throttle: self,
            account,
        })
    }

    /// Counts a failed login.
    pub fn failed(&self, login: &str, address: &str, now: i64) {
        self.accounts.fail(&login.to_lowercase(), now);
        self.addresses.fail(address, now);
    }

    /// A successful login clears its account's failures (not its address's).
    pub fn succeeded(&self, login: &str) {
        self.accounts.forget(&login.to_lowercase());
    }
}

/// Password checks waiting for a CPU, at most so many: past that, a login is answered 429 at
/// once instead of queueing memory and time behind a flood.
#[derive(Debug)]
pub struct QueueGate {
    waiting: AtomicUsize,
    limit: usize,
}

/// A place in the queue, given back when dropped.
#[derive(Debug)]
pub struct QueuePlace<'a>(&'a QueueGate);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl QueueGate {
    /// A gate letting `limit` callers wait at once.
    pub fn new(limit: usize) -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            limit,
        }
    }

    /// A place in the queue, or 429 when it is full.
    pub fn enter(&self) -> Result<QueuePlace<'_>> {
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        let place = QueuePlace(self);
        if before >= self.limit {
            return Err(Error::TooManyRequests {
                retry_after_secs: 1,
                reason: "too many logins at once; retry in a second".into(),
            });
        }
        Ok(place)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_free_ones_block_for_doubling_times() {
        let throttle = LoginThrottle::default();
        for attempt in 0..4 {
            throttle.failed("Bob", "10.0.0.1", 100 + attempt);
            assert!(throttle.check("bob", "10.0.0.1", 100 + attempt).is_ok());
        }
        throttle.failed("bob", "10.0.0.1", 104);
        let Err(Error::TooManyRequests {
            retry_after_secs, ..
        }) = throttle.check("BOB", "10.0.0.2", 104)
        else {
            panic!("the fifth failure blocks the account")
        };
        assert_eq!(retry_after_secs, 2, "at least one whole second");
        assert!(throttle.check("bob", "10.0.0.1", 106).is_ok());
        throttle.failed("bob", "10.0.0.1", 106);
        assert!(throttle.check("bob", "10.0.0.1", 108).is_err(), "now two");
        assert!(throttle.check("bob", "10.0.0.1", 109).is_ok());
        assert!(
            throttle.check("alice", "10.0.0.1", 105).is_ok(),
            "per account"
        );
        throttle.succeeded("bob");
        assert!(throttle.check("bob", "10.0.0.1", 106).is_ok());
        throttle.failed("bob", "10.0.0.1", 106 + FORGET_AFTER_SECS);
        assert!(
            throttle
                .check("bob", "10.0.0.1", 106 + FORGET_AFTER_SECS)
                .is_ok(),
            "an hour later the count starts again"
        );
    }

    #[test]
    fn an_address_guessing_many_accounts_is_blocked() {
        let throttle = LoginThrottle::default();
        for n in 0..ADDRESS_FREE_FAILURES {
            throttle.failed(&format!("user{n}"), "10.0.0.9", 200);
        }
        assert!(throttle.check("someone-else", "10.0.0.9", 200).is_err());
        assert!(throttle.check("someone-else", "10.0.0.10", 200).is_ok());
    }

    #[test]
    fn blocks_are_capped() {
        let throttle = LoginThrottle::default();
        for _ in 0..100 {
            throttle.failed("bob", "10.0.0.1", 300);
        }
        let Err(Error::TooManyRequests {
            retry_after_secs, ..
        }) = throttle.check("bob", "10.0.0.3", 300)
        else {
            panic!("blocked")
        };
        assert_eq!(retry_after_secs, MAX_BLOCK_SECS as u64 + 1);
    }

    #[test]
    fn the_queue_admits_so_many_waiters() {
        let gate = QueueGate::new(2);
        let first = gate.enter().unwrap();
        let _second = gate.enter().unwrap();
        assert!(gate.enter().is_err());
        drop(first);
        assert!(gate.enter().is_ok());
    }
}
