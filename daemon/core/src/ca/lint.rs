//! Checks before the HSM signs (a certificate that breaks RFC 5280 or the CA/Browser Forum rules
//! is never signed) and after (the signed certificate says what was asked and verifies).

use super::names::valid_dns_name;
use super::suffixes::PublicSuffixes;
use super::x509::ParsedCertificate;
use crate::error::{Error, Result};

/// What is about to be issued.
pub struct Plan<'a> {
    /// Subject CN ("" when absent).
    pub common_name: &'a str,
    /// DNS names.
    pub dns_names: &'a [String],
    /// IP addresses.
    pub ip_addresses: &'a [std::net::IpAddr],
    /// Other SANs (email, URI).
    pub other_names: usize,
    /// Validity.
    pub not_before: i64,
    /// Validity.
    pub not_after: i64,
}

/// The issuing authority's limits.
pub struct Limits<'a> {
    /// The CA certificate's validity.
    pub ca_not_before: i64,
    /// The CA certificate's validity.
    pub ca_not_after: i64,
    /// Longest validity in days.
    pub max_days: i64,
    /// Apply the CA/Browser Forum TLS Baseline Requirements.
    pub cab_compliant: bool,
    /// When the certificate is signed (now).
    pub signing_time: i64,
    /// The public suffix list, which CA/Browser Forum compliant issuance needs.
    pub suffixes: Option<&'a PublicSuffixes>,
}

/// How far a CA/Browser Forum compliant certificate's notBefore may lie from its signing time:
/// the Baseline Requirements forbid backdating beyond 48 hours.
pub const CABF_MAX_BACKDATING_SECS: i64 = 48 * 3600;

const DAY: i64 = 86_400;

/// The longest validity period the CA/Browser Forum TLS Baseline Requirements allow for a
/// certificate whose validity starts at `not_before` (ballot SC-081v3: 398 days, then 200 from
/// 2026-03-15, 100 from 2027-03-15, 47 from 2029-03-15), in seconds, counted as the BRs count it:
/// `notAfter - notBefore + 1 second`.
pub fn cabf_max_validity_secs(not_before: i64) -> i64 {
    const SCHEDULE: [(i64, i64); 3] = [
        (1_773_532_800, 200), // 2026-03-15T00:00:00Z
        (1_805_068_800, 100), // 2027-03-15T00:00:00Z
        (1_867_622_400, 47),  // 2029-03-15T00:00:00Z
    ];
    let days = SCHEDULE
        .iter()
        .rev()
        .find(|(from, _)| not_before >= *from)
        .map_or(398, |(_, days)| *days);
    days * DAY
}

/// Refuses a plan that would make a non-conforming certificate, naming the field.
pub fn before_signing(plan: &Plan<'_>, limits: &Limits<'_>) -> Result<()> {
    if plan.not_after <= plan.not_before {
        return Err(Error::invalid("validityEnd", "must be after validityStart"));
    }
    if plan.not_before < limits.ca_not_before || plan.not_after > limits.ca_not_after {
        return Err(Error::invalid(
            "validityEnd",
            "must lie inside the issuing authority's own validity",
        ));
    }
    let days = (plan.not_after - plan.not_before + DAY - 1) / DAY;
    if days > limits.max_days {
        return Err(Error::invalid(
            "validityEnd",
            format!(
                "{days} days exceeds this authority's maximum of {} days",
                limits.max_days
            ),
        ));
    }
    if limits.cab_compliant
        && (plan.not_before - limits.signing_time).abs() > CABF_MAX_BACKDATING_SECS
    {
        return Err(Error::invalid(
            "validityStart",
            "must be within 48 hours of the signing time for a CA/Browser Forum compliant authority",
        ));
    }
    // The schedule applies from the day the certificate is signed, whatever notBefore says: a
    // backdated notBefore must not earn the longer validity of an earlier year.
    let cabf_max = cabf_max_validity_secs(limits.signing_time);
    if limits.cab_compliant && plan.not_after - plan.not_before + 1 > cabf_max {
        return Err(Error::invalid(
            "validityEnd",
            format!(
                "exceeds the CA/Browser Forum maximum of {} days for certificates signed now",
                cabf_max / DAY
            ),
        ));
    }
    if let Some(bad) = plan.dns_names.iter().find(|name| !valid_dns_name(name)) {
        return Err(Error::invalid(
            "extensions.subAltNames",
            format!("{bad:?} is not a valid DNS name"),
        ));
    }
    let san_count = plan.dns_names.len() + plan.ip_addresses.len() + plan.other_names;
    if plan.common_name.is_empty() && san_count == 0 {
        return Err(Error::invalid(
            "commonName",
            "a certificate needs a common name or a subject alternative name",
        ));
    }
    if limits.cab_compliant {
        if plan.dns_names.is_empty() && plan.ip_addresses.is_empty() {
            return Err(Error::invalid(
                "extensions.subAltNames",
                "a publicly trusted TLS certificate needs a DNS or IP subject alternative name",
            ));
        }
        let in_sans = plan
            .dns_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(plan.common_name))
            || plan
                .ip_addresses
                .iter()
                .any(|ip| ip.to_string() == plan.common_name);
        if !plan.common_name.is_empty() && !in_sans {
            return Err(Error::invalid(
                "commonName",
                "must also be a subject alternative name (CA/Browser Forum)",
            ));
        }
        if plan.other_names > 0 {
            return Err(Error::invalid(
                "extensions.subAltNames",
                "only DNS names and IP addresses are allowed in a TLS server certificate (CA/Browser Forum)",
            ));
        }
        if let Some(ip) = plan.ip_addresses.iter().find(|ip| reserved(ip)) {
            return Err(Error::invalid(
                "extensions.subAltNames",
                format!(
                    "{ip} is a reserved address, which a publicly trusted certificate may not name (CA/Browser Forum)"
                ),
            ));
        }
        let suffixes = limits.suffixes.ok_or_else(|| {
            Error::Ca(format!(
                "CA/Browser Forum compliant issuance needs the public suffix list ({}): install Debian's publicsuffix package",
                super::suffixes::DEBIAN_LIST
            ))
        })?;
        if let Some(reason) = plan
            .dns_names
            .iter()
            .find_map(|name| suffixes.refusal(name))
        {
            return Err(Error::invalid("extensions.subAltNames", reason));
        }
    }
    Ok(())
}

/// Private, loopback, link-local, shared, documentation, multicast and unspecified addresses:
/// the IANA reserved ranges the Baseline Requirements forbid in publicly trusted certificates.
fn reserved(ip: &std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
                || a >= 240
        }
        std::net::IpAddr::V6(v6) => {
            let [first, second, ..] = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || (first == 0x2001 && second == 0x0db8)
                || v6.to_ipv4_mapped().is_some()
        }
    }
}

/// Checks the signed certificate against the plan: serial, validity, names, issuer signature.
pub fn after_signing(issued: &ParsedCertificate, serial_hex: &str, plan: &Plan<'_>) -> Result<()> {
    let problem = |what: &str| {
        Err(Error::Ca(format!(
            "the signed certificate {what}; it was not stored"
        )))
    };
    if issued.serial_hex.trim_start_matches('0') != serial_hex.trim_start_matches('0') {
        return problem("has another serial number");
    }
    if issued.not_before != plan.not_before || issued.not_after != plan.not_after {
        return problem("has another validity");
    }
    let mut signed_dns: Vec<String> = issued
        .alt_names
        .iter()
        .filter(|n| n.kind == "DNSName")
        .map(|n| n.value.to_ascii_lowercase())
        .collect();
    let mut asked_dns: Vec<String> = plan
        .dns_names
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    signed_dns.sort_unstable();
    asked_dns.sort_unstable();
    if signed_dns != asked_dns {
        return problem("names other DNS names than were asked for");
    }
    let mut signed_ips: Vec<String> = issued
        .alt_names
        .iter()
        .filter(|n| n.kind == "IPAddress")
        .map(|n| n.value.clone())
        .collect();
    let mut asked_ips: Vec<String> = plan.ip_addresses.iter().map(|ip| ip.to_string()).collect();
    signed_ips.sort_unstable();
    asked_ips.sort_unstable();
    if signed_ips != asked_ips {
        return problem("names other IP addresses than were asked for");
    }
    if issued.cn != plan.common_name {
        return problem("has another common name");
    }
    if issued.is_ca || issued.signs_certificates {
        return problem("could sign certificates (CA:TRUE, keyCertSign or cRLSign)");
    }
    if !issued.digital_signature || !issued.server_auth {
        return problem("lacks digitalSignature or the serverAuth extended key usage");
    }
    if issued.other_purposes {
        return problem("allows purposes besides TLS authentication");
    }
    // The signature is not checked again here: the HSM signer verified it with the authority
    // certificate's public key before handing it to rcgen.
    Ok(())
}

/// An imported CA certificate either is a root (self-issued, verifying under its own key) or
/// comes with the chain of its issuers ending at a root, each signing the one before. Returns
/// the chain to store as PEM, so leaves it issues ship a complete chain.
pub fn self_signed_or_chained(
    der: &[u8],
    parsed: &ParsedCertificate,
    chain: Option<&str>,
) -> Result<Option<String>> {
    use super::x509;
    if parsed.subject_matches_issuer {
        if !x509::signed_by(der, der) {
            return Err(Error::invalid(
                "body",
                "is self-issued but its signature does not verify",
            ));
        }
        return Ok(None);
    }
    let issuers = match chain {
        Some(text) if !text.trim().is_empty() => x509::pem_certificates(text, "chain")?,
        _ => {
            return Err(Error::invalid(
                "chain",
                "is required to import a CA that is not self-signed: give its issuers up to the root",
            ));
        }
    };
    x509::verify_chain(der, &issuers)?;
    let top = issuers.last().map(Vec::as_slice).unwrap_or_default();
    if !x509::signed_by(top, top) {
        return Err(Error::invalid(
            "chain",
            "must end with the root certificate (self-signed)",
        ));
    }
    Ok(Some(
        issuers
            .iter()
            .map(|issuer| x509::to_pem("CERTIFICATE", issuer))
            .collect::<Vec<_>>()
            .join(""),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suffixes() -> &'static PublicSuffixes {
        static LIST: std::sync::OnceLock<PublicSuffixes> = std::sync::OnceLock::new();
        LIST.get_or_init(|| {
            PublicSuffixes::parse(
                "// ===BEGIN ICANN DOMAINS===\ncom\norg\nuk\nco.uk\n// ===END ICANN DOMAINS===\n",
            )
            .unwrap()
        })
    }

    fn limits(cab: bool) -> Limits<'static> {
        Limits {
            ca_not_before: 0,
            ca_not_after: 1000 * DAY,
            max_days: 397,
            cab_compliant: cab,
            signing_time: DAY,
            suffixes: Some(suffixes()),
        }
    }

    fn plan<'a>(cn: &'a str, dns: &'a [String], days: i64) -> Plan<'a> {
        Plan {
            common_name: cn,
            dns_names: dns,
            ip_addresses: &[],
            other_names: 0,
            not_before: DAY,
            not_after: DAY + days * DAY,
        }
    }

    #[test]
    fn validity_rules() {
        let dns = vec!["a.example.com".to_owned()];
        assert!(before_signing(&plan("a.example.com", &dns, 90), &limits(true)).is_ok());
        let Err(Error::Validation { field, .. }) =
            before_signing(&plan("a.example.com", &dns, 398), &limits(true))
        else {
            panic!()
        };
        assert_eq!(field, "validityEnd");
        assert!(before_signing(&plan("a.example.com", &dns, 0), &limits(true)).is_err());
        let outside = Plan {
            not_after: 2000 * DAY,
            ..plan("a.example.com", &dns, 90)
        };
        assert!(before_signing(&outside, &limits(true)).is_err());
    }

    #[test]
    fn the_cabf_validity_schedule_follows_sc081() {
        let date = |y: i32, m: u8, d: u8| {
            time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d)
                .unwrap()
                .midnight()
                .assume_utc()
                .unix_timestamp()
        };
        assert_eq!(cabf_max_validity_secs(date(2026, 3, 14)), 398 * DAY);
        assert_eq!(cabf_max_validity_secs(date(2026, 3, 15)), 200 * DAY);
        assert_eq!(cabf_max_validity_secs(date(2026, 11, 23)), 200 * DAY);
        assert_eq!(cabf_max_validity_secs(date(2027, 3, 15)), 100 * DAY);
        assert_eq!(cabf_max_validity_secs(date(2029, 3, 15)), 47 * DAY);
        let dns = vec!["a.example.com".to_owned()];
        let start = date(2026, 11, 23);
        let exactly = Plan {
            not_before: start,
            not_after: start + 200 * DAY - 1,
            ..plan("a.example.com", &dns, 1)
        };
        let limits = Limits {
            ca_not_before: 0,
            ca_not_after: start + 1000 * DAY,
            max_days: 1000,
            cab_compliant: true,
            signing_time: start,
            suffixes: Some(suffixes()),
        };
        assert!(before_signing(&exactly, &limits).is_ok());
        let one_second_more = Plan {
            not_after: start + 200 * DAY,
            ..exactly
        };
        assert!(before_signing(&one_second_more, &limits).is_err());
    }

    /// A notBefore set back to before 2026-03-15 earns no 398-day validity today, and cannot lie
    /// more than 48 hours from the signing time.
    #[test]
    fn backdating_defeats_nothing() {
        let dns = vec!["a.example.com".to_owned()];
        let jan_2026 = 1_767_225_600; // 2026-01-01
        let nov_2026 = 1_795_392_000; // 2026-11-23
        let limits = Limits {
            ca_not_before: 0,
            ca_not_after: nov_2026 + 1000 * DAY,
            max_days: 1000,
            cab_compliant: true,
            signing_time: nov_2026,
            suffixes: Some(suffixes()),
        };
        let backdated = Plan {
            not_before: jan_2026,
            not_after: jan_2026 + 398 * DAY - 1,
            ..plan("a.example.com", &dns, 1)
        };
        let Err(Error::Validation { field, .. }) = before_signing(&backdated, &limits) else {
            panic!("a backdated 398-day certificate was accepted")
        };
        assert_eq!(field, "validityStart");
        let two_days_back = Plan {
            not_before: nov_2026 - CABF_MAX_BACKDATING_SECS - 1,
            not_after: nov_2026 + 100 * DAY,
            ..backdated
        };
        assert!(before_signing(&two_days_back, &limits).is_err());
        let a_day_back = Plan {
            not_before: nov_2026 - DAY,
            not_after: nov_2026 - DAY + 200 * DAY - 1,
            ..backdated
        };
        assert!(before_signing(&a_day_back, &limits).is_ok());
        let too_long = Plan {
            not_after: a_day_back.not_after + 1,
            ..a_day_back
        };
        assert!(before_signing(&too_long, &limits).is_err());
        let private = Limits {
            cab_compliant: false,
            ..limits
        };
        assert!(
            before_signing(&backdated, &private).is_ok(),
            "private authorities may backdate inside their own validity"
        );
    }

    /// A certificate signed by `ca` for `names`, made by rcgen, as a faulty signer could make it.
    fn signed(
        ca: &(rcgen::Certificate, rcgen::KeyPair),
        names: &[&str],
        is_ca: bool,
    ) -> ParsedCertificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        params.not_before = time::OffsetDateTime::from_unix_timestamp(DAY).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(91 * DAY).unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from(vec![0x42]));
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        if is_ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        let issuer = rcgen::Issuer::from_ca_cert_der(ca.0.der(), &ca.1).unwrap();
        let certificate = params.signed_by(&key, &issuer).unwrap();
        super::super::x509::parse(certificate.der(), "test").unwrap()
    }

    #[test]
    fn the_signed_certificate_must_say_what_was_asked() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = (ca_params.self_signed(&ca_key).unwrap(), ca_key);
        let dns = vec!["a.example.com".to_owned()];
        let asked = plan("a.example.com", &dns, 90);
        let good = signed(&ca, &["a.example.com"], false);
        assert!(after_signing(&good, "42", &asked).is_ok());
        let other_name = signed(&ca, &["b.example.com"], false);
        assert!(
            after_signing(&other_name, "42", &asked).is_err(),
            "the same number of names is not the same names"
        );
        let a_ca = signed(&ca, &["a.example.com"], true);
        assert!(after_signing(&a_ca, "42", &asked).is_err());
    }

    #[test]
    fn name_rules() {
        let dns = vec!["b.example.com".to_owned()];
        assert!(
            before_signing(&plan("a.example.com", &dns, 90), &limits(true)).is_err(),
            "CN must be a SAN"
        );
        assert!(before_signing(&plan("a.example.com", &dns, 90), &limits(false)).is_ok());
        assert!(
            before_signing(&plan("x", &[], 90), &limits(true)).is_err(),
            "CAB needs a SAN"
        );
        assert!(
            before_signing(&plan("", &[], 90), &limits(false)).is_err(),
            "needs a name"
        );
        let bad = vec!["bad_name.example.com".to_owned()];
        assert!(before_signing(&plan("", &bad, 90), &limits(false)).is_err());
    }
}
