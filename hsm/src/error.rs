//! One error type for the crate. Every PKCS#11 failure names the function and return value
//! (`C_Sign: CKR_KEY_HANDLE_INVALID`) and, where one exists, what the operator should do. No
//! variant ever carries a PIN or key material.

use std::path::PathBuf;
use std::time::Duration;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to the HSM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The PKCS#11 module (shared library) is not at the configured or default path.
    #[error(
        "PKCS#11 module not found at {path}: install SoftHSM2 (apt-get install softhsm2) or set the module path in the [hsm] configuration"
    )]
    ModuleNotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The module exists but could not be loaded or initialised.
    #[error("cannot load PKCS#11 module {path}: {detail}")]
    ModuleLoad {
        /// The module path.
        path: PathBuf,
        /// The loader's or C_Initialize's error.
        detail: String,
    },
    /// A PKCS#11 function failed.
    #[error("{function}: {rv}{}", hint_suffix(.hint))]
    Pkcs11 {
        /// The failing function, e.g. `C_Sign`.
        function: String,
        /// The return value, e.g. `CKR_KEY_HANDLE_INVALID`.
        rv: String,
        /// What to do about it, when the return value says.
        hint: &'static str,
    },
    /// No initialised token with the configured label is present.
    #[error(
        "no initialised token labelled {label:?} is present in {module}: create it with `lemur-hsm init-token --label {label}`, or check that the HSM is connected"
    )]
    TokenNotFound {
        /// The configured token label.
        label: String,
        /// The module searched.
        module: PathBuf,
    },
    /// A token with that label already exists.
    #[error("a token labelled {label:?} already exists; choose another label")]
    TokenExists {
        /// The label asked for.
        label: String,
    },
    /// No slot has an uninitialised token to initialise.
    #[error(
        "no slot with an uninitialised token: for SoftHSM2 check SOFTHSM2_CONF and its tokendir; for a hardware HSM, reset a token with the vendor tool"
    )]
    NoFreeSlot,
    /// The token went away during an operation (removed, powered off, network HSM unreachable).
    #[error(
        "{function}: {rv}: token {label:?} is not reachable (removed or disconnected); sessions are reopened when it returns"
    )]
    TokenUnavailable {
        /// The configured token label.
        label: String,
        /// The failing function.
        function: String,
        /// The return value.
        rv: String,
    },
    /// C_Login refused the user PIN. The pool stops so the token is not locked out by retries.
    #[error(
        "C_Login: CKR_PIN_INCORRECT: the user PIN for token {label:?} is wrong; stopped without retrying so the token does not lock. Correct the PIN file and restart"
    )]
    PinIncorrect {
        /// The token label.
        label: String,
    },
    /// The token locked the user PIN after too many failures.
    #[error(
        "C_Login: CKR_PIN_LOCKED: the user PIN of token {label:?} is locked; the security officer must reset it"
    )]
    PinLocked {
        /// The token label.
        label: String,
    },
    /// A previous login failure stopped the pool.
    #[error(
        "the HSM session pool stopped after a failed login ({0}); restart with a corrected PIN"
    )]
    LoginDisabled(String),
    /// Every session stayed busy for the whole checkout timeout.
    #[error(
        "no HSM session became free within {0:?}: raise [hsm] pool_size or look for a stuck HSM"
    )]
    PoolTimeout(Duration),
    /// The PIN file could not be read or is empty.
    #[error("cannot read the PIN from {path}: {reason}")]
    PinFile {
        /// The PIN file.
        path: PathBuf,
        /// Why (never the content).
        reason: String,
    },
    /// A PKCS#11 URI could not be parsed or names something this key store does not serve.
    #[error("invalid PKCS#11 URI {uri:?}: {reason}")]
    InvalidUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No key matches the URI.
    #[error("no key {uri} in the token (list keys with `lemur-hsm list`)")]
    KeyNotFound {
        /// The URI looked up.
        uri: String,
    },
    /// A key with that label already exists.
    #[error("a key labelled {label:?} already exists in the token; choose another label")]
    KeyExists {
        /// The label asked for.
        label: String,
    },
    /// The key cannot be used with the requested scheme, or has a type this crate does not use.
    #[error("unsupported key or scheme: {0}")]
    Unsupported(String),
    /// The HSM returned a signature that does not verify against the key's public key.
    #[error(
        "the signature made with {uri} does not verify: the HSM returned a bad signature (faulty hardware?); nothing was signed"
    )]
    BadSignature {
        /// The signing key.
        uri: String,
    },
    /// A sealed secret is malformed.
    #[error("sealed secret is malformed: {0}")]
    Envelope(#[from] crate::envelope::EnvelopeError),
    /// A sealed secret failed authentication: tampered with, truncated, or sealed for another record.
    #[error(
        "sealed secret failed authentication: it was altered or belongs to another record; nothing was decrypted"
    )]
    SealAuthentication,
    /// The KEK version named by an envelope, or any KEK at all, is missing from the token.
    #[error(
        "key-encryption key {label:?} version {version} is not in the token: create it with `lemur-hsm create-kek`"
    )]
    KekNotFound {
        /// The KEK family label.
        label: String,
        /// The version looked for (0 means "any").
        version: u32,
    },
    /// A KEK already exists where a first one was to be created.
    #[error(
        "key-encryption key {label:?} already exists (version {version}); use `lemur-hsm rotate-kek` for a new version"
    )]
    KekExists {
        /// The KEK family label.
        label: String,
        /// Its newest version.
        version: u32,
    },
    /// A key that must never leave the token could: it is extractable, not sensitive, or not a
    /// token object (or, for a KEK, not a 256-bit AES key).
    #[error("key {uri} is not protected by the token ({reason}); refusing to use it")]
    KeyNotProtected {
        /// The key.
        uri: String,
        /// What is wrong.
        reason: String,
    },
    /// The token returned data this crate cannot interpret (a public key attribute, a signature).
    #[error("unexpected data from the token: {0}")]
    Malformed(String),
    /// Key generation refused by the entropy health gate.
    #[error("key generation refused: {0}")]
    Entropy(#[from] lemur_entropy::Error),
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(": {hint}")
    }
}

impl Error {
    /// The token reports an object as gone (`CKR_OBJECT_HANDLE_INVALID`, `CKR_KEY_HANDLE_INVALID`).
    pub fn is_object_gone(&self) -> bool {
        matches!(self, Error::Pkcs11 { rv, .. }
            if rv == "CKR_OBJECT_HANDLE_INVALID" || rv == "CKR_KEY_HANDLE_INVALID")
    }

    /// The HSM is (for now) out of reach: the caller should report 503 and retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::TokenUnavailable { .. } | Error::TokenNotFound { .. } | Error::PoolTimeout(_)
        )
    }
}

/// `C_Sign` from cryptoki's `Function::Sign`.
pub(crate) fn function_name(function: cryptoki::context::Function) -> String {
    format!("C_{function:?}")
}

/// `CKR_KEY_HANDLE_INVALID` from cryptoki's `RvError::KeyHandleInvalid`.
pub(crate) fn rv_name(rv: cryptoki::error::RvError) -> String {
    let camel = format!("{rv:?}");
    let mut name = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

fn hint_for(rv: cryptoki::error::RvError) -> &'static str {
    use cryptoki::error::RvError as Rv;
    match rv {
        Rv::UserPinNotInitialized => "the token has no user PIN yet: run `lemur-hsm init-token`",
        Rv::UserNotLoggedIn => "the session is not logged in",
        Rv::KeyHandleInvalid | Rv::ObjectHandleInvalid => "the key is no longer in the token",
        Rv::MechanismInvalid | Rv::MechanismParamInvalid => {
            "the token does not support this mechanism: see `lemur-hsm status`"
        }
        Rv::AttributeSensitive => "the attribute is sensitive and cannot be read out of the token",
        Rv::KeyUnextractable => "the key is not extractable",
        Rv::TokenWriteProtected => "the token is write-protected",
        Rv::DeviceMemory => "the token is full: destroy unused keys",
        Rv::PinLenRange => "the PIN length is outside what the token accepts",
        _ => "",
    }
}

/// Return values that mean the token or its sessions are gone, not that the request was wrong.
pub(crate) fn token_gone(rv: cryptoki::error::RvError) -> bool {
    use cryptoki::error::RvError as Rv;
    matches!(
        rv,
        Rv::DeviceRemoved
            | Rv::DeviceError
            | Rv::TokenNotPresent
            | Rv::TokenNotRecognized
            | Rv::SessionHandleInvalid
            | Rv::SessionClosed
            | Rv::SlotIdInvalid
            | Rv::CryptokiNotInitialized
    )
}

impl From<cryptoki::error::Error> for Error {
    /// Token-gone return values become [`Error::TokenUnavailable`] (with the label filled in by the
    /// session pool, which also retires its sessions); every other failure keeps its function and
    /// return value.
    fn from(error: cryptoki::error::Error) -> Self {
        match error {
            cryptoki::error::Error::Pkcs11(rv, function) if token_gone(rv) => {
                Error::TokenUnavailable {
                    label: String::new(),
                    function: function_name(function),
                    rv: rv_name(rv),
                }
            }
            cryptoki::error::Error::Pkcs11(rv, function) => Error::Pkcs11 {
                function: function_name(function),
                rv: rv_name(rv),
                hint: hint_for(rv),
            },
            other => Error::Malformed(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;
    use cryptoki::error::RvError;

    #[test]
    fn pkcs11_errors_name_the_function_and_return_value() {
        let error = Error::from(cryptoki::error::Error::Pkcs11(
            RvError::KeyHandleInvalid,
            Function::Sign,
        ));
        assert_eq!(
            error.to_string(),
            "C_Sign: CKR_KEY_HANDLE_INVALID: the key is no longer in the token"
        );
        let error = Error::from(cryptoki::error::Error::Pkcs11(
            RvError::FunctionFailed,
            Function::GenerateKeyPair,
        ));
        assert_eq!(error.to_string(), "C_GenerateKeyPair: CKR_FUNCTION_FAILED");
        assert!(!error.is_object_gone());
    }

    #[test]
    fn an_object_the_token_says_is_gone_is_told_apart() {
        for rv in [RvError::ObjectHandleInvalid, RvError::KeyHandleInvalid] {
            let error = Error::from(cryptoki::error::Error::Pkcs11(
                rv,
                Function::GetAttributeValue,
            ));
            assert!(error.is_object_gone(), "{error}");
        }
    }
}
