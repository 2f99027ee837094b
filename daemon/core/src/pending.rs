//! Pending certificates (Lemur's `pending_certificates`): certificates ordered from an
//! authority that answers later. An issuer plugin answers a request with an
//! [`Order`](crate::plugins::Order); the order is stored with its sealed key (when the key was
//! generated here) until the signed certificate is delivered, checked against the order and the
//! authority, and stored as a certificate in the same unit of work that resolves the order.
//!
//! Who may act on an order: its owner and creator as on a certificate, and, to read it and to
//! deliver it, the holders of its authority's roles, who run the CA that signs it.

use crate::App;
use crate::ca::material::authority_certificate;
use crate::ca::{key_context, names, pending_key_context, x509};
use crate::certificates::{
    audit_key_view, dns_domains, lemur_name, open_audited, single_certificate,
};
use crate::error::{Error, Result};
use crate::model::{
    AuthorityKey, AuthorityRecord, IdempotencyKey, LogEntry, NewCertificate, NewPending,
    PendingChanges, PendingRecord, RoleRecord,
};
use crate::plugins::Order;
use crate::policy::{Action, Subject, authorize};
use lemur_api::{
    CancelPendingCertificate, CreateCertificate, PendingQuery, UpdatePendingCertificate,
    UploadPendingCertificate,
};
use zeroize::Zeroizing;

/// Longest note a cancellation may carry into the audit log.
const MAX_NOTE: usize = 1000;

/// What [`record_order`] stores beside the order: the request and what the domain settled.
pub(crate) struct OrderContext<'a> {
    /// The request.
    pub body: &'a CreateCertificate,
    /// The authority ordered from.
    pub authority: &'a AuthorityRecord,
    /// Certificates the issued one will replace, checked.
    pub replaces: &'a [i64],
    /// The validity asked, for the name.
    pub validity: (i64, i64),
    /// The client's key for the request.
    pub idempotency: Option<&'a IdempotencyKey>,
}

/// Stores the order an issuer answered with, its key sealed, with its audit row.
pub(crate) async fn record_order(
    app: &App,
    subject: &Subject,
    context: OrderContext<'_>,
    order: Order,
) -> Result<PendingRecord> {
    let sealed = match &order.pkcs8 {
        Some(pkcs8) => {
            let pem = x509::private_key_to_pem(pkcs8);
            let binding = pending_key_context(&order.csr)?;
            Some(
                app.hsm(move |hsm| hsm.seal(pem.as_bytes(), &binding).map_err(Error::from))
                    .await?,
            )
        }
        None => None,
    };
    let name = names::certificate_name(
        &order.common_name,
        &context.authority.name,
        context.validity.0,
        context.validity.1,
        order.dns_names.len(),
    );
    let new = NewPending {
        name: &name,
        external_id: order.external_id.as_deref(),
        owner: &context.body.owner,
        description: &context.body.description,
        notify: context.body.notify,
        rotation: context.body.rotation,
        common_name: &order.common_name,
        csr: &order.csr,
        key_type: &order.key_type,
        dns_names: &order.dns_names,
        sealed_private_key: sealed.as_deref(),
        authority_id: context.authority.id,
        user_id: subject.user_id(),
        replaces: context.replaces,
        rotation_policy_id: Some(app.default_rotation_policy),
        idempotency: context.idempotency,
    };
    let log = LogEntry {
        certificate_id: None,
        log_type: "create_pending",
        user_id: subject.user_id(),
        source_address: subject.source(),
        details: &format!("pending certificate {name}: {}", order.details),
    };
    app.store.create_pending(&new, &log, app.clock.unix()).await
}

/// The pending certificate an earlier request of the subject with the same idempotency key
/// made, if any; refused when that request was another.
pub(crate) async fn replay(
    app: &App,
    subject: &Subject,
    idempotency: Option<&IdempotencyKey>,
) -> Result<Option<PendingRecord>> {
    let (Some(key), Some(user_id)) = (idempotency, subject.user_id()) else {
        return Ok(None);
    };
    match key.replayed(app.store.idempotent_pending(user_id, &key.key).await?)? {
        Some(id) => get(app, subject, id).await.map(Some),
        None => Ok(None),
    }
}

fn not_found(id: i64) -> Error {
    Error::NotFound {
        what: "pending certificate",
        id: id.to_string(),
    }
}

/// An order with its authority and the authority's roles (whose holders run its CA).
struct Loaded {
    pending: PendingRecord,
    authority: AuthorityRecord,
    authority_roles: Vec<RoleRecord>,
}

async fn load(app: &App, id: i64) -> Result<Loaded> {
    let pending = app.store.pending(id).await?.ok_or_else(|| not_found(id))?;
    let (authority, authority_roles) = app
        .store
        .authority_with_roles(AuthorityKey::Id(pending.authority_id))
        .await?
        .ok_or_else(|| {
            Error::Ca(format!(
                "the authority of pending certificate {id} is missing"
            ))
        })?;
    Ok(Loaded {
        pending,
        authority,
        authority_roles,
    })
}

/// Refuses a change to an order that is settled.
fn unresolved(pending: &PendingRecord) -> Result<()> {
    if pending.resolved {
        return Err(Error::Conflict(match pending.resolved_certificate_id {
            Some(certificate) => format!(
                "pending certificate {} was delivered already, as certificate {certificate}",
                pending.id
            ),
            None => format!("pending certificate {} was resolved already", pending.id),
        }));
    }
    Ok(())
}

/// The error of an order delivered, cancelled or changed by another request since it was read.
fn settled_meanwhile(id: i64) -> Error {
    Error::Conflict(format!(
        "pending certificate {id} was delivered, cancelled or changed meanwhile; read it again"
    ))
}

/// One pending certificate.
pub async fn get(app: &App, subject: &Subject, id: i64) -> Result<PendingRecord> {
    let loaded = load(app, id).await?;
    authorize(
        subject,
        Action::ReadPending {
            pending: &loaded.pending,
            authority_roles: &loaded.authority_roles,
        },
    )?;
    Ok(loaded.pending)
}

/// A page of the unresolved pending certificates the subject may see, filtered and sorted as
/// the certificate list is (newest first by default), and the total.
pub async fn list(
    app: &App,
    subject: &Subject,
    query: &PendingQuery,
) -> Result<(Vec<PendingRecord>, i64)> {
    let query = crate::listing::pending_query(query)?;
    app.store.pendings(&subject.visibility(), &query).await
}

/// Changes the owner, description or flags of an unresolved pending certificate.
pub async fn update(
    app: &App,
    subject: &Subject,
    id: i64,
    body: UpdatePendingCertificate,
) -> Result<PendingRecord> {
    let Loaded { pending, .. } = load(app, id).await?;
    authorize(subject, Action::ChangePending(&pending))?;
    unresolved(&pending)?;
    crate::certificates::refuse_destinations(&body.destinations)?;
    let owner = body.owner.unwrap_or_else(|| pending.owner.clone());
    if owner.trim().is_empty() {
        return Err(Error::invalid("owner", "must not be empty"));
    }
    let changes = PendingChanges {
        owner,
        description: body
            .description
            .unwrap_or_else(|| pending.description.clone()),
        notify: body.notify.unwrap_or(pending.notify),
        rotation: body.rotation.unwrap_or(pending.rotation),
    };
    let log = LogEntry {
        certificate_id: None,
        log_type: "update_pending",
        user_id: subject.user_id(),
        source_address: subject.source(),
        details: &format!("pending certificate {id} ({})", pending.name),
    };
    app.store
        .update_pending(id, &changes, &log, app.clock.unix())
        .await?
        .ok_or_else(|| settled_meanwhile(id))
}

/// Cancels the order at its CA and deletes the pending certificate, with its key.
pub async fn cancel(
    app: &App,
    subject: &Subject,
    id: i64,
    body: CancelPendingCertificate,
) -> Result<()> {
    let Loaded {
        pending, authority, ..
    } = load(app, id).await?;
    authorize(subject, Action::ChangePending(&pending))?;
    unresolved(&pending)?;
    let note = body.note.unwrap_or_default();
    if note.chars().count() > MAX_NOTE {
        return Err(Error::invalid(
            "note",
            format!("at most {MAX_NOTE} characters"),
        ));
    }
    app.plugins
        .issuer_of(&authority)?
        .cancel_order(app, &authority, &pending, &note)
        .await?;
    let mut details = format!("pending certificate {id} ({}) cancelled", pending.name);
    if !note.is_empty() {
        details = format!("{details}: {note}");
    }
    let log = LogEntry {
        certificate_id: None,
        log_type: "cancel_pending",
        user_id: subject.user_id(),
        source_address: subject.source(),
        details: &details,
    };
    if app.store.delete_pending(id, &log, app.clock.unix()).await? {
        Ok(())
    } else {
        Err(settled_meanwhile(id))
    }
}

/// The private key generated for a pending certificate, unsealed by the HSM; audited as a
/// certificate's key is (a refusal before, a view once opened).
pub async fn private_key(app: &App, subject: &Subject, id: i64) -> Result<Zeroizing<String>> {
    let Loaded { pending, .. } = load(app, id).await?;
    let details = format!("pending certificate {id}");
    if let Err(denied) = authorize(subject, Action::ReadPendingKey(&pending)) {
        audit_key_view(app, subject, None, "pending_key_view_denied", &details).await?;
        return Err(denied);
    }
    let sealed = app
        .store
        .pending_private_key(id)
        .await?
        .flatten()
        .ok_or_else(|| Error::NotFound {
            what: "private key of pending certificate",
            id: id.to_string(),
        })?;
    let binding = pending_key_context(&pending.csr)?;
    open_audited(
        app,
        subject,
        sealed,
        binding,
        (None, "pending_key_view", &details),
    )
    .await
}

/// Delivers the certificate the CA signed for a pending certificate (see [`check_delivery`]).
/// Stored as a certificate, with the order's owner, flags, replacements and key, as the order
/// is resolved; the order as it is then.
pub async fn deliver(
    app: &App,
    subject: &Subject,
    id: i64,
    body: UploadPendingCertificate,
) -> Result<PendingRecord> {
    let Loaded {
        pending,
        authority,
        authority_roles,
    } = load(app, id).await?;
    authorize(
        subject,
        Action::DeliverPending {
            pending: &pending,
            authority_roles: &authority_roles,
        },
    )?;
    unresolved(&pending)?;
    if !authority.active {
        return Err(Error::Conflict(format!(
            "authority {} is not active: it takes no deliveries; cancel the order",
            authority.name
        )));
    }
    let der = single_certificate(&body.body)?;
    let parsed = x509::parse(&der, "body")?;
    let ca = authority_certificate(app, &authority).await?;
    check_delivery(app, &pending, &authority, &ca.der, &parsed)?;
    check_chain(&authority, &ca.chain_from_it, body.chain.as_deref())?;
    let sealed = match app.store.pending_private_key(id).await?.flatten() {
        Some(sealed) => Some(reseal_for(app, &pending, sealed, &parsed.sha256).await?),
        None => None,
    };
    let name = lemur_name(&parsed);
    let new = NewCertificate {
        parsed: &parsed,
        names: [&name[0], &name[1]],
        owner: &pending.owner,
        description: &pending.description,
        notify: pending.notify,
        rotation: pending.rotation,
        chain: Some(&ca.chain_from_it),
        csr: Some(&pending.csr),
        sealed_private_key: sealed.as_deref(),
        authority_id: Some(authority.id),
        root_authority_id: None,
        user_id: pending.user_id,
        rotation_policy_id: pending.rotation_policy_id,
        replaces: &pending.replaces,
        domains: &dns_domains(&parsed),
        idempotency: None,
    };
    let log = LogEntry {
        certificate_id: None,
        log_type: "create_cert",
        user_id: subject.user_id(),
        source_address: subject.source(),
        details: &format!(
            "delivered serial {} by {} for pending certificate {id}",
            parsed.serial_hex, authority.name
        ),
    };
    // Stored only if the order is still as read: a change of owner since would otherwise hand
    // the certificate and its key to the previous one.
    let as_read = PendingChanges {
        owner: pending.owner.clone(),
        description: pending.description.clone(),
        notify: pending.notify,
        rotation: pending.rotation,
    };
    app.store
        .resolve_pending(id, &as_read, &new, &log, app.clock.unix())
        .await?
        .ok_or_else(|| settled_meanwhile(id))?;
    app.metrics.issued(&authority.name);
    Ok(load(app, id).await?.pending)
}

/// Whether `parsed` answers the order: for the request's key, signed by the authority, no more
/// than the request asked (its names, a TLS server certificate), an end-entity certificate
/// within the authority's longest validity, not expired. What the request asked was authorized
/// when the order was placed; a delivery may not widen it.
fn check_delivery(
    app: &App,
    pending: &PendingRecord,
    authority: &AuthorityRecord,
    ca: &[u8],
    parsed: &x509::ParsedCertificate,
) -> Result<()> {
    let refuse = |why: String| Err(Error::invalid("body", why));
    let csr = x509::parse_csr(&pending.csr)?;
    if parsed.spki != csr.spki {
        return refuse(format!(
            "is for another key than the request of pending certificate {}",
            pending.id
        ));
    }
    if !x509::signed_by(&parsed.der, ca) {
        return refuse(format!(
            "is not signed by authority {}'s certificate",
            authority.name
        ));
    }
    if parsed.is_ca || parsed.signs_certificates {
        return refuse("is a CA certificate; register a CA as an authority".into());
    }
    if let Some(name) = parsed
        .alt_names
        .iter()
        .find(|name| !csr.alt_names.contains(name))
    {
        return refuse(format!(
            "names {} {:?}, which the request did not ask for",
            name.kind, name.value
        ));
    }
    let asked_cn = parsed.cn.is_empty()
        || parsed.cn == csr.common_name
        || csr
            .alt_names
            .iter()
            .any(|name| name.kind == "DNSName" && name.value.eq_ignore_ascii_case(&parsed.cn));
    if !asked_cn {
        return refuse(format!(
            "has the common name {:?}, which the request did not ask for",
            parsed.cn
        ));
    }
    if !parsed.server_auth || parsed.other_purposes {
        return refuse(
            "must be a TLS server certificate: serverAuth (and at most clientAuth) in its extended key usage"
                .into(),
        );
    }
    if let Some(days) = authority.max_issuance_days
        && parsed.not_after - parsed.not_before > days * 86_400
    {
        return refuse(format!(
            "is valid longer than authority {}'s longest validity ({days} days)",
            authority.name
        ));
    }
    if parsed.not_after <= app.clock.unix() {
        return refuse("has expired".into());
    }
    Ok(())
}

/// A chain given with a delivery must be the authority's own (its certificate, then its
/// issuers): the certificate is stored with the authority's chain, never a chain of the
/// deliverer's making.
fn check_chain(authority: &AuthorityRecord, own: &str, given: Option<&str>) -> Result<()> {
    let Some(given) = given.filter(|chain| !chain.trim().is_empty()) else {
        return Ok(());
    };
    if x509::pem_certificates(given, "chain")? == x509::pem_certificates(own, "chain")? {
        Ok(())
    } else {
        Err(Error::invalid(
            "chain",
            format!(
                "is not authority {}'s chain; leave it out and the authority's is used",
                authority.name
            ),
        ))
    }
}

/// The order's sealed key, opened and sealed again bound to the delivered certificate, as every
/// certificate's key is.
async fn reseal_for(
    app: &App,
    pending: &PendingRecord,
    sealed: Vec<u8>,
    body_sha256: &str,
) -> Result<Vec<u8>> {
    let from = pending_key_context(&pending.csr)?;
    let to = key_context(body_sha256);
    app.hsm(move |hsm| {
        let clear = hsm.unseal(&sealed, &from)?;
        hsm.seal(&clear, &to).map_err(Error::from)
    })
    .await
}
