//! Authorities: create (through the issuer plugin the request names), read and list.

use crate::App;
use crate::ca::names::{valid_dns_name, within};
use crate::ca::{lint, x509};
use crate::error::{Error, Result};
use crate::model::{AuthorityDetail, AuthorityRecord, LogEntry, NewAuthority, NewCertificate};
use crate::plugins::{AuthorityPlan, AuthorityToCreate, CreatedAuthority, hsm_issuer};
use crate::policy::{Action, Role, Subject, authorize};
use crate::requests::{subject_fields, validity};
use lemur_api::{CreateAuthority, Paging};

/// Longest validity, in days, an authority may be given as a default or a maximum (100 years).
const MAX_DAYS: i64 = 36_500;

/// Creates a root, a sub-CA or an imported authority; returns its id.
pub async fn create(app: &App, subject: &Subject, body: CreateAuthority) -> Result<i64> {
    authorize(subject, Action::CreateAuthority)?;
    check_settings(&body)?;
    let slug = body
        .plugin
        .as_ref()
        .map_or(hsm_issuer::SLUG, |p| p.slug.as_str());
    let issuer = app.plugins.issuer(slug).ok_or_else(|| {
        Error::invalid(
            "plugin.slug",
            format!("{slug:?} is not an installed issuer; see GET /api/1/plugins?type=issuer"),
        )
    })?;
    if !valid_name(&body.name) {
        return Err(Error::invalid(
            "name",
            "use 1 to 128 letters, digits, '-', '_' or '.'",
        ));
    }
    if body.owner.trim().is_empty() {
        return Err(Error::invalid("owner", "is required"));
    }
    // A registered CA certificate (`body`) brings its own subject.
    if body.common_name.trim().is_empty() && body.body.is_none() {
        return Err(Error::invalid("commonName", "is required"));
    }
    if app.store.authority_by_name(&body.name).await?.is_some() {
        return Err(Error::invalid(
            "name",
            format!("an authority named {:?} exists", body.name),
        ));
    }
    check_role_names(app, &body).await?;
    let plan = plan(app, &body).await?;
    let created = issuer.create_authority(app, &plan).await?;
    let stored = store(app, subject, &body, &plan, issuer.info().slug, &created).await;
    if stored.is_err() {
        issuer.discard_authority(app, &created).await;
    }
    stored
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The request as an issuer sees it: kind, key, validity (10 years from now by default).
async fn plan(app: &App, body: &CreateAuthority) -> Result<AuthorityPlan> {
    let now = app.clock.unix();
    let (start, end) = validity(
        body.validity_start.as_deref(),
        body.validity_end.as_deref(),
        body.validity_years
            .or(Some(10))
            .filter(|_| body.validity_start.is_none()),
        now - 300,
    )?;
    let kind = match (body.kind.as_str(), &body.key_uri, &body.body) {
        (_, Some(key_uri), Some(pem)) => AuthorityToCreate::Import {
            body: pem.clone(),
            key_uri: key_uri.clone(),
            chain: body.chain.clone(),
        },
        (_, Some(_), None) => {
            return Err(Error::invalid(
                "body",
                "is required with keyUri to import an authority",
            ));
        }
        (_, None, Some(_)) if body.parent.is_some() => {
            return Err(Error::invalid(
                "parent",
                "a registered CA certificate brings its own issuer: give its chain, not a parent",
            ));
        }
        (_, None, Some(pem)) => AuthorityToCreate::External {
            body: pem.clone(),
            chain: body.chain.clone(),
        },
        ("root", None, _) => AuthorityToCreate::Root,
        ("subca", None, _) => {
            let parent_id = body
                .parent
                .as_ref()
                .ok_or_else(|| Error::invalid("parent", "is required for a subca"))?
                .id;
            let parent = app.store.authority(parent_id).await?.ok_or_else(|| {
                Error::invalid("parent", format!("authority {parent_id} does not exist"))
            })?;
            if parent.key_uri.is_none() {
                return Err(Error::invalid(
                    "parent",
                    format!(
                        "authority {}'s key is not in the HSM: have that CA sign the sub-CA and register it with {}",
                        parent.name,
                        crate::plugins::offline_issuer::SLUG
                    ),
                ));
            }
            AuthorityToCreate::SubCa {
                parent: Box::new(parent),
            }
        }
        (other, _, _) => {
            return Err(Error::invalid(
                "type",
                format!("{other:?} is not root or subca"),
            ));
        }
    };
    let parent = match &kind {
        AuthorityToCreate::SubCa { parent } => Some(parent.as_ref()),
        _ => None,
    };
    let permitted = permitted_domains(body.permitted_domains.as_deref(), parent)?;
    Ok(AuthorityPlan {
        name: body.name.clone(),
        common_name: body.common_name.clone(),
        kind,
        key: x509::algorithm_for(&body.key_type)?,
        not_before: start.unwrap_or(now - 300),
        not_after: end.unwrap_or(now + 10 * 365 * 86_400),
        subject: subject_fields(body.subject.clone())?,
        cab_compliant: body.cab_compliant,
        permitted_domains: permitted,
    })
}

/// The domains a new authority may issue for: those asked (checked, lower-case), which must lie
/// within its parent's; else its parent's; else any.
fn permitted_domains(
    asked: Option<&[String]>,
    parent: Option<&AuthorityRecord>,
) -> Result<Option<Vec<String>>> {
    let inherited = parent.and_then(|p| p.permitted_domains.clone());
    let Some(asked) = asked else {
        return Ok(inherited);
    };
    let mut domains = Vec::with_capacity(asked.len());
    for domain in asked {
        let domain = domain.trim().to_ascii_lowercase();
        if !valid_dns_name(&domain) || domain.starts_with("*.") {
            return Err(Error::invalid(
                "permittedDomains",
                format!("{domain:?} is not a domain name"),
            ));
        }
        if let Some(allowed) = &inherited
            && !allowed.iter().any(|parent| within(&domain, parent))
        {
            return Err(Error::invalid(
                "permittedDomains",
                format!("{domain:?} is outside the parent's permitted domains"),
            ));
        }
        domains.push(domain);
    }
    if domains.is_empty() {
        return Err(Error::invalid(
            "permittedDomains",
            "name at least one domain, or leave it out for any",
        ));
    }
    Ok(Some(domains))
}

/// Refuses authority settings that would break every later issuance, naming the field.
fn check_settings(request: &CreateAuthority) -> Result<()> {
    for (field, days) in [
        ("maxIssuanceDays", request.max_issuance_days),
        ("defaultValidityDays", request.default_validity_days),
    ] {
        if days.is_some_and(|days| !(1..=MAX_DAYS).contains(&days)) {
            return Err(Error::invalid(
                field,
                format!("must be between 1 and {MAX_DAYS} days (omit it for the default)"),
            ));
        }
    }
    for (field, url) in [
        ("crlUrl", &request.crl_url),
        ("issuerUrl", &request.issuer_url),
    ] {
        if let Some(url) = url
            && !valid_url(url)
        {
            return Err(Error::invalid(
                field,
                "must be an absolute http:// or https:// URL in ASCII, without spaces",
            ));
        }
    }
    if request.cab_compliant && request.crl_url.is_none() {
        return Err(Error::invalid(
            "crlUrl",
            "is required for a CA/Browser Forum compliant authority: its certificates must name a CRL",
        ));
    }
    Ok(())
}

/// An absolute http(s) URL that fits an IA5String, as CRL distribution points and AIA need.
fn valid_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|rest| {
        !rest.is_empty()
            && !rest.starts_with('/')
            && url.len() <= 2048
            && url.bytes().all(|b| b.is_ascii_graphic())
    })
}

/// The roles an authority gets for itself alone: its administrators and its operators, who may
/// issue from it (with its owner's role).
fn own_roles(name: &str) -> [(String, String); 2] {
    [
        (
            format!("{name}_admin"),
            format!("Administers authority {name}"),
        ),
        (
            format!("{name}_operator"),
            format!("Issues from authority {name}"),
        ),
    ]
}

/// Refuses names whose automatic roles would collide with roles that exist: a pre-created
/// `<name>_operator`, or an owner named like a built-in or another authority's role, would hand
/// its holders this authority.
async fn check_role_names(app: &App, body: &CreateAuthority) -> Result<()> {
    if !matches!(Role::parse(&body.owner), Role::Named(_))
        || body.owner.ends_with("_admin")
        || body.owner.ends_with("_operator")
    {
        return Err(Error::invalid(
            "owner",
            "is a built-in role name or ends in _admin or _operator, which name authority roles",
        ));
    }
    for (role, _) in own_roles(&body.name) {
        if app.store.role_by_name(&role).await?.is_some() {
            return Err(Error::invalid(
                "name",
                format!(
                    "a role named {role:?} exists already and would be given this authority; choose another name"
                ),
            ));
        }
    }
    Ok(())
}

/// Records a new authority, its certificate, roles and audit row; returns its id.
async fn store(
    app: &App,
    subject: &Subject,
    request: &CreateAuthority,
    plan: &AuthorityPlan,
    plugin_name: &str,
    created: &CreatedAuthority,
) -> Result<i64> {
    let parsed = x509::parse(&created.der, "body")?;
    if !parsed.is_ca {
        return Err(Error::invalid(
            "body",
            "is not a CA certificate (basicConstraints CA:TRUE)",
        ));
    }
    let now = app.clock.unix();
    let max_days = request.max_issuance_days;
    let default_days = request
        .default_validity_days
        .unwrap_or(app.config.defaults.validity_days)
        .min(max_days.unwrap_or(i64::MAX));
    let default_days = if request.cab_compliant {
        default_days.min(lint::cabf_max_validity_secs(now) / 86_400)
    } else {
        default_days
    };
    let parent_id = match &plan.kind {
        AuthorityToCreate::SubCa { parent } => Some(parent.id),
        _ => None,
    };
    let root_id = match parent_id {
        Some(parent_id) => Some(root_of(app, parent_id).await?),
        None => None,
    };
    let own_roles = own_roles(&request.name);
    let owner_description = format!("Owner role for {}", request.owner);
    let new = NewAuthority {
        name: &request.name,
        owner: &request.owner,
        description: &request.description,
        plugin_name,
        key_uri: created.key_uri.as_deref(),
        parent_id,
        cab_compliant: request.cab_compliant,
        max_issuance_days: max_days,
        default_validity_days: default_days,
        crl_url: request.crl_url.as_deref(),
        issuer_url: request.issuer_url.as_deref(),
        user_id: subject.user_id(),
        own_roles: &own_roles,
        owner_role: (&request.owner, &owner_description),
        permitted_domains: plan.permitted_domains.as_deref(),
    };
    let name = crate::certificates::lemur_name(&parsed);
    let certificate = NewCertificate {
        parsed: &parsed,
        names: [&name[0], &name[1]],
        owner: &request.owner,
        description: &request.description,
        notify: true,
        rotation: false,
        chain: created.chain.as_deref(),
        csr: None,
        sealed_private_key: None,
        authority_id: None,
        root_authority_id: root_id,
        user_id: subject.user_id(),
        rotation_policy_id: None,
        replaces: &[],
        domains: &crate::certificates::dns_domains(&parsed),
        idempotency: None,
    };
    let log = LogEntry {
        certificate_id: None,
        log_type: "create_authority",
        user_id: subject.user_id(),
        source_address: subject.source(),
        details: &format!(
            "authority {} ({})",
            request.name,
            created
                .key_uri
                .as_deref()
                .unwrap_or("its key is outside the HSM")
        ),
    };
    // A name taken since the check above is a 409 from the store.
    app.store
        .create_authority(&new, &certificate, &log, now)
        .await
}

/// The root authority above `authority_id`.
async fn root_of(app: &App, authority_id: i64) -> Result<i64> {
    let mut current = authority_id;
    for _ in 0..16 {
        match app
            .store
            .authority(current)
            .await?
            .and_then(|a| a.parent_id)
        {
            Some(parent) => current = parent,
            None => break,
        }
    }
    Ok(current)
}

/// One authority with what its view shows.
pub async fn get(app: &App, subject: &Subject, id: i64) -> Result<AuthorityDetail> {
    authorize(subject, Action::ReadAuthorities)?;
    app.store
        .authority_detail(id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "authority",
            id: id.to_string(),
        })
}

/// A page of authorities, oldest first, and the total.
pub async fn list(
    app: &App,
    subject: &Subject,
    paging: Paging,
) -> Result<(Vec<AuthorityDetail>, i64)> {
    authorize(subject, Action::ReadAuthorities)?;
    app.store.authorities(crate::requests::page(paging)?).await
}
