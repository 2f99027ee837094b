//! `GET/POST /domains`, `GET/PUT /domains/{id}`.

use super::{ApiError, AppState, Caller, IdPath, JsonBody, QueryParams};
use axum::Json;
use axum::extract::State;
use lemur_api::{CreateDomain, DomainQuery, DomainView, ErrorBody, Page, UpdateDomain};
use lemur_core::domains;
use lemur_core::model::DomainRecord;

fn view(record: DomainRecord) -> DomainView {
    DomainView {
        id: record.id,
        name: record.name,
        sensitive: record.sensitive,
    }
}

/// A page of domains by name; `filter=name;value` for names containing value.
#[utoipa::path(operation_id = "listDomains", get, path = "/domains", tag = "domains", params(DomainQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page", body = Page<DomainView>),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn list(
    State(app): AppState,
    Caller(subject): Caller,
    QueryParams(query): QueryParams<DomainQuery>,
) -> Result<Json<Page<DomainView>>, ApiError> {
    let (records, total) = domains::list(&app, &subject, &query).await?;
    Ok(Json(Page {
        items: records.into_iter().map(view).collect(),
        total,
        next: None,
    }))
}

/// One domain.
#[utoipa::path(operation_id = "getDomain", get, path = "/domains/{id}", tag = "domains",
    params(("id" = i64, Path, description = "Domain id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The domain", body = DomainView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role", body = ErrorBody),
        (status = 404, description = "No such domain", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn get(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
) -> Result<Json<DomainView>, ApiError> {
    Ok(Json(view(domains::get(&app, &subject, id).await?)))
}

/// Record a domain, sensitive or not.
#[utoipa::path(operation_id = "createDomain", post, path = "/domains", tag = "domains", request_body = CreateDomain,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Recorded", body = DomainView),
        (status = 400, description = "Not a domain name", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not allowed", body = ErrorBody),
        (status = 409, description = "Recorded already", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn create(
    State(app): AppState,
    Caller(subject): Caller,
    JsonBody(body): JsonBody<CreateDomain>,
) -> Result<Json<DomainView>, ApiError> {
    Ok(Json(view(domains::create(&app, &subject, body).await?)))
}

/// Mark a domain sensitive or not.
#[utoipa::path(operation_id = "updateDomain", put, path = "/domains/{id}", tag = "domains",
    params(("id" = i64, Path, description = "Domain id")), request_body = UpdateDomain,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = DomainView),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an administrator or sensitive-domain role", body = ErrorBody),
        (status = 404, description = "No such domain", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn update(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<UpdateDomain>,
) -> Result<Json<DomainView>, ApiError> {
    Ok(Json(view(domains::update(&app, &subject, id, body).await?)))
}
