//! Independent verification of signatures the HSM made, in software (ring).
//!
//! A signature is checked before it leaves the key store's signer (see [`crate::HsmSigner`]): a
//! faulty HSM that returns a wrong signature must not produce a certificate. Boulder does the same.

use crate::{KeyAlgorithm, PublicKey, SignatureScheme};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

/// Whether `signature` is a valid `scheme` signature of `message` by `public`.
pub fn verify_signature(
    public: &PublicKey,
    scheme: SignatureScheme,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let Some(algorithm) = ring_algorithm(public.algorithm(), scheme) else {
        return false;
    };
    UnparsedPublicKey::new(algorithm, public.key_bytes())
        .verify(message, signature)
        .is_ok()
}

fn ring_algorithm(
    key: KeyAlgorithm,
    scheme: SignatureScheme,
) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match (key, scheme) {
        (KeyAlgorithm::EcP256, SignatureScheme::EcdsaSha256) => &signature::ECDSA_P256_SHA256_ASN1,
        (KeyAlgorithm::EcP256, SignatureScheme::EcdsaSha384) => &signature::ECDSA_P256_SHA384_ASN1,
        (KeyAlgorithm::EcP384, SignatureScheme::EcdsaSha256) => &signature::ECDSA_P384_SHA256_ASN1,
        (KeyAlgorithm::EcP384, SignatureScheme::EcdsaSha384) => &signature::ECDSA_P384_SHA384_ASN1,
        (key, SignatureScheme::RsaPkcs1Sha256) if key.rsa_bits().is_some() => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        (key, SignatureScheme::RsaPssSha256) if key.rsa_bits().is_some() => {
            &signature::RSA_PSS_2048_8192_SHA256
        }
        _ => return None,
    })
}
