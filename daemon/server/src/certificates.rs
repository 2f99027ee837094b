//! `GET/POST /certificates`, `GET /certificates/{id}`, `POST /certificates/upload`,
//! `GET /certificates/{id}/key`.

use super::{ApiError, AppState, Caller, IdPath, IdempotentJson, JsonBody, QueryParams, views};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use lemur_api::{
    CertificateItem, CertificateQuery, CertificateView, CreateCertificate, ErrorBody, IdView, Page,
    PendingCertificateView, PrivateKey, RevokeCertificate, Stats, StatsItems, StatsLabel,
    StatsQuery, UploadCertificate,
};
use lemur_core::App;
use lemur_core::certificates::{self, IssueOutcome};
use lemur_core::policy::Subject;

/// The full view of certificate `id`, as the caller may see it.
async fn view(app: &App, subject: &Subject, id: i64) -> Result<Json<CertificateView>, ApiError> {
    let (record, links) = certificates::get(app, subject, id).await?;
    Ok(Json(views::certificate(app, &record, &links)))
}

/// Issue a certificate from an authority, from a CSR or with a key generated in the HSM; an
/// authority that answers later (`offline-issuer`) takes an order instead: 202 with the pending
/// certificate.
#[utoipa::path(operation_id = "createCertificate", post, path = "/certificates", tag = "certificates", request_body = CreateCertificate,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "A key unique to this request (a UUID): a retry with the same key and body gets the certificate the first attempt made")),
    responses(
        (status = 200, description = "Issued", body = CertificateView),
        (status = 202, description = "Ordered: a pending certificate until the CA answers", body = PendingCertificateView),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role on the authority", body = ErrorBody),
        (status = 422, description = "Idempotency-Key used with another request", body = ErrorBody),
        (status = 503, description = "HSM, entropy or database unavailable", body = ErrorBody),
    ))]
pub async fn create(
    State(app): AppState,
    Caller(subject): Caller,
    IdempotentJson(body, idempotency): IdempotentJson<CreateCertificate>,
) -> Result<axum::response::Response, ApiError> {
    Ok(
        match certificates::issue(&app, &subject, body, idempotency.as_ref()).await? {
            IssueOutcome::Issued(issued) => {
                let (record, links) = *issued;
                Json(views::certificate(&app, &record, &links)).into_response()
            }
            IssueOutcome::Pending(pending) => (
                axum::http::StatusCode::ACCEPTED,
                Json(views::pending(&pending)),
            )
                .into_response(),
        },
    )
}

/// Import a certificate issued elsewhere, with its chain and private key.
#[utoipa::path(operation_id = "uploadCertificate", post, path = "/certificates/upload", tag = "certificates",
    request_body = UploadCertificate, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "A key unique to this request (a UUID): a retry with the same key and body gets the certificate the first attempt made")),
    responses(
        (status = 200, description = "Imported", body = CertificateView),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not allowed to import", body = ErrorBody),
        (status = 409, description = "Already in the inventory", body = ErrorBody),
        (status = 422, description = "Idempotency-Key used with another request", body = ErrorBody),
        (status = 503, description = "HSM or database unavailable", body = ErrorBody),
    ))]
pub async fn upload(
    State(app): AppState,
    Caller(subject): Caller,
    IdempotentJson(body, idempotency): IdempotentJson<UploadCertificate>,
) -> Result<Json<CertificateView>, ApiError> {
    let (record, links) = certificates::upload(&app, &subject, body, idempotency.as_ref()).await?;
    Ok(Json(views::certificate(&app, &record, &links)))
}

/// One certificate.
#[utoipa::path(operation_id = "getCertificate", get, path = "/certificates/{id}", tag = "certificates",
    params(("id" = i64, Path, description = "Certificate id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The certificate", body = CertificateView),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not the caller's to read", body = ErrorBody),
        (status = 404, description = "No such certificate", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn get(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
) -> Result<Json<CertificateView>, ApiError> {
    view(&app, &subject, id).await
}

/// A page of the certificates the caller may see, newest first unless `sortBy` says otherwise;
/// `filter=field;value` with field one of cn, name (substrings), san (valid for a DNS name),
/// owner, serial, authority;
/// `serial` in decimal, `0x` hex or colon hex; `cursor` (the `next` of a page) for the page
/// after it at any depth. `total` is exact up to 1,000 and a count at most a minute old past
/// that.
#[utoipa::path(operation_id = "listCertificates", get, path = "/certificates", tag = "certificates", params(CertificateQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page", body = Page<CertificateItem>),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn list(
    State(app): AppState,
    Caller(subject): Caller,
    QueryParams(query): QueryParams<CertificateQuery>,
) -> Result<Json<Page<CertificateItem>>, ApiError> {
    let listing = certificates::list(&app, &subject, &query).await?;
    let items = listing
        .items
        .iter()
        .map(|(record, links)| views::certificate_item(&app, record, links, query.short))
        .collect();
    Ok(Json(Page {
        items,
        total: listing.total,
        next: listing.next,
    }))
}

/// Lemur's certificate statistics over the certificates the caller may see.
#[utoipa::path(operation_id = "certificateStats", get, path = "/certificates/stats", tag = "certificates", params(StatsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Labels and counts", body = Stats),
        (status = 400, description = "Unknown metric", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn stats(
    State(app): AppState,
    Caller(subject): Caller,
    QueryParams(query): QueryParams<StatsQuery>,
) -> Result<Json<Stats>, ApiError> {
    let metric = query.metric.as_deref().unwrap_or_default();
    let counted = certificates::stats(&app, &subject, metric).await?;
    let (labels, values) = counted
        .into_iter()
        .map(|(label, count)| {
            let label = match label {
                lemur_core::model::StatsLabel::Int(value) => StatsLabel::Int(value),
                lemur_core::model::StatsLabel::Text(text) => StatsLabel::Text(text),
            };
            (label, count)
        })
        .unzip();
    let items = StatsItems { labels, values };
    Ok(Json(Stats {
        total: i64::try_from(items.values.len()).unwrap_or(i64::MAX),
        items,
    }))
}

/// The private key, unsealed by the HSM, with no-cache headers; every view is audited.
#[utoipa::path(operation_id = "getCertificateKey", get, path = "/certificates/{id}/key", tag = "certificates",
    params(("id" = i64, Path, description = "Certificate id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The private key, PEM", body = PrivateKey),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not the caller's key", body = ErrorBody),
        (status = 404, description = "No such certificate or no stored key", body = ErrorBody),
        (status = 503, description = "HSM or database unavailable", body = ErrorBody),
    ))]
pub async fn key(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
) -> Result<impl IntoResponse, ApiError> {
    key_response(certificates::private_key(&app, &subject, id).await?)
}

/// A private key as `{"key": PEM}` with no-cache headers.
pub(crate) fn key_response(
    key: zeroize::Zeroizing<String>,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let view = PrivateKey { key: key.into() };
    // One buffer, wiped when hyper has written it and drops the body.
    let body = lemur_api::to_json(&view, view.key.len(), 16)
        .map_err(|e| lemur_core::Error::io("writing the key view")(e.into()))?;
    Ok((
        [
            (
                header::CACHE_CONTROL,
                "no-store, no-cache, must-revalidate, private",
            ),
            (header::PRAGMA, "no-cache"),
            (header::CONTENT_TYPE, "application/json"),
        ],
        axum::body::Body::from(axum::body::Bytes::from_owner(body)),
    ))
}

/// Revoke a certificate through the issuer of its authority, with an RFC 5280 reason.
#[utoipa::path(operation_id = "revokeCertificate", put, path = "/certificates/{id}/revoke", tag = "certificates",
    params(("id" = i64, Path, description = "Certificate id")), request_body = RevokeCertificate,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked", body = IdView),
        (status = 400, description = "Invalid reason, or not issued here", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not the caller's to revoke", body = ErrorBody),
        (status = 404, description = "No such certificate", body = ErrorBody),
        (status = 409, description = "Revoked already", body = ErrorBody),
        (status = 500, description = "The authority's issuer plugin is not installed", body = ErrorBody),
        (status = 503, description = "Issuer or database unavailable", body = ErrorBody),
    ))]
pub async fn revoke(
    State(app): AppState,
    Caller(subject): Caller,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<RevokeCertificate>,
) -> Result<Json<IdView>, ApiError> {
    certificates::revoke(&app, &subject, id, body).await?;
    Ok(Json(IdView { id }))
}
