//! `GET /pending_certificates`, `GET/PUT/DELETE /pending_certificates/{id}`,
//! `GET /pending_certificates/{id}/key`, `POST /pending_certificates/{id}/upload`.

use super::{ApiError, AppState, Caller, IdPath, JsonBody, QueryParams, views};
use crate::certificates::key_response;
use crate::json::OptionalJsonBody;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use lemur_api::{
    CancelPendingCertificate, ErrorBody, Page, PendingCertificateView, PendingQuery, PrivateKey,
    UpdatePendingCertificate, UploadPendingCertificate,
};
use lemur_core::pending;

/// A page of the orders waiting for their CA that the caller may see, newest first unless
/// sorted otherwise, filtered as the certificate list is.
#[utoipa::path(operation_id = "listPendingCertificates", get, path = "/pending_certificates", tag = "pending certificates", params(PendingQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page", body = Page<PendingCertificateView>),
        (status = 400, description = "Invalid paging, filter or sort (reasons names it)", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn list(
    State(app): AppState,
    Caller(subject): Caller,
    QueryParams(query): QueryParams<PendingQuery>,
) -> Result<Json<Page<PendingCertificateView>>, ApiError> {
    let (records, total) = pending::list(&app, &subject, &query).await?;
    Ok(Json(Page {
        items: records.iter().map(views::pending).collect(),
        total,
        next: None,
    }))
}

/// One pending certificate, delivered or not.
#[utoipa::path(operation_id = "getPendingCertificate", get, path = "/pending_certificates/{id}", tag = "pending certificates",
    params(("id" = i64, Path, description = "Pending certificate id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The pending certificate", body = PendingCertificateView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not the caller's to read", body = ErrorBody),
        (status = 404, description = "No such pending certificate", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn get(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
) -> Result<Json<PendingCertificateView>, ApiError> {
    let record = pending::get(&app, &subject, id).await?;
    Ok(Json(views::pending(&record)))
}

/// Change the owner, description or flags of an order still waiting.
#[utoipa::path(operation_id = "updatePendingCertificate", put, path = "/pending_certificates/{id}", tag = "pending certificates",
    params(("id" = i64, Path, description = "Pending certificate id")), request_body = UpdatePendingCertificate,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed", body = PendingCertificateView),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not the caller's to change", body = ErrorBody),
        (status = 404, description = "No such pending certificate", body = ErrorBody),
        (status = 409, description = "Delivered already", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn update(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<UpdatePendingCertificate>,
) -> Result<Json<PendingCertificateView>, ApiError> {
    let record = pending::update(&app, &subject, id, body).await?;
    Ok(Json(views::pending(&record)))
}

/// Cancel an order at its CA and delete it, with its key (the body and its note are optional).
#[utoipa::path(operation_id = "cancelPendingCertificate", delete, path = "/pending_certificates/{id}", tag = "pending certificates",
    params(("id" = i64, Path, description = "Pending certificate id")), request_body = Option<CancelPendingCertificate>,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Cancelled and deleted"),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not the caller's to cancel", body = ErrorBody),
        (status = 404, description = "No such pending certificate", body = ErrorBody),
        (status = 409, description = "Delivered already", body = ErrorBody),
        (status = 503, description = "Issuer or database unavailable", body = ErrorBody),
    ))]
pub async fn cancel(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
    OptionalJsonBody(body): OptionalJsonBody<CancelPendingCertificate>,
) -> Result<StatusCode, ApiError> {
    pending::cancel(&app, &subject, id, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The private key generated for an order, unsealed by the HSM, with no-cache headers; every
/// view is audited.
#[utoipa::path(operation_id = "getPendingCertificateKey", get, path = "/pending_certificates/{id}/key", tag = "pending certificates",
    params(("id" = i64, Path, description = "Pending certificate id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The private key, PEM", body = PrivateKey),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not the caller's key", body = ErrorBody),
        (status = 404, description = "No such pending certificate, or no key generated here", body = ErrorBody),
        (status = 503, description = "HSM or database unavailable", body = ErrorBody),
    ))]
pub async fn key(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
) -> Result<impl IntoResponse, ApiError> {
    key_response(pending::private_key(&app, &subject, id).await?)
}

/// Deliver the certificate the CA signed for an order: signed by the order's authority, for the
/// order's key and names, a TLS server certificate. It is stored as a certificate
/// (`resolvedCertId`), and the order resolved, as Lemur answers.
#[utoipa::path(operation_id = "uploadPendingCertificate", post, path = "/pending_certificates/{id}/upload", tag = "pending certificates",
    params(("id" = i64, Path, description = "Pending certificate id")), request_body = UploadPendingCertificate,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Resolved: the order, with the certificate it became", body = PendingCertificateView),
        (status = 400, description = "Not the CA's answer to this order", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not the caller's to deliver", body = ErrorBody),
        (status = 404, description = "No such pending certificate", body = ErrorBody),
        (status = 409, description = "Delivered, cancelled or changed meanwhile, or the authority is inactive", body = ErrorBody),
        (status = 503, description = "HSM or database unavailable", body = ErrorBody),
    ))]
pub async fn upload(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<UploadPendingCertificate>,
) -> Result<Json<PendingCertificateView>, ApiError> {
    let record = pending::deliver(&app, &subject, id, body).await?;
    Ok(Json(views::pending(&record)))
}
