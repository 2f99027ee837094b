//! End-entity key pairs generated in the token as session objects that may be exported, read out
//! once as PKCS#8, and destroyed.

use super::objects;
use crate::{Error, ExportableKeyPair, KeyAlgorithm, Result, der};
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;
use zeroize::Zeroizing;

fn read(
    session: &Session,
    handle: ObjectHandle,
    wanted: &[AttributeType],
) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    let attributes = session.get_attributes(handle, wanted)?;
    wanted
        .iter()
        .map(|kind| {
            attributes
                .iter()
                .find_map(|attribute| match (kind, attribute) {
                    (AttributeType::Value, Attribute::Value(v))
                    | (AttributeType::EcPoint, Attribute::EcPoint(v))
                    | (AttributeType::Modulus, Attribute::Modulus(v))
                    | (AttributeType::PublicExponent, Attribute::PublicExponent(v))
                    | (AttributeType::PrivateExponent, Attribute::PrivateExponent(v))
                    | (AttributeType::Prime1, Attribute::Prime1(v))
                    | (AttributeType::Prime2, Attribute::Prime2(v))
                    | (AttributeType::Exponent1, Attribute::Exponent1(v))
                    | (AttributeType::Exponent2, Attribute::Exponent2(v))
                    | (AttributeType::Coefficient, Attribute::Coefficient(v)) => {
                        Some(Zeroizing::new(v.clone()))
                    }
                    _ => None,
                })
                .ok_or_else(|| Error::Malformed(format!("the token did not export {kind:?}")))
        })
        .collect()
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
    Ok(ExportableKeyPair {
        pkcs8: Zeroizing::new(pkcs8),
        public,
    })
}
