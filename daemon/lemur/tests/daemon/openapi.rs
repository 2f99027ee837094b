//! The OpenAPI document against what the daemon really answers: every response a user meets,
//! successes and errors, validates against the schema the document gives for its route and
//! status (JSON Schema 2020-12, checked by Python's `jsonschema`, an implementation independent
//! of the one that wrote the document).

use crate::support::{Appliance, Db, OfflineCa, openssl_csr, scratch};
use serde_json::{Value, json};
use std::process::Command;

const VALIDATE: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
document = json.load(open(sys.argv[1]))
samples = json.load(open(sys.argv[2]))
failures = []
for sample in samples:
    operation = document["paths"].get(sample["route"], {}).get(sample["method"].lower())
    if operation is None:
        failures.append(f"{sample['method']} {sample['route']}: not in the document")
        continue
    response = operation["responses"].get(str(sample["status"]))
    if response is None:
        failures.append(f"{sample['method']} {sample['route']}: status {sample['status']} not documented")
        continue
    content = response.get("content", {})
    if "application/json" not in content:
        continue
    schema = dict(content["application/json"]["schema"])
    schema["components"] = document.get("components", {})
    for error in Draft202012Validator(schema).iter_errors(sample["body"]):
        path = "/".join(str(p) for p in error.absolute_path)
        failures.append(f"{sample['method']} {sample['route']} {sample['status']} at /{path}: {error.message[:300]}")
print("\n".join(failures))
sys.exit(1 if failures else 0)
"#;

#[test]
fn real_responses_validate_against_the_served_openapi_document() {
    let app = Appliance::start(Db::Sqlite);
    let document = app.daemon.get("/api/1/openapi.json", None);
    assert_eq!(document.status, 200, "{}", document.text);
    assert_eq!(document.body["openapi"], "3.1.0");
    let root = app.root("openapi-root", "ECCPRIME256V1");
    let root_id = root["id"].as_i64().unwrap();
    let (_, csr) = openssl_csr(&["api.example.com"]);
    let first = app.post(
        "/api/1/certificates",
        &json!({ "owner": "api@example.com", "authority": { "id": root_id }, "commonName": "api.example.com",
                 "keyType": "ECCPRIME256V1" }),
    );
    let first_id = first.body["id"].as_i64().unwrap();
    let (body, chain, key) = crate::ca::external_certificate();
    let upload =
        json!({ "owner": "api@example.com", "body": body, "chain": chain, "privateKey": key });
    let offline_ca = OfflineCa::new("OpenAPI Offline");
    let offline = offline_ca.register(&app, "openapi-offline")["id"]
        .as_i64()
        .unwrap();
    let ordered = app.post(
        "/api/1/certificates",
        &json!({ "owner": "api@example.com", "authority": { "id": offline },
                 "commonName": "ordered.example.com", "keyType": "ECCPRIME256V1" }),
    );
    assert_eq!(ordered.status, 202, "{}", ordered.text);
    let pending_id = ordered.body["id"].as_i64().unwrap();
    let signed = offline_ca.sign(ordered.body["csr"].as_str().unwrap());
    let token = Some(app.token.as_str());
    // (method, route, concrete path, body, token)
    let calls: Vec<(&str, &str, String, Value, Option<&str>)> = vec![
        (
            "GET",
            "/healthcheck/details",
            "/api/1/healthcheck/details".into(),
            Value::Null,
            token,
        ),
        (
            "POST",
            "/auth/login",
            "/api/1/auth/login".into(),
            json!({ "username": "lemur", "password": app.daemon.admin_password }),
            None,
        ),
        (
            "POST",
            "/auth/login",
            "/api/1/auth/login".into(),
            json!({ "username": "lemur", "password": "wrong" }),
            None,
        ),
        (
            "POST",
            "/auth/login",
            "/api/1/auth/login".into(),
            json!({ "username": 5 }),
            None,
        ),
        (
            "GET",
            "/auth/me",
            "/api/1/auth/me".into(),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/auth/me",
            "/api/1/auth/me".into(),
            Value::Null,
            None,
        ),
        (
            "GET",
            "/auth/providers",
            "/api/1/auth/providers".into(),
            Value::Null,
            None,
        ),
        (
            "GET",
            "/authorities",
            "/api/1/authorities".into(),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/authorities",
            "/api/1/authorities?count=0".into(),
            Value::Null,
            token,
        ),
        (
            "POST",
            "/authorities",
            "/api/1/authorities".into(),
            json!({ "name": "openapi-sub", "owner": "pki@example.com", "commonName": "Sub", "type": "subca",
                    "parent": { "id": root_id }, "keyType": "ECCPRIME256V1", "validityYears": 1 }),
            token,
        ),
        (
            "POST",
            "/authorities",
            "/api/1/authorities".into(),
            json!({ "name": "x" }),
            token,
        ),
        (
            "GET",
            "/authorities/{id}",
            format!("/api/1/authorities/{root_id}"),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/authorities/{id}",
            "/api/1/authorities/999".into(),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/certificates",
            "/api/1/certificates".into(),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/certificates",
            "/api/1/certificates?short=true".into(),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/certificates",
            "/api/1/certificates?filter=bogus".into(),
            Value::Null,
            token,
        ),
        (
            "POST",
            "/certificates",
            "/api/1/certificates".into(),
            json!({ "owner": "api@example.com", "authority": { "id": root_id }, "csr": csr,
                    "replaces": [{ "id": first_id }] }),
            token,
        ),
        (
            "POST",
            "/certificates",
            "/api/1/certificates".into(),
            json!({ "owner": "api@example.com" }),
            token,
        ),
        (
            "POST",
            "/certificates/upload",
            "/api/1/certificates/upload".into(),
            upload.clone(),
            token,
        ),
        (
            "POST",
            "/certificates/upload",
            "/api/1/certificates/upload".into(),
            upload,
            token,
        ),
        (
            "GET",
            "/certificates/{id}",
            format!("/api/1/certificates/{first_id}"),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/certificates/{id}",
            "/api/1/certificates/abc".into(),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/certificates/{id}/key",
            format!("/api/1/certificates/{first_id}/key"),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/certificates/{id}/key",
            "/api/1/certificates/1/key".into(),
            Value::Null,
            token,
        ),
        (
            "PUT",
            "/certificates/{id}/revoke",
            format!("/api/1/certificates/{first_id}/revoke"),
            json!({ "crlReason": "superseded" }),
            token,
        ),
        (
            "PUT",
            "/certificates/{id}/revoke",
            format!("/api/1/certificates/{first_id}/revoke"),
            json!({}),
            token,
        ),
        (
            "POST",
            "/domains",
            "/api/1/domains".into(),
            json!({ "name": "api.example.org", "sensitive": true }),
            token,
        ),
        (
            "POST",
            "/domains",
            "/api/1/domains".into(),
            json!({ "name": "api.example.org" }),
            token,
        ),
        (
            "GET",
            "/domains",
            "/api/1/domains".into(),
            Value::Null,
            token,
        ),
        (
            "PUT",
            "/domains/{id}",
            "/api/1/domains/9999".into(),
            json!({ "sensitive": false }),
            token,
        ),
        (
            "POST",
            "/auth/logout",
            "/api/1/auth/logout".into(),
            Value::Null,
            None,
        ),
        (
            "GET",
            "/plugins",
            "/api/1/plugins".into(),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/plugins",
            "/api/1/plugins?type=nope".into(),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/plugins/{slug}",
            "/api/1/plugins/hsm-issuer".into(),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/plugins/{slug}",
            "/api/1/plugins/nope".into(),
            Value::Null,
            token,
        ),
        (
            "POST",
            "/certificates",
            "/api/1/certificates".into(),
            json!({ "owner": "api@example.com", "authority": { "id": offline }, "csr": csr }),
            token,
        ),
        (
            "GET",
            "/pending_certificates",
            "/api/1/pending_certificates".into(),
            Value::Null,
            token,
        ),
        (
            "GET",
            "/pending_certificates/{id}",
            format!("/api/1/pending_certificates/{pending_id}"),
            Value::Null,
            token,
        ),
        (
            "PUT",
            "/pending_certificates/{id}",
            format!("/api/1/pending_certificates/{pending_id}"),
            json!({ "owner": "" }),
            token,
        ),
        (
            "PUT",
            "/pending_certificates/{id}",
            format!("/api/1/pending_certificates/{pending_id}"),
            json!({ "description": "ordered" }),
            token,
        ),
        (
            "GET",
            "/pending_certificates/{id}/key",
            format!("/api/1/pending_certificates/{pending_id}/key"),
            Value::Null,
            token,
        ),
        (
            "POST",
            "/pending_certificates/{id}/upload",
            format!("/api/1/pending_certificates/{pending_id}/upload"),
            json!({ "body": signed }),
            token,
        ),
        (
            "POST",
            "/pending_certificates/{id}/upload",
            format!("/api/1/pending_certificates/{pending_id}/upload"),
            json!({ "body": signed }),
            token,
        ),
        (
            "DELETE",
            "/pending_certificates/{id}",
            "/api/1/pending_certificates/999".into(),
            Value::Null,
            token,
        ),
    ];
    let mut samples = Vec::new();
    for (method, route, path, body, token) in calls {
        let reply = match method {
            "GET" => app.daemon.get(&path, token),
            "PUT" => app.daemon.put(&path, token, &body),
            "DELETE" => app.daemon.delete(&path, token, Some(&body)),
            _ => app.daemon.post(&path, token, &body),
        };
        assert!(reply.status < 500, "{method} {path}: {}", reply.text);
        samples.push(
            json!({ "method": method, "route": route, "status": reply.status, "body": reply.body }),
        );
    }
    let statuses: Vec<u16> = samples
        .iter()
        .map(|s| s["status"].as_u64().unwrap() as u16)
        .collect();
    for status in [200, 202, 400, 401, 404, 409] {
        assert!(
            statuses.contains(&status),
            "no {status} sample: {statuses:?}"
        );
    }
    let dir = scratch();
    std::fs::write(dir.path().join("openapi.json"), &document.text).unwrap();
    std::fs::write(
        dir.path().join("samples.json"),
        Value::Array(samples).to_string(),
    )
    .unwrap();
    let output = Command::new("python3")
        .args(["-c", VALIDATE])
        .arg(dir.path().join("openapi.json"))
        .arg(dir.path().join("samples.json"))
        .output()
        .expect("python3 with jsonschema (pip install jsonschema)");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
