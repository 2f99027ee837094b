//! `GET/POST /certificates`, `GET /certificates/{id}`, `POST /certificates/upload`,
//! `GET /certificates/{id}/key`.

use super::{ApiError, AppState, Caller, IdPath, JsonBody, QueryParams, views};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use lemur_api::{CertificateQuery, CreateCertificate, UploadCertificate};
use lemur_core::App;
use lemur_core::certificates;
use lemur_core::policy::Subject;
use serde_json::{Value, json};

/// The full view of certificate `id`, as the caller may see it.
async fn view(app: &App, subject: &Subject, id: i64) -> Result<Json<Value>, ApiError> {
    let (record, links) = certificates::get(app, subject, id).await?;
    Ok(Json(views::certificate(app, &record, &links, false)))
}

/// Issues a certificate.
pub async fn create(
    State(app): AppState,
    Caller(subject): Caller,
    JsonBody(body): JsonBody<CreateCertificate>,
) -> Result<Json<Value>, ApiError> {
    let id = certificates::issue(&app, &subject, body).await?;
    view(&app, &subject, id).await
}

/// Imports a certificate.
pub async fn upload(
    State(app): AppState,
    Caller(subject): Caller,
    JsonBody(body): JsonBody<UploadCertificate>,
) -> Result<Json<Value>, ApiError> {
    let id = certificates::upload(&app, &subject, body).await?;
    view(&app, &subject, id).await
}

/// One certificate.
pub async fn get(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    view(&app, &subject, id).await
}

/// A page of certificates; `filter=cn;value` (also name, owner, serial, authority).
pub async fn list(
    State(app): AppState,
    Caller(subject): Caller,
    QueryParams(query): QueryParams<CertificateQuery>,
) -> Result<Json<Value>, ApiError> {
    let (page, total) = certificates::list(&app, &subject, &query).await?;
    let items: Vec<Value> = page
        .iter()
        .map(|(record, links)| views::certificate(&app, record, links, query.short))
        .collect();
    Ok(Json(json!({ "items": items, "total": total })))
}

/// The private key, unsealed by the HSM, with no-cache headers; every view is audited.
pub async fn key(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
) -> Result<impl IntoResponse, ApiError> {
    let key = certificates::private_key(&app, &subject, id).await?;
    Ok((
        [
            (
                header::CACHE_CONTROL,
                "no-store, no-cache, must-revalidate, private",
            ),
            (header::PRAGMA, "no-cache"),
        ],
        Json(json!({ "key": key.as_str() })),
    ))
}
