//! The JSON shapes Lemur clients read (see `shared/reference/lemur-api-shapes.json`): every field
//! Lemur sends, with the same name and type; a few of ours added.

use lemur_core::App;
use lemur_core::ca::x509;
use lemur_core::model::{
    AuthorityBrief, AuthorityDetail, CertificateLinks, CertificateRecord, UserRecord,
};
use lemur_core::plugins::PluginInfo;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A Unix time as Lemur's ISO 8601 string.
pub fn date(unix: i64) -> Value {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

/// A plugin as `GET /plugins/{slug}` shows it (and as authorities embed it).
pub fn plugin(info: &PluginInfo) -> Value {
    json!({
        "slug": info.slug,
        "title": info.title,
        "description": info.description,
        "pluginOptions": info.options,
    })
}

/// The plugin object of an authority, by the slug it stores.
fn plugin_named(app: &App, slug: &str) -> Value {
    app.plugins.info(slug).map_or_else(
        || json!({ "slug": slug, "title": slug, "description": "not installed", "pluginOptions": [] }),
        plugin,
    )
}

/// A user as views embed it.
pub fn user(user: &UserRecord) -> Value {
    json!({ "id": user.id, "username": user.username, "email": user.email, "active": user.active })
}

/// An authority, as `GET /authorities/{id}` shows it.
pub fn authority(app: &App, detail: &AuthorityDetail) -> Value {
    let record = &detail.record;
    let certificate = detail.certificate.as_ref().map_or(Value::Null, |c| {
        json!({
            "id": c.id, "name": c.name, "owner": c.owner, "description": c.description,
            "active": active(c, app), "bits": c.bits, "body": c.body, "chain": c.chain, "cn": c.cn,
            "notBefore": date(c.not_before), "notAfter": date(c.not_after), "status": c.status,
            "serial": c.serial, "user": creator(c),
        })
    });
    json!({
        "id": record.id,
        "name": record.name,
        "owner": record.owner,
        "description": record.description,
        "active": record.active,
        "options": Value::Null,
        "defaultValidityDays": record.default_validity_days,
        "maxIssuanceDays": record.max_issuance_days,
        "isCabCompliant": record.cab_compliant,
        "isCnOptional": true,
        "plugin": plugin_named(app, &record.plugin_name),
        "user": detail.creator.as_ref().map_or(Value::Null, user),
        "roles": detail.roles.iter().map(|r| json!({ "id": r.id, "name": r.name })).collect::<Vec<_>>(),
        "authorityCertificate": certificate,
        "parent": record.parent_id.map(|id| json!({ "id": id })),
        "keyUri": record.key_uri,
        "crlUrl": record.crl_url,
        "issuerUrl": record.issuer_url,
        "dateCreated": date(record.date_created),
    })
}

/// The short authority object embedded in certificates.
fn authority_brief(app: &App, authority: Option<&AuthorityBrief>) -> Value {
    let Some(a) = authority else {
        return Value::Null;
    };
    json!({
        "id": a.id, "name": a.name, "owner": a.owner, "description": a.description, "active": a.active,
        "defaultValidityDays": a.default_validity_days, "maxIssuanceDays": a.max_issuance_days,
        "isCabCompliant": a.cab_compliant, "isCnOptional": true, "plugin": plugin_named(app, &a.plugin_name),
        "authorityCertificate": {
            "notBefore": a.not_before.map_or(Value::Null, date),
            "notAfter": a.not_after.map_or(Value::Null, date),
        },
    })
}

fn creator(record: &CertificateRecord) -> Value {
    record.creator.as_ref().map_or(Value::Null, user)
}

fn rotation_policy(record: &CertificateRecord) -> Value {
    record.rotation_policy.as_ref().map_or(
        Value::Null,
        |(id, name, days)| json!({ "id": id, "name": name, "days": days }),
    )
}

fn active(record: &CertificateRecord, app: &App) -> bool {
    record.not_after > app.clock.unix()
        && record.status.as_deref() != Some("revoked")
        && !record.deleted
}

/// The short form of a certificate used in `replaces` and `replacedBy`.
fn brief(record: &CertificateRecord, app: &App) -> Value {
    json!({
        "id": record.id, "name": record.name, "owner": record.owner, "description": record.description,
        "active": active(record, app), "bits": record.bits, "body": record.body, "chain": record.chain,
        "csr": record.csr, "cn": record.cn, "commonName": record.cn, "issuer": {}, "notify": record.notify,
        "rotation": record.rotation, "notBefore": date(record.not_before), "notAfter": date(record.not_after),
        "validityStart": date(record.not_before), "validityEnd": date(record.not_after),
        "status": record.status, "rotationPolicy": rotation_policy(record),
    })
}

/// A certificate, as `GET /certificates/{id}` shows it (`short` for `?short=true`).
pub fn certificate(
    app: &App,
    record: &CertificateRecord,
    links: &CertificateLinks,
    short: bool,
) -> Value {
    let authority = authority_brief(app, record.authority.as_ref());
    if short {
        return json!({
            "id": record.id, "name": record.name, "cn": record.cn, "owner": record.owner,
            "issuer": record.issuer, "notify": record.notify, "rotation": record.rotation, "authority": authority,
        });
    }
    let parsed = x509::first_certificate(&record.body, "body")
        .and_then(|der| x509::parse(&der, "body"))
        .ok();
    let names: Vec<Value> = parsed
        .as_ref()
        .map(|p| {
            p.alt_names
                .iter()
                .map(|n| json!({ "nameType": n.kind, "value": n.value }))
                .collect()
        })
        .unwrap_or_default();
    let subject = |pick: fn(&x509::ParsedCertificate) -> &String| {
        parsed.as_ref().map(|p| pick(p).clone()).unwrap_or_default()
    };
    json!({
        "id": record.id,
        "name": record.name,
        "owner": record.owner,
        "description": record.description,
        "active": active(record, app),
        "notify": record.notify,
        "rotation": record.rotation,
        "body": record.body,
        "chain": record.chain.clone().unwrap_or_default(),
        "csr": record.csr,
        "cn": record.cn,
        "commonName": record.cn,
        "bits": record.bits,
        "keyType": record.key_type,
        "issuer": record.issuer,
        "serial": record.serial,
        "serialHex": record.serial_hex,
        "signingAlgorithm": record.signing_algorithm,
        "notBefore": date(record.not_before),
        "notAfter": date(record.not_after),
        "validityStart": date(record.not_before),
        "validityEnd": date(record.not_after),
        "dateCreated": date(record.date_created),
        "deleted": record.deleted,
        "distinguishedName": record.distinguished_name,
        "externalId": record.external_id,
        "hasPrivateKey": record.has_private_key,
        "san": Value::Null,
        "status": record.status,
        "organization": subject(|p| &p.organization),
        "organizationalUnit": subject(|p| &p.organizational_unit),
        "country": subject(|p| &p.country),
        "state": subject(|p| &p.state),
        "location": subject(|p| &p.location),
        "domains": links.domains.iter().map(|d| json!({ "id": d.id, "name": d.name, "sensitive": d.sensitive })).collect::<Vec<_>>(),
        "destinations": [],
        "notifications": [],
        "endpoints": [],
        "roles": [],
        "replaces": links.replaces.iter().map(|r| brief(r, app)).collect::<Vec<_>>(),
        "replacedBy": links.replaced_by.iter().map(|r| brief(r, app)).collect::<Vec<_>>(),
        "rotationPolicy": rotation_policy(record),
        "dnsProvider": Value::Null,
        "dnsProviderId": Value::Null,
        "authority": authority,
        "user": creator(record),
        "extensions": {
            "subAltNames": { "names": names },
            "basicConstraints": { "ca": record.is_ca, "path_length": parsed.as_ref().and_then(|p| p.path_len) },
            "authorityKeyIdentifier": { "useAuthorityCert": false, "useKeyIdentifier": true },
            "extendedKeyUsage": {
                "useServerAuthentication": parsed.as_ref().is_some_and(|p| p.server_auth),
                "useClientAuthentication": parsed.as_ref().is_some_and(|p| p.client_auth),
            },
        },
    })
}
