//! The REST API under `/api/1`, with Lemur's routes and JSON shapes.
//!
//! Handlers are thin: extract (the caller first: [`Caller`] is a parameter, so a handler cannot
//! compile without authentication), one call into the domain, and [`ApiError`] maps the error.

mod auth;
mod authorities;
mod certificates;
mod error;
mod health;
mod json;
mod requests;
mod views;

pub use error::ApiError;
pub use json::{IdPath, JsonBody, QueryParams};

use crate::app::App;
use crate::error::Error;
use crate::store::{RoleRecord, UserRecord, UserSession};
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use std::sync::Arc;

/// Shared state of every handler.
pub type AppState = State<Arc<App>>;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user.
    pub user: UserRecord,
    /// Their roles.
    pub roles: Vec<RoleRecord>,
    /// Where the request came from.
    pub source: String,
}

impl Caller {
    /// The caller as the audit log records them.
    pub fn actor(&self) -> crate::ca::Actor<'_> {
        crate::ca::Actor {
            user_id: self.user.id,
            source: Some(&self.source),
        }
    }

    /// Whether the caller holds the role `name`.
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|role| role.name == name)
    }

    /// Whether the caller is an administrator.
    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                Error::Unauthorized(
                    "authentication required: send Authorization: Bearer <token>".into(),
                )
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                Error::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        let claims = app.tokens.verify(token.trim())?;
        // A user gone since the token was issued is an invalid token; a database failure is a
        // 503, not a reason to log everyone out.
        let UserSession {
            user,
            roles,
            tokens_valid_after,
        } = app
            .store
            .user_session(claims.sub)
            .await
            .map_err(|error| match error {
                Error::NotFound { .. } => Error::Unauthorized("invalid token".into()),
                other => other,
            })?;
        if !user.active {
            return Err(Error::Unauthorized("this user is deactivated".into()).into());
        }
        if claims.iat < tokens_valid_after {
            return Err(Error::Unauthorized(
                "this token was issued before the password was reset; log in again".into(),
            )
            .into());
        }
        let Ok(ClientAddress(source)) = ClientAddress::from_request_parts(parts, app).await;
        Ok(Caller {
            user,
            roles,
            source,
        })
    }
}

/// The TCP peer of a connection (`ConnectInfo<Peer>`), over plain TCP or TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Where a request came from, for the audit log: the TCP peer, or `unix` behind a local proxy.
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<Peer>>()
            .map(|info| info.0.0.ip().to_string());
        Ok(ClientAddress(peer.unwrap_or_else(|| "unix".to_owned())))
    }
}

/// Lemur's paging parameters.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paging {
    /// 1-based page.
    pub page: Option<i64>,
    /// Items per page (default 10, at most 1000).
    pub count: Option<i64>,
}

impl Paging {
    /// `(page, count)` checked.
    fn checked(&self) -> Result<(i64, i64), Error> {
        let page = self.page.unwrap_or(1);
        let count = self.count.unwrap_or(10);
        if page < 1 {
            return Err(Error::invalid("page", "must be 1 or more"));
        }
        if !(1..=1000).contains(&count) {
            return Err(Error::invalid("count", "must be between 1 and 1000"));
        }
        // The store computes the offset (page - 1) * count; keep it far from overflow.
        if page > 1_000_000_000 {
            return Err(Error::invalid("page", "must be at most 1000000000"));
        }
        Ok((page, count))
    }
}

/// Every route.
pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/healthcheck", get(health::plain))
        .route("/healthcheck/details", get(health::details))
        .route("/auth/login", post(auth::login))
        .route("/auth/me", get(auth::me))
        .route("/auth/providers", get(auth::providers))
        .route(
            "/authorities",
            get(authorities::list).post(authorities::create),
        )
        .route("/authorities/{id}", get(authorities::get))
        .route(
            "/certificates",
            get(certificates::list).post(certificates::create),
        )
        .route("/certificates/upload", post(certificates::upload))
        .route("/certificates/{id}", get(certificates::get))
        .route("/certificates/{id}/key", get(certificates::key));
    Router::new()
        .nest("/api/1", api)
        .fallback(|| async {
            ApiError::from(Error::NotFound {
                what: "route",
                id: "requested".into(),
            })
        })
        .with_state(app)
}
