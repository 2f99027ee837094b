//! `GET /plugins`, `GET /plugins?type=...`, `GET /plugins/{slug}`: the installed plugins and the
//! options each takes, in Lemur's shapes.

use super::{ApiError, AppState, Caller, QueryParams, views};
use axum::Json;
use axum::extract::{Path, State};
use lemur_api::PluginQuery;
use lemur_core::Error;
use lemur_core::plugins::PluginKind;
use lemur_core::policy::{Action, authorize};
use serde_json::{Value, json};

/// Every installed plugin, or those of one `type`.
pub async fn list(
    State(app): AppState,
    Caller(subject): Caller,
    QueryParams(query): QueryParams<PluginQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&subject, Action::ReadPlugins)?;
    let kind = match query.kind.as_deref() {
        None => None,
        Some(text) => Some(PluginKind::parse(text).ok_or_else(|| {
            Error::invalid(
                "type",
                format!(
                    "{text:?} is not a plugin type: use issuer, destination, source, notification, export or dns_provider"
                ),
            )
        })?),
    };
    let items: Vec<Value> = app
        .plugins
        .all(kind)
        .into_iter()
        .map(views::plugin)
        .collect();
    Ok(Json(json!({ "total": items.len(), "items": items })))
}

/// One plugin by slug.
pub async fn get(
    State(app): AppState,
    Caller(subject): Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&subject, Action::ReadPlugins)?;
    let info = app.plugins.info(&slug).ok_or_else(|| Error::NotFound {
        what: "plugin",
        id: slug.clone(),
    })?;
    Ok(Json(views::plugin(info)))
}
