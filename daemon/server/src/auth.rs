//! `POST /auth/login`, `GET /auth/me`, `GET /auth/providers`.

use super::{ApiError, AppState, Caller, JsonBody};
use axum::Json;
use axum::extract::State;
use lemur_api::Login;
use lemur_core::policy::Subject;
use serde_json::{Value, json};

/// Username (or email) and password in, `{"token"}` out.
pub async fn login(
    State(app): AppState,
    JsonBody(body): JsonBody<Login>,
) -> Result<Json<Value>, ApiError> {
    let token = lemur_core::users::login(&app, body).await?;
    Ok(Json(json!({ "token": token })))
}

/// The caller, with roles.
pub async fn me(Caller(subject): Caller) -> Json<Value> {
    let Subject::User(caller) = subject else {
        return Json(Value::Null);
    };
    let mut user = super::views::user(&caller.user);
    user["profilePicture"] = Value::Null;
    user["roles"] = caller
        .roles
        .iter()
        .map(|r| json!({ "id": r.id, "name": r.name }))
        .collect();
    Json(user)
}

/// Single sign-on providers: none are configured in this build.
pub async fn providers() -> Json<Value> {
    Json(json!([]))
}
