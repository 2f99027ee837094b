//! End-entity key pairs generated in the token as session objects, exported once as PKCS#8, and
//! destroyed.
//!
//! The private key stays sensitive: it leaves the token only wrapped (`CKM_AES_KEY_WRAP_PAD`)
//! under a one-time AES-256 key drawn from the token's generator, and is unwrapped here into a
//! zeroizing buffer. Reading its components as attributes instead would pass them through
//! cryptoki's receive buffers, which are freed unwiped.

use super::objects;
use crate::{Error, ExportableKeyPair, KeyAlgorithm, Result, der};
use aes_kw::KekAes256;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use zeroize::{Zeroize, Zeroizing};

/// The length of the integrity block key wrapping adds.
const WRAP_OVERHEAD: usize = 8;

pub(super) fn generate(session: &Session, algorithm: KeyAlgorithm) -> Result<ExportableKeyPair> {
    let (mechanism, mut public, mut private) =
        objects::key_pair_templates(algorithm, "lemur-leaf", b"leaf", false);
    private.retain(|a| !matches!(a, Attribute::Extractable(_) | Attribute::Private(_)));
    private.extend([Attribute::Extractable(true), Attribute::Private(true)]);
    public.retain(|a| !matches!(a, Attribute::Private(_)));
    public.push(Attribute::Private(false));
    let (public_handle, private_handle) =
        session.generate_key_pair(&mechanism, &public, &private)?;
    let exported = export(session, algorithm, public_handle, private_handle);
    // Both halves go whatever happened; the first error is the one reported.
    let private_destroyed = session.destroy_object(private_handle);
    let public_destroyed = session.destroy_object(public_handle);
    let exported = exported?;
    private_destroyed?;
    public_destroyed?;
    Ok(exported)
}

fn export(
    session: &Session,
    algorithm: KeyAlgorithm,
    public_handle: ObjectHandle,
    private_handle: ObjectHandle,
) -> Result<ExportableKeyPair> {
    let public = objects::public_key_of(session, public_handle, "a generated leaf key")?;
    let unwrapped = wrap_and_unwrap(session, private_handle)?;
    let malformed = || Error::Malformed(format!("the token's wrapped {algorithm:?} key"));
    // Rebuilt in the form this crate writes (PKCS#8 v1; EC with the public point, which ring
    // requires and tokens may leave out), whatever form the token chose.
    let pkcs8 = match algorithm {
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
            let scalar = der::ec_scalar_of_pkcs8(&unwrapped, algorithm).ok_or_else(malformed)?;
            der::ec_pkcs8(algorithm, scalar, public.key_bytes())
        }
        _ => der::rsa_pkcs1_to_pkcs8(der::pkcs8_private_key(&unwrapped).ok_or_else(malformed)?),
    };
    Ok(ExportableKeyPair { pkcs8, public })
}

/// The PKCS#8 of `private_handle`, wrapped in the token under a one-time key and unwrapped here.
fn wrap_and_unwrap(session: &Session, private_handle: ObjectHandle) -> Result<Zeroizing<Vec<u8>>> {
    let mut secret = Zeroizing::new([0u8; 32]);
    session.generate_random_slice(&mut secret[..])?;
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Wrap(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Value(secret.to_vec()),
    ];
    let created = session.create_object(&template);
    for attribute in &mut template {
        if let Attribute::Value(value) = attribute {
            value.zeroize();
        }
    }
    let wrapping = created?;
    let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, private_handle);
    let destroyed = session.destroy_object(wrapping);
    let wrapped = wrapped?;
    destroyed?;
    let kek = KekAes256::try_from(&secret[..])
        .map_err(|e| Error::Malformed(format!("one-time wrapping key: {e}")))?;
    let mut pkcs8 = Zeroizing::new(vec![0u8; wrapped.len().saturating_sub(WRAP_OVERHEAD)]);
    let len = kek
        .unwrap_with_padding(&wrapped, &mut pkcs8)
        .map_err(|e| Error::Malformed(format!("the token's wrapped key did not unwrap: {e}")))?
        .len();
    pkcs8.truncate(len);
    Ok(pkcs8)
}
