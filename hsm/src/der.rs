//! The few DER structures the key store builds or reads: SubjectPublicKeyInfo from token
//! attributes, the OCTET STRING around CKA_EC_POINT, ECDSA signatures from the token's raw
//! `r || s` into the `ECDSA-Sig-Value` X.509 expects, and PKCS#8 for exported or imported keys.

use crate::KeyAlgorithm;
use zeroize::Zeroizing;

/// `id-ecPublicKey` (1.2.840.10045.2.1), tag and length included.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// `prime256v1` (1.2.840.10045.3.1.7): also the CKA_EC_PARAMS value for P-256.
pub(crate) const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `secp384r1` (1.3.132.0.34): also the CKA_EC_PARAMS value for P-384.
pub(crate) const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// `rsaEncryption` (1.2.840.113549.1.1.1) followed by NULL parameters.
const RSA_ALGORITHM: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn push_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A DER tag-length-value.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_length(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER from unsigned big-endian bytes (leading zeros dropped, a 0x00 added when the top
/// bit is set so the value stays positive).
fn unsigned_integer(value: &[u8]) -> Vec<u8> {
    let skip = value.iter().take_while(|&&b| b == 0).count();
    let trimmed = &value[skip.min(value.len().saturating_sub(1))..];
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(0x02, &content)
}

fn bit_string(content: &[u8]) -> Vec<u8> {
    let mut with_unused = Vec::with_capacity(content.len() + 1);
    with_unused.push(0);
    with_unused.extend_from_slice(content);
    tlv(0x03, &with_unused)
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (PKCS#1).
pub(crate) fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut content = unsigned_integer(modulus);
    content.extend(unsigned_integer(exponent));
    tlv(0x30, &content)
}

/// PKCS#8 around a PKCS#1 `RSAPrivateKey` (an `RSA PRIVATE KEY` PEM).
pub fn rsa_pkcs1_to_pkcs8(pkcs1: &[u8]) -> Zeroizing<Vec<u8>> {
    let key = SecretDer::with_room_for(pkcs1.len());
    key.private_key_info(RSA_ALGORITHM, |key| key.extend(pkcs1))
}

/// DER holding a private key, built in one buffer whose room is reserved up front and whose
/// headers are inserted in place, so it never reallocates: wiping it on drop wipes every copy
/// of the key this code made.
struct SecretDer(Zeroizing<Vec<u8>>);

impl SecretDer {
    /// Room for `secret_len` bytes of key material plus every header and public part a private
    /// key's DER adds (algorithm identifiers, version numbers, an EC public point).
    fn with_room_for(secret_len: usize) -> Self {
        Self(Zeroizing::new(Vec::with_capacity(secret_len + 256)))
    }

    fn extend(&mut self, bytes: &[u8]) {
        debug_assert!(
            self.0.capacity() - self.0.len() >= bytes.len(),
            "room reserved"
        );
        self.0.extend_from_slice(bytes);
    }

    /// Turns everything from `start` on into the content of a `tag` TLV.
    fn wrap_from(&mut self, start: usize, tag: u8) {
        let mut header = Vec::with_capacity(6);
        header.push(tag);
        push_length(self.0.len() - start, &mut header);
        debug_assert!(
            self.0.capacity() - self.0.len() >= header.len(),
            "room reserved"
        );
        self.0.splice(start..start, header);
    }

    /// An INTEGER from unsigned big-endian bytes, as [`unsigned_integer`] encodes it.
    fn integer(&mut self, value: &[u8]) {
        let start = self.0.len();
        let skip = value.iter().take_while(|&&b| b == 0).count();
        let trimmed = &value[skip.min(value.len().saturating_sub(1))..];
        if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            self.extend(&[0]);
        }
        self.extend(trimmed);
        self.wrap_from(start, 0x02);
    }

    /// `PrivateKeyInfo` (PKCS#8 v1) around the algorithm-specific key `write` appends.
    fn private_key_info(
        mut self,
        algorithm_id: &[u8],
        write: impl FnOnce(&mut Self),
    ) -> Zeroizing<Vec<u8>> {
        self.integer(&[0]);
        self.extend(&tlv(0x30, algorithm_id));
        let key_start = self.0.len();
        write(&mut self);
        self.wrap_from(key_start, 0x04);
        self.wrap_from(0, 0x30);
        self.0
    }
}

/// PKCS#8 for an EC key: `ECPrivateKey` (RFC 5915) with the public point, curve in the
/// AlgorithmIdentifier (the form ring and OpenSSL read).
pub fn ec_pkcs8(algorithm: KeyAlgorithm, scalar: &[u8], point: &[u8]) -> Zeroizing<Vec<u8>> {
    let field_len = field_len(algorithm);
    let curve = if algorithm == KeyAlgorithm::EcP384 {
        OID_P384
    } else {
        OID_P256
    };
    let key = SecretDer::with_room_for(field_len.max(scalar.len()) + point.len());
    key.private_key_info(&[OID_EC_PUBLIC_KEY, curve].concat(), |key| {
        let start = key.0.len();
        key.integer(&[1]);
        let scalar_start = key.0.len();
        for _ in scalar.len()..field_len {
            key.extend(&[0]);
        }
        key.extend(scalar);
        key.wrap_from(scalar_start, 0x04);
        key.extend(&tlv(0xa1, &bit_string(point)));
        key.wrap_from(start, 0x30);
    })
}

/// PKCS#8 for an RSA key from its CRT components, in `RSAPrivateKey` order
/// (n, e, d, p, q, d mod p-1, d mod q-1, q^-1 mod p).
pub fn rsa_pkcs8(components: [&[u8]; 8]) -> Zeroizing<Vec<u8>> {
    let key = SecretDer::with_room_for(components.iter().map(|c| c.len()).sum());
    key.private_key_info(RSA_ALGORITHM, |key| {
        let start = key.0.len();
        key.integer(&[0]);
        for component in components {
            key.integer(component);
        }
        key.wrap_from(start, 0x30);
    })
}

/// One DER TLV at the start of `input`: its tag, its content and what follows it.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |len, &b| len << 8 | usize::from(b));
        (len, rest)
    };
    (rest.len() >= len).then(|| {
        let (content, rest) = rest.split_at(len);
        (tag, content, rest)
    })
}

/// The content of the TLV at the start of `input` when its tag is `tag`, and what follows it.
fn expect_tlv(tag: u8, input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (found, content, rest) = read_tlv(input)?;
    (found == tag).then_some((content, rest))
}

/// The algorithm-specific private key inside a PKCS#8 v1 `PrivateKeyInfo` (an RSA key's
/// `RSAPrivateKey`, an EC key's `ECPrivateKey`).
pub(crate) fn pkcs8_private_key(pkcs8: &[u8]) -> Option<&[u8]> {
    let (info, _) = expect_tlv(0x30, pkcs8)?;
    let (version, rest) = expect_tlv(0x02, info)?;
    let (_algorithm, rest) = expect_tlv(0x30, rest)?;
    let (key, _) = expect_tlv(0x04, rest)?;
    (version == [0] && key.first() == Some(&0x30)).then_some(key)
}

/// The private scalar in an EC key's PKCS#8, without leading zeros; `None` unless it is a
/// non-zero number that fits `algorithm`'s field.
pub(crate) fn ec_scalar_of_pkcs8(pkcs8: &[u8], algorithm: KeyAlgorithm) -> Option<&[u8]> {
    let (ec_private_key, _) = expect_tlv(0x30, pkcs8_private_key(pkcs8)?)?;
    let (_version, rest) = expect_tlv(0x02, ec_private_key)?;
    let (scalar, _) = expect_tlv(0x04, rest)?;
    let scalar = &scalar[scalar.iter().take_while(|&&b| b == 0).count()..];
    (!scalar.is_empty() && scalar.len() <= field_len(algorithm)).then_some(scalar)
}

/// The byte length of an EC algorithm's field elements.
fn field_len(algorithm: KeyAlgorithm) -> usize {
    if algorithm == KeyAlgorithm::EcP384 {
        48
    } else {
        32
    }
}

/// SubjectPublicKeyInfo for `key` (the EC point, or the PKCS#1 RSAPublicKey).
pub(crate) fn subject_public_key_info(algorithm: KeyAlgorithm, key: &[u8]) -> Vec<u8> {
    let algorithm_id = match algorithm {
        KeyAlgorithm::EcP256 => [OID_EC_PUBLIC_KEY, OID_P256].concat(),
        KeyAlgorithm::EcP384 => [OID_EC_PUBLIC_KEY, OID_P384].concat(),
        _ => RSA_ALGORITHM.to_vec(),
    };
    let mut content = tlv(0x30, &algorithm_id);
    content.extend(bit_string(key));
    tlv(0x30, &content)
}

/// The EC point inside CKA_EC_POINT, which PKCS#11 wraps in a DER OCTET STRING (some modules
/// return the bare point; both are accepted).
pub(crate) fn ec_point(attribute: &[u8], field_len: usize) -> Option<&[u8]> {
    let uncompressed_len = 1 + 2 * field_len;
    if attribute.len() == uncompressed_len && attribute[0] == 0x04 {
        return Some(attribute);
    }
    let (&tag, rest) = attribute.split_first()?;
    let (&len, point) = rest.split_first()?;
    (tag == 0x04
        && usize::from(len) == uncompressed_len
        && point.len() == uncompressed_len
        && point[0] == 0x04)
        .then_some(point)
}

/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` from the token's fixed-width `r || s`.
pub(crate) fn ecdsa_signature(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut content = unsigned_integer(r);
    content.extend(unsigned_integer(s));
    Some(tlv(0x30, &content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(
            unsigned_integer(&[0x00, 0x00, 0x7f]),
            vec![0x02, 0x01, 0x7f]
        );
        assert_eq!(unsigned_integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0x00]), vec![0x02, 0x01, 0x00]);
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        let content = vec![0u8; 300];
        let encoded = tlv(0x04, &content);
        assert_eq!(&encoded[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    /// The room reserved for a private key's DER suffices for the largest keys with every
    /// integer needing its sign byte, so the buffer is never reallocated (which would leave an
    /// unwiped copy behind); `SecretDer`'s debug assertions fail the test if it would be.
    #[test]
    fn private_key_der_is_built_without_reallocating() {
        let big = |len: usize| vec![0xffu8; len];
        let (n, d, p, e) = (big(1024), big(1024), big(512), big(3));
        let rsa = rsa_pkcs8([&n, &e, &d, &p, &p, &p, &p, &p]);
        let reserved = n.len() + d.len() + e.len() + 5 * p.len() + 256;
        assert_eq!(rsa.capacity(), reserved);
        assert_eq!(&rsa[..2], &[0x30, 0x82]);
        assert_eq!(
            usize::from(u16::from_be_bytes([rsa[2], rsa[3]])),
            rsa.len() - 4
        );

        let point = [&[0x04u8][..], &[0xffu8; 96]].concat();
        let ec = ec_pkcs8(KeyAlgorithm::EcP384, &[0xff; 47], &point);
        assert_eq!(ec.capacity(), 48 + point.len() + 256);
        assert_eq!(&ec[..2], &[0x30, 0x81]);
        assert_eq!(usize::from(ec[2]), ec.len() - 3);
        let scalar_at = ec
            .windows(2)
            .position(|w| w == [0x04, 0x30])
            .unwrap_or_default();
        assert_eq!(
            &ec[scalar_at..scalar_at + 3],
            &[0x04, 0x30, 0x00],
            "left-padded"
        );

        let wrapped = rsa_pkcs1_to_pkcs8(&n);
        assert_eq!(wrapped.capacity(), n.len() + 256);
        assert!(wrapped.ends_with(&n));
    }

    #[test]
    fn the_scalar_is_read_back_from_pkcs8() {
        let point = [&[0x04u8][..], &[7u8; 64]].concat();
        let scalar = [0x42u8; 32];
        let p256 = KeyAlgorithm::EcP256;
        let pkcs8 = ec_pkcs8(p256, &scalar, &point);
        assert_eq!(ec_scalar_of_pkcs8(&pkcs8, p256), Some(&scalar[..]));
        assert_eq!(ec_scalar_of_pkcs8(&pkcs8[..pkcs8.len() - 1], p256), None);
        assert_eq!(
            ec_scalar_of_pkcs8(&rsa_pkcs1_to_pkcs8(&[0x30, 0]), p256),
            None
        );
        // Leading zeros go; a scalar wider than the field, or zero, is refused.
        let short = ec_pkcs8(p256, &[0x42; 31], &point);
        assert_eq!(ec_scalar_of_pkcs8(&short, p256), Some(&[0x42u8; 31][..]));
        let wide = ec_pkcs8(p256, &[0x42; 33], &point);
        assert_eq!(ec_scalar_of_pkcs8(&wide, p256), None);
        assert_eq!(
            ec_scalar_of_pkcs8(&ec_pkcs8(p256, &[0; 32], &point), p256),
            None
        );
        assert_eq!(
            pkcs8_private_key(&rsa_pkcs1_to_pkcs8(&[0x30, 0])),
            Some(&[0x30u8, 0][..])
        );
    }

    #[test]
    fn ec_point_accepts_wrapped_and_bare_points() {
        let point = [&[0x04u8][..], &[7u8; 64]].concat();
        let wrapped = [&[0x04u8, 65][..], &point].concat();
        assert_eq!(ec_point(&wrapped, 32), Some(&point[..]));
        assert_eq!(ec_point(&point, 32), Some(&point[..]));
        assert_eq!(ec_point(&point[..40], 32), None);
    }

    #[test]
    fn ecdsa_signatures_become_der_sequences() {
        let raw = [[0x80u8; 32], [0x01u8; 32]].concat();
        let der = ecdsa_signature(&raw).unwrap_or_default();
        assert_eq!(&der[..4], &[0x30, 0x45, 0x02, 0x21]);
        assert_eq!(ecdsa_signature(&[1, 2, 3]), None);
    }
}
