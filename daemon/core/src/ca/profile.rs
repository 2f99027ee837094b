//! What goes into a certificate: the rcgen parameters for CA and end-entity profiles, built from
//! a validated request, and the subject key as rcgen needs it.

use crate::error::{Error, Result};
use lemur_hsm::KeyAlgorithm;
use lemur_hsm::der::tlv;
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyIdMethod, KeyUsagePurpose,
    NameConstraints, SanType, SerialNumber, SignatureAlgorithm,
};
use time::OffsetDateTime;

/// The subject's public key (from a CSR, or generated in the HSM).
pub struct SubjectKey {
    algorithm: KeyAlgorithm,
    key: Vec<u8>,
}

impl SubjectKey {
    /// The key's algorithm and its SubjectPublicKeyInfo BIT STRING contents.
    pub fn new(algorithm: KeyAlgorithm, key: Vec<u8>) -> Self {
        Self { algorithm, key }
    }
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self.algorithm {
            KeyAlgorithm::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            _ => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

/// Subject distinguished name fields.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// CN (may be empty for an end-entity with SANs).
    pub common_name: String,
    /// O.
    pub organization: String,
    /// OU.
    pub organizational_unit: String,
    /// L.
    pub location: String,
    /// ST.
    pub state: String,
    /// C.
    pub country: String,
}

impl Subject {
    /// Refuses control characters and values longer than X.520's upper bounds (RFC 5280
    /// Appendix A), naming the request field.
    pub fn validate(&self) -> Result<()> {
        for (field, value, limit) in [
            ("commonName", &self.common_name, 64),
            ("organization", &self.organization, 64),
            ("organizationalUnit", &self.organizational_unit, 64),
            ("location", &self.location, 128),
            ("state", &self.state, 128),
        ] {
            if value.chars().any(char::is_control) {
                return Err(Error::invalid(field, "contains a control character"));
            }
            if value.chars().count() > limit {
                return Err(Error::invalid(
                    field,
                    format!("longer than the {limit} characters X.520 allows"),
                ));
            }
        }
        Ok(())
    }

    /// The DN; countryName is a two-letter PrintableString as X.520 requires.
    fn distinguished_name(&self) -> Result<DistinguishedName> {
        let mut dn = DistinguishedName::new();
        if !self.country.is_empty() {
            if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(Error::invalid(
                    "country",
                    "must be a two-letter ISO 3166 code such as US",
                ));
            }
            let printable = rcgen::string::PrintableString::try_from(self.country.as_str())
                .map_err(|_| Error::invalid("country", "must be printable"))?;
            dn.push(DnType::CountryName, DnValue::PrintableString(printable));
        }
        for (kind, value) in [
            (DnType::StateOrProvinceName, &self.state),
            (DnType::LocalityName, &self.location),
            (DnType::OrganizationName, &self.organization),
            (DnType::OrganizationalUnitName, &self.organizational_unit),
            (DnType::CommonName, &self.common_name),
        ] {
            if !value.is_empty() {
                dn.push(kind, value.as_str());
            }
        }
        Ok(dn)
    }
}

/// Where relying parties find the issuer's CRL and certificate.
#[derive(Debug, Clone, Default)]
pub struct Distribution {
    /// CRL distribution point URL.
    pub crl_url: Option<String>,
    /// AIA caIssuers URL.
    pub issuer_url: Option<String>,
}

fn timestamp(unix: i64, field: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|_| Error::invalid(field, "date out of range"))
}

fn base(
    subject: &Subject,
    not_before: i64,
    not_after: i64,
    serial: &[u8; 16],
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.distinguished_name()?;
    params.not_before = timestamp(not_before, "validityStart")?;
    params.not_after = timestamp(not_after, "validityEnd")?;
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok(params)
}

/// A DER `AuthorityInfoAccess` with one caIssuers URI (RFC 5280 §4.2.2.1).
fn authority_info_access(issuer_url: &str) -> CustomExtension {
    const CA_ISSUERS: [u8; 10] = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
    let access_description = tlv(
        0x30,
        &[&CA_ISSUERS[..], &tlv(0x86, issuer_url.as_bytes())].concat(),
    );
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], tlv(0x30, &access_description))
}

fn distribute(params: &mut CertificateParams, distribution: &Distribution) {
    if let Some(url) = &distribution.crl_url {
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![url.clone()],
        }];
    }
    if let Some(url) = &distribution.issuer_url {
        params.custom_extensions.push(authority_info_access(url));
    }
}

/// What a CA certificate says.
pub struct Authority<'a> {
    /// Subject.
    pub subject: &'a Subject,
    /// Validity start.
    pub not_before: i64,
    /// Validity end.
    pub not_after: i64,
    /// Serial number.
    pub serial: &'a [u8; 16],
    /// Signed by a parent authority (else self-signed), with this path length: how many CAs may
    /// follow it.
    pub sub_ca: Option<u32>,
    /// The parent's CRL and caIssuers URLs (a sub-CA's revocation is the parent's to publish).
    pub distribution: &'a Distribution,
    /// Follow the CA/Browser Forum TLS Baseline Requirements §7.1.2.1 (root) or §7.1.2.10
    /// (subordinate CA): no organizationalUnitName; a subordinate also names the reserved
    /// policies and the TLS purposes its leaves carry.
    pub baseline: bool,
    /// The DNS subtrees it may certify (nameConstraints); any when `None`.
    pub permitted_domains: Option<&'a [String]>,
}

/// A CA certificate: basic constraints critical (path length 0 for a sub-CA), key usages
/// keyCertSign, cRLSign and digitalSignature.
pub fn authority(request: Authority<'_>) -> Result<CertificateParams> {
    let mut subject = request.subject.clone();
    if request.baseline {
        subject.organizational_unit.clear();
    }
    let mut params = base(
        &subject,
        request.not_before,
        request.not_after,
        request.serial,
    )?;
    params.is_ca = IsCa::Ca(match request.sub_ca {
        Some(path_len) => BasicConstraints::Constrained(u8::try_from(path_len).unwrap_or(u8::MAX)),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = request.sub_ca.is_some();
    params.name_constraints = request.permitted_domains.map(|domains| NameConstraints {
        permitted_subtrees: domains
            .iter()
            .map(|domain| GeneralSubtree::DnsName(domain.clone()))
            .collect(),
        excluded_subtrees: Vec::new(),
    });
    distribute(&mut params, request.distribution);
    if request.baseline && request.sub_ca.is_some() {
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        // The parent and the subordinate are the same operator (BR §7.1.2.10.5), so anyPolicy
        // rather than one reserved OID: the subordinate issues both DV and OV leaves.
        params
            .custom_extensions
            .push(certificate_policies(&[&ANY_POLICY[..]]));
    }
    Ok(params)
}

/// What an end-entity certificate says.
pub struct EndEntity<'a> {
    /// Subject.
    pub subject: &'a Subject,
    /// Subject alternative names.
    pub alt_names: Vec<SanType>,
    /// Validity start.
    pub not_before: i64,
    /// Validity end.
    pub not_after: i64,
    /// Serial number.
    pub serial: &'a [u8; 16],
    /// The subject key's algorithm.
    pub key: KeyAlgorithm,
    /// CRL and caIssuers URLs.
    pub distribution: &'a Distribution,
    /// Follow the CA/Browser Forum TLS Baseline Requirements (certificate policies).
    pub baseline: bool,
}

/// The CA/Browser Forum reserved policy OIDs, DER: organization-validated 2.23.140.1.2.2 and
/// domain-validated 2.23.140.1.2.1.
const POLICY_OV: [u8; 8] = [0x06, 0x06, 0x67, 0x81, 0x0c, 0x01, 0x02, 0x02];
const POLICY_DV: [u8; 8] = [0x06, 0x06, 0x67, 0x81, 0x0c, 0x01, 0x02, 0x01];
/// anyPolicy, 2.5.29.32.0.
const ANY_POLICY: [u8; 6] = [0x06, 0x04, 0x55, 0x1d, 0x20, 0x00];

/// `certificatePolicies` naming `policies` (DER OIDs), without qualifiers.
fn certificate_policies(policies: &[&[u8]]) -> CustomExtension {
    let information: Vec<u8> = policies.iter().flat_map(|oid| tlv(0x30, oid)).collect();
    CustomExtension::from_oid_content(&[2, 5, 29, 32], tlv(0x30, &information))
}

/// `certificatePolicies` with the reserved OID matching the subject: OV when it names an
/// organization, DV otherwise.
fn baseline_policy(subject: &Subject) -> CustomExtension {
    let policy = if subject.organization.is_empty() {
        POLICY_DV
    } else {
        POLICY_OV
    };
    certificate_policies(&[&policy[..]])
}

/// An end-entity TLS certificate: not a CA, digitalSignature (plus keyEncipherment for RSA),
/// serverAuth and clientAuth.
pub fn end_entity(request: EndEntity<'_>) -> Result<CertificateParams> {
    let mut params = base(
        request.subject,
        request.not_before,
        request.not_after,
        request.serial,
    )?;
    params.subject_alt_names = request.alt_names;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if request.key.rsa_bits().is_some() {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    distribute(&mut params, request.distribution);
    if request.baseline {
        params
            .custom_extensions
            .push(baseline_policy(request.subject));
    }
    Ok(params)
}

/// A certificate signing request's parameters, for a CA that signs elsewhere: the subject and
/// its alternative names; the CA chooses the rest of its profile.
pub fn request(subject: &Subject, alt_names: Vec<SanType>) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.distinguished_name()?;
    params.subject_alt_names = alt_names;
    Ok(params)
}

/// A random positive 128-bit serial number (top bits fixed to `01` so it always encodes in 16
/// bytes; 126 bits of HSM randomness, well above the CA/Browser Forum's 64).
pub fn serial(random: [u8; 16]) -> [u8; 16] {
    let mut serial = random;
    serial[0] = (serial[0] & 0x3f) | 0x40;
    serial
}
