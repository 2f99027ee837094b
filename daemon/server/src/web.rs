//! The web UI's built files (`server.web_root`), served by the daemon itself where nginx is not
//! in front (`lemur dev`): the same headers and caching as the bundled nginx configuration, so
//! what a developer sees is what the appliance serves.
//!
//! Paths the files do not have fall back to `index.html`, so a deep link (`/certificates/7`)
//! opens the application at that screen; under `/api/` they stay JSON 404s.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lemur_core::App;
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

/// The headers of every response, as `nginx/lemur.conf` adds them (a test keeps the two equal):
/// a strict Content-Security-Policy the UI is built to run under, no framing, no sniffing, no
/// referrer, and no powerful features.
pub(crate) const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("referrer-policy", "no-referrer"),
    (
        "permissions-policy",
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// HSTS, sent over HTTPS only (browsers ignore it over HTTP).
pub(crate) const STRICT_TRANSPORT_SECURITY: (&str, &str) =
    ("strict-transport-security", "max-age=63072000");

/// Vite names what it builds under `assets/` by content hash: a changed file has a new name, so
/// these may be cached for a year; everything else (`index.html` above all) is revalidated.
const ASSETS: &str = "/assets/";
const CACHE_ASSETS: &str = "public, max-age=31536000, immutable";
const CACHE_OTHERS: &str = "no-cache";

/// `router` with the files under `root` for every path it does not route outside `/api`, and
/// the front end's headers on every response.
pub(crate) fn serve_files(router: Router<Arc<App>>, root: &Path, https: bool) -> Router<Arc<App>> {
    let files = ServeDir::new(root)
        .append_index_html_on_directories(true)
        .fallback(ServeFile::new(root.join("index.html")));
    router
        .fallback(move |request: Request| file_or_no_route(files.clone(), request))
        .layer(axum::middleware::from_fn(move |request, next| {
            front_end_headers(request, next, https)
        }))
}

/// A path under `/api` that no route serves is an API client's mistake: JSON, not the UI.
async fn file_or_no_route(files: ServeDir<ServeFile>, request: Request) -> Response {
    let path = request.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        return crate::no_route().await.into_response();
    }
    match files.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

async fn front_end_headers(request: Request, next: Next, https: bool) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let hsts = https.then_some(STRICT_TRANSPORT_SECURITY);
    for (name, value) in SECURITY_HEADERS.iter().chain(hsts.iter()) {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    // The API sets its own (no-store on keys); files get the build's caching.
    if !path.starts_with("/api/") && !headers.contains_key(CACHE_CONTROL) {
        let cache = if path.starts_with(ASSETS) {
            CACHE_ASSETS
        } else {
            CACHE_OTHERS
        };
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `add_header NAME VALUE always;` lines of the bundled nginx configuration, by lower-case
    /// name; not those whose value is a variable (set per response, as Retry-After is when the
    /// daemon is down).
    fn nginx_headers() -> Vec<(String, String)> {
        let conf = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../nginx/lemur.conf"
        ))
        .expect("nginx/lemur.conf");
        conf.lines()
            .filter_map(|line| line.trim().strip_prefix("add_header "))
            .filter_map(|rest| rest.strip_suffix(" always;"))
            .filter_map(|rest| rest.split_once(' '))
            .filter(|(_, value)| !value.starts_with('$'))
            .map(|(name, value)| {
                (
                    name.to_ascii_lowercase(),
                    value.trim_matches('"').to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn the_daemon_sends_the_headers_nginx_sends() {
        let mut ours: Vec<(String, String)> = SECURITY_HEADERS
            .iter()
            .chain([STRICT_TRANSPORT_SECURITY].iter())
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let mut nginx = nginx_headers();
        ours.sort();
        nginx.sort();
        assert_eq!(ours, nginx);
    }
}
