//! The one place domain errors become HTTP responses: a status, and a JSON body with Lemur's
//! `message` (and `reasons` naming the field for validation errors) and a stable `code`. The
//! detail of a server-side failure is logged here and never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lemur_api::ErrorBody;
use lemur_core::Error;

/// How long a client should wait before retrying after a transient failure, in seconds.
const RETRY_AFTER_SECS: &str = "5";

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

fn status_and_message(error: &Error) -> (StatusCode, String) {
    match error {
        Error::Validation { .. } => (StatusCode::BAD_REQUEST, error.to_string()),
        Error::NotFound { .. } => (StatusCode::NOT_FOUND, error.to_string()),
        Error::Conflict(_) => (StatusCode::CONFLICT, error.to_string()),
        Error::IdempotencyKeyReused(_) => (StatusCode::UNPROCESSABLE_ENTITY, error.to_string()),
        Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, error.to_string()),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, error.to_string()),
        Error::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, error.to_string()),
        Error::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, error.to_string()),
        Error::Overloaded | Error::ServiceUnavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
        Error::InsufficientStorage(_) => (StatusCode::INSUFFICIENT_STORAGE, error.to_string()),
        Error::Entropy(_) | Error::Hsm(lemur_hsm::Error::Entropy(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
        Error::Hsm(hsm) if hsm.is_unavailable() => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the HSM is unavailable, retry later: {hsm}"),
        ),
        Error::Database { context, .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the database failed while {context}; retry later"),
        ),
        Error::Hsm(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "HSM operation failed; see the daemon log".into(),
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the daemon log".into(),
        ),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = status_and_message(&self.0);
        if status.is_server_error() {
            let request_id = crate::access::current_request_id();
            let request_id = request_id.as_str();
            match &self.0 {
                Error::Database { context, source } => {
                    log::error!(request_id; "database error while {context}: {source} [{request_id}]")
                }
                other => log::error!(request_id; "{other} [{request_id}]"),
            }
        }
        let body = ErrorBody {
            message,
            code: self.0.code().to_owned(),
            reasons: match &self.0 {
                Error::Validation { field, reason } => {
                    Some([(field.clone(), reason.clone())].into_iter().collect())
                }
                _ => None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        response
            .extensions_mut()
            .insert(crate::ErrorCode(self.0.code()));
        let retry_after = match &self.0 {
            Error::TooManyRequests {
                retry_after_secs, ..
            } => Some(HeaderValue::from(*retry_after_secs)),
            error if error.is_transient() => Some(HeaderValue::from_static(RETRY_AFTER_SECS)),
            _ => None,
        };
        if let Some(value) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
