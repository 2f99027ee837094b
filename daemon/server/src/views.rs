//! The domain's records as Lemur's response bodies (`lemur-api`'s types; see
//! `shared/reference/lemur-api-shapes.json`).

use lemur_api as api;
use lemur_core::App;
use lemur_core::ca::x509;
use lemur_core::model::{
    AuthorityBrief, AuthorityDetail, CertificateDetails, CertificateLinks, CertificateRecord,
    PendingRecord, UserRecord,
};
use lemur_core::plugins::PluginInfo;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A Unix time as Lemur's ISO 8601 string.
pub fn date(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A plugin as `GET /plugins/{slug}` shows it (and as authorities embed it).
pub fn plugin(info: &PluginInfo) -> api::PluginView {
    api::PluginView {
        slug: info.slug.to_owned(),
        title: info.title.to_owned(),
        description: info.description.to_owned(),
        plugin_options: info
            .options
            .iter()
            .map(|option| api::PluginOptionView {
                name: option.name.to_owned(),
                kind: option.kind.as_str().to_owned(),
                required: option.required,
                validation: option.validation.map(str::to_owned),
                help_message: option.help_message.to_owned(),
                default: option.default.clone(),
                sensitive: option.sensitive,
                available: option.available.iter().map(|&a| a.to_owned()).collect(),
            })
            .collect(),
    }
}

/// The plugin object of an authority, by the slug it stores.
fn plugin_named(app: &App, slug: &str) -> api::PluginView {
    app.plugins.info(slug).map_or_else(
        || api::PluginView {
            slug: slug.to_owned(),
            title: slug.to_owned(),
            description: "not installed".to_owned(),
            plugin_options: Vec::new(),
        },
        plugin,
    )
}

/// A user as views embed it.
pub fn user(user: &UserRecord) -> api::UserView {
    api::UserView {
        id: user.id,
        username: user.username.clone(),
        email: user.email.clone(),
        active: user.active,
    }
}

/// An authority, as `GET /authorities/{id}` shows it.
pub fn authority(app: &App, detail: &AuthorityDetail) -> api::AuthorityView {
    let record = &detail.record;
    api::AuthorityView {
        id: record.id,
        name: record.name.clone(),
        owner: record.owner.clone(),
        description: record.description.clone(),
        active: record.active,
        options: None,
        default_validity_days: record.default_validity_days,
        max_issuance_days: record.max_issuance_days,
        is_cab_compliant: record.cab_compliant,
        is_cn_optional: true,
        plugin: plugin_named(app, &record.plugin_name),
        user: detail.creator.as_ref().map(user),
        roles: detail
            .roles
            .iter()
            .map(|r| api::RoleRef {
                id: r.id,
                name: r.name.clone(),
            })
            .collect(),
        authority_certificate: detail
            .certificate
            .as_ref()
            .map(|c| api::AuthorityCertificateView {
                id: c.id,
                name: c.name.clone(),
                owner: c.owner.clone(),
                description: c.description.clone(),
                active: active(c, app),
                bits: c.bits,
                body: c.body.clone(),
                chain: c.chain.clone(),
                cn: c.cn.clone(),
                not_before: date(c.not_before),
                not_after: date(c.not_after),
                status: c.status.clone(),
                serial: c.serial.clone(),
                user: c.creator.as_ref().map(user),
            }),
        parent: record.parent_id.map(|id| api::IdView { id }),
        key_uri: record.key_uri.clone(),
        crl_url: record.crl_url.clone(),
        issuer_url: record.issuer_url.clone(),
        permitted_domains: record.permitted_domains.clone(),
        date_created: date(record.date_created),
    }
}

/// The short authority object embedded in certificates.
fn authority_brief(app: &App, a: &AuthorityBrief) -> api::AuthorityBrief {
    api::AuthorityBrief {
        id: a.id,
        name: a.name.clone(),
        owner: a.owner.clone(),
        description: a.description.clone(),
        active: a.active,
        default_validity_days: a.default_validity_days,
        max_issuance_days: a.max_issuance_days,
        is_cab_compliant: a.cab_compliant,
        is_cn_optional: true,
        plugin: plugin_named(app, &a.plugin_name),
        authority_certificate: api::ValidityView {
            not_before: a.not_before.map(date),
            not_after: a.not_after.map(date),
        },
    }
}

fn rotation_policy(record: &CertificateRecord) -> Option<api::RotationPolicyView> {
    record
        .rotation_policy
        .as_ref()
        .map(|(id, name, days)| api::RotationPolicyView {
            id: *id,
            name: name.clone(),
            days: *days,
        })
}

fn active(record: &CertificateRecord, app: &App) -> bool {
    record.not_after > app.clock.unix()
        && record.status.as_deref() != Some("revoked")
        && !record.deleted
}

/// The short form of a certificate used in `replaces` and `replacedBy`.
fn brief(record: &CertificateRecord, app: &App) -> api::CertificateBrief {
    api::CertificateBrief {
        id: record.id,
        name: record.name.clone(),
        owner: record.owner.clone(),
        description: record.description.clone(),
        active: active(record, app),
        bits: record.bits,
        body: record.body.clone(),
        chain: record.chain.clone(),
        csr: record.csr.clone(),
        cn: record.cn.clone(),
        common_name: record.cn.clone(),
        issuer: api::Empty {},
        notify: record.notify,
        rotation: record.rotation,
        not_before: date(record.not_before),
        not_after: date(record.not_after),
        validity_start: date(record.not_before),
        validity_end: date(record.not_after),
        status: record.status.clone(),
        rotation_policy: rotation_policy(record),
    }
}

/// A certificate in a list: the full view, or the short one.
pub fn certificate_item(
    app: &App,
    record: &CertificateRecord,
    links: &CertificateLinks,
    short: bool,
) -> api::CertificateItem {
    if short {
        api::CertificateItem::Short(Box::new(api::CertificateShort {
            id: record.id,
            name: record.name.clone(),
            cn: record.cn.clone(),
            owner: record.owner.clone(),
            issuer: record.issuer.clone(),
            notify: record.notify,
            rotation: record.rotation,
            authority: record.authority.as_ref().map(|a| authority_brief(app, a)),
        }))
    } else {
        api::CertificateItem::Full(Box::new(certificate(app, record, links)))
    }
}

/// A certificate, as `GET /certificates/{id}` shows it.
pub fn certificate(
    app: &App,
    record: &CertificateRecord,
    links: &CertificateLinks,
) -> api::CertificateView {
    // Rows stored before the details were kept beside the certificate: parse it.
    let details = record.details.clone().or_else(|| {
        x509::first_certificate(&record.body, "body")
            .and_then(|der| x509::parse(&der, "body"))
            .ok()
            .map(|parsed| CertificateDetails::of(&parsed))
    });
    let details = details.as_ref();
    let subject = |pick: fn(&CertificateDetails) -> &String| {
        details.map(|d| pick(d).clone()).unwrap_or_default()
    };
    api::CertificateView {
        id: record.id,
        name: record.name.clone(),
        owner: record.owner.clone(),
        description: record.description.clone(),
        active: active(record, app),
        notify: record.notify,
        rotation: record.rotation,
        body: record.body.clone(),
        chain: record.chain.clone().unwrap_or_default(),
        csr: record.csr.clone(),
        cn: record.cn.clone(),
        common_name: record.cn.clone(),
        bits: record.bits,
        key_type: record.key_type.clone(),
        issuer: record.issuer.clone(),
        serial: record.serial.clone(),
        serial_hex: record.serial_hex.clone(),
        signing_algorithm: record.signing_algorithm.clone(),
        not_before: date(record.not_before),
        not_after: date(record.not_after),
        validity_start: date(record.not_before),
        validity_end: date(record.not_after),
        date_created: date(record.date_created),
        deleted: record.deleted,
        distinguished_name: record.distinguished_name.clone(),
        external_id: record.external_id.clone(),
        has_private_key: record.has_private_key,
        san: None,
        status: record.status.clone(),
        organization: subject(|p| &p.organization),
        organizational_unit: subject(|p| &p.organizational_unit),
        country: subject(|p| &p.country),
        state: subject(|p| &p.state),
        location: subject(|p| &p.location),
        domains: links
            .domains
            .iter()
            .map(|d| api::DomainView {
                id: d.id,
                name: d.name.clone(),
                sensitive: d.sensitive,
            })
            .collect(),
        destinations: Vec::new(),
        notifications: Vec::new(),
        endpoints: Vec::new(),
        roles: Vec::new(),
        replaces: links.replaces.iter().map(|r| brief(r, app)).collect(),
        replaced_by: links.replaced_by.iter().map(|r| brief(r, app)).collect(),
        rotation_policy: rotation_policy(record),
        dns_provider: None,
        dns_provider_id: None,
        authority: record.authority.as_ref().map(|a| authority_brief(app, a)),
        user: record.creator.as_ref().map(user),
        extensions: api::ExtensionsView {
            sub_alt_names: api::NamesView {
                names: details
                    .map(|d| {
                        d.alt_names
                            .iter()
                            .map(|n| api::NameView {
                                name_type: n.kind.to_owned(),
                                value: n.value.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            basic_constraints: api::BasicConstraintsView {
                ca: record.is_ca,
                path_length: details.and_then(|d| d.path_length),
            },
            authority_key_identifier: api::AuthorityKeyIdentifierView {
                use_authority_cert: false,
                use_key_identifier: true,
            },
            extended_key_usage: api::ExtendedKeyUsageView {
                use_server_authentication: details.is_some_and(|d| d.server_auth),
                use_client_authentication: details.is_some_and(|d| d.client_auth),
            },
        },
    }
}

/// A pending certificate, as `GET /pending_certificates/{id}` shows it.
pub fn pending(record: &PendingRecord) -> api::PendingCertificateView {
    api::PendingCertificateView {
        id: record.id,
        name: record.name.clone(),
        external_id: record.external_id.clone(),
        owner: record.owner.clone(),
        description: record.description.clone(),
        active: record.notify,
        notify: record.notify,
        rotation: record.rotation,
        cn: record.common_name.clone(),
        common_name: record.common_name.clone(),
        csr: record.csr.clone(),
        chain: String::new(),
        deleted: false,
        issuer: record.authority_name.clone(),
        status: record.status.clone(),
        number_attempts: record.number_attempts,
        resolved: record.resolved,
        resolved_cert_id: record.resolved_certificate_id,
        key_type: record.key_type.clone(),
        has_private_key: record.has_private_key,
        date_created: date(record.date_created),
        last_updated: date(record.last_updated),
        user: record.creator.as_ref().map(user),
        authority: api::PendingAuthority {
            id: record.authority_id,
            name: record.authority_name.clone(),
        },
        domains: record
            .dns_names
            .iter()
            .map(|name| api::PendingDomain { name: name.clone() })
            .collect(),
        replaces: record
            .replaces
            .iter()
            .map(|&id| api::IdView { id })
            .collect(),
        destinations: Vec::new(),
        notifications: Vec::new(),
        roles: Vec::new(),
    }
}
