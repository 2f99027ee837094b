//! `GET /healthcheck`: plain `ok` for load balancers, 503 when the database, the HSM or entropy
//! health fails; `GET /healthcheck/details` says which.

use super::{ApiError, AppState, Caller};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use lemur_core::health;
use serde_json::json;

/// `ok` or 503.
pub async fn plain(State(app): AppState) -> impl IntoResponse {
    if health::check(&app).await.healthy() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    }
}

/// Each check with its error.
pub async fn details(
    State(app): AppState,
    Caller(subject): Caller,
) -> Result<impl IntoResponse, ApiError> {
    let checks = health::details(&app, &subject).await?;
    let show = |check: &Result<(), String>| match check {
        Ok(()) => json!({ "ok": true }),
        Err(reason) => json!({ "ok": false, "error": reason }),
    };
    let status = if checks.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "healthy": checks.healthy(),
        "database": show(&checks.database),
        "hsm": show(&checks.hsm),
        "entropy": show(&checks.entropy),
    });
    Ok((status, axum::Json(body)))
}
