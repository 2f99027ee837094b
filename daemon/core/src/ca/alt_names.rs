//! Subject alternative names: which a request asks for (its CSR's and its own), and those names
//! as rcgen and the lint take them. The HSM issuer signs these names; the offline issuer puts
//! them in the request it makes for a CA elsewhere.

use crate::ca::names;
use crate::ca::x509::AltName;
use crate::error::{Error, Result};
use crate::plugins::IssuePlan;
use rcgen::SanType;
use std::net::IpAddr;

/// The most subject alternative names one certificate may carry: well above any real use, and
/// small enough for the domain index to take in one statement.
const MAX_ALT_NAMES: usize = 1000;

/// rcgen SANs and the lint plan's view of them.
pub struct Names {
    /// For rcgen.
    pub sans: Vec<SanType>,
    /// DNS names, lower-case, without repeats.
    pub dns: Vec<String>,
    /// IP addresses.
    pub ips: Vec<IpAddr>,
    /// How many of another kind (email, URI).
    pub other: usize,
}

/// The SANs of `alt_names`, checked, as rcgen and the lint take them.
pub fn plan(alt_names: &[AltName]) -> Result<Names> {
    let mut names = Names {
        sans: Vec::new(),
        dns: Vec::new(),
        ips: Vec::new(),
        other: 0,
    };
    for name in alt_names {
        let invalid = |reason: &str| {
            Error::invalid(
                "extensions.subAltNames",
                format!("{:?}: {reason}", name.value),
            )
        };
        match name.kind {
            "DNSName" => {
                let dns = name.value.to_ascii_lowercase();
                if names.dns.contains(&dns) {
                    continue;
                }
                names.sans.push(SanType::DnsName(
                    dns.clone()
                        .try_into()
                        .map_err(|_| invalid("not an IA5 string"))?,
                ));
                names.dns.push(dns);
            }
            "IPAddress" => {
                let ip: IpAddr = name
                    .value
                    .parse()
                    .map_err(|_| invalid("not an IP address"))?;
                names.sans.push(SanType::IpAddress(ip));
                names.ips.push(ip);
            }
            "rfc822Name" => {
                names.sans.push(SanType::Rfc822Name(
                    name.value
                        .clone()
                        .try_into()
                        .map_err(|_| invalid("not an IA5 string"))?,
                ));
                names.other += 1;
            }
            "uniformResourceIdentifier" => {
                names.sans.push(SanType::URI(
                    name.value
                        .clone()
                        .try_into()
                        .map_err(|_| invalid("not an IA5 string"))?,
                ));
                names.other += 1;
            }
            other => return Err(invalid(&format!("nameType {other} is not supported"))),
        }
    }
    Ok(names)
}

/// The CN and the alternative names `request` asks for: the CN given, else its CSR's; the
/// CSR's names and the request's; the CN as a DNS name when there is no other name (TLS
/// clients ignore the CN, so a certificate named only there would match nothing).
pub fn requested(request: &IssuePlan) -> Result<(String, Vec<AltName>)> {
    let csr = request.csr.as_ref();
    let common_name = match (csr, request.common_name.is_empty()) {
        (Some(csr), true) => csr.common_name.clone(),
        _ => request.common_name.clone(),
    };
    let mut alt_names = csr.map(|c| c.alt_names.clone()).unwrap_or_default();
    alt_names.extend(request.alt_names.iter().cloned());
    if alt_names.is_empty() && names::valid_dns_name(&common_name) {
        alt_names.push(AltName {
            kind: "DNSName",
            value: common_name.clone(),
        });
    }
    if alt_names.len() > MAX_ALT_NAMES {
        return Err(Error::invalid(
            "extensions.subAltNames",
            format!(
                "{} names; at most {MAX_ALT_NAMES} are allowed",
                alt_names.len()
            ),
        ));
    }
    Ok((common_name, alt_names))
}
