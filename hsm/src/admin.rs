//! Token administration for operators: initialise a token, change the user PIN, report status.
//!
//! These run outside the session pool because they need the security officer, log out, or must
//! work when the key store cannot open (no token yet, wrong PIN).

use crate::pkcs11::{find_token, load_module};
use crate::{Error, Pin, Result};
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::MechanismType;
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Mechanisms the appliance needs from a token, with what each is for.
pub const REQUIRED_MECHANISMS: [(MechanismType, &str); 8] = [
    (MechanismType::ECC_KEY_PAIR_GEN, "EC CA keys"),
    (MechanismType::RSA_PKCS_KEY_PAIR_GEN, "RSA CA keys"),
    (MechanismType::ECDSA, "ECDSA signatures"),
    (MechanismType::SHA256_RSA_PKCS, "RSA PKCS#1 v1.5 signatures"),
    (MechanismType::SHA256_RSA_PKCS_PSS, "RSA-PSS signatures"),
    (MechanismType::AES_KEY_GEN, "key-encryption keys"),
    (MechanismType::AES_GCM, "sealing stored secrets"),
    (
        MechanismType::AES_KEY_WRAP_PAD,
        "exporting generated leaf keys",
    ),
];

/// A token as a slot reports it.
#[derive(Debug, Clone, Serialize)]
pub struct TokenSummary {
    /// Slot id.
    pub slot: u64,
    /// Token label.
    pub label: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// The token is initialised.
    pub initialized: bool,
    /// The user PIN is set.
    pub user_pin_initialized: bool,
    /// The user PIN is locked.
    pub user_pin_locked: bool,
    /// Few user PIN tries remain.
    pub user_pin_count_low: bool,
}

/// One slot of the module.
#[derive(Debug, Clone, Serialize)]
pub struct SlotStatus {
    /// Slot id.
    pub slot: u64,
    /// Slot description.
    pub description: String,
    /// The token in it, if any.
    pub token: Option<TokenSummary>,
}

/// A mechanism the appliance needs, and whether the token has it.
#[derive(Debug, Clone, Serialize)]
pub struct MechanismStatus {
    /// `CKM_...` name.
    pub mechanism: String,
    /// What the appliance uses it for.
    pub used_for: &'static str,
    /// The token supports it.
    pub present: bool,
}

/// The configured token: can we log in, does it do what we need.
#[derive(Debug, Clone, Serialize)]
pub struct TokenStatus {
    /// The token.
    pub token: TokenSummary,
    /// `ok`, the login error, or `not checked` when no PIN was given.
    pub login: String,
    /// Required mechanisms.
    pub mechanisms: Vec<MechanismStatus>,
}

impl TokenStatus {
    /// Login worked and every required mechanism is present.
    pub fn ready(&self) -> bool {
        self.login == "ok" && self.mechanisms.iter().all(|m| m.present)
    }
}

/// What `lemur-hsm status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Module path.
    pub module: PathBuf,
    /// Library manufacturer and description.
    pub library: String,
    /// Library version.
    pub library_version: String,
    /// Cryptoki version it implements.
    pub cryptoki_version: String,
    /// Every slot.
    pub slots: Vec<SlotStatus>,
    /// The configured token, if present.
    pub token: Option<TokenStatus>,
}

fn summary(context: &Pkcs11, slot: Slot) -> Result<TokenSummary> {
    let info = context.get_token_info(slot)?;
    Ok(TokenSummary {
        slot: slot.id(),
        label: info.label().trim_end().to_owned(),
        manufacturer: info.manufacturer_id().trim_end().to_owned(),
        model: info.model().trim_end().to_owned(),
        serial: info.serial_number().trim_end().to_owned(),
        initialized: info.token_initialized(),
        user_pin_initialized: info.user_pin_initialized(),
        user_pin_locked: info.user_pin_locked(),
        user_pin_count_low: info.user_pin_count_low(),
    })
}

/// Initialises a fresh token labelled `label` in the first slot with an uninitialised token
/// (SoftHSM2 always offers one), then sets its user PIN.
pub fn init_token(
    module: &Path,
    label: &str,
    so_pin: &Pin,
    user_pin: &Pin,
) -> Result<TokenSummary> {
    let context = load_module(module)?;
    if find_token(&context, label, module).is_ok() {
        return Err(Error::TokenExists {
            label: label.to_owned(),
        });
    }
    let free = context
        .get_slots_with_token()?
        .into_iter()
        .find(|&slot| {
            context
                .get_token_info(slot)
                .is_ok_and(|info| !info.token_initialized())
        })
        .ok_or(Error::NoFreeSlot)?;
    context.init_token(free, &so_pin.auth_pin(), label)?;
    // SoftHSM2 moves a freshly initialised token to a new slot id: look it up again by label.
    let slot = find_token(&context, label, module)?;
    set_user_pin(&context, slot, so_pin, user_pin)?;
    summary(&context, slot)
}

/// Sets the user PIN of token `label` as its security officer: finishes a token whose
/// initialisation stopped between `C_InitToken` and `C_InitPIN` (a crash, a power cut), or
/// gives a token whose user PIN was lost a new one.
pub fn init_user_pin(module: &Path, label: &str, so_pin: &Pin, user_pin: &Pin) -> Result<()> {
    let context = load_module(module)?;
    let slot = find_token(&context, label, module)?;
    set_user_pin(&context, slot, so_pin, user_pin)
}

fn set_user_pin(context: &Pkcs11, slot: Slot, so_pin: &Pin, user_pin: &Pin) -> Result<()> {
    let session = context.open_rw_session(slot)?;
    session.login(UserType::So, Some(&so_pin.auth_pin()))?;
    session.init_pin(&user_pin.auth_pin())?;
    session.logout()?;
    Ok(())
}

/// Changes the user PIN of token `label` from `old` to `new`.
pub fn change_pin(module: &Path, label: &str, old: &Pin, new: &Pin) -> Result<()> {
    let context = load_module(module)?;
    let slot = find_token(&context, label, module)?;
    let session = context.open_rw_session(slot)?;
    match session.login(UserType::User, Some(&old.auth_pin())) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(cryptoki::error::Error::Pkcs11(RvError::PinIncorrect, _)) => {
            return Err(Error::PinIncorrect {
                label: label.to_owned(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    session.set_pin(&old.auth_pin(), &new.auth_pin())?;
    session.logout()?;
    Ok(())
}

/// The token labelled `label`, if the module has one (without listing its mechanisms, which
/// some modules answer with types cryptoki reports as errors).
pub fn find(module: &Path, label: &str) -> Result<Option<TokenSummary>> {
    let context = load_module(module)?;
    match find_token(&context, label, module) {
        Ok(slot) => summary(&context, slot).map(Some),
        Err(Error::TokenNotFound { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Reports the module, its slots and, for token `label`, the login check (when `pin` is given) and
/// the mechanisms the appliance needs.
pub fn status(module: &Path, label: &str, pin: Option<&Pin>) -> Result<Status> {
    let context = load_module(module)?;
    let info = context.get_library_info()?;
    let mut slots = Vec::new();
    for slot in context.get_all_slots()? {
        let slot_info = context.get_slot_info(slot)?;
        let token = if slot_info.token_present() {
            Some(summary(&context, slot)?)
        } else {
            None
        };
        slots.push(SlotStatus {
            slot: slot.id(),
            description: slot_info.slot_description().trim_end().to_owned(),
            token,
        });
    }
    let token = match find_token(&context, label, module) {
        Ok(slot) => Some(token_status(&context, slot, pin)?),
        Err(Error::TokenNotFound { .. }) => None,
        Err(other) => return Err(other),
    };
    Ok(Status {
        module: module.to_owned(),
        library: format!(
            "{} {}",
            info.manufacturer_id().trim_end(),
            info.library_description().trim_end()
        ),
        library_version: info.library_version().to_string(),
        cryptoki_version: info.cryptoki_version().to_string(),
        slots,
        token,
    })
}

fn token_status(context: &Pkcs11, slot: Slot, pin: Option<&Pin>) -> Result<TokenStatus> {
    let available = context.get_mechanism_list(slot)?;
    let mechanisms = REQUIRED_MECHANISMS
        .iter()
        .map(|(mechanism, used_for)| MechanismStatus {
            mechanism: mechanism.to_string(),
            used_for,
            present: available.contains(mechanism),
        })
        .collect();
    let login = match pin {
        None => "not checked (no PIN given)".to_owned(),
        Some(pin) => {
            let session = context.open_ro_session(slot)?;
            match session.login(UserType::User, Some(&pin.auth_pin())) {
                Ok(()) => {
                    session.logout()?;
                    "ok".to_owned()
                }
                Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                    "ok".to_owned()
                }
                Err(e) => Error::from(e).to_string(),
            }
        }
    };
    Ok(TokenStatus {
        token: summary(context, slot)?,
        login,
        mechanisms,
    })
}
