//! `GET/POST /authorities`, `GET /authorities/{id}`.

use super::{ApiError, AppState, Caller, IdPath, JsonBody, QueryParams, views};
use axum::Json;
use axum::extract::State;
use lemur_api::{AuthorityView, CreateAuthority, ErrorBody, Page, Paging};
use lemur_core::authorities;

/// Create a root, a sub-CA, or adopt a CA whose key is already in the token.
#[utoipa::path(operation_id = "createAuthority", post, path = "/authorities", tag = "authorities", request_body = CreateAuthority,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Created", body = AuthorityView),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 503, description = "HSM, entropy or database unavailable", body = ErrorBody),
    ))]
pub async fn create(
    State(app): AppState,
    Caller(subject): Caller,
    JsonBody(body): JsonBody<CreateAuthority>,
) -> Result<Json<AuthorityView>, ApiError> {
    let id = authorities::create(&app, &subject, body).await?;
    let detail = authorities::get(&app, &subject, id).await?;
    Ok(Json(views::authority(&app, &detail)))
}

/// One authority.
#[utoipa::path(operation_id = "getAuthority", get, path = "/authorities/{id}", tag = "authorities",
    params(("id" = i64, Path, description = "Authority id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The authority", body = AuthorityView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such authority", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn get(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
) -> Result<Json<AuthorityView>, ApiError> {
    let detail = authorities::get(&app, &subject, id).await?;
    Ok(Json(views::authority(&app, &detail)))
}

/// A page of authorities, oldest first.
#[utoipa::path(operation_id = "listAuthorities", get, path = "/authorities", tag = "authorities", params(Paging),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page", body = Page<AuthorityView>),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn list(
    State(app): AppState,
    Caller(subject): Caller,
    QueryParams(paging): QueryParams<Paging>,
) -> Result<Json<Page<AuthorityView>>, ApiError> {
    let (details, total) = authorities::list(&app, &subject, paging).await?;
    let items = details.iter().map(|d| views::authority(&app, d)).collect();
    Ok(Json(Page {
        items,
        total,
        next: None,
    }))
}
