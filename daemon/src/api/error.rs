//! The one place domain errors become HTTP responses: a status, and a JSON body with `message`
//! (and `reasons` naming the field for validation errors), as Lemur answers.

use crate::error::Error;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl From<lemur_hsm::Error> for ApiError {
    fn from(error: lemur_hsm::Error) -> Self {
        Self(Error::Hsm(error))
    }
}

fn status_and_message(error: &Error) -> (StatusCode, String) {
    match error {
        Error::Validation { .. } => (StatusCode::BAD_REQUEST, error.to_string()),
        Error::NotFound { .. } => (StatusCode::NOT_FOUND, error.to_string()),
        Error::Conflict(_) => (StatusCode::CONFLICT, error.to_string()),
        Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, error.to_string()),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, error.to_string()),
        Error::Entropy(_) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
        Error::Hsm(hsm) if hsm.is_unavailable() => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the HSM is unavailable, retry later: {hsm}"),
        ),
        Error::Hsm(lemur_hsm::Error::Entropy(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
        Error::Hsm(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "HSM operation failed; see the daemon log".into(),
        ),
        Error::Database { context, .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the database failed while {context}; retry later"),
        ),
        Error::Config { .. } | Error::Permissions { .. } | Error::Io { .. } | Error::Ca(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the daemon log".into(),
        ),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = status_and_message(&self.0);
        if status.is_server_error() {
            match &self.0 {
                Error::Database { context, source } => {
                    log::error!("database error while {context}: {source}")
                }
                other => log::error!("{other}"),
            }
        }
        let body = match &self.0 {
            Error::Validation { field, reason } => {
                json!({ "message": message, "reasons": { field.clone(): reason } })
            }
            _ => json!({ "message": message }),
        };
        (status, axum::Json(body)).into_response()
    }
}
