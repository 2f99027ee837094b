//! `GET/POST /authorities`, `GET /authorities/{id}`.

use super::{ApiError, AppState, Caller, IdPath, JsonBody, QueryParams, views};
use axum::Json;
use axum::extract::State;
use lemur_api::{CreateAuthority, Paging};
use lemur_core::authorities;
use serde_json::{Value, json};

/// Creates a root, a sub-CA or an imported authority.
pub async fn create(
    State(app): AppState,
    Caller(subject): Caller,
    JsonBody(body): JsonBody<CreateAuthority>,
) -> Result<Json<Value>, ApiError> {
    let id = authorities::create(&app, &subject, body).await?;
    let detail = authorities::get(&app, &subject, id).await?;
    Ok(Json(views::authority(&app, &detail)))
}

/// One authority.
pub async fn get(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let detail = authorities::get(&app, &subject, id).await?;
    Ok(Json(views::authority(&app, &detail)))
}

/// A page of authorities.
pub async fn list(
    State(app): AppState,
    Caller(subject): Caller,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Json<Value>, ApiError> {
    let (details, total) = authorities::list(&app, &subject, paging).await?;
    let items: Vec<Value> = details.iter().map(|d| views::authority(&app, d)).collect();
    Ok(Json(json!({ "items": items, "total": total })))
}
