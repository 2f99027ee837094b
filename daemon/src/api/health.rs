//! `GET /healthcheck`: plain `ok` for load balancers, 503 when the database, the HSM or entropy
//! health fails; `GET /healthcheck/details` says which.

use super::AppState;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use lemur_entropy::HealthState;
use lemur_hsm::KeyStore;
use serde_json::json;

struct Checks {
    database: Result<(), String>,
    hsm: Result<(), String>,
    entropy: Result<(), String>,
}

impl Checks {
    fn healthy(&self) -> bool {
        self.database.is_ok() && self.hsm.is_ok() && self.entropy.is_ok()
    }
}

async fn run(State(app): &AppState) -> Checks {
    let database = app.store.ping().await.map_err(|e| e.to_string());
    let hsm = app
        .hsm(|keys| {
            let mut probe = [0u8; 1];
            keys.random(&mut probe).map_err(Into::into)
        })
        .await
        .map_err(|e| e.to_string());
    let entropy = match app.entropy.state() {
        HealthState::Healthy(_) => Ok(()),
        HealthState::NotChecked => Err("not checked yet".to_owned()),
        HealthState::Unhealthy(report) => Err(report.reason.unwrap_or_default()),
    };
    Checks {
        database,
        hsm,
        entropy,
    }
}

use axum::extract::State;

/// `ok` or 503.
pub async fn plain(state: AppState) -> impl IntoResponse {
    if run(&state).await.healthy() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    }
}

/// Each check with its error.
/// For signed-in users only: the reasons can name HSM and entropy internals.
pub async fn details(state: AppState, _caller: super::Caller) -> impl IntoResponse {
    let checks = run(&state).await;
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
    (status, axum::Json(body))
}
