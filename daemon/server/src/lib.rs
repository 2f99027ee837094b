//! The HTTP server of Lemur-HSM: Lemur's REST API under `/api/1` over the domain core, served on
//! TCP, HTTPS (rustls) or a unix socket behind nginx.
//!
//! Handlers are thin: extract (the caller first: [`Caller`] is a parameter, so a handler cannot
//! compile without authentication), one call into the domain, and [`ApiError`] maps the error.
//! Every route is listed once, in [`ROUTES`], which the router is built from.

#![recursion_limit = "256"]

mod access;
mod appliance;
mod auth;
mod authorities;
mod certificates;
mod crl;
mod domains;
mod error;
mod health;
mod json;
mod limits;
mod metrics;
mod openapi;
mod pending;
mod plugins;
mod serve;
mod session;
mod tls;
mod views;
mod web;

pub use error::ApiError;
pub use json::{IdPath, IdempotentJson, JsonBody, QueryParams};
pub use openapi::ApiDoc;
pub use serve::serve;

use axum::BoxError;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{MethodRouter, delete, get, post, put};
use lemur_core::policy::Subject;
use lemur_core::{App, Error};
use std::sync::Arc;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;

/// Shared state of every handler.
pub type AppState = axum::extract::State<Arc<App>>;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Subject);

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let token = match (header, session::token(&parts.headers)) {
            (Some(header), _) => header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .ok_or_else(|| {
                    Error::Unauthorized("the Authorization header must be `Bearer <token>`".into())
                })?
                .trim()
                .to_owned(),
            (None, Some(token)) if session::may_change(&parts.method, &parts.headers) => token,
            (None, Some(_)) => {
                return Err(Error::Forbidden(
                    "a change signed in by the session cookie must send X-Requested-With: lemur-web".into(),
                )
                .into());
            }
            (None, None) => {
                return Err(Error::Unauthorized(
                    "authentication required: send Authorization: Bearer <token>".into(),
                )
                .into());
            }
        };
        let Ok(ClientAddress(source)) = ClientAddress::from_request_parts(parts, app).await;
        let subject = lemur_core::users::authenticate(app, &token, source).await?;
        if let Some(slot) = parts.extensions.get::<access::SubjectSlot>() {
            slot.set(match &subject {
                Subject::User(user) => format!("user:{}", user.user.username),
                Subject::System(job) => format!("system:{job}"),
            });
        }
        Ok(Caller(subject))
    }
}

/// The stable code of an error response (a response extension), for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

/// The TCP peer of a connection (a request extension), over plain TCP or TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Where a request came from, for the audit log and login throttling: the TCP peer (`unix` on
/// the unix socket), or, when that peer is a trusted proxy (`server.trusted_proxies`), the
/// client it appended to `X-Forwarded-For`.
pub struct ClientAddress(pub String);

impl FromRequestParts<Arc<App>> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<Peer>()
            .map(|peer| peer.0.ip().to_canonical());
        let address = peer.map_or_else(|| "unix".to_owned(), |ip| ip.to_string());
        if !app.config.server.trusted_proxies.contains(peer) {
            return Ok(ClientAddress(address));
        }
        // The proxy appends the address it saw to X-Forwarded-For: the last entry of the last
        // line is the proxy's word; anything before it is the client's own claim.
        let named = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|value| value.to_str().ok())
            .and_then(|list| list.rsplit(',').next())
            .and_then(|last| last.trim().parse::<std::net::IpAddr>().ok());
        Ok(ClientAddress(named.map_or(address, |ip| ip.to_string())))
    }
}

/// A route the server serves: method and path under `/api/1`. The router, the OpenAPI coverage
/// test and the authorization matrix test are built from this table, so an API route cannot be
/// served without appearing in all three. Outside the API, `/crl/{file}` (public by design) and
/// `/metrics` (allowed addresses only) are not JSON and have tests of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// `GET`, `POST`...
    pub method: &'static str,
    /// The path under `/api/1`, with `{id}`-style parameters.
    pub path: &'static str,
}

/// Every route, in the order the router adds them.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/healthcheck" },
    Route { method: "GET", path: "/healthcheck/details" },
    Route { method: "POST", path: "/auth/login" },
    Route { method: "POST", path: "/auth/logout" },
    Route { method: "GET", path: "/auth/me" },
    Route { method: "GET", path: "/auth/providers" },
    Route { method: "GET", path: "/authorities" },
    Route { method: "POST", path: "/authorities" },
    Route { method: "GET", path: "/authorities/{id}" },
    Route { method: "GET", path: "/certificates" },
    Route { method: "POST", path: "/certificates" },
    Route { method: "POST", path: "/certificates/upload" },
    Route { method: "GET", path: "/certificates/stats" },
    Route { method: "GET", path: "/certificates/{id}" },
    Route { method: "GET", path: "/certificates/{id}/key" },
    Route { method: "PUT", path: "/certificates/{id}/revoke" },
    Route { method: "GET", path: "/domains" },
    Route { method: "POST", path: "/domains" },
    Route { method: "GET", path: "/domains/{id}" },
    Route { method: "PUT", path: "/domains/{id}" },
    Route { method: "GET", path: "/pending_certificates" },
    Route { method: "GET", path: "/pending_certificates/{id}" },
    Route { method: "PUT", path: "/pending_certificates/{id}" },
    Route { method: "DELETE", path: "/pending_certificates/{id}" },
    Route { method: "GET", path: "/pending_certificates/{id}/key" },
    Route { method: "POST", path: "/pending_certificates/{id}/upload" },
    Route { method: "GET", path: "/plugins" },
    Route { method: "GET", path: "/plugins/{slug}" },
    Route { method: "POST", path: "/appliance/upgrade" },
    Route { method: "GET", path: "/appliance/upgrade" },
    Route { method: "POST", path: "/appliance/backup" },
    Route { method: "POST", path: "/appliance/restore" },
    Route { method: "GET", path: "/appliance/restore" },
    Route { method: "GET", path: "/openapi.json" },
];

/// The handler of each route in [`ROUTES`].
fn handler(route: &Route) -> Option<MethodRouter<Arc<App>>> {
    Some(match (route.method, route.path) {
        ("GET", "/healthcheck") => get(health::plain),
        ("GET", "/healthcheck/details") => get(health::details),
        ("POST", "/auth/login") => post(auth::login),
        ("POST", "/auth/logout") => post(auth::logout),
        ("GET", "/auth/me") => get(auth::me),
        ("GET", "/auth/providers") => get(auth::providers),
        ("GET", "/authorities") => get(authorities::list),
        ("POST", "/authorities") => post(authorities::create),
        ("GET", "/authorities/{id}") => get(authorities::get),
        ("GET", "/certificates") => get(certificates::list),
        ("POST", "/certificates") => post(certificates::create),
        ("POST", "/certificates/upload") => post(certificates::upload),
        ("GET", "/certificates/stats") => get(certificates::stats),
        ("GET", "/certificates/{id}") => get(certificates::get),
        ("GET", "/certificates/{id}/key") => get(certificates::key),
        ("PUT", "/certificates/{id}/revoke") => put(certificates::revoke),
        ("GET", "/domains") => get(domains::list),
        ("POST", "/domains") => post(domains::create),
        ("GET", "/domains/{id}") => get(domains::get),
        ("PUT", "/domains/{id}") => put(domains::update),
        ("GET", "/pending_certificates") => get(pending::list),
        ("GET", "/pending_certificates/{id}") => get(pending::get),
        ("PUT", "/pending_certificates/{id}") => put(pending::update),
        ("DELETE", "/pending_certificates/{id}") => delete(pending::cancel),
        ("GET", "/pending_certificates/{id}/key") => get(pending::key),
        ("POST", "/pending_certificates/{id}/upload") => post(pending::upload),
        ("GET", "/plugins") => get(plugins::list),
        ("GET", "/plugins/{slug}") => get(plugins::get),
        ("POST", "/appliance/upgrade") => post(appliance::upgrade),
        ("GET", "/appliance/upgrade") => get(appliance::upgrade_status),
        ("POST", "/appliance/backup") => post(appliance::backup),
        // The archive streams through: no limit on the form's size but the spool's room.
        ("POST", "/appliance/restore") => {
            post(appliance::restore).layer(axum::extract::DefaultBodyLimit::disable())
        }
        ("GET", "/appliance/restore") => get(appliance::restore_status),
        ("GET", "/openapi.json") => get(openapi::document),
        _ => return None,
    })
}

/// What the in-flight cap answers: 503, retry in a moment.
async fn limit_reached(_: BoxError) -> ApiError {
    ApiError::from(Error::Overloaded)
}

/// What a path nothing serves gets: a JSON 404.
pub(crate) async fn no_route() -> ApiError {
    ApiError::from(Error::NotFound {
        what: "route",
        id: "requested".into(),
    })
}

/// Every route of [`ROUTES`], under `/api/1`, and the web UI's files when `server.web_root` is
/// set.
pub fn router(app: Arc<App>) -> Router {
    let limits = app.config.server.clone();
    let http = Arc::new(metrics::HttpMetrics::default());
    let api = ROUTES
        .iter()
        .filter_map(|route| Some((route.path, handler(route)?)))
        .fold(Router::new(), |api, (path, handler)| {
            api.route(path, handler)
        });
    let routed = Router::new()
        .nest("/api/1", api)
        .route("/crl/{file}", get(crl::serve))
        .route(
            "/metrics",
            get(metrics::serve).layer(axum::Extension(Arc::clone(&http))),
        );
    let served = match &app.config.server.web_root {
        Some(root) => web::serve_files(routed, root, app.config.server.tls_certificate.is_some()),
        None => routed.fallback(no_route),
    };
    served
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(
                    http,
                    access::log_request,
                ))
                .layer(HandleErrorLayer::new(limit_reached))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(
                    limits.max_in_flight_requests.max(1),
                )),
        )
        .with_state(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_route_has_a_handler() {
        for route in ROUTES {
            assert!(handler(route).is_some(), "{route:?} has no handler");
        }
    }

    /// The OpenAPI document covers every route served, and only those.
    #[test]
    fn the_openapi_document_covers_every_route() {
        use utoipa::OpenApi;
        let document = ApiDoc::openapi();
        let mut documented = Vec::new();
        let mut operation_ids = std::collections::BTreeSet::new();
        for (path, item) in &document.paths.paths {
            for (method, operation) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("DELETE", &item.delete),
            ] {
                if let Some(operation) = operation {
                    documented.push((method, path.as_str()));
                    // Unique, as OpenAPI requires: generated clients name functions by them.
                    let id = operation.operation_id.clone().unwrap_or_default();
                    assert!(operation_ids.insert(id.clone()), "operationId {id:?} twice");
                }
            }
        }
        let mut served: Vec<(&str, &str)> = ROUTES.iter().map(|r| (r.method, r.path)).collect();
        documented.sort_unstable();
        served.sort_unstable();
        assert_eq!(documented, served);
        assert_eq!(serde_json::to_value(&document).unwrap()["openapi"], "3.1.0");
    }

    /// The web UI builds its types from its copy of the document (`web/openapi.json`), so a
    /// change of an API shape must reach that copy, and the UI's type-check, before it lands.
    /// `LEMUR_UPDATE_OPENAPI=1` rewrites the copy.
    #[test]
    fn the_web_uis_copy_of_the_openapi_document_is_current() {
        use utoipa::OpenApi;
        let current = format!("{}\n", ApiDoc::openapi().to_pretty_json().unwrap());
        let copy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json");
        if std::env::var_os("LEMUR_UPDATE_OPENAPI").is_some() {
            std::fs::write(&copy, &current).unwrap();
        }
        let written = std::fs::read_to_string(&copy).unwrap_or_default();
        assert!(
            written == current,
            "web/openapi.json is not the daemon's document: run LEMUR_UPDATE_OPENAPI=1 cargo test -p lemur-server openapi, then the UI's check"
        );
    }
}
