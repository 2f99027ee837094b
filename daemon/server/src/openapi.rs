//! The OpenAPI 3.1 document of the API, generated from the API types' schemas and the handlers'
//! annotations (never written by hand), served at `/api/1/openapi.json`. Paths are relative to
//! the server URL `/api/1`.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Declares the bearer token every signed-in route takes.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lemur-HSM",
        description = "Lemur's REST API, served by Lemur-HSM: certificates, authorities and plugins, with CA keys in an HSM."
    ),
    servers((url = "/api/1")),
    modifiers(&BearerToken),
    paths(
        crate::health::plain,
        crate::health::details,
        crate::auth::login,
        crate::auth::logout,
        crate::auth::me,
        crate::auth::providers,
        crate::authorities::list,
        crate::authorities::create,
        crate::authorities::get,
        crate::certificates::list,
        crate::certificates::create,
        crate::certificates::upload,
        crate::certificates::stats,
        crate::certificates::get,
        crate::certificates::key,
        crate::certificates::revoke,
        crate::domains::list,
        crate::domains::create,
        crate::domains::get,
        crate::domains::update,
        crate::pending::list,
        crate::pending::get,
        crate::pending::update,
        crate::pending::cancel,
        crate::pending::key,
        crate::pending::upload,
        crate::plugins::list,
        crate::plugins::get,
        crate::appliance::upgrade,
        crate::appliance::upgrade_status,
        crate::appliance::backup,
        crate::appliance::restore,
        crate::appliance::restore_status,
        document,
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(operation_id = "openapiDocument", get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
