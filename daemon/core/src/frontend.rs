//! The appliance's own HTTPS certificate, which nginx serves (`[frontend]`): issued by one of
//! its authorities for the names it is reached by, written where nginx reads it, and issued
//! again once a third of its validity is left, or when its names or authority change.
//!
//! It is an ordinary certificate of the inventory, issued and its key read through the same
//! domain calls (audited) as any other, by the system subject `frontend`. nginx is reloaded by
//! systemd when the chain file changes (`systemd/lemur-frontend.path`): the daemon runs as its
//! own user in a sandbox and cannot signal nginx.

use crate::App;
use crate::ca::x509;
use crate::config::FrontendConfig;
use crate::error::{Error, Result};
use crate::files;
use crate::model::{
    CertificateFilter, CertificateRecord, ListQuery, Page, PageStart, SortKey, Visibility,
};
use crate::policy::Subject;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The subject the certificate is issued as.
const FRONTEND: Subject = Subject::System("frontend");

/// How often the certificate is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(60 * 60);
/// How soon a failed attempt is retried.
const RETRY_AFTER: Duration = Duration::from_secs(5 * 60);

/// What a look at the certificate found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The certificate in place is current; it is good until then (Unix seconds).
    Current {
        /// notAfter.
        not_after: i64,
    },
    /// A new certificate was issued and written.
    Issued {
        /// Its id in the inventory.
        id: i64,
        /// notAfter.
        not_after: i64,
        /// Why the one in place was replaced.
        reason: String,
    },
}

/// Keeps the certificate current for as long as the daemon runs, after a first look
/// ([`check`]) that said to wait `first`.
pub async fn maintain(app: Arc<App>, first: Duration) {
    if app.config.frontend.is_none() {
        return;
    }
    let mut wait = first;
    loop {
        tokio::time::sleep(wait).await;
        wait = check(&app).await;
    }
}

/// Looks at the certificate once (when `[frontend]` is set), logs what it did, and says when to
/// look again: in an hour, or in five minutes after a failure (the authority missing, the HSM
/// away). The daemon looks before it reports ready, so nginx, started after it, finds a
/// certificate.
pub async fn check(app: &App) -> Duration {
    let Some(config) = &app.config.frontend else {
        return CHECK_EVERY;
    };
    match ensure(app, config).await {
        Ok(Outcome::Issued {
            id,
            not_after,
            reason,
        }) => {
            log::info!(
                "issued the front end's certificate {id} ({reason}), valid until {}; wrote {}",
                format_time(not_after),
                config.certificate.display()
            );
            CHECK_EVERY
        }
        Ok(Outcome::Current { .. }) => CHECK_EVERY,
        Err(error) => {
            log::error!(
                "the front end's certificate could not be issued, retrying in 5 minutes: {error}"
            );
            RETRY_AFTER
        }
    }
}

/// Looks at the certificate in place and issues a new one when it is missing, does not match
/// its key, names other names, was not issued by the authority, was revoked, or has less than
/// a third of its validity left. The one it replaces is marked replaced in the inventory (its
/// expiry notifications stop).
pub async fn ensure(app: &App, config: &FrontendConfig) -> Result<Outcome> {
    let authority = app
        .store
        .authority_by_name(&config.authority)
        .await?
        .ok_or_else(|| {
            Error::invalid(
                "frontend.authority",
                format!("no authority named {:?}", config.authority),
            )
        })?;
    let issuer = match authority.authority_certificate_id {
        Some(id) => app.store.certificate(id).await?,
        None => None,
    }
    .ok_or_else(|| Error::Ca(format!("authority {} has no certificate", config.authority)))?;
    let issuer = x509::first_certificate(&issuer.body, "authority")?;
    let now = app.clock.unix();
    let (reason, predecessor) = match in_place(config) {
        Ok(current) => {
            let record = inventory_record(app, &current).await?;
            let revoked = record
                .as_ref()
                .is_some_and(|r| r.status.as_deref() == Some("revoked"));
            let reason = if revoked {
                Some("it was revoked".to_owned())
            } else {
                replacement_reason(config, &current, &issuer, now)
            };
            match reason {
                None => {
                    return Ok(Outcome::Current {
                        not_after: current.not_after,
                    });
                }
                Some(reason) => (reason, record.map(|r| r.id)),
            }
        }
        Err(reason) => (reason, None),
    };
    let (id, not_after) = issue(app, config, now, predecessor).await?;
    Ok(Outcome::Issued {
        id,
        not_after,
        reason,
    })
}

/// The certificate in place with its key, or why there is none to keep (a crash between the
/// two writes leaves a key that does not fit the certificate: nginx would not start on them).
fn in_place(config: &FrontendConfig) -> std::result::Result<x509::ParsedCertificate, String> {
    let text = std::fs::read_to_string(&config.certificate)
        .map_err(|e| format!("{} could not be read: {e}", config.certificate.display()))?;
    let current = x509::first_certificate(&text, "certificate")
        .and_then(|der| x509::parse(&der, "certificate"))
        .map_err(|e| format!("{} holds no certificate: {e}", config.certificate.display()))?;
    let key = zeroize::Zeroizing::new(
        std::fs::read_to_string(&config.private_key)
            .map_err(|e| format!("{} could not be read: {e}", config.private_key.display()))?,
    );
    let fits = x509::private_key_pkcs8(&key)
        .and_then(|pkcs8| x509::public_key_of_pkcs8(&pkcs8))
        .is_ok_and(|spki| spki == current.spki);
    if fits {
        Ok(current)
    } else {
        Err(format!(
            "{} does not hold the certificate's key",
            config.private_key.display()
        ))
    }
}

/// The inventory's record of the certificate in place, if it is one of ours.
async fn inventory_record(
    app: &App,
    current: &x509::ParsedCertificate,
) -> Result<Option<CertificateRecord>> {
    let query = ListQuery {
        filter: CertificateFilter::Serial(current.serial_hex.trim_start_matches('0').to_owned()),
        sort: SortKey::Id,
        descending: true,
        start: PageStart::Page(Page { page: 1, count: 10 }),
    };
    let (records, _) = app.store.certificates(&query, &Visibility::All).await?;
    Ok(records.into_iter().find(|record| {
        x509::first_certificate(&record.body, "body").is_ok_and(|der| der == current.der)
    }))
}

fn replacement_reason(
    config: &FrontendConfig,
    current: &x509::ParsedCertificate,
    issuer: &[u8],
    now: i64,
) -> Option<String> {
    let wanted: BTreeSet<Name> = config.names.iter().map(|n| Name::of(n)).collect();
    let present: BTreeSet<Name> = current
        .alt_names
        .iter()
        .map(|n| Name::of(&n.value))
        .collect();
    let common_name = config.names.first().map(|n| Name::of(n));
    let lifetime = current.not_after - current.not_before;
    if wanted != present {
        Some(format!("it names {present:?}, not {wanted:?}"))
    } else if common_name != Some(Name::of(&current.cn)) {
        Some(format!(
            "its common name is {:?}, not the first name",
            current.cn
        ))
    } else if !x509::signed_by(&current.der, issuer) {
        Some(format!("it was not issued by {}", config.authority))
    } else if current.not_after - now < lifetime / 3 {
        Some(format!(
            "it expires {}, with less than a third of its validity left",
            format_time(current.not_after)
        ))
    } else {
        None
    }
}

/// A name as certificates compare: an IP address by value, a DNS name in lower case without a
/// final dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Name {
    Ip(std::net::IpAddr),
    Dns(String),
}

impl Name {
    fn of(text: &str) -> Self {
        match text.parse() {
            Ok(ip) => Name::Ip(ip),
            Err(_) => Name::Dns(text.trim_end_matches('.').to_ascii_lowercase()),
        }
    }
}

/// Refuses an authority whose CA signs elsewhere before anything is ordered: the HTTPS
/// certificate is renewed unattended, and each attempt would place an order.
async fn refuse_ordering_authority(app: &App, config: &FrontendConfig) -> Result<()> {
    let Some(authority) = app.store.authority_by_name(&config.authority).await? else {
        return Ok(());
    };
    if app.plugins.issuer_of(&authority)?.orders() {
        return Err(Error::invalid(
            "frontend.authority",
            format!(
                "authority {} answers later ({}); the appliance's HTTPS certificate needs one that issues at once",
                authority.name, authority.plugin_name
            ),
        ));
    }
    Ok(())
}

/// Issues the certificate (replacing `predecessor` in the inventory) and writes its key, then
/// the certificate with its chain, where nginx reads them: the chain's change, which reloads
/// nginx, then finds both new.
async fn issue(
    app: &App,
    config: &FrontendConfig,
    now: i64,
    predecessor: Option<i64>,
) -> Result<(i64, i64)> {
    let first = config
        .names
        .first()
        .ok_or_else(|| Error::invalid("frontend.names", "name at least one DNS name or address"))?;
    refuse_ordering_authority(app, config).await?;
    let names: Vec<serde_json::Value> = config
        .names
        .iter()
        .map(|name| {
            let kind = if name.parse::<std::net::IpAddr>().is_ok() {
                "IPAddress"
            } else {
                "DNSName"
            };
            serde_json::json!({ "nameType": kind, "value": name })
        })
        .collect();
    let request = serde_json::json!({
        "owner": config.owner,
        "commonName": first,
        "description": "the appliance's HTTPS certificate (nginx), kept current by the daemon",
        "authority": { "name": config.authority },
        "keyType": config.key_type,
        "validityStart": format_time(now - 5 * 60),
        "validityEnd": format_time(now + config.validity_days * 24 * 60 * 60),
        "extensions": { "subAltNames": { "names": names } },
        "replaces": predecessor.map(|id| serde_json::json!({ "id": id })).into_iter().collect::<Vec<_>>(),
    });
    let request = serde_json::from_value(request)
        .map_err(|e| Error::invalid("frontend", format!("cannot make a request from it: {e}")))?;
    let record = match crate::certificates::issue(app, &FRONTEND, request, None).await? {
        crate::certificates::IssueOutcome::Issued(issued) => issued.0,
        crate::certificates::IssueOutcome::Pending(pending) => {
            return Err(Error::Ca(format!(
                "authority {} took an order (pending certificate {}) for the appliance's HTTPS certificate; cancel it",
                config.authority, pending.id
            )));
        }
    };
    let key = crate::certificates::private_key(app, &FRONTEND, record.id).await?;
    let chain = format!(
        "{}\n{}\n",
        record.body.trim(),
        record.chain.as_deref().unwrap_or_default().trim()
    );
    for path in [&config.certificate, &config.private_key] {
        if let Some(directory) = path.parent() {
            std::fs::create_dir_all(directory)
                .map_err(Error::io(format!("creating {}", directory.display())))?;
        }
    }
    files::replace_private(&config.private_key, key.as_bytes(), None)?;
    files::replace_private(&config.certificate, chain.trim_start().as_bytes(), None)?;
    Ok((record.id, record.not_after))
}

fn format_time(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const DAY: i64 = 24 * 60 * 60;

    fn config(names: &[&str]) -> FrontendConfig {
        FrontendConfig {
            authority: "appliance".into(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            certificate: PathBuf::from("chain.pem"),
            private_key: PathBuf::from("key.pem"),
            owner: "appliance".into(),
            key_type: "ECCPRIME256V1".into(),
            validity_days: 90,
        }
    }

    /// A CA and a leaf it signs for `names`, valid from `from` to `to` (Unix seconds).
    fn issued(names: &[&str], from: i64, to: i64) -> (Vec<u8>, x509::ParsedCertificate) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_der = ca.self_signed(&ca_key).unwrap().der().to_vec();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut leaf = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        leaf.distinguished_name = rcgen::DistinguishedName::new();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        leaf.not_before = OffsetDateTime::from_unix_timestamp(from).unwrap();
        leaf.not_after = OffsetDateTime::from_unix_timestamp(to).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let der = leaf.signed_by(&leaf_key, &issuer).unwrap().der().to_vec();
        (ca_der, x509::parse(&der, "leaf").unwrap())
    }

    #[test]
    fn a_certificate_is_replaced_once_a_third_of_its_validity_is_left() {
        let now = 1_800_000_000;
        let names = ["lemur.example.com", "192.0.2.10"];
        let (ca, fresh) = issued(&names, now - 10 * DAY, now + 80 * DAY);
        assert_eq!(replacement_reason(&config(&names), &fresh, &ca, now), None);
        let (ca, late) = issued(&names, now - 61 * DAY, now + 29 * DAY);
        let reason = replacement_reason(&config(&names), &late, &ca, now).unwrap();
        assert!(reason.contains("less than a third"), "{reason}");
        let (ca, expired) = issued(&names, now - 91 * DAY, now - DAY);
        assert!(replacement_reason(&config(&names), &expired, &ca, now).is_some());
    }

    #[test]
    fn names_compare_as_certificates_do() {
        let now = 1_800_000_000;
        let (ca, current) = issued(&["lemur.example.com", "2001:db8::1"], now, now + 90 * DAY);
        let same = config(&["LEMUR.example.com.", "2001:DB8:0::1"]);
        assert_eq!(replacement_reason(&same, &current, &ca, now), None);
        let reordered = config(&["2001:db8::1", "lemur.example.com"]);
        let reason = replacement_reason(&reordered, &current, &ca, now).unwrap();
        assert!(reason.contains("common name"), "{reason}");
    }

    #[test]
    fn other_names_or_another_issuer_are_reasons_too() {
        let now = 1_800_000_000;
        let (ca, current) = issued(&["a.example.com"], now, now + 90 * DAY);
        let reason = replacement_reason(
            &config(&["a.example.com", "b.example.com"]),
            &current,
            &ca,
            now,
        )
        .unwrap();
        assert!(reason.contains("b.example.com"), "{reason}");
        let (other_ca, _) = issued(&["a.example.com"], now, now + 90 * DAY);
        let reason =
            replacement_reason(&config(&["a.example.com"]), &current, &other_ca, now).unwrap();
        assert!(reason.contains("not issued by appliance"), "{reason}");
    }
}
