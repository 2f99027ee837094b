//! One log line per request, as structured fields (journald keeps each as a field): request id,
//! method, route, status, duration and subject. The request id is made here, after the proxy's
//! `X-Request-Id` when it sends a sane one; it is returned to the client and attached to every
//! error logged while the request runs, so a user's report finds the log.

use crate::metrics::HttpMetrics;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

/// The header carrying the request id, both ways.
pub const REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    /// The id of the request the current task serves.
    static CURRENT: String;
}

/// The id of the request being served, for log lines written on its behalf.
pub fn current_request_id() -> String {
    CURRENT
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".to_owned())
}

/// Where the caller extractor records who asked, for the access log.
#[derive(Clone, Default)]
pub struct SubjectSlot(Arc<Mutex<Option<String>>>);

impl SubjectSlot {
    /// Records the subject.
    pub fn set(&self, subject: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(subject);
    }

    fn get(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "anonymous".to_owned())
    }
}

/// A request id: this process's random prefix and a counter, after the proxy's id when it sends
/// 1 to 64 characters of `[A-Za-z0-9._-]` (so nginx's log finds the line, and a client that
/// sends another request's id still cannot make two requests look alike).
fn request_id(request: &Request) -> String {
    let given = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        lemur_core::files::random_hex(4).map_or_else(|_| "lemur".to_owned(), |hex| hex.to_string())
    });
    let ours = format!("{prefix}-{}", COUNTER.fetch_add(1, Ordering::Relaxed));
    match given {
        Some(given) => format!("{given}.{ours}"),
        None => ours,
    }
}

/// Whether a request comes with a body (a length above zero, or chunks).
fn sends_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|length| length > 0)
}

/// The middleware: runs the request inside its id's scope, logs it once it is answered and
/// counts it for `/metrics`; an error answered to a request with a body closes the connection.
pub async fn log_request(
    State(metrics): State<Arc<HttpMetrics>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let subject = SubjectSlot::default();
    request.extensions_mut().insert(subject.clone());
    let sends_body = sends_body(&request);
    let mut response = CURRENT.scope(id.clone(), next.run(request)).await;
    let status = response.status().as_u16();
    if sends_body && status >= 400 {
        // A refusal may be answered before the body was read (a missing token is found before
        // the body is looked at); the connection then cannot carry another request, so the
        // client is told not to send one on it rather than finding it closed under its next.
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let took = started.elapsed();
    metrics.observe(
        &route,
        &method,
        status,
        took,
        response.extensions().get::<crate::ErrorCode>().copied(),
    );
    let duration_ms = took.as_secs_f64() * 1000.0;
    let subject = subject.get();
    log::info!(
        target: "lemur::access",
        request_id = id.as_str(), method = method.as_str(), route = route.as_str(), status = status,
        duration_ms = duration_ms, subject = subject.as_str();
        "{method} {route} {status} {duration_ms:.1}ms {subject} [{id}]"
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
