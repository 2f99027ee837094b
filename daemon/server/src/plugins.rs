//! `GET /plugins`, `GET /plugins?type=...`, `GET /plugins/{slug}`: the installed plugins and the
//! options each takes, in Lemur's shapes.

use super::{ApiError, AppState, Caller, QueryParams, views};
use axum::Json;
use axum::extract::{Path, State};
use lemur_api::{ErrorBody, Page, PluginQuery, PluginView};
use lemur_core::Error;
use lemur_core::plugins::PluginKind;
use lemur_core::policy::{Action, authorize};

/// Every installed plugin, or those of one `type`.
#[utoipa::path(operation_id = "listPlugins", get, path = "/plugins", tag = "plugins", params(PluginQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The plugins", body = Page<PluginView>),
        (status = 400, description = "Unknown type", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn list(
    State(app): AppState,
    Caller(subject): Caller,
    QueryParams(query): QueryParams<PluginQuery>,
) -> Result<Json<Page<PluginView>>, ApiError> {
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
    let items: Vec<PluginView> = app
        .plugins
        .all(kind)
        .into_iter()
        .map(views::plugin)
        .collect();
    Ok(Json(Page {
        total: i64::try_from(items.len()).unwrap_or(i64::MAX),
        items,
        next: None,
    }))
}

/// One plugin by slug.
#[utoipa::path(operation_id = "getPlugin", get, path = "/plugins/{slug}", tag = "plugins",
    params(("slug" = String, Path, description = "Plugin slug")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The plugin", body = PluginView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such plugin", body = ErrorBody),
    ))]
pub async fn get(
    State(app): AppState,
    Caller(subject): Caller,
    Path(slug): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    authorize(&subject, Action::ReadPlugins)?;
    let info = app.plugins.info(&slug).ok_or_else(|| Error::NotFound {
        what: "plugin",
        id: slug.clone(),
    })?;
    Ok(Json(views::plugin(info)))
}
