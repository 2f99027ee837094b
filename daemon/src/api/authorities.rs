//! `GET/POST /authorities`, `GET /authorities/{id}`.

use super::requests::{IdRef, SubjectRequest, validity};
use super::{ApiError, AppState, Caller, IdPath, JsonBody, Paging, QueryParams, views};
use crate::ca::{self, AuthorityKind, CreateAuthority};
use crate::error::Error;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

/// The plugin object of a request.
#[derive(Debug, Deserialize)]
pub struct PluginRef {
    slug: String,
}

/// Lemur's authority creation body (fields Lemur's UI sends and we do not use are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAuthorityBody {
    name: String,
    owner: String,
    #[serde(default)]
    description: String,
    common_name: String,
    #[serde(rename = "type", default = "root")]
    kind: String,
    parent: Option<IdRef>,
    #[serde(default = "default_key_type")]
    key_type: String,
    validity_start: Option<String>,
    validity_end: Option<String>,
    validity_years: Option<i64>,
    plugin: Option<PluginRef>,
    #[serde(flatten)]
    subject: SubjectRequest,
    #[serde(default)]
    cab_compliant: bool,
    max_issuance_days: Option<i64>,
    default_validity_days: Option<i64>,
    crl_url: Option<String>,
    issuer_url: Option<String>,
    /// Import: the existing CA certificate.
    body: Option<String>,
    /// Import: its key, already in the token.
    key_uri: Option<String>,
    /// Import: its issuers up to the root, unless it is a root itself.
    chain: Option<String>,
}

fn root() -> String {
    "root".into()
}

fn default_key_type() -> String {
    "RSA2048".into()
}

/// Creates a root, a sub-CA or an imported authority. Administrators only, as Lemur's default.
pub async fn create(
    State(app): AppState,
    caller: Caller,
    JsonBody(body): JsonBody<CreateAuthorityBody>,
) -> Result<Json<Value>, ApiError> {
    if !caller.is_admin() {
        return Err(Error::Forbidden("only administrators create authorities".into()).into());
    }
    if let Some(plugin) = &body.plugin
        && plugin.slug != ca::PLUGIN_SLUG
        && plugin.slug != ca::LEMUR_PLUGIN_SLUG
    {
        return Err(Error::invalid(
            "plugin.slug",
            format!(
                "{:?} is not an issuer here; use {}",
                plugin.slug,
                ca::PLUGIN_SLUG
            ),
        )
        .into());
    }
    let now = app.clock.unix();
    let (start, end) = validity(
        body.validity_start.as_deref(),
        body.validity_end.as_deref(),
        body.validity_years
            .or(Some(10))
            .filter(|_| body.validity_start.is_none()),
        now - 300,
    )?;
    let kind = match (body.kind.as_str(), body.key_uri, body.body) {
        (_, Some(key_uri), Some(pem)) => AuthorityKind::Import {
            body: pem,
            key_uri,
            chain: body.chain,
        },
        (_, Some(_), None) => {
            return Err(
                Error::invalid("body", "is required with keyUri to import an authority").into(),
            );
        }
        ("root", None, _) => AuthorityKind::Root,
        ("subca", None, _) => AuthorityKind::SubCa {
            parent_id: body
                .parent
                .ok_or_else(|| Error::invalid("parent", "is required for a subca"))?
                .id,
        },
        (other, _, _) => {
            return Err(Error::invalid("type", format!("{other:?} is not root or subca")).into());
        }
    };
    let request = CreateAuthority {
        name: body.name,
        owner: body.owner,
        description: body.description,
        common_name: body.common_name,
        kind,
        key: ca::x509::algorithm_for(&body.key_type)?,
        not_before: start.unwrap_or(now - 300),
        not_after: end.unwrap_or(now + 10 * 365 * 86_400),
        subject: body.subject.fields()?,
        cab_compliant: body.cab_compliant,
        max_issuance_days: body.max_issuance_days,
        default_validity_days: body.default_validity_days,
        crl_url: body.crl_url,
        issuer_url: body.issuer_url,
    };
    let id = ca::create_authority(&app, caller.actor(), request).await?;
    Ok(Json(
        views::authority(&app, &app.store.authority(id).await?).await?,
    ))
}

/// One authority.
pub async fn get(
    State(app): AppState,
    _caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        views::authority(&app, &app.store.authority(id).await?).await?,
    ))
}

/// A page of authorities.
pub async fn list(
    State(app): AppState,
    _caller: Caller,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Json<Value>, ApiError> {
    let (page, count) = paging.checked()?;
    let (records, total) = app.store.authorities(page, count).await?;
    let mut items = Vec::with_capacity(records.len());
    for record in &records {
        items.push(views::authority(&app, record).await?);
    }
    Ok(Json(json!({ "items": items, "total": total })))
}
