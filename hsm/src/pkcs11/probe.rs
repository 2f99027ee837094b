//! Proof that a key cannot leave the token: read its secret attributes and try to wrap it.
//!
//! Used by `lemur-hsm self-test` and by the tests; an operator can run it against any key.

use super::{Pkcs11KeyStore, objects};
use crate::error::rv_name;
use crate::{KeyUri, Result};
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki::session::Session;
use serde::Serialize;

/// What the token answered when asked to give a key away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtractionProbe {
    /// CKA_SENSITIVE.
    pub sensitive: bool,
    /// CKA_EXTRACTABLE.
    pub extractable: bool,
    /// CKA_ALWAYS_SENSITIVE: it was sensitive since generation.
    pub always_sensitive: bool,
    /// CKA_NEVER_EXTRACTABLE: it was never extractable.
    pub never_extractable: bool,
    /// `C_GetAttributeValue` of the secret attributes (CKA_VALUE, CKA_PRIVATE_EXPONENT,
    /// CKA_PRIME_1): `CKR_ATTRIBUTE_SENSITIVE` expected, or `readable` if the value came out.
    pub read_secret_value: String,
    /// `C_WrapKey` under a fresh session AES key: `CKR_KEY_UNEXTRACTABLE` expected, or `wrapped`.
    pub wrap_attempt: String,
}

impl ExtractionProbe {
    /// The key is protected: sensitive and non-extractable since birth, and both read-out paths
    /// were refused.
    pub fn key_stays_in_token(&self) -> bool {
        self.sensitive
            && !self.extractable
            && self.always_sensitive
            && self.never_extractable
            && self.read_secret_value != "readable"
            && self.wrap_attempt != "wrapped"
    }
}

fn flag(attributes: &[Attribute], wanted: AttributeType) -> bool {
    attributes.iter().any(|a| {
        matches!(
            (wanted, a),
            (AttributeType::Sensitive, Attribute::Sensitive(true))
                | (AttributeType::Extractable, Attribute::Extractable(true))
                | (
                    AttributeType::AlwaysSensitive,
                    Attribute::AlwaysSensitive(true)
                )
                | (
                    AttributeType::NeverExtractable,
                    Attribute::NeverExtractable(true)
                )
        )
    })
}

fn read_secret_value(session: &Session, key: cryptoki::object::ObjectHandle) -> Result<String> {
    let secret = [
        AttributeType::Value,
        AttributeType::PrivateExponent,
        AttributeType::Prime1,
    ];
    let answers = session.get_attribute_info(key, &secret)?;
    if answers
        .iter()
        .any(|a| matches!(a, AttributeInfo::Available(n) if *n > 0))
    {
        return Ok("readable".into());
    }
    if answers
        .iter()
        .any(|a| matches!(a, AttributeInfo::Sensitive))
    {
        return Ok(rv_name(RvError::AttributeSensitive));
    }
    Ok("no secret attribute".into())
}

fn wrap_attempt(session: &Session, key: cryptoki::object::ObjectHandle) -> Result<String> {
    let wrapping_template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Token(false),
        Attribute::Wrap(true),
    ];
    let wrapping = session.generate_key(&Mechanism::AesKeyGen, &wrapping_template)?;
    let outcome = match session.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, key) {
        Ok(_) => "wrapped".to_owned(),
        Err(cryptoki::error::Error::Pkcs11(rv, _)) => rv_name(rv),
        Err(other) => other.to_string(),
    };
    session.destroy_object(wrapping)?;
    Ok(outcome)
}

impl Pkcs11KeyStore {
    /// Asks the token for the key's secret value and to wrap it, and reports what it refused.
    pub fn probe_extraction(&self, key: &KeyUri) -> Result<ExtractionProbe> {
        let class = objects::class_of(key);
        self.pool.run(|lease| {
            let handle = objects::find_required(lease, key, class)?;
            let flags = lease.get_attributes(
                handle,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                ],
            )?;
            Ok(ExtractionProbe {
                sensitive: flag(&flags, AttributeType::Sensitive),
                extractable: flag(&flags, AttributeType::Extractable),
                always_sensitive: flag(&flags, AttributeType::AlwaysSensitive),
                never_extractable: flag(&flags, AttributeType::NeverExtractable),
                read_secret_value: read_secret_value(lease, handle)?,
                wrap_attempt: wrap_attempt(lease, handle)?,
            })
        })
    }
}
