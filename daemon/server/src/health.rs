//! `GET /healthcheck`: plain `ok` for load balancers, 503 when the database, the HSM or entropy
//! health fails; `GET /healthcheck/details` says which.

use super::{ApiError, AppState, Caller};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use lemur_api::{CheckView, ErrorBody, HealthDetails, ReadyKeys, TokenView};
use lemur_core::App;
use lemur_core::ca::key_pool::count_of;
use lemur_core::ca::key_stock;
use lemur_core::health;

/// `ok`, or 503 `unhealthy`.
#[utoipa::path(operation_id = "healthcheck", get, path = "/healthcheck", tag = "health",
    responses(
        (status = 200, description = "Healthy", body = String, content_type = "text/plain"),
        (status = 503, description = "Unhealthy", body = String, content_type = "text/plain"),
    ))]
pub async fn plain(State(app): AppState) -> impl IntoResponse {
    if health::check(&app).await.healthy() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    }
}

/// Each check with its error.
#[utoipa::path(operation_id = "healthcheckDetails", get, path = "/healthcheck/details", tag = "health", security(("bearer" = [])),
    responses(
        (status = 200, description = "Healthy", body = HealthDetails),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not allowed", body = ErrorBody),
        (status = 503, description = "Unhealthy", body = HealthDetails),
    ))]
pub async fn details(
    State(app): AppState,
    Caller(subject): Caller,
) -> Result<impl IntoResponse, ApiError> {
    let checks = health::details(&app, &subject).await?;
    let show = |check: &Result<(), String>| CheckView {
        ok: check.is_ok(),
        error: check.as_ref().err().cloned(),
    };
    let status = if checks.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = HealthDetails {
        healthy: checks.healthy(),
        database: show(&checks.database),
        hsm: show(&checks.hsm),
        entropy: show(&checks.entropy),
        ready_keys: supply(&app).await,
        token: Some(token(&app)),
    };
    Ok((status, Json(body)))
}

/// Keys generated ahead, per algorithm kept in memory (the stock only refills those).
async fn supply(app: &App) -> Vec<ReadyKeys> {
    let stocked = if app.key_stock.targets().is_empty() {
        Some(Vec::new())
    } else {
        key_stock::counts(app).await.ok()
    };
    app.key_pool
        .targets()
        .iter()
        .map(|&(algorithm, target)| ReadyKeys {
            key_type: algorithm.lemur_name().to_owned(),
            ready: app.key_pool.ready(algorithm),
            target,
            stocked: stocked.as_deref().map(|counts| count_of(counts, algorithm)),
            stock_target: app.key_stock.target(algorithm),
        })
        .collect()
}

/// The token's label and module, and its session pool now.
fn token(app: &App) -> TokenView {
    let stats = app.hsm.stats();
    TokenView {
        label: app.config.hsm.token.clone(),
        module: app.config.hsm.module_path().display().to_string(),
        sessions_capacity: stats.sessions_capacity,
        sessions_open: stats.sessions_open,
        sessions_in_use: stats.sessions_in_use,
    }
}
