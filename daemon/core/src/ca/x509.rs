//! Reading certificates, chains, CSR public keys and private keys: the fields the inventory keeps,
//! named as Lemur names them (`ECCPRIME256V1`, `sha256WithRSA`...).

use crate::error::{Error, Result};
use lemur_hsm::KeyAlgorithm;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{self, Oid};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as ParsedKey;

/// A subject alternative name as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AltName {
    /// Lemur's `nameType`: `DNSName`, `IPAddress`, `rfc822Name`, `uniformResourceIdentifier`.
    pub kind: &'static str,
    /// The name.
    pub value: String,
}

impl AltName {
    /// The name types Lemur knows, by name.
    pub const KINDS: [&'static str; 4] = [
        "DNSName",
        "IPAddress",
        "rfc822Name",
        "uniformResourceIdentifier",
    ];

    /// The name type called `kind`, if it is one of [`AltName::KINDS`].
    pub fn kind_named(kind: &str) -> Option<&'static str> {
        Self::KINDS.into_iter().find(|known| *known == kind)
    }
}

/// Everything the inventory records about a certificate.
#[derive(Debug, Clone)]
pub struct ParsedCertificate {
    /// DER.
    pub der: Vec<u8>,
    /// Normalised PEM.
    pub pem: String,
    /// Subject common name ("" when absent).
    pub cn: String,
    /// Subject distinguished name, RFC 4514 style.
    pub subject: String,
    /// Issuer, as Lemur names it: the issuer CN without spaces and punctuation.
    pub issuer: String,
    /// Serial, decimal.
    pub serial: String,
    /// Serial, upper-case hex.
    pub serial_hex: String,
    /// Start of validity (Unix seconds).
    pub not_before: i64,
    /// End of validity (Unix seconds).
    pub not_after: i64,
    /// Subject alternative names.
    pub alt_names: Vec<AltName>,
    /// `RSA2048`, `ECCPRIME256V1`...
    pub key_type: String,
    /// Key size in bits.
    pub bits: i64,
    /// `sha256WithRSA`, `sha256WithECDSA`...
    pub signing_algorithm: String,
    /// Basic constraints CA flag.
    pub is_ca: bool,
    /// Basic constraints path length: how many CA certificates may follow this one (None: no
    /// limit).
    pub path_len: Option<u32>,
    /// Extended key usage: TLS server authentication.
    pub server_auth: bool,
    /// Extended key usage: TLS client authentication.
    pub client_auth: bool,
    /// Extended key usage: any purpose besides TLS server and client authentication.
    pub other_purposes: bool,
    /// Key usage: may sign certificates or CRLs (keyCertSign or cRLSign).
    pub signs_certificates: bool,
    /// Key usage: digitalSignature.
    pub digital_signature: bool,
    /// Subject and issuer names are equal (self-issued).
    pub subject_matches_issuer: bool,
    /// The SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
    /// SHA-256 of the DER, hex (duplicate detection).
    pub sha256: String,
    /// Subject O, OU, C, ST, L.
    pub organization: String,
    /// Subject OU.
    pub organizational_unit: String,
    /// Subject C.
    pub country: String,
    /// Subject ST.
    pub state: String,
    /// Subject L.
    pub location: String,
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `der`, lower-case hex: how the inventory names a certificate's contents.
pub fn sha256_hex(der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// The first certificate of a PEM `text`, as DER; `field` names the input in the error.
pub fn first_certificate(text: &str, field: &str) -> Result<Vec<u8>> {
    pem_certificates(text, field)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::invalid(field, "holds no certificate"))
}

/// DER as PEM with Unix line endings.
pub fn to_pem(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A PKCS#8 key as `PRIVATE KEY` PEM, built in zeroizing memory (the pem crate's buffers are
/// not wiped on drop).
pub fn private_key_to_pem(pkcs8: &[u8]) -> zeroize::Zeroizing<String> {
    use base64::Engine;
    let encoded = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(pkcs8));
    let mut out = zeroize::Zeroizing::new(String::with_capacity(
        encoded.len() + encoded.len() / 64 + 64,
    ));
    out.push_str("-----BEGIN PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// All PEM blocks of type `CERTIFICATE` in `text`, as DER.
pub fn pem_certificates(text: &str, field: &str) -> Result<Vec<Vec<u8>>> {
    let blocks =
        pem::parse_many(text).map_err(|e| Error::invalid(field, format!("not PEM: {e}")))?;
    let certificates: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| block.into_contents())
        .collect();
    if certificates.is_empty() && !text.trim().is_empty() {
        return Err(Error::invalid(field, "contains no PEM CERTIFICATE block"));
    }
    Ok(certificates)
}

fn attribute(cert: &X509Certificate<'_>, oid: &Oid<'_>) -> String {
    cert.subject()
        .iter_by_oid(oid)
        .filter_map(|a| a.as_str().ok())
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_type(cert: &X509Certificate<'_>) -> (String, i64) {
    match cert.public_key().parsed() {
        Ok(ParsedKey::RSA(rsa)) => {
            let bits = rsa.key_size() as i64;
            (format!("RSA{bits}"), bits)
        }
        Ok(ParsedKey::EC(point)) => {
            let curve = cert
                .public_key()
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(oid) if oid == oid_registry::OID_EC_P256 => ("ECCPRIME256V1".into(), 256),
                Some(oid) if oid == oid_registry::OID_NIST_EC_P384 => ("ECCSECP384R1".into(), 384),
                Some(oid) if oid == oid_registry::OID_NIST_EC_P521 => ("ECCSECP521R1".into(), 521),
                _ => ("EC".into(), point.key_size() as i64),
            }
        }
        _ => ("UNKNOWN".into(), 0),
    }
}

fn signing_algorithm(cert: &X509Certificate<'_>) -> String {
    let oid = &cert.signature_algorithm.algorithm;
    let names = [
        (oid_registry::OID_PKCS1_SHA256WITHRSA, "sha256WithRSA"),
        (oid_registry::OID_PKCS1_SHA384WITHRSA, "sha384WithRSA"),
        (oid_registry::OID_PKCS1_SHA512WITHRSA, "sha512WithRSA"),
        (oid_registry::OID_PKCS1_SHA1WITHRSA, "sha1WithRSA"),
        (oid_registry::OID_SIG_ECDSA_WITH_SHA256, "sha256WithECDSA"),
        (oid_registry::OID_SIG_ECDSA_WITH_SHA384, "sha384WithECDSA"),
        (oid_registry::OID_SIG_ECDSA_WITH_SHA512, "sha512WithECDSA"),
        (oid_registry::OID_PKCS1_RSASSAPSS, "rsassaPss"),
        (oid_registry::OID_SIG_ED25519, "ed25519"),
    ];
    names
        .iter()
        .find(|(known, _)| known == oid)
        .map_or_else(|| oid.to_id_string(), |(_, name)| (*name).to_owned())
}

fn alt_names(cert: &X509Certificate<'_>) -> Vec<AltName> {
    general_names(cert.extensions().iter().map(|e| e.parsed_extension()))
}

/// The subject alternative names in a set of extensions.
fn general_names<'a>(extensions: impl Iterator<Item = &'a ParsedExtension<'a>>) -> Vec<AltName> {
    let mut names = Vec::new();
    for extension in extensions {
        if let ParsedExtension::SubjectAlternativeName(san) = extension {
            for name in &san.general_names {
                let parsed = match name {
                    GeneralName::DNSName(dns) => Some(("DNSName", dns.to_string())),
                    GeneralName::RFC822Name(email) => Some(("rfc822Name", email.to_string())),
                    GeneralName::URI(uri) => Some(("uniformResourceIdentifier", uri.to_string())),
                    GeneralName::IPAddress(bytes) => ip_text(bytes).map(|ip| ("IPAddress", ip)),
                    _ => None,
                };
                if let Some((kind, value)) = parsed {
                    names.push(AltName { kind, value });
                }
            }
        }
    }
    names
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

/// Lemur's issuer name: the issuer CN (else O) with everything but letters and digits removed.
fn issuer_name(cert: &X509Certificate<'_>) -> String {
    let issuer = cert.issuer();
    let cn = issuer
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok());
    let org = issuer
        .iter_organization()
        .next()
        .and_then(|a| a.as_str().ok());
    cn.or(org)
        .unwrap_or("Unknown")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// Parses one DER certificate; `field` names it in errors.
pub fn parse(der: &[u8], field: &str) -> Result<ParsedCertificate> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::invalid(field, format!("not a valid X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::invalid(field, "trailing data after the certificate"));
    }
    let (key_type, bits) = key_type(&cert);
    // A malformed or repeated extension is an error, not an absent one: "absent" would let a
    // doubled basicConstraints hide CA:TRUE from the checks.
    let malformed = |e: x509_parser::error::X509Error| {
        Error::invalid(field, format!("malformed extension: {e}"))
    };
    let constraints = cert
        .basic_constraints()
        .map_err(malformed)?
        .map(|bc| bc.value);
    let is_ca = constraints.is_some_and(|bc| bc.ca);
    let path_len = constraints.and_then(|bc| bc.path_len_constraint);
    let key_usage = cert.key_usage().map_err(malformed)?.map(|ku| ku.value);
    let usages = cert
        .extended_key_usage()
        .map_err(malformed)?
        .map(|eku| eku.value);
    let parsed = ParsedCertificate {
        der: der.to_vec(),
        pem: to_pem("CERTIFICATE", der),
        cn: cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_owned(),
        subject: cert.subject().to_string(),
        issuer: issuer_name(&cert),
        serial: cert.serial.to_str_radix(10),
        serial_hex: cert.serial.to_str_radix(16).to_uppercase(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        alt_names: alt_names(&cert),
        key_type,
        bits,
        signing_algorithm: signing_algorithm(&cert),
        is_ca,
        path_len,
        server_auth: usages.is_some_and(|eku| eku.server_auth),
        client_auth: usages.is_some_and(|eku| eku.client_auth),
        other_purposes: usages.is_some_and(|eku| {
            eku.any
                || eku.code_signing
                || eku.email_protection
                || eku.time_stamping
                || eku.ocsp_signing
                || !eku.other.is_empty()
        }),
        signs_certificates: key_usage.is_some_and(|ku| ku.key_cert_sign() || ku.crl_sign()),
        digital_signature: key_usage.is_some_and(|ku| ku.digital_signature()),
        subject_matches_issuer: cert.subject().as_raw() == cert.issuer().as_raw(),
        spki: cert.public_key().raw.to_vec(),
        sha256: sha256_hex(der),
        organization: attribute(&cert, &oid_registry::OID_X509_ORGANIZATION_NAME),
        organizational_unit: attribute(&cert, &oid_registry::OID_X509_ORGANIZATIONAL_UNIT),
        country: attribute(&cert, &oid_registry::OID_X509_COUNTRY_NAME),
        state: attribute(&cert, &oid_registry::OID_X509_STATE_OR_PROVINCE_NAME),
        location: attribute(&cert, &oid_registry::OID_X509_LOCALITY_NAME),
    };
    // A NUL inside a name is refused here, for every certificate read from outside: PostgreSQL
    // cannot store it (a database error), and no name has a use for it.
    let names = [
        &parsed.cn,
        &parsed.subject,
        &parsed.issuer,
        &parsed.organization,
        &parsed.organizational_unit,
        &parsed.country,
        &parsed.state,
        &parsed.location,
    ];
    if names
        .into_iter()
        .chain(parsed.alt_names.iter().map(|name| &name.value))
        .any(|name| name.contains('\0'))
    {
        return Err(Error::invalid(
            field,
            "the certificate's names contain a NUL character",
        ));
    }
    Ok(parsed)
}

/// The subject key identifier of a DER certificate, if it carries one.
pub fn subject_key_identifier(der: &[u8]) -> Option<Vec<u8>> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    certificate
        .extensions()
        .iter()
        .find_map(|extension| match extension.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
}

/// Whether `child` carries a valid signature by `issuer`'s key.
pub fn signed_by(child: &[u8], issuer: &[u8]) -> bool {
    let (Ok((_, child)), Ok((_, issuer))) = (
        X509Certificate::from_der(child),
        X509Certificate::from_der(issuer),
    ) else {
        return false;
    };
    child.verify_signature(Some(issuer.public_key())).is_ok()
}

/// Checks that `leaf` is signed by `chain[0]` and each chain certificate by the next. Whether the
/// last one is trusted (a root, or signed by a known authority) is the caller's decision.
pub fn verify_chain(leaf: &[u8], chain: &[Vec<u8>]) -> Result<()> {
    let mut child = leaf;
    for (index, issuer) in chain.iter().enumerate() {
        if !signed_by(child, issuer) {
            let what = if index == 0 {
                "the certificate".to_owned()
            } else {
                format!("chain certificate {index}")
            };
            return Err(Error::invalid(
                "chain",
                format!("{what} is not signed by chain certificate {}", index + 1),
            ));
        }
        child = issuer;
    }
    Ok(())
}

/// The key algorithm behind a parsed key type, for keys the appliance generates.
pub fn algorithm_for(key_type: &str) -> Result<KeyAlgorithm> {
    key_type.parse().map_err(|_| {
        Error::invalid(
            "keyType",
            format!("{key_type:?} is not supported; use ECCPRIME256V1, ECCSECP384R1, RSA2048, RSA3072 or RSA4096"),
        )
    })
}

/// The single PEM block of a private key: its label and contents, decoded straight into zeroizing
/// memory (the `pem` crate does not wipe its buffers, so private keys never pass through it).
fn private_key_block(text: &str) -> Result<(&str, zeroize::Zeroizing<Vec<u8>>)> {
    use base64::Engine;
    let invalid = |reason: &str| Error::invalid("privateKey", reason.to_owned());
    let not_pem = || invalid("not PEM: expected one -----BEGIN ...----- block");
    // `openssl ecparam -genkey` writes the curve's parameters before the key.
    let text = text.trim();
    let text = text
        .strip_prefix("-----BEGIN EC PARAMETERS-----")
        .and_then(|rest| rest.split_once("-----END EC PARAMETERS-----"))
        .map_or(text, |(_, key)| key);
    let (label, rest) = text
        .trim()
        .strip_prefix("-----BEGIN ")
        .and_then(|begun| begun.split_once("-----"))
        .ok_or_else(not_pem)?;
    let body = rest
        .trim_end()
        .strip_suffix(&format!("-----END {label}-----"))
        .ok_or_else(not_pem)?;
    let mut encoded = zeroize::Zeroizing::new(String::with_capacity(body.len()));
    for line in body.lines().map(str::trim) {
        if line.contains(':') {
            return Err(invalid(
                "encrypted PEM keys are not supported; decrypt it first (openssl pkey -in key.pem)",
            ));
        }
        encoded.push_str(line);
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let mut der = zeroize::Zeroizing::new(vec![0u8; encoded.len() / 4 * 3 + 3]);
    let length = engine
        .decode_slice(encoded.as_bytes(), &mut der)
        .map_err(|_| invalid("not PEM: the body is not base64"))?;
    der.truncate(length);
    Ok((label, der))
}

/// A private key PEM (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`) as PKCS#8 DER.
pub fn private_key_pkcs8(text: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let (label, der) = private_key_block(text)?;
    match label {
        "PRIVATE KEY" => Ok(der),
        "RSA PRIVATE KEY" => Ok(lemur_hsm::der::rsa_pkcs1_to_pkcs8(&der)),
        "EC PRIVATE KEY" => sec1_to_pkcs8(&der),
        other => Err(Error::invalid(
            "privateKey",
            format!("{other:?} blocks are not supported; use PKCS#8 or PKCS#1"),
        )),
    }
}

/// SEC1 `ECPrivateKey` with its curve and public key, re-encoded as PKCS#8.
fn sec1_to_pkcs8(der: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let invalid = || Error::invalid("privateKey", "malformed EC PRIVATE KEY");
    let (_, object) = x509_parser::der_parser::parse_der(der).map_err(|_| invalid())?;
    let items = object.as_sequence().map_err(|_| invalid())?;
    let scalar = items
        .get(1)
        .and_then(|o| o.as_slice().ok())
        .ok_or_else(invalid)?;
    let mut curve = None;
    let mut point = None;
    for item in items.iter().skip(2) {
        let inner = x509_parser::der_parser::parse_der(item.as_slice().map_err(|_| invalid())?)
            .map(|(_, o)| o)
            .ok();
        match (item.header.tag().0, inner.map(|o| o.content)) {
            (0, Some(BerObjectContent::OID(oid))) => curve = Some(oid.to_id_string()),
            (1, Some(BerObjectContent::BitString(_, bits))) => point = Some(bits.data.to_vec()),
            _ => {}
        }
    }
    let algorithm = match curve.as_deref() {
        Some("1.2.840.10045.3.1.7") => KeyAlgorithm::EcP256,
        Some("1.3.132.0.34") => KeyAlgorithm::EcP384,
        _ => {
            return Err(Error::invalid(
                "privateKey",
                "only P-256 and P-384 EC keys are supported",
            ));
        }
    };
    let point = point
        .ok_or_else(|| Error::invalid("privateKey", "the EC PRIVATE KEY lacks its public key"))?;
    Ok(lemur_hsm::der::ec_pkcs8(algorithm, scalar, &point))
}

/// The SubjectPublicKeyInfo of a PKCS#8 private key (to check it matches a certificate).
pub fn public_key_of_pkcs8(pkcs8: &[u8]) -> Result<Vec<u8>> {
    let pair = rcgen::KeyPair::try_from(pkcs8)
        .map_err(|e| Error::invalid("privateKey", format!("not a usable private key: {e}")))?;
    Ok(rcgen::PublicKeyData::subject_public_key_info(&pair))
}

/// What a CSR asks for, after its signature was checked.
#[derive(Debug, Clone)]
pub struct ParsedCsr {
    /// The request as received, PEM.
    pub pem: String,
    /// The subject key's algorithm.
    pub algorithm: KeyAlgorithm,
    /// The subject key (EC point or PKCS#1 RSAPublicKey).
    pub key: Vec<u8>,
    /// The SubjectPublicKeyInfo DER (to match the certificate issued for it).
    pub spki: Vec<u8>,
    /// Subject CN ("" when absent).
    pub common_name: String,
    /// Requested subject alternative names.
    pub alt_names: Vec<AltName>,
}

/// Parses a PEM CSR and verifies its self-signature.
pub fn parse_csr(text: &str) -> Result<ParsedCsr> {
    use x509_parser::certification_request::X509CertificationRequest;
    let block = pem::parse(text).map_err(|e| Error::invalid("csr", format!("not PEM: {e}")))?;
    if !matches!(
        block.tag(),
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"
    ) {
        return Err(Error::invalid(
            "csr",
            format!(
                "expected a CERTIFICATE REQUEST PEM block, not {:?}",
                block.tag()
            ),
        ));
    }
    let (_, csr) = X509CertificationRequest::from_der(block.contents())
        .map_err(|e| Error::invalid("csr", format!("not a valid PKCS#10 request: {e}")))?;
    csr.verify_signature()
        .map_err(|_| Error::invalid("csr", "its signature does not verify"))?;
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;
    let algorithm = match spki.parsed() {
        Ok(ParsedKey::RSA(rsa)) => KeyAlgorithm::from_str_bits(rsa.key_size())?,
        Ok(ParsedKey::EC(_)) => match spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
        {
            Some(oid) if oid == oid_registry::OID_EC_P256 => KeyAlgorithm::EcP256,
            Some(oid) if oid == oid_registry::OID_NIST_EC_P384 => KeyAlgorithm::EcP384,
            _ => {
                return Err(Error::invalid(
                    "csr",
                    "only P-256 and P-384 EC keys are accepted",
                ));
            }
        },
        _ => return Err(Error::invalid("csr", "only RSA and EC keys are accepted")),
    };
    let alt_names = general_names(csr.requested_extensions().into_iter().flatten());
    Ok(ParsedCsr {
        pem: text.to_owned(),
        algorithm,
        key: spki.subject_public_key.data.to_vec(),
        spki: spki.raw.to_vec(),
        common_name: info
            .subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_owned(),
        alt_names,
    })
}

/// RSA key sizes the CA accepts from a CSR.
trait FromBits {
    fn from_str_bits(bits: usize) -> Result<KeyAlgorithm>;
}

impl FromBits for KeyAlgorithm {
    fn from_str_bits(bits: usize) -> Result<KeyAlgorithm> {
        match bits {
            2048 => Ok(KeyAlgorithm::Rsa2048),
            3072 => Ok(KeyAlgorithm::Rsa3072),
            4096 => Ok(KeyAlgorithm::Rsa4096),
            _ => Err(Error::invalid(
                "csr",
                format!("an RSA key of {bits} bits is not accepted; use 2048, 3072 or 4096"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(error: Error) -> String {
        match error {
            Error::Validation { field, reason } => format!("{field}: {reason}"),
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn private_keys_round_trip_through_our_pem_reader() {
        let pkcs8: Vec<u8> = (0..=255).collect();
        let pem = private_key_to_pem(&pkcs8);
        assert_eq!(*private_key_pkcs8(&pem).unwrap(), pkcs8);
        let indented = format!("\n  {}  \n", pem.replace('\n', "\r\n"));
        assert_eq!(*private_key_pkcs8(&indented).unwrap(), pkcs8);
    }

    #[test]
    fn bad_private_key_pem_is_named() {
        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(reason(private_key_pkcs8(encrypted).unwrap_err()).contains("encrypted"));
        let garbage = "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----";
        assert!(reason(private_key_pkcs8(garbage).unwrap_err()).contains("base64"));
        let mismatched = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----";
        assert!(
            reason(private_key_pkcs8(mismatched).unwrap_err()).starts_with("privateKey: not PEM")
        );
        let with_parameters = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
            private_key_to_pem(&[1, 2, 3]).as_str()
        );
        assert_eq!(*private_key_pkcs8(&with_parameters).unwrap(), vec![1, 2, 3]);
        let certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
        assert!(reason(private_key_pkcs8(certificate).unwrap_err()).contains("not supported"));
    }
}
