//! End-entity key pairs generated in the token as session objects that may be exported, read out
//! once as PKCS#8, and destroyed.

use super::objects;
use crate::{Error, ExportableKeyPair, KeyAlgorithm, Result, der};
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;
use zeroize::{Zeroize, Zeroizing};

/// The values of `wanted`, in order. The values are moved out of cryptoki's answer, and whatever
/// is left of it wiped, so no unwiped copy remains on our side (cryptoki's own receive buffers
/// are freed unwiped: see SECURITY.md).
fn read(
    session: &Session,
    handle: ObjectHandle,
    wanted: &[AttributeType],
) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    let mut attributes = session.get_attributes(handle, wanted)?;
    let values = wanted
        .iter()
        .map(|kind| {
            attributes
                .iter_mut()
                .find(|attribute| attribute.attribute_type() == *kind)
                .and_then(value_of)
                .map(|value| Zeroizing::new(std::mem::take(value)))
                .ok_or_else(|| Error::Malformed(format!("the token did not export {kind:?}")))
        })
        .collect();
    attributes
        .iter_mut()
        .filter_map(value_of)
        .for_each(|value| value.zeroize());
    values
}

/// The bytes of a key component attribute.
fn value_of(attribute: &mut Attribute) -> Option<&mut Vec<u8>> {
    match attribute {
        Attribute::Value(v)
        | Attribute::EcPoint(v)
        | Attribute::Modulus(v)
        | Attribute::PublicExponent(v)
        | Attribute::PrivateExponent(v)
        | Attribute::Prime1(v)
        | Attribute::Prime2(v)
        | Attribute::Exponent1(v)
        | Attribute::Exponent2(v)
        | Attribute::Coefficient(v) => Some(v),
        _ => None,
    }
}

pub(super) fn generate(session: &Session, algorithm: KeyAlgorithm) -> Result<ExportableKeyPair> {
    let (mechanism, mut public, mut private) =
        objects::key_pair_templates(algorithm, "lemur-leaf", b"leaf", false);
    private.retain(|a| {
        !matches!(
            a,
            Attribute::Sensitive(_) | Attribute::Extractable(_) | Attribute::Private(_)
        )
    });
    private.extend([
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Private(true),
    ]);
    public.retain(|a| !matches!(a, Attribute::Private(_)));
    public.push(Attribute::Private(false));
    let (public_handle, private_handle) =
        session.generate_key_pair(&mechanism, &public, &private)?;
    let exported = export(session, algorithm, public_handle, private_handle);
    session.destroy_object(private_handle)?;
    session.destroy_object(public_handle)?;
    exported
}

fn export(
    session: &Session,
    algorithm: KeyAlgorithm,
    public_handle: ObjectHandle,
    private_handle: ObjectHandle,
) -> Result<ExportableKeyPair> {
    let public = objects::public_key_of(session, public_handle, "a generated leaf key")?;
    let pkcs8 = match algorithm {
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
            let scalar = read(session, private_handle, &[AttributeType::Value])?;
            der::ec_pkcs8(algorithm, &scalar[0], public.key_bytes())
        }
        _ => {
            let parts = read(
                session,
                private_handle,
                &[
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                    AttributeType::PrivateExponent,
                    AttributeType::Prime1,
                    AttributeType::Prime2,
                    AttributeType::Exponent1,
                    AttributeType::Exponent2,
                    AttributeType::Coefficient,
                ],
            )?;
            der::rsa_pkcs8([
                &parts[0], &parts[1], &parts[2], &parts[3], &parts[4], &parts[5], &parts[6],
                &parts[7],
            ])
        }
    };
    Ok(ExportableKeyPair { pkcs8, public })
}
