//! Certificates: issue (through the authority's issuer plugin), import (Lemur's `upload`), read,
//! list, and read a stored private key back. Each is authorized by the policy, and each change
//! is stored with its audit row in one unit of work.

use crate::App;
use crate::ca::x509::{self, AltName, ParsedCertificate};
use crate::ca::{key_context, names};
use crate::error::{Error, Result};
use crate::listing::{cursor_after, list_query, page_size};
use crate::model::{
    AuthorityKey, CertificateLinks, CertificateRecord, IdempotencyKey, LogEntry, NewCertificate,
    PendingRecord, Revocation, StatsLabel, StatsMetric,
};
use crate::plugins::{Issuance, IssuePlan};
use crate::policy::{Action, Subject, authorize};
use crate::requests::{alt_names, subject_fields, validity};
use crate::timeline;
use lemur_api::{CertificateQuery, CreateCertificate, IdRef, RevokeCertificate, UploadCertificate};
use lemur_hsm::KeyAlgorithm;
use zeroize::Zeroizing;

/// What a request to issue became.
pub enum IssueOutcome {
    /// The certificate, as stored, with the links the subject may see.
    Issued(Box<(CertificateRecord, CertificateLinks)>),
    /// An order its authority answers later, stored as a pending certificate.
    Pending(Box<PendingRecord>),
}

/// Issues a certificate from the authority the request names, or orders it when the authority
/// answers later. With an idempotency key the subject used before for the same request, returns
/// what that request made instead.
pub async fn issue(
    app: &App,
    subject: &Subject,
    body: CreateCertificate,
    idempotency: Option<&IdempotencyKey>,
) -> Result<IssueOutcome> {
    // Refused before anything is looked up, so callers who may issue from no authority at all
    // (read-only, auditors, users without a role) get a 403 whatever they send.
    authorize(subject, Action::IssueFromAny)?;
    if let Some((record, links)) = replay(app, subject, idempotency).await? {
        return Ok(IssueOutcome::Issued(Box::new((record, links))));
    }
    if let Some(pending) = crate::pending::replay(app, subject, idempotency).await? {
        return Ok(IssueOutcome::Pending(Box::new(pending)));
    }
    refuse_destinations(&body.destinations)?;
    if body.owner.trim().is_empty() {
        return Err(Error::invalid("owner", "is required"));
    }
    let key = match (body.authority.id, &body.authority.name) {
        (Some(id), _) => AuthorityKey::Id(id),
        (None, Some(name)) => AuthorityKey::Name(name),
        (None, None) => return Err(Error::invalid("authority", "give its id or name")),
    };
    let (authority, authority_roles) =
        app.store
            .authority_with_roles(key)
            .await?
            .ok_or_else(|| match key {
                AuthorityKey::Id(id) => {
                    Error::invalid("authority", format!("authority {id} does not exist"))
                }
                AuthorityKey::Name(name) => {
                    Error::invalid("authority", format!("no authority named {name:?}"))
                }
            })?;
    authorize(
        subject,
        Action::Issue {
            authority_roles: &authority_roles,
        },
    )?;
    if !authority.active {
        return Err(Error::invalid(
            "authority",
            format!("authority {} is not active", authority.name),
        ));
    }
    let issuer = app.plugins.issuer_of(&authority)?;
    let (not_before, not_after) = validity(
        body.validity_start.as_deref(),
        body.validity_end.as_deref(),
        body.validity_years,
        app.clock.unix(),
    )?;
    let key = match (&body.csr, &body.key_type) {
        (None, Some(key_type)) => x509::algorithm_for(key_type)?,
        _ => KeyAlgorithm::EcP256,
    };
    let replaces = replaceable(app, subject, &body.replaces).await?;
    let plan = IssuePlan {
        common_name: body.common_name.trim().to_owned(),
        alt_names: alt_names(&body.extensions)?,
        not_before,
        not_after,
        csr: body.csr.as_deref().map(x509::parse_csr).transpose()?,
        key,
        subject: subject_fields(body.subject.clone())?,
    };
    let names = requested_dns_names(&plan)?;
    check_permitted(app, subject, &authority, &names)?;
    crate::domains::check_sensitive(app, subject, &names).await?;
    let now = app.clock.unix();
    let asked = (
        not_before.unwrap_or(now),
        not_after.unwrap_or(now + authority.default_validity_days * 86_400),
    );
    let issued = match issuer.issue(app, &authority, plan).await? {
        Issuance::Issued(issued) => issued,
        Issuance::Ordered(order) => {
            let context = crate::pending::OrderContext {
                body: &body,
                authority: &authority,
                replaces: &replaces,
                validity: asked,
                idempotency,
            };
            return crate::pending::record_order(app, subject, context, order)
                .await
                .map(|pending| IssueOutcome::Pending(Box::new(pending)));
        }
    };
    let parsed = &issued.certificate;
    let sealed = match &issued.pkcs8 {
        Some(pkcs8) => Some(seal(app, x509::private_key_to_pem(pkcs8), &parsed.sha256).await?),
        None => None,
    };
    let name = lemur_name(parsed);
    let new = NewCertificate {
        parsed,
        names: [&name[0], &name[1]],
        owner: &body.owner,
        description: &body.description,
        notify: body.notify,
        rotation: body.rotation,
        chain: Some(&issued.chain),
        csr: body.csr.as_deref(),
        sealed_private_key: sealed.as_deref(),
        authority_id: Some(authority.id),
        root_authority_id: None,
        user_id: subject.user_id(),
        rotation_policy_id: Some(app.default_rotation_policy),
        replaces: &replaces,
        domains: &dns_domains(parsed),
        idempotency,
    };
    let log = LogEntry {
        certificate_id: None,
        log_type: "create_cert",
        user_id: subject.user_id(),
        source_address: subject.source(),
        details: &issued.details,
    };
    let (record, links) = app
        .store
        .create_certificate(&new, &log, false, app.clock.unix())
        .await?;
    app.metrics.issued(&authority.name);
    Ok(IssueOutcome::Issued(Box::new((
        record,
        readable(subject, links),
    ))))
}

/// The certificate an earlier request of the subject with the same idempotency key made, when
/// there is one; refused when that request was another. The writer checks again as it stores,
/// for requests that race.
async fn replay(
    app: &App,
    subject: &Subject,
    idempotency: Option<&IdempotencyKey>,
) -> Result<Option<(CertificateRecord, CertificateLinks)>> {
    let (Some(key), Some(user_id)) = (idempotency, subject.user_id()) else {
        return Ok(None);
    };
    match key.replayed(app.store.idempotent_request(user_id, &key.key).await?)? {
        Some(id) => get(app, subject, id).await.map(Some),
        None => Ok(None),
    }
}

/// Refuses names outside the authority's permitted domains (400), and, for callers who may not
/// issue for any domain, outside `[names] allowed_domains` (403; Lemur's domain authorization,
/// which `global_cert_issuer` skips).
fn check_permitted(
    app: &App,
    subject: &Subject,
    authority: &crate::model::AuthorityRecord,
    names: &[String],
) -> Result<()> {
    if let Some(permitted) = &authority.permitted_domains
        && let Some(outside) = names
            .iter()
            .find(|name| !permitted.iter().any(|domain| names::within(name, domain)))
    {
        return Err(Error::invalid(
            "extensions.subAltNames",
            format!(
                "{outside:?} is outside the domains authority {} may issue for ({})",
                authority.name,
                permitted.join(", ")
            ),
        ));
    }
    let allowed = &app.config.names.allowed_domains;
    if !allowed.is_empty()
        && authorize(subject, Action::IssueForAnyDomain).is_err()
        && let Some(outside) = names
            .iter()
            .find(|name| !allowed.iter().any(|domain| names::within(name, domain)))
    {
        return Err(Error::Forbidden(format!(
            "{outside:?} is outside the allowed domains ({}); only administrators and global_cert_issuer may issue for it",
            allowed.join(", ")
        )));
    }
    Ok(())
}

/// Every DNS name a request may end up certifying, before anything is signed: its alternative
/// names, its CSR's and its common name (lower-case).
fn requested_dns_names(plan: &IssuePlan) -> Result<Vec<String>> {
    let from_csr = plan.csr.iter().flat_map(|c| {
        c.alt_names
            .iter()
            .chain(std::iter::once(&AltName {
                kind: "DNSName",
                value: c.common_name.clone(),
            }))
            .cloned()
            .collect::<Vec<_>>()
    });
    let mut names: Vec<String> = plan
        .alt_names
        .iter()
        .cloned()
        .chain(from_csr)
        .filter(|name| name.kind == "DNSName")
        .map(|name| name.value.to_ascii_lowercase())
        .chain(std::iter::once(plan.common_name.to_ascii_lowercase()))
        .filter(|name| !name.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

pub(crate) fn refuse_destinations(destinations: &[IdRef]) -> Result<()> {
    if destinations.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(
            "destinations",
            "destination plugins are not available in this build yet",
        ))
    }
}

/// The ids in `replaces`, each checked to exist and to be the caller's to replace (Lemur's
/// `replaces` hijacking advisory), sorted without repeats so concurrent writers lock rows in one
/// order.
async fn replaceable(app: &App, subject: &Subject, replaces: &[IdRef]) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(replaces.len());
    for reference in replaces {
        let record = app.store.certificate(reference.id).await?.ok_or_else(|| {
            Error::invalid(
                "replaces",
                format!("certificate {} does not exist", reference.id),
            )
        })?;
        authorize(subject, Action::ReplaceCertificate(&record)).map_err(|_| {
            Error::invalid(
                "replaces",
                format!("you may not replace certificate {}", reference.id),
            )
        })?;
        ids.push(record.id);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Lemur's name for a certificate, and the name to take when another certificate has it: the
/// same with a suffix from the certificate's hash, unique without counting (Lemur counts
/// certificates one by one).
pub fn lemur_name(parsed: &ParsedCertificate) -> [String; 2] {
    let base = names::certificate_name(
        &parsed.cn,
        &parsed.issuer,
        parsed.not_before,
        parsed.not_after,
        parsed.alt_names.len(),
    );
    let suffixed = format!("{base}-{}", &parsed.sha256[..12]);
    [base, suffixed]
}

/// The certificate's DNS names, lower-case, sorted, without repeats: the domain index's rows in
/// the one order every writer locks them.
pub fn dns_domains(parsed: &ParsedCertificate) -> Vec<String> {
    let mut dns: Vec<String> = parsed
        .alt_names
        .iter()
        .filter(|n| n.kind == "DNSName")
        .map(|n| n.value.to_ascii_lowercase())
        .collect();
    dns.sort_unstable();
    dns.dedup();
    dns
}

/// Imports a certificate issued elsewhere; returns its id. The key must match, the chain must
/// verify, and the same certificate cannot be imported twice.
pub async fn upload(
    app: &App,
    subject: &Subject,
    body: UploadCertificate,
    idempotency: Option<&IdempotencyKey>,
) -> Result<(CertificateRecord, CertificateLinks)> {
    authorize(subject, Action::UploadCertificate)?;
    if let Some(earlier) = replay(app, subject, idempotency).await? {
        return Ok(earlier);
    }
    refuse_destinations(&body.destinations)?;
    if body.owner.trim().is_empty() {
        return Err(Error::invalid("owner", "is required"));
    }
    let replaces = replaceable(app, subject, &body.replaces).await?;
    let der = single_certificate(&body.body)?;
    let parsed = x509::parse(&der, "body")?;
    let chain = verified_chain(&der, body.chain.as_deref())?;
    let sealed = match &body.private_key {
        Some(key) if !key.trim().is_empty() => {
            let pkcs8 = x509::private_key_pkcs8(key)?;
            if x509::public_key_of_pkcs8(&pkcs8)? != parsed.spki {
                return Err(Error::invalid(
                    "privateKey",
                    "does not match the certificate's public key",
                ));
            }
            let key = key.trim();
            let mut pem = Zeroizing::new(String::with_capacity(key.len() + 1));
            pem.push_str(key);
            pem.push('\n');
            Some(seal(app, pem, &parsed.sha256).await?)
        }
        _ => None,
    };
    let name = lemur_name(&parsed);
    let new = NewCertificate {
        parsed: &parsed,
        names: [&name[0], &name[1]],
        owner: &body.owner,
        description: &body.description,
        notify: body.notify,
        rotation: false,
        chain: chain.as_deref(),
        csr: None,
        sealed_private_key: sealed.as_deref(),
        authority_id: None,
        root_authority_id: None,
        user_id: subject.user_id(),
        rotation_policy_id: None,
        replaces: &replaces,
        domains: &dns_domains(&parsed),
        idempotency,
    };
    let log = LogEntry {
        certificate_id: None,
        log_type: "upload_cert",
        user_id: subject.user_id(),
        source_address: subject.source(),
        details: &format!(
            "imported serial {} issued by {}",
            parsed.serial_hex, parsed.issuer
        ),
    };
    let (record, links) = app
        .store
        .create_certificate(&new, &log, true, app.clock.unix())
        .await?;
    Ok((record, readable(subject, links)))
}

/// The one certificate of a request's `body`, DER.
pub(crate) fn single_certificate(body: &str) -> Result<Vec<u8>> {
    let mut bodies = x509::pem_certificates(body, "body")?;
    if bodies.len() != 1 {
        return Err(Error::invalid(
            "body",
            "must hold exactly one certificate; put the issuers in chain",
        ));
    }
    Ok(bodies.remove(0))
}

/// The chain a request gives for the certificate `der`, each link checked to sign the one
/// before, as normalised PEM; `None` when it gives none.
fn verified_chain(der: &[u8], text: Option<&str>) -> Result<Option<String>> {
    let Some(text) = text.filter(|c| !c.trim().is_empty()) else {
        return Ok(None);
    };
    let chain = x509::pem_certificates(text, "chain")?;
    x509::verify_chain(der, &chain)?;
    Ok(Some(
        chain
            .iter()
            .map(|c| x509::to_pem("CERTIFICATE", c))
            .collect::<Vec<_>>()
            .join(""),
    ))
}

/// Seals a private key PEM under the HSM KEK, bound to the certificate's hash.
async fn seal(app: &App, pem: Zeroizing<String>, body_sha256: &str) -> Result<Vec<u8>> {
    let context = key_context(body_sha256);
    app.hsm(move |hsm| hsm.seal(pem.as_bytes(), &context).map_err(Error::from))
        .await
}

fn not_found(id: i64) -> Error {
    Error::NotFound {
        what: "certificate",
        id: id.to_string(),
    }
}

/// One certificate with its domains and replacement links.
pub async fn get(
    app: &App,
    subject: &Subject,
    id: i64,
) -> Result<(CertificateRecord, CertificateLinks)> {
    // Read side by side (the links are dropped unread if the policy refuses the record).
    let ids = [id];
    let (record, links) =
        tokio::try_join!(app.store.certificate(id), app.store.certificate_links(&ids))?;
    let record = record.ok_or_else(|| not_found(id))?;
    authorize(subject, Action::ReadCertificate(&record))?;
    let links = links.into_iter().next().unwrap_or_default();
    Ok((record, readable(subject, links)))
}

/// A page of the certificates the subject may see (newest first unless sorted otherwise), with
/// their links unless `short`, the total and the cursor of the next page.
pub async fn list(app: &App, subject: &Subject, query: &CertificateQuery) -> Result<Listing> {
    authorize(subject, Action::ListCertificates)?;
    let list = list_query(query)?;
    let (records, total) = app.store.certificates(&list, &subject.visibility()).await?;
    let next = match records.last() {
        Some(last) if i64::try_from(records.len()).ok() == Some(page_size(&list)) => {
            Some(cursor_after(last, &list))
        }
        _ => None,
    };
    let links = if query.short {
        vec![CertificateLinks::default(); records.len()]
    } else {
        let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
        let links = app.store.certificate_links(&ids).await?;
        links.into_iter().map(|l| readable(subject, l)).collect()
    };
    Ok(Listing {
        items: records.into_iter().zip(links).collect(),
        total,
        next,
    })
}

/// Certificate statistics for `metric`, over the certificates the subject may see: each label
/// and its count. Lemur's (`bits`, `issuer`, `signing_algorithm`, `not_after`) and the
/// dashboard's by time (`expiring`, `expires_per_week`, `issued_per_day`; see [`timeline`]).
pub async fn stats(app: &App, subject: &Subject, metric: &str) -> Result<Vec<(StatsLabel, i64)>> {
    authorize(subject, Action::ListCertificates)?;
    if let Some(metric) = timeline::TimeMetric::named(metric) {
        return timeline::count(app, metric, &subject.visibility()).await;
    }
    let metric = match metric {
        "bits" => StatsMetric::Bits,
        "issuer" => StatsMetric::Issuer,
        "signing_algorithm" => StatsMetric::SigningAlgorithm,
        "not_after" => StatsMetric::NotAfter,
        _ => {
            return Err(Error::invalid(
                "metric",
                "use bits, issuer, signing_algorithm, not_after, expiring, expires_per_week or issued_per_day",
            ));
        }
    };
    app.store
        .certificate_stats(metric, &subject.visibility(), app.clock.unix())
        .await
}

/// A page of the certificate list.
pub struct Listing {
    /// The certificates, with their links.
    pub items: Vec<(CertificateRecord, CertificateLinks)>,
    /// How many the whole list has (see the store for when this is a recent count).
    pub total: i64,
    /// The cursor of the next page, when there may be one.
    pub next: Option<String>,
}

/// The links of a view without the linked certificates the subject may not read: a view must
/// not show through a replacement what the policy refuses directly.
fn readable(subject: &Subject, mut links: CertificateLinks) -> CertificateLinks {
    let visible =
        |record: &CertificateRecord| authorize(subject, Action::ReadCertificate(record)).is_ok();
    links.replaces.retain(visible);
    links.replaced_by.retain(visible);
    links
}

/// The certificate's private key as PEM, unsealed by the HSM; every view is audited.
pub async fn private_key(app: &App, subject: &Subject, id: i64) -> Result<Zeroizing<String>> {
    let record = app
        .store
        .certificate(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if let Err(denied) = authorize(subject, Action::ReadPrivateKey(&record)) {
        // A refused attempt on a key is worth knowing about too.
        audit_key_view(app, subject, Some(id), "key_view_denied", "").await?;
        return Err(denied);
    }
    let sealed = app
        .store
        .sealed_private_key(id)
        .await?
        .flatten()
        .ok_or_else(|| Error::NotFound {
            what: "private key of certificate",
            id: id.to_string(),
        })?;
    let context = crate::ca::key_context_of(&record.body)?;
    open_audited(app, subject, sealed, context, (Some(id), "key_view", "")).await
}

/// Writes the audit row of a private key view, or of its refusal.
pub(crate) async fn audit_key_view(
    app: &App,
    subject: &Subject,
    certificate_id: Option<i64>,
    log_type: &str,
    details: &str,
) -> Result<()> {
    let log = LogEntry {
        certificate_id,
        log_type,
        user_id: subject.user_id(),
        source_address: subject.source(),
        details,
    };
    app.store.log(&log, app.clock.unix()).await
}

/// Opens a sealed private key bound to `context` in the HSM and audits the view (`audit`: the
/// certificate, the log type and details) before handing it out: a view that cannot be
/// recorded is not given.
pub(crate) async fn open_audited(
    app: &App,
    subject: &Subject,
    sealed: Vec<u8>,
    context: Vec<u8>,
    audit: (Option<i64>, &str, &str),
) -> Result<Zeroizing<String>> {
    let clear = app
        .hsm(move |hsm| hsm.unseal(&sealed, &context).map_err(Error::from))
        .await?;
    let (certificate_id, log_type, details) = audit;
    audit_key_view(app, subject, certificate_id, log_type, details).await?;
    String::from_utf8(clear.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| Error::Ca("a stored private key is not text".into()))
}

/// The longest revocation comment the audit log takes.
const MAX_COMMENTS: usize = 1000;

/// RFC 5280's CRLReason names, as Lemur takes them (`removeFromCRL` only undoes a hold, so it
/// is no reason to revoke).
const CRL_REASONS: [&str; 9] = [
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
    "aACompromise",
];

/// Revokes a certificate through the issuer plugin of the authority that issued it, then records
/// the revocation (status `revoked`, notifications and rotation off) with its audit row.
pub async fn revoke(app: &App, subject: &Subject, id: i64, body: RevokeCertificate) -> Result<()> {
    let record = app
        .store
        .certificate(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    authorize(subject, Action::RevokeCertificate(&record))?;
    let reason = body.crl_reason.as_deref().unwrap_or("unspecified");
    if !CRL_REASONS.contains(&reason) {
        return Err(Error::invalid(
            "crlReason",
            format!("{reason:?} is not one of {}", CRL_REASONS.join(", ")),
        ));
    }
    if record.status.as_deref() == Some("revoked") {
        return Err(Error::Conflict(format!(
            "certificate {id} is revoked already"
        )));
    }
    // An authority whose own certificate is revoked would go on issuing: authorities are
    // retired as a whole, not through their certificate.
    if record.is_ca {
        return Err(Error::invalid(
            "id",
            format!("certificate {id} is a CA certificate; authorities are not revoked this way"),
        ));
    }
    let comments = body.comments.unwrap_or_default();
    if comments.chars().count() > MAX_COMMENTS {
        return Err(Error::invalid(
            "comments",
            format!("at most {MAX_COMMENTS} characters"),
        ));
    }
    let authority_id = record.authority.as_ref().map(|a| a.id).ok_or_else(|| {
        Error::invalid(
            "id",
            format!("certificate {id} was imported, not issued here: revoke it at its issuer"),
        )
    })?;
    let authority = app
        .store
        .authority(authority_id)
        .await?
        .ok_or_else(|| Error::Ca(format!("the authority of certificate {id} is missing")))?;
    let issuer = app.plugins.issuer_of(&authority)?;
    issuer.revoke(app, &authority, &record, reason).await?;
    let mut details = format!("revoked ({reason}) by {}", authority.name);
    if !comments.is_empty() {
        details = format!("{details}: {comments}");
    }
    let log = LogEntry {
        certificate_id: Some(id),
        log_type: "revoke_cert",
        user_id: subject.user_id(),
        source_address: subject.source(),
        details: &details,
    };
    let revocation = Revocation {
        certificate_id: id,
        reason,
        at: app.clock.unix(),
    };
    if app.store.revoke_certificate(&revocation, &log).await? {
        app.crls.revoked(authority.id);
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "certificate {id} is revoked already"
        )))
    }
}
