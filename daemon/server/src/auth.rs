//! `POST /auth/login`, `GET /auth/me`, `GET /auth/providers`.

use super::{ApiError, AppState, Caller, ClientAddress, JsonBody, session};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lemur_api::{ErrorBody, Login, Me, Provider, RoleRef, Token};
use lemur_core::Error;
use lemur_core::policy::Subject;

/// Log in with a username (or email) and password.
#[utoipa::path(operation_id = "login", post, path = "/auth/login", tag = "auth", request_body = Login,
    responses(
        (status = 200, description = "A token for `Authorization: Bearer`; with `X-Requested-With: lemur-web`, also the web UI's session cookie (HttpOnly)", body = Token),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 429, description = "Too many failed logins, or logins at once; see Retry-After", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn login(
    State(app): AppState,
    ClientAddress(source): ClientAddress,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Login>,
) -> Result<Response, ApiError> {
    let token = lemur_core::users::login(&app, body, &source).await?;
    let cookie = session::from_web_ui(&headers)
        .then(|| session::cookie(&token, app.config.auth.token_lifetime_minutes * 60))
        .flatten();
    let mut response = Json(Token { token }).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Log out the presented token: it is refused from now on (the user's other sessions stay).
#[utoipa::path(operation_id = "logout", post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn logout(State(app): AppState, Caller(subject): Caller) -> Result<Response, ApiError> {
    lemur_core::users::logout(&app, &subject).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session::cleared())],
    )
        .into_response())
}

/// The caller, with roles.
#[utoipa::path(operation_id = "me", get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn me(Caller(subject): Caller) -> Result<Json<Me>, ApiError> {
    let Subject::User(caller) = subject else {
        return Err(Error::Unauthorized("only users have a profile".into()).into());
    };
    Ok(Json(Me {
        id: caller.user.id,
        username: caller.user.username,
        email: caller.user.email,
        active: caller.user.active,
        profile_picture: None,
        roles: caller
            .roles
            .into_iter()
            .map(|r| RoleRef {
                id: r.id,
                name: r.name,
            })
            .collect(),
    }))
}

/// Single sign-on providers: none are configured in this build.
#[utoipa::path(operation_id = "authProviders", get, path = "/auth/providers", tag = "auth",
    responses((status = 200, description = "The providers", body = Vec<Provider>)))]
pub async fn providers() -> Json<Vec<Provider>> {
    Json(Vec::new())
}
