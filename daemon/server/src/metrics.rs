//! `/metrics` in Prometheus' text format (0.0.4): requests and latencies by route, method and
//! status, error responses by code, and the domain's figures ([`lemur_core::metrics`]). Served
//! only to the addresses `[metrics] allow` names (the bundled nginx also limits it to loopback).
//!
//! Labels stay bounded: a route is its pattern (`/api/1/certificates/{id}`), never the path a
//! client sent.

use crate::error::ApiError;
use crate::{ClientAddress, ErrorCode};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use lemur_core::{App, Error};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The methods counted by name; any other (a client may send any token) is `other`, so no client
/// can add series.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

fn label_of(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other")
}

/// The content type Prometheus scrapes.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Http {
    /// By (route, method, status).
    requests: BTreeMap<(String, String, u16), u64>,
    /// By (route, method).
    latencies: BTreeMap<(String, String), Histogram>,
    /// Error responses by code.
    errors: BTreeMap<&'static str, u64>,
}

/// Request counters, kept by the access middleware.
#[derive(Debug, Default)]
pub struct HttpMetrics(Mutex<Http>);

impl HttpMetrics {
    /// Counts one answered request.
    pub(crate) fn observe(
        &self,
        route: &str,
        method: &str,
        status: u16,
        took: Duration,
        error: Option<ErrorCode>,
    ) {
        let method = label_of(method);
        let mut http = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *http
            .requests
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
        let histogram = http
            .latencies
            .entry((route.to_owned(), method.to_owned()))
            .or_default();
        let seconds = took.as_secs_f64();
        for (count, bound) in histogram.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
        if let Some(ErrorCode(code)) = error {
            *http.errors.entry(code).or_default() += 1;
        }
    }

    /// Writes every family.
    fn render(&self, out: &mut String) {
        let http = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        family(
            out,
            "lemur_http_requests_total",
            "counter",
            "Requests answered, by route, method and status.",
        );
        for ((route, method, status), count) in &http.requests {
            sample(
                out,
                "lemur_http_requests_total",
                &[
                    ("route", route),
                    ("method", method),
                    ("status", &status.to_string()),
                ],
                *count,
            );
        }
        family(
            out,
            "lemur_http_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its answer, by route and method.",
        );
        for ((route, method), histogram) in &http.latencies {
            let labels = [("route", route.as_str()), ("method", method.as_str())];
            for (bound, count) in BUCKETS.iter().zip(histogram.buckets) {
                let le = bound.to_string();
                sample(
                    out,
                    "lemur_http_request_duration_seconds_bucket",
                    &[labels[0], labels[1], ("le", &le)],
                    count,
                );
            }
            sample(
                out,
                "lemur_http_request_duration_seconds_bucket",
                &[labels[0], labels[1], ("le", "+Inf")],
                histogram.count,
            );
            sample(
                out,
                "lemur_http_request_duration_seconds_sum",
                &labels,
                histogram.sum,
            );
            sample(
                out,
                "lemur_http_request_duration_seconds_count",
                &labels,
                histogram.count,
            );
        }
        family(
            out,
            "lemur_http_errors_total",
            "counter",
            "Error responses, by the code in their body.",
        );
        for (code, count) in &http.errors {
            sample(out, "lemur_http_errors_total", &[("code", code)], *count);
        }
    }
}

/// `GET /metrics`.
pub async fn serve(
    State(app): State<Arc<App>>,
    axum::Extension(http): axum::Extension<Arc<HttpMetrics>>,
    ClientAddress(client): ClientAddress,
) -> Result<Response, ApiError> {
    let allowed = client.parse::<std::net::IpAddr>().is_ok_and(|ip| {
        app.config
            .metrics
            .allow
            .iter()
            .any(|range| range.contains(ip))
    });
    if !allowed {
        return Err(Error::Forbidden(format!(
            "{client} may not read metrics: add it to [metrics] allow"
        ))
        .into());
    }
    let mut out = String::with_capacity(16 * 1024);
    family(&mut out, "lemur_build_info", "gauge", "The running build.");
    sample(
        &mut out,
        "lemur_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    http.render(&mut out);
    domain(&mut out, &lemur_core::metrics::snapshot(&app).await);
    let mut response = out.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn domain(out: &mut String, snapshot: &lemur_core::metrics::Snapshot) {
    family(
        out,
        "lemur_certificates_issued_total",
        "counter",
        "Certificates issued since the daemon started, by authority.",
    );
    for (authority, count) in &snapshot.issued {
        sample(
            out,
            "lemur_certificates_issued_total",
            &[("authority", authority)],
            *count,
        );
    }
    family(
        out,
        "lemur_hsm_operations_total",
        "counter",
        "HSM operations, by operation.",
    );
    for operation in &snapshot.hsm.operations {
        sample(
            out,
            "lemur_hsm_operations_total",
            &[("operation", operation.operation)],
            operation.calls,
        );
    }
    family(
        out,
        "lemur_hsm_operation_errors_total",
        "counter",
        "HSM operations that failed, by operation.",
    );
    for operation in &snapshot.hsm.operations {
        sample(
            out,
            "lemur_hsm_operation_errors_total",
            &[("operation", operation.operation)],
            operation.errors,
        );
    }
    for (name, help, value) in [
        (
            "lemur_hsm_sessions_capacity",
            "Sessions the HSM pool may open.",
            snapshot.hsm.sessions_capacity,
        ),
        (
            "lemur_hsm_sessions_open",
            "HSM sessions open.",
            snapshot.hsm.sessions_open,
        ),
        (
            "lemur_hsm_sessions_in_use",
            "HSM sessions lent out now.",
            snapshot.hsm.sessions_in_use,
        ),
    ] {
        family(out, name, "gauge", help);
        sample(out, name, &[], value);
    }
    family(
        out,
        "lemur_entropy_healthy",
        "gauge",
        "1 when the latest SP 800-90B health check passed, 0 when it failed or has not run.",
    );
    sample(
        out,
        "lemur_entropy_healthy",
        &[],
        u8::from(snapshot.entropy_healthy == Some(true)),
    );
    family(
        out,
        "lemur_entropy_source_healthy",
        "gauge",
        "1 when the source passed the latest health check.",
    );
    for (source, healthy) in &snapshot.entropy {
        sample(
            out,
            "lemur_entropy_source_healthy",
            &[("source", source)],
            u8::from(*healthy),
        );
    }
    family(
        out,
        "lemur_database_up",
        "gauge",
        "1 when the database answered this scrape's counts.",
    );
    sample(
        out,
        "lemur_database_up",
        &[],
        u8::from(snapshot.expiring.is_ok()),
    );
    if let Ok(expiring) = &snapshot.expiring {
        family(
            out,
            "lemur_certificates_expiring",
            "gauge",
            "Certificates, not revoked, expiring within the window (counted at most once a minute).",
        );
        sample(
            out,
            "lemur_certificates_expiring",
            &[("within", "7d")],
            expiring.within_7_days,
        );
        sample(
            out,
            "lemur_certificates_expiring",
            &[("within", "30d")],
            expiring.within_30_days,
        );
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, text)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape(text));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_their_buckets_and_labels_are_escaped() {
        let http = HttpMetrics::default();
        http.observe("/api/1/x", "GET", 200, Duration::from_millis(3), None);
        http.observe(
            "/api/1/x",
            "GET",
            400,
            Duration::from_millis(30),
            Some(ErrorCode("validation")),
        );
        let mut out = String::new();
        http.render(&mut out);
        assert!(
            out.contains(
                "lemur_http_requests_total{route=\"/api/1/x\",method=\"GET\",status=\"400\"} 1\n"
            ),
            "{out}"
        );
        assert!(out.contains("le=\"0.0025\"} 0\n"), "{out}");
        assert!(out.contains("le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("le=\"+Inf\"} 2\n"), "{out}");
        assert!(
            out.contains("lemur_http_errors_total{code=\"validation\"} 1\n"),
            "{out}"
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn clients_cannot_add_series_with_methods_of_their_own() {
        let http = HttpMetrics::default();
        for n in 0..100 {
            http.observe("unmatched", &format!("FOO{n}"), 404, Duration::ZERO, None);
        }
        let mut out = String::new();
        http.render(&mut out);
        assert!(
            out.contains("method=\"other\",status=\"404\"} 100\n"),
            "{out}"
        );
        assert!(!out.contains("FOO"), "{out}");
    }
}
