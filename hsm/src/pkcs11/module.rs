//! Loading a PKCS#11 module once per process.
//!
//! `C_Initialize` may only be called once per process and module; a second key store (another
//! token, an admin command next to the daemon's pool, a test) must share the first one's context.
//! The registry holds weak references: when the last user drops the module, cryptoki calls
//! `C_Finalize`, and the next load initialises it afresh. That is how a pool recovers from a
//! library that lost its HSM for good (a network HSM client that does not reconnect).

use crate::{Error, Result};
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::RvError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

static LOADED: OnceLock<Mutex<HashMap<PathBuf, Weak<Pkcs11>>>> = OnceLock::new();

/// The initialised context for the module at `path`, loading it on first use.
pub(crate) fn load(path: &Path) -> Result<Arc<Pkcs11>> {
    if !path.exists() {
        return Err(Error::ModuleNotFound {
            path: path.to_owned(),
        });
    }
    let key = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(context) = loaded.get(&key).and_then(Weak::upgrade) {
        return Ok(context);
    }
    let load_error = |detail: String| Error::ModuleLoad {
        path: path.to_owned(),
        detail,
    };
    let context = Pkcs11::new(&key).map_err(|e| load_error(e.to_string()))?;
    match context.initialize(CInitializeArgs::OsThreads) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(match Error::from(e) {
                unavailable @ Error::TokenUnavailable { .. } => unavailable,
                other => load_error(other.to_string()),
            });
        }
    }
    let context = Arc::new(context);
    loaded.insert(key, Arc::downgrade(&context));
    Ok(context)
}
