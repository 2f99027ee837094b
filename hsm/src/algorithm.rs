//! The key algorithms a CA key may use and the signature schemes the HSM performs with them.

use crate::{Error, Result};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// A CA key pair algorithm generated inside the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (Lemur's `ECCPRIME256V1`).
    EcP256,
    /// ECDSA on NIST P-384 (Lemur's `ECCSECP384R1`).
    EcP384,
    /// RSA with a 2048-bit modulus.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
}

impl KeyAlgorithm {
    /// Every supported algorithm, for self-tests and help texts.
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::EcP256,
        KeyAlgorithm::EcP384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ];

    /// The canonical name (`p256`, `rsa2048` ...).
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcP256 => "p256",
            KeyAlgorithm::EcP384 => "p384",
            KeyAlgorithm::Rsa2048 => "rsa2048",
            KeyAlgorithm::Rsa3072 => "rsa3072",
            KeyAlgorithm::Rsa4096 => "rsa4096",
        }
    }

    /// Lemur's name for it (`ECCPRIME256V1`, `RSA2048` ...), as its API shows key types.
    pub fn lemur_name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcP256 => "ECCPRIME256V1",
            KeyAlgorithm::EcP384 => "ECCSECP384R1",
            KeyAlgorithm::Rsa2048 => "RSA2048",
            KeyAlgorithm::Rsa3072 => "RSA3072",
            KeyAlgorithm::Rsa4096 => "RSA4096",
        }
    }

    /// RSA modulus size in bits, `None` for EC keys.
    pub fn rsa_bits(self) -> Option<u32> {
        match self {
            KeyAlgorithm::Rsa2048 => Some(2048),
            KeyAlgorithm::Rsa3072 => Some(3072),
            KeyAlgorithm::Rsa4096 => Some(4096),
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => None,
        }
    }

    /// The RSA algorithm for a modulus of `bits` bits.
    pub(crate) fn from_rsa_bits(bits: usize) -> Option<Self> {
        match bits {
            2048 => Some(KeyAlgorithm::Rsa2048),
            3072 => Some(KeyAlgorithm::Rsa3072),
            4096 => Some(KeyAlgorithm::Rsa4096),
            _ => None,
        }
    }

    /// The scheme a CA uses by default with this key: ECDSA with the curve's hash, RSA PKCS#1 v1.5
    /// with SHA-256 (what every client verifies).
    pub fn default_scheme(self) -> SignatureScheme {
        match self {
            KeyAlgorithm::EcP256 => SignatureScheme::EcdsaSha256,
            KeyAlgorithm::EcP384 => SignatureScheme::EcdsaSha384,
            _ => SignatureScheme::RsaPkcs1Sha256,
        }
    }

    /// Whether `scheme` can be performed with a key of this algorithm.
    pub fn supports(self, scheme: SignatureScheme) -> bool {
        self.rsa_bits().is_some() == scheme.is_rsa()
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<KeyAlgorithm> for String {
    fn from(algorithm: KeyAlgorithm) -> Self {
        algorithm.name().to_owned()
    }
}

impl FromStr for KeyAlgorithm {
    type Err = Error;

    /// Accepts the canonical names and Lemur's (`ECCPRIME256V1`, `ECCSECP384R1`, `RSA2048` ...).
    fn from_str(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "p256" | "ec-p256" | "eccprime256v1" | "eccsecp256r1" => Ok(KeyAlgorithm::EcP256),
            "p384" | "ec-p384" | "eccsecp384r1" => Ok(KeyAlgorithm::EcP384),
            "rsa2048" => Ok(KeyAlgorithm::Rsa2048),
            "rsa3072" => Ok(KeyAlgorithm::Rsa3072),
            "rsa4096" => Ok(KeyAlgorithm::Rsa4096),
            _ => Err(Error::Unsupported(format!(
                "key algorithm {name:?}; use one of p256, p384, rsa2048, rsa3072, rsa4096"
            ))),
        }
    }
}

/// A signature scheme performed by the HSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SignatureScheme {
    /// ECDSA over SHA-256 (hash computed here, CKM_ECDSA in the token), DER-encoded signature.
    EcdsaSha256,
    /// ECDSA over SHA-384, DER-encoded signature.
    EcdsaSha384,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (CKM_SHA256_RSA_PKCS).
    RsaPkcs1Sha256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (CKM_SHA256_RSA_PKCS_PSS).
    RsaPssSha256,
}

impl SignatureScheme {
    /// Every scheme, for self-tests.
    pub const ALL: [SignatureScheme; 4] = [
        SignatureScheme::EcdsaSha256,
        SignatureScheme::EcdsaSha384,
        SignatureScheme::RsaPkcs1Sha256,
        SignatureScheme::RsaPssSha256,
    ];

    /// Whether this is an RSA scheme.
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            SignatureScheme::RsaPkcs1Sha256 | SignatureScheme::RsaPssSha256
        )
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            SignatureScheme::EcdsaSha256 => "ecdsa-sha256",
            SignatureScheme::EcdsaSha384 => "ecdsa-sha384",
            SignatureScheme::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            SignatureScheme::RsaPssSha256 => "rsa-pss-sha256",
        }
    }
}

impl fmt::Display for SignatureScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lemur_key_type_names_parse() -> Result<()> {
        assert_eq!(
            "ECCPRIME256V1".parse::<KeyAlgorithm>()?,
            KeyAlgorithm::EcP256
        );
        assert_eq!(
            "ECCSECP384R1".parse::<KeyAlgorithm>()?,
            KeyAlgorithm::EcP384
        );
        assert_eq!("RSA4096".parse::<KeyAlgorithm>()?, KeyAlgorithm::Rsa4096);
        assert!("ECCPRIME192V1".parse::<KeyAlgorithm>().is_err());
        for algorithm in KeyAlgorithm::ALL {
            assert_eq!(algorithm.lemur_name().parse::<KeyAlgorithm>()?, algorithm);
        }
        Ok(())
    }

    #[test]
    fn schemes_match_key_families() {
        assert!(KeyAlgorithm::EcP256.supports(SignatureScheme::EcdsaSha384));
        assert!(!KeyAlgorithm::EcP256.supports(SignatureScheme::RsaPssSha256));
        assert!(KeyAlgorithm::Rsa3072.supports(SignatureScheme::RsaPssSha256));
        assert!(!KeyAlgorithm::Rsa2048.supports(SignatureScheme::EcdsaSha256));
    }
}
