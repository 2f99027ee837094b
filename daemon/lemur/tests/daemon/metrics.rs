//! `/metrics`: Prometheus' text format, parsed by Prometheus' own Python client, with the
//! figures the daemon's work should have produced; refused to addresses not allowed.

use crate::support::{Appliance, Db, window};
use serde_json::{Value, json};
use std::process::Command;

/// Every sample of a metrics page as `[name, {labels}, value]`, parsed by `prometheus_client`
/// (which refuses what is not the text format).
fn parse(page: &str) -> Vec<(String, Value, f64)> {
    let script = "import json, sys\nfrom prometheus_client.parser import text_string_to_metric_families\nprint(json.dumps([[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]))";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), page.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "not the text format: {}\n{page}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<(String, Value, f64)>>(&output.stdout).unwrap()
}

/// The value of the sample `name` with exactly `labels`.
fn value(samples: &[(String, Value, f64)], name: &str, labels: Value) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == labels)
        .map(|(_, _, v)| *v)
}

#[test]
fn metrics_count_requests_issuance_hsm_work_entropy_and_expiries() {
    let app = Appliance::start(Db::Sqlite);
    let authority = app.root("Metered", "ECCPRIME256V1");
    let id = authority["id"].as_i64().unwrap();
    for (n, days) in [(1, 5), (2, 20), (3, 60)] {
        let (start, end) = window(-1, days * 24 * 60);
        let reply = app.post(
            "/api/1/certificates",
            &json!({
                "owner": "ops@example.com", "commonName": format!("m{n}.example.com"),
                "authority": { "id": id }, "keyType": "ECCPRIME256V1",
                "validityStart": start, "validityEnd": end,
            }),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(app.get("/api/1/certificates/999999").status, 404);
    let invalid = app.post("/api/1/certificates", &json!({ "owner": "x" }));
    assert_eq!(invalid.status, 400, "{}", invalid.text);

    // No token: the address is what is checked.
    let page = app.daemon.get("/metrics", None);
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(
        page.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let samples = parse(&page.text);
    let get = |name: &str, labels: Value| {
        value(&samples, name, labels.clone())
            .unwrap_or_else(|| panic!("no {name} {labels}:\n{}", page.text))
    };
    let issue = json!({ "route": "/api/1/certificates", "method": "POST" });
    let with_status = |status: &str| {
        let mut labels = issue.clone();
        labels["status"] = json!(status);
        labels
    };
    assert_eq!(get("lemur_http_requests_total", with_status("200")), 3.0);
    assert_eq!(get("lemur_http_requests_total", with_status("400")), 1.0);
    assert_eq!(
        get(
            "lemur_http_requests_total",
            json!({ "route": "/api/1/certificates/{id}", "method": "GET", "status": "404" })
        ),
        1.0
    );
    assert_eq!(
        get("lemur_http_request_duration_seconds_count", issue.clone()),
        4.0
    );
    let mut infinite = issue.clone();
    infinite["le"] = json!("+Inf");
    assert_eq!(
        get("lemur_http_request_duration_seconds_bucket", infinite),
        4.0
    );
    assert!(get("lemur_http_request_duration_seconds_sum", issue) > 0.0);
    assert_eq!(
        get("lemur_http_errors_total", json!({ "code": "not_found" })),
        1.0
    );
    assert_eq!(
        get("lemur_http_errors_total", json!({ "code": "validation" })),
        1.0
    );
    assert_eq!(
        get(
            "lemur_certificates_issued_total",
            json!({ "authority": "Metered" })
        ),
        3.0
    );
    // Three certificates and the root: four signatures at least; three keys made and sealed.
    assert!(get("lemur_hsm_operations_total", json!({ "operation": "sign" })) >= 4.0);
    assert!(
        get(
            "lemur_hsm_operations_total",
            json!({ "operation": "generate_exportable_key_pair" })
        ) >= 3.0
    );
    assert!(get("lemur_hsm_operations_total", json!({ "operation": "seal" })) >= 3.0);
    assert_eq!(
        get(
            "lemur_hsm_operation_errors_total",
            json!({ "operation": "sign" })
        ),
        0.0
    );
    let capacity = get("lemur_hsm_sessions_capacity", json!({}));
    let open = get("lemur_hsm_sessions_open", json!({}));
    assert!(
        capacity >= 1.0 && (1.0..=capacity).contains(&open),
        "{capacity} {open}"
    );
    assert!(get("lemur_hsm_sessions_in_use", json!({})) <= open);
    assert_eq!(get("lemur_entropy_healthy", json!({})), 1.0);
    assert!(
        samples
            .iter()
            .any(|(n, _, v)| n == "lemur_entropy_source_healthy" && *v == 1.0)
    );
    assert_eq!(get("lemur_database_up", json!({})), 1.0);
    assert_eq!(
        get("lemur_certificates_expiring", json!({ "within": "7d" })),
        1.0
    );
    assert_eq!(
        get("lemur_certificates_expiring", json!({ "within": "30d" })),
        2.0
    );
    assert_eq!(
        get(
            "lemur_build_info",
            json!({ "version": env!("CARGO_PKG_VERSION") })
        ),
        1.0
    );
}

#[test]
fn metrics_are_refused_to_addresses_not_allowed() {
    let mut app = Appliance::start(Db::Sqlite);
    let path = app.daemon.config_path();
    let config = std::fs::read_to_string(&path).unwrap();
    let allowed = "allow = [\"127.0.0.1\", \"::1\"]";
    assert!(config.contains(allowed), "{config}");
    for allow in ["allow = [\"192.0.2.0/24\"]", "allow = []"] {
        std::fs::write(&path, config.replace(allowed, allow)).unwrap();
        app.daemon.restart();
        let refused = app.daemon.get("/metrics", None);
        assert_eq!(refused.status, 403, "{allow}: {}", refused.text);
        assert_eq!(refused.body["code"], "forbidden");
        assert!(
            refused.body["message"]
                .as_str()
                .unwrap()
                .contains("[metrics] allow")
        );
        // A client that is no trusted proxy cannot name an allowed address for itself.
        let spoofed = app
            .daemon
            .get_with("/metrics", None, &[("X-Forwarded-For", "192.0.2.7")]);
        assert_eq!(spoofed.status, 403, "{allow}: {}", spoofed.text);
    }
    std::fs::write(&path, config.replace(allowed, "allow = [\"127.0.0.0/8\"]")).unwrap();
    app.daemon.restart();
    assert_eq!(app.daemon.get("/metrics", None).status, 200);
}
