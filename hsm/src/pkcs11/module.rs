//! Loading a PKCS#11 module once per process.
//!
//! `C_Initialize` may only be called once per process and module; a second key store (another
//! token, an admin command next to the daemon's pool, a test) must share the first one's context.

use crate::{Error, Result};
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::RvError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

static LOADED: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// The initialised context for the module at `path`, loading it on first use.
pub(crate) fn load(path: &Path) -> Result<Pkcs11> {
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
    if let Some(context) = loaded.get(&key) {
        return Ok(context.clone());
    }
    let load_error = |detail: String| Error::ModuleLoad {
        path: path.to_owned(),
        detail,
    };
    let context = Pkcs11::new(&key).map_err(|e| load_error(e.to_string()))?;
    match context.initialize(CInitializeArgs::OsThreads) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(load_error(Error::from(e).to_string())),
    }
    loaded.insert(key, context.clone());
    Ok(context)
}
