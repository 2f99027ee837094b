//! A pool of logged-in sessions on one token.
//!
//! PKCS#11 login state belongs to the application, not the session: the first session logs in and
//! every later one is logged in too, until the last one closes. So the pool logs in once, hands out
//! sessions one caller at a time (a `Session` is not `Sync`), and reuses them.
//!
//! Two failures get special handling:
//! * a wrong or locked PIN stops the pool at the first failure: retrying would lock the token;
//! * a token that goes away (removed, powered off, network HSM down) invalidates every session: the
//!   pool drops them all, reports [`Error::TokenUnavailable`], and the next caller looks the token
//!   up again, logs in and carries on once it is back.

use super::module;
use crate::{Error, Pin, Result};
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use parking_lot::RwLock;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

struct State {
    idle: Vec<Session>,
    open: usize,
    slot: Option<Slot>,
    stopped: Option<String>,
    /// Whether the application is logged in (login state is shared by all of its sessions).
    logged_in: bool,
    /// Bumped whenever the token went away, so cached object handles are known to be stale.
    generation: u64,
}

/// Sessions on one token, logged in as the user.
pub(crate) struct SessionPool {
    /// `None` after the module was dropped to be re-initialised; loaded again on next use.
    context: Mutex<Option<Arc<Pkcs11>>>,
    module_path: PathBuf,
    token_label: String,
    pin: Pin,
    capacity: usize,
    checkout_timeout: Duration,
    state: Mutex<State>,
    freed: Condvar,
    /// Shared by every operation, held alone by one that creates or destroys token objects.
    /// SoftHSM2's file object store fails such a write, or an operation beside it, when they
    /// overlap: `C_GenerateKeyPair` with `CKR_GENERAL_ERROR` or `CKR_TEMPLATE_INCONSISTENT`
    /// ("ObjectFile.cpp: The attribute does not exist" in its log; SoftHSMv2 issue 573). Token
    /// writes are rare (an authority, a KEK version), so the pause they cost is rare too, but
    /// on any token an RSA-4096 authority's key holds every other operation for its seconds.
    /// Waits for it end after the checkout timeout, as waits for a session do: a token call
    /// that hangs holding it must not stop every caller for good.
    token_writes: RwLock<()>,
}

/// A session lent to one caller; it goes back to the pool on drop unless the token went away.
pub(crate) struct Lease<'a> {
    pool: &'a SessionPool,
    session: Option<Session>,
    generation: u64,
}

impl Deref for Lease<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        // The session is only taken out in `Drop` or `discard`, after which the lease is gone.
        match &self.session {
            Some(session) => session,
            None => unreachable!("a lease always holds its session until dropped"),
        }
    }
}

impl Lease<'_> {
    /// The pool generation this session belongs to (see [`SessionPool::generation`]).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.pool.give_back(session, self.generation);
        }
    }
}

impl SessionPool {
    pub(crate) fn new(
        module_path: PathBuf,
        token_label: String,
        pin: Pin,
        capacity: usize,
        checkout_timeout: Duration,
    ) -> Result<Self> {
        let context = module::load(&module_path)?;
        Ok(Self {
            context: Mutex::new(Some(context)),
            module_path,
            token_label,
            pin,
            capacity: capacity.max(1),
            checkout_timeout,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                slot: None,
                stopped: None,
                logged_in: false,
                generation: 0,
            }),
            freed: Condvar::new(),
            token_writes: RwLock::new(()),
        })
    }

    pub(crate) fn token_label(&self) -> &str {
        &self.token_label
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sessions open, and of those, idle.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let state = self.lock();
        (state.open, state.idle.len())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `operation` on a pooled session, beside other operations but never beside a token
    /// write ([`SessionPool::run_alone`]).
    pub(crate) fn run<T>(&self, operation: impl FnOnce(&Lease<'_>) -> Result<T>) -> Result<T> {
        let _beside = self
            .token_writes
            .try_read_for(self.checkout_timeout)
            .ok_or(Error::PoolTimeout(self.checkout_timeout))?;
        self.run_leased(operation)
    }

    /// Runs `operation`, which creates or destroys token objects, on a pooled session while no
    /// other operation runs.
    pub(crate) fn run_alone<T>(
        &self,
        operation: impl FnOnce(&Lease<'_>) -> Result<T>,
    ) -> Result<T> {
        let _alone = self
            .token_writes
            .try_write_for(self.checkout_timeout)
            .ok_or(Error::PoolTimeout(self.checkout_timeout))?;
        self.run_leased(operation)
    }

    /// Runs `operation`, which touches no token object (a leaf key made, exported and destroyed
    /// as session objects), on a pooled session whether or not a token write runs: SoftHSM2's
    /// failures come from token objects read while one is written (measured: a session key pair
    /// beside token writes never failed; a signature or a seal did). So the stock's RSA keys,
    /// made at the lowest priority for seconds at a time, do not hold up an authority's.
    pub(crate) fn run_on_session_objects<T>(
        &self,
        operation: impl FnOnce(&Lease<'_>) -> Result<T>,
    ) -> Result<T> {
        self.run_leased(operation)
    }

    /// Runs `operation` on a pooled session. When it reports the token gone, every session is
    /// retired so the next caller starts over with a fresh lookup and login.
    fn run_leased<T>(&self, operation: impl FnOnce(&Lease<'_>) -> Result<T>) -> Result<T> {
        let mut lease = self.checkout()?;
        match operation(&lease) {
            Err(error @ Error::TokenUnavailable { .. }) => {
                drop(lease.session.take());
                self.token_went_away(lease.generation);
                Err(self.labelled(error))
            }
            other => other,
        }
    }

    /// Lends a session, opening (and logging in) a new one while below capacity, else waiting.
    pub(crate) fn checkout(&self) -> Result<Lease<'_>> {
        let deadline = Instant::now() + self.checkout_timeout;
        let mut state = self.lock();
        loop {
            if let Some(reason) = &state.stopped {
                return Err(Error::LoginDisabled(reason.clone()));
            }
            if let Some(session) = state.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    session: Some(session),
                    generation: state.generation,
                });
            }
            if state.open < self.capacity {
                state.open += 1;
                let (slot, generation, login) = (state.slot, state.generation, !state.logged_in);
                drop(state);
                let opened = self.open_session(slot, login);
                state = self.lock();
                return match opened {
                    Ok((session, slot)) if state.generation == generation => {
                        state.slot = Some(slot);
                        state.logged_in = true;
                        Ok(Lease {
                            pool: self,
                            session: Some(session),
                            generation,
                        })
                    }
                    Ok(_) => {
                        // The token went away while this session was being opened.
                        state.open -= 1;
                        self.freed.notify_one();
                        Err(Error::TokenUnavailable {
                            label: self.token_label.clone(),
                            function: "C_OpenSession".into(),
                            rv: "CKR_DEVICE_REMOVED".into(),
                        })
                    }
                    Err(error) => {
                        state.open -= 1;
                        if matches!(error, Error::PinIncorrect { .. } | Error::PinLocked { .. }) {
                            state.stopped = Some(error.to_string());
                        }
                        if error.is_unavailable() {
                            state.slot = None;
                        }
                        self.freed.notify_all();
                        Err(error)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::PoolTimeout(self.checkout_timeout));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn give_back(&self, session: Session, generation: u64) {
        let mut state = self.lock();
        if state.generation == generation {
            state.idle.push(session);
        } else {
            drop(session);
        }
        self.freed.notify_one();
    }

    /// Drops every idle session and forgets the slot; leases still out are dropped on return.
    fn token_went_away(&self, generation: u64) {
        let mut state = self.lock();
        if state.generation == generation {
            state.generation += 1;
            state.idle.clear();
            state.open = 0;
            state.slot = None;
            state.logged_in = false;
        }
        self.freed.notify_all();
    }

    /// The module context, loading it again if it was dropped for re-initialisation.
    fn context(&self) -> Result<Arc<Pkcs11>> {
        let mut context = self.context.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(loaded) = context.as_ref() {
            return Ok(Arc::clone(loaded));
        }
        let loaded = module::load(&self.module_path).map_err(|e| self.labelled(e))?;
        *context = Some(Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Drops this pool's hold on the module so that, once no session is left, cryptoki finalises
    /// it and the next use initialises it again: the only way back for a module whose library-level
    /// calls fail (a network HSM client that lost its server does not reconnect by itself).
    fn reinitialise_module(&self) {
        self.context
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Opens a read-write session on the token, logging in unless the application already is.
    fn open_session(&self, slot: Option<Slot>, login: bool) -> Result<(Session, Slot)> {
        let context = self.context()?;
        let slot = match slot {
            Some(slot) => slot,
            None => match find_token(&context, &self.token_label, &self.module_path) {
                Ok(slot) => slot,
                Err(error @ Error::TokenUnavailable { .. }) => {
                    drop(context);
                    self.reinitialise_module();
                    return Err(self.labelled(error));
                }
                Err(error) => return Err(error),
            },
        };
        let session = context
            .open_rw_session(slot)
            .map_err(|e| self.labelled(e.into()))?;
        if login {
            match session.login(UserType::User, Some(&self.pin.auth_pin())) {
                Ok(()) => {}
                Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(cryptoki::error::Error::Pkcs11(RvError::PinIncorrect, _)) => {
                    return Err(Error::PinIncorrect {
                        label: self.token_label.clone(),
                    });
                }
                Err(cryptoki::error::Error::Pkcs11(RvError::PinLocked, _)) => {
                    return Err(Error::PinLocked {
                        label: self.token_label.clone(),
                    });
                }
                Err(e) => return Err(self.labelled(e.into())),
            }
        }
        Ok((session, slot))
    }

    /// `error` with this pool's token label when it is a token-gone error.
    fn labelled(&self, error: Error) -> Error {
        match error {
            Error::TokenUnavailable { function, rv, .. } => Error::TokenUnavailable {
                label: self.token_label.clone(),
                function,
                rv,
            },
            other => other,
        }
    }
}

/// The slot holding the initialised token labelled `label`.
pub(crate) fn find_token(context: &Pkcs11, label: &str, module: &std::path::Path) -> Result<Slot> {
    let slots = context.get_slots_with_initialized_token()?;
    for slot in slots {
        if context
            .get_token_info(slot)
            .is_ok_and(|info| info.label().trim_end() == label)
        {
            return Ok(slot);
        }
    }
    Err(Error::TokenNotFound {
        label: label.to_owned(),
        module: module.to_owned(),
    })
}
