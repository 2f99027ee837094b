//! Token objects: key templates, lookup by URI, and reading what a key is.

use crate::der::{self, OID_P256, OID_P384};
use crate::uri::ObjectType;
use crate::{Error, KeyAlgorithm, KeyClass, KeyInfo, KeyUri, PublicKey, Result};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

/// The public and private templates for a CA key pair: the private half is sensitive, never
/// extractable, private (login needed) and only signs.
pub(super) fn key_pair_templates(
    algorithm: KeyAlgorithm,
    label: &str,
    id: &[u8],
    persistent: bool,
) -> (Mechanism<'static>, Vec<Attribute>, Vec<Attribute>) {
    let common = |private: bool| {
        vec![
            Attribute::Token(persistent),
            Attribute::Private(private),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ]
    };
    let mut public = common(false);
    public.push(Attribute::Verify(true));
    let mut private = common(true);
    private.extend([
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
        Attribute::Unwrap(false),
    ]);
    let mechanism = match algorithm {
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
            public.push(Attribute::EcParams(curve_oid(algorithm).to_vec()));
            Mechanism::EccKeyPairGen
        }
        rsa => {
            public.push(Attribute::ModulusBits(
                u64::from(rsa.rsa_bits().unwrap_or(2048)).into(),
            ));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            public.push(Attribute::Encrypt(false));
            Mechanism::RsaPkcsKeyPairGen
        }
    };
    (mechanism, public, private)
}

fn curve_oid(algorithm: KeyAlgorithm) -> &'static [u8] {
    if algorithm == KeyAlgorithm::EcP384 {
        OID_P384
    } else {
        OID_P256
    }
}

/// The search template for `class` objects matching `uri`.
pub(super) fn template(uri: &KeyUri, class: ObjectClass) -> Vec<Attribute> {
    let mut template = vec![Attribute::Class(class)];
    if let Some(label) = uri.object() {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = uri.id() {
        template.push(Attribute::Id(id.to_vec()));
    }
    template
}

/// Finds the single `class` object `uri` names; `Ok(None)` when there is none.
pub(super) fn find(
    session: &Session,
    uri: &KeyUri,
    class: ObjectClass,
) -> Result<Option<ObjectHandle>> {
    let found = session.find_objects(&template(uri, class))?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(Error::InvalidUri {
            uri: uri.to_string(),
            reason: format!("matches {} objects; add `id=` to pick one", found.len()),
        }),
    }
}

/// Like [`find`], but a missing object is an error.
pub(super) fn find_required(
    session: &Session,
    uri: &KeyUri,
    class: ObjectClass,
) -> Result<ObjectHandle> {
    find(session, uri, class)?.ok_or_else(|| Error::KeyNotFound {
        uri: uri.to_string(),
    })
}

/// The class a URI's `type=` asks for, defaulting to the private key of a pair.
pub(super) fn class_of(uri: &KeyUri) -> ObjectClass {
    match uri.object_type() {
        Some(ObjectType::Public) => ObjectClass::PUBLIC_KEY,
        Some(ObjectType::Secret) => ObjectClass::SECRET_KEY,
        _ => ObjectClass::PRIVATE_KEY,
    }
}

fn bytes(attributes: &[Attribute], wanted: AttributeType) -> Option<&[u8]> {
    attributes
        .iter()
        .find_map(|attribute| match (wanted, attribute) {
            (AttributeType::Label, Attribute::Label(v))
            | (AttributeType::Id, Attribute::Id(v))
            | (AttributeType::EcParams, Attribute::EcParams(v))
            | (AttributeType::EcPoint, Attribute::EcPoint(v))
            | (AttributeType::Modulus, Attribute::Modulus(v))
            | (AttributeType::PublicExponent, Attribute::PublicExponent(v)) => Some(v.as_slice()),
            _ => None,
        })
}

fn flag(attributes: &[Attribute], wanted: AttributeType) -> bool {
    attributes.iter().any(|attribute| {
        matches!(
            (wanted, attribute),
            (AttributeType::Sensitive, Attribute::Sensitive(true))
                | (AttributeType::Token, Attribute::Token(true))
                | (AttributeType::Local, Attribute::Local(true))
        )
    })
}

fn key_type(attributes: &[Attribute]) -> Option<KeyType> {
    attributes.iter().find_map(|attribute| match attribute {
        Attribute::KeyType(key_type) => Some(*key_type),
        _ => None,
    })
}

/// The algorithm of an EC key from CKA_EC_PARAMS, or of an RSA key from its modulus size.
fn algorithm_of(attributes: &[Attribute]) -> Option<KeyAlgorithm> {
    match key_type(attributes)? {
        KeyType::EC => match bytes(attributes, AttributeType::EcParams)? {
            p if p == OID_P256 => Some(KeyAlgorithm::EcP256),
            p if p == OID_P384 => Some(KeyAlgorithm::EcP384),
            _ => None,
        },
        KeyType::RSA => {
            let modulus = bytes(attributes, AttributeType::Modulus)?;
            let significant = modulus.iter().skip_while(|&&b| b == 0).count();
            KeyAlgorithm::from_rsa_bits(significant * 8)
        }
        _ => None,
    }
}

/// Describes a private or secret key object for listings.
pub(super) fn describe(
    session: &Session,
    token: &str,
    handle: ObjectHandle,
    class: KeyClass,
) -> Result<KeyInfo> {
    let attributes = session.get_attributes(
        handle,
        &[
            AttributeType::Label,
            AttributeType::Id,
            AttributeType::KeyType,
            AttributeType::EcParams,
            AttributeType::Modulus,
            AttributeType::ValueLen,
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::Token,
            AttributeType::Local,
        ],
    )?;
    let label =
        String::from_utf8_lossy(bytes(&attributes, AttributeType::Label).unwrap_or_default())
            .into_owned();
    let id = bytes(&attributes, AttributeType::Id)
        .unwrap_or_default()
        .to_vec();
    let key_type = match (algorithm_of(&attributes), key_type(&attributes)) {
        (Some(algorithm), _) => algorithm.name().to_owned(),
        (None, Some(KeyType::AES)) => {
            let bits = attributes.iter().find_map(|a| match a {
                Attribute::ValueLen(len) => Some(u64::from(*len) * 8),
                _ => None,
            });
            format!("aes{}", bits.unwrap_or(0))
        }
        (None, Some(other)) => other.to_string(),
        (None, None) => "unknown".to_owned(),
    };
    let object_type = match class {
        KeyClass::Private => ObjectType::Private,
        KeyClass::Secret => ObjectType::Secret,
    };
    Ok(KeyInfo {
        uri: KeyUri::new(token, label.clone(), id).with_type(object_type),
        label,
        class,
        key_type,
        sensitive: flag(&attributes, AttributeType::Sensitive),
        // A token that does not say is taken to allow extraction: protection must be stated.
        extractable: !attributes
            .iter()
            .any(|attribute| matches!(attribute, Attribute::Extractable(false))),
        persistent: flag(&attributes, AttributeType::Token),
        local: flag(&attributes, AttributeType::Local),
    })
}

/// Reads the public key of the pair `uri` names, from its public key object.
pub(super) fn public_key(session: &Session, uri: &KeyUri) -> Result<PublicKey> {
    let handle = find_required(session, uri, ObjectClass::PUBLIC_KEY)?;
    public_key_of(session, handle, &uri.to_string())
}

/// Reads the public key object `handle`; `what` names it in errors.
pub(super) fn public_key_of(
    session: &Session,
    handle: ObjectHandle,
    what: &str,
) -> Result<PublicKey> {
    let uri = what;
    let attributes = session.get_attributes(
        handle,
        &[
            AttributeType::KeyType,
            AttributeType::EcParams,
            AttributeType::EcPoint,
            AttributeType::Modulus,
            AttributeType::PublicExponent,
        ],
    )?;
    let algorithm = algorithm_of(&attributes)
        .ok_or_else(|| Error::Unsupported(format!("{uri} is not a P-256, P-384 or RSA key")))?;
    let key = match algorithm {
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
            let field_len = if algorithm == KeyAlgorithm::EcP256 {
                32
            } else {
                48
            };
            let point = bytes(&attributes, AttributeType::EcPoint)
                .and_then(|attribute| der::ec_point(attribute, field_len))
                .ok_or_else(|| Error::Malformed(format!("CKA_EC_POINT of {uri}")))?;
            point.to_vec()
        }
        _ => {
            let modulus = bytes(&attributes, AttributeType::Modulus);
            let exponent = bytes(&attributes, AttributeType::PublicExponent);
            match (modulus, exponent) {
                (Some(n), Some(e)) => der::rsa_public_key(n, e),
                _ => return Err(Error::Malformed(format!("RSA public key of {uri}"))),
            }
        }
    };
    Ok(PublicKey::new(algorithm, key))
}
