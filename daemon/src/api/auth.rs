//! `POST /auth/login`, `GET /auth/me`, `GET /auth/providers`.

use super::{ApiError, AppState, Caller, JsonBody};
use crate::auth::password;
use crate::error::Error;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

/// Lemur's login body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: zeroize::Zeroizing<String>,
}

/// Username (or email) and password in, `{"token"}` out. The same message for every failure.
pub async fn login(
    State(app): AppState,
    JsonBody(body): JsonBody<Login>,
) -> Result<Json<Value>, ApiError> {
    let found = app.store.user_by_login(&body.username).await?;
    let (user, hash) = match found {
        Some((user, Some(hash))) => (Some(user), hash),
        _ => (None, password::decoy_hash().to_owned()),
    };
    let secret = body.password.clone();
    let _permit = app
        .password_checks
        .acquire()
        .await
        .map_err(|_| Error::Unauthorized("the daemon is shutting down".into()))?;
    let matches = tokio::task::spawn_blocking(move || password::verify(&secret, &hash))
        .await
        .unwrap_or(false);
    match user {
        Some(user) if matches && user.active => {
            Ok(Json(json!({ "token": app.tokens.issue(user.id)? })))
        }
        _ => Err(Error::Unauthorized("invalid username or password".into()).into()),
    }
}

/// The caller, with roles.
pub async fn me(caller: Caller) -> Json<Value> {
    Json(json!({
        "id": caller.user.id,
        "username": caller.user.username,
        "email": caller.user.email,
        "active": caller.user.active,
        "profilePicture": null,
        "roles": caller.roles.iter().map(|r| json!({ "id": r.id, "name": r.name })).collect::<Vec<_>>(),
    }))
}

/// Single sign-on providers: none are configured in this build.
pub async fn providers() -> Json<Value> {
    Json(json!([]))
}
