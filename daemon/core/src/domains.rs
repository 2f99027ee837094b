//! Domains: list, read, record, and mark sensitive (Lemur's `/domains`). A sensitive domain, and
//! every name under it, may only be issued for by administrators and the sensitive-domain roles.

use crate::App;
use crate::ca::names::valid_dns_name;
use crate::error::{Error, Result};
use crate::model::{DomainRecord, LogEntry};
use crate::policy::{Action, Subject, authorize};
use crate::requests::page;
use lemur_api::{CreateDomain, DomainQuery, Paging, UpdateDomain};

/// A page of domains, and the total.
pub async fn list(
    app: &App,
    subject: &Subject,
    query: &DomainQuery,
) -> Result<(Vec<DomainRecord>, i64)> {
    authorize(subject, Action::ReadAuthorities)?;
    let page = page(Paging {
        page: query.page,
        count: query.count,
    })?;
    let name = match query.filter.as_deref().map(|f| f.split_once(';')) {
        None => None,
        Some(Some(("name", value))) => Some(value),
        Some(_) => return Err(Error::invalid("filter", "use name;value")),
    };
    app.store.domains(name, page).await
}

/// One domain.
pub async fn get(app: &App, subject: &Subject, id: i64) -> Result<DomainRecord> {
    authorize(subject, Action::ReadAuthorities)?;
    app.store.domain(id).await?.ok_or_else(|| not_found(id))
}

fn not_found(id: i64) -> Error {
    Error::NotFound {
        what: "domain",
        id: id.to_string(),
    }
}

fn sensitive_roles(app: &App) -> Action<'_> {
    Action::SensitiveDomains {
        allowed_roles: &app.config.names.sensitive_domain_roles,
    }
}

fn log<'a>(subject: &'a Subject, log_type: &'a str, details: &'a str) -> LogEntry<'a> {
    LogEntry {
        certificate_id: None,
        log_type,
        user_id: subject.user_id(),
        source_address: subject.source(),
        details,
    }
}

/// Records a domain, sensitive if asked (which needs the sensitive-domain permission).
pub async fn create(app: &App, subject: &Subject, body: CreateDomain) -> Result<DomainRecord> {
    authorize(subject, Action::CreateDomain)?;
    if body.sensitive {
        authorize(subject, sensitive_roles(app))?;
    }
    let name = body.name.trim().to_ascii_lowercase();
    if !valid_dns_name(&name) || name.starts_with("*.") {
        return Err(Error::invalid(
            "name",
            format!("{name:?} is not a domain name"),
        ));
    }
    let details = format!("domain {name} (sensitive: {})", body.sensitive);
    app.store
        .create_domain(
            &name,
            body.sensitive,
            &log(subject, "create_domain", &details),
            app.clock.unix(),
        )
        .await
}

/// Marks a domain sensitive or not.
pub async fn update(
    app: &App,
    subject: &Subject,
    id: i64,
    body: UpdateDomain,
) -> Result<DomainRecord> {
    authorize(subject, sensitive_roles(app))?;
    let details = format!("domain {id} sensitive: {}", body.sensitive);
    app.store
        .set_domain_sensitive(
            id,
            body.sensitive,
            &log(subject, "update_domain", &details),
            app.clock.unix(),
        )
        .await?
        .ok_or_else(|| not_found(id))
}

/// Refuses issuance for sensitive domains (or names under them) unless the subject may.
pub async fn check_sensitive(app: &App, subject: &Subject, dns_names: &[String]) -> Result<()> {
    let sensitive = app.store.sensitive_domains_covering(dns_names).await?;
    if sensitive.is_empty() {
        return Ok(());
    }
    authorize(subject, sensitive_roles(app)).map_err(|_| {
        Error::Forbidden(format!(
            "{} is a sensitive domain: only administrators and the sensitive-domain roles may issue for it",
            sensitive.join(", ")
        ))
    })
}
