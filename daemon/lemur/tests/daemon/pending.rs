//! Pending certificates through the `offline-issuer`: an authority whose CA key the daemon
//! never holds. A request becomes an order with a CSR; openssl plays the CA and signs it; the
//! delivery is checked and stored as a certificate with the order's key.

use crate::support::{Appliance, Db, OfflineCa, openssl, openssl_csr, scratch};
use serde_json::{Value, json};

/// The public key of a PEM key, certificate or CSR, as openssl prints it.
fn public_key(kind: &str, pem: &str) -> String {
    let dir = scratch();
    std::fs::write(dir.path().join("in.pem"), pem).unwrap();
    let args: &[&str] = match kind {
        "key" => &["pkey", "-in", "in.pem", "-pubout"],
        "csr" => &["req", "-in", "in.pem", "-pubkey", "-noout"],
        _ => &["x509", "-in", "in.pem", "-pubkey", "-noout"],
    };
    openssl(args, dir.path())
}

fn order(app: &Appliance, authority: i64, extra: Value) -> lemur_testkit::daemon::Reply {
    let mut body = json!({ "owner": "web@example.com", "authority": { "id": authority } });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    app.post("/api/1/certificates", &body)
}

fn deliver(app: &Appliance, id: i64, body: &str) -> lemur_testkit::daemon::Reply {
    app.post(
        &format!("/api/1/pending_certificates/{id}/upload"),
        &json!({ "body": body }),
    )
}

/// Lemur's list parameters on orders: `filter` (cn, name, owner, authority) and `sortBy`/
/// `sortDir`; what does not apply to an order is refused by name. Leaves only `web` open.
fn lists_filter_and_sort_as_the_certificate_list(app: &Appliance, authority: i64, web: i64) {
    let api = order(
        app,
        authority,
        json!({ "commonName": "api.example.com", "keyType": "ECCPRIME256V1", "owner": "api@example.com" }),
    );
    assert_eq!(api.status, 202, "{}", api.text);
    let api = api.body["id"].as_i64().unwrap();
    let ids = |query: &str| -> Vec<i64> {
        let listed = app.get(&format!("/api/1/pending_certificates?{query}"));
        assert_eq!(listed.status, 200, "{query}: {}", listed.text);
        let items = listed.body["items"].as_array().unwrap();
        if !query.contains("count=") {
            assert_eq!(
                listed.body["total"],
                items.len(),
                "{query}: the total is the filter's"
            );
        }
        items.iter().map(|p| p["id"].as_i64().unwrap()).collect()
    };
    assert_eq!(ids(""), [api, web], "newest first");
    assert_eq!(
        ids("filter=cn;API.EXAMPLE"),
        [api],
        "a substring, in any case"
    );
    assert_eq!(ids("filter=cn;%25"), Vec::<i64>::new(), "% is literal");
    assert_eq!(ids("filter=owner;web@example.com"), [web]);
    assert_eq!(ids(&format!("filter=authority;{authority}")), [api, web]);
    assert_eq!(ids("filter=authority;0"), Vec::<i64>::new());
    assert_eq!(ids("sortBy=cn"), [api, web], "ascending by default");
    assert_eq!(ids("sortBy=owner&sortDir=desc"), [web, api]);
    assert_eq!(ids("sortBy=id&sortDir=asc&count=1&page=2"), [api]);
    for (query, field) in [
        ("filter=serial;1", "filter"),
        ("filter=san;web.example.com", "filter"),
        ("sortBy=notAfter", "sortBy"),
        ("sortDir=up", "sortDir"),
    ] {
        let refused = app.get(&format!("/api/1/pending_certificates?{query}"));
        assert_eq!(refused.status, 400, "{query}: {}", refused.text);
        assert!(
            refused.body["reasons"][field].is_string(),
            "{query}: {}",
            refused.text
        );
    }
    let cancelled = app.daemon.delete(
        &format!("/api/1/pending_certificates/{api}"),
        Some(&app.token),
        None,
    );
    assert_eq!(cancelled.status, 204, "{}", cancelled.text);
}

fn offline_orders(db: Db) {
    let app = Appliance::start(db);
    let ca = OfflineCa::new("Offline Root");

    // Registering: the CA certificate alone, with the offline issuer only.
    let without_body = app.post(
        "/api/1/authorities",
        &json!({ "name": "nobody", "owner": "pki@example.com", "commonName": "No CA",
                 "plugin": { "slug": "offline-issuer" } }),
    );
    assert_eq!(without_body.status, 400, "{}", without_body.text);
    assert!(
        without_body.body["reasons"]["body"].is_string(),
        "{}",
        without_body.text
    );
    let keyless = app.post(
        "/api/1/authorities",
        &json!({ "name": "keyless", "owner": "pki@example.com", "commonName": "Keyless",
                 "plugin": { "slug": "cryptography-issuer" }, "body": ca.certificate }),
    );
    assert_eq!(keyless.status, 400, "{}", keyless.text);
    assert!(
        keyless.body["reasons"]["keyUri"]
            .as_str()
            .unwrap()
            .contains("offline-issuer")
    );
    let authority = ca.register(&app, "offline");
    assert_eq!(authority["keyUri"], Value::Null);
    assert_eq!(authority["plugin"]["slug"], "offline-issuer");
    let authority = authority["id"].as_i64().unwrap();
    let below = app.post(
        "/api/1/authorities",
        &json!({ "name": "below", "owner": "pki@example.com", "commonName": "Below", "type": "subca",
                 "parent": { "id": authority }, "keyType": "ECCPRIME256V1", "validityYears": 1 }),
    );
    assert_eq!(below.status, 400, "{}", below.text);
    assert!(
        below.body["reasons"]["parent"]
            .as_str()
            .unwrap()
            .contains("not in the HSM")
    );

    let dated = order(
        &app,
        authority,
        json!({ "commonName": "dated.example.com", "validityYears": 1 }),
    );
    assert_eq!(dated.status, 400, "{}", dated.text);
    assert!(
        dated.body["reasons"]["validityEnd"].is_string(),
        "{}",
        dated.text
    );

    // An order with a key generated in the HSM: 202 and the request the CA is to sign.
    let ordered = order(
        &app,
        authority,
        json!({ "commonName": "web.example.com", "keyType": "ECCPRIME256V1",
                "description": "for the web tier" }),
    );
    assert_eq!(ordered.status, 202, "{}", ordered.text);
    let pending = &ordered.body;
    let id = pending["id"].as_i64().unwrap();
    assert_eq!(pending["resolved"], false);
    assert_eq!(pending["hasPrivateKey"], true);
    assert_eq!(pending["issuer"], "offline");
    assert_eq!(pending["domains"], json!([{ "name": "web.example.com" }]));
    let csr = pending["csr"].as_str().unwrap().to_owned();
    let dir = scratch();
    std::fs::write(dir.path().join("order.csr"), &csr).unwrap();
    let text = openssl(
        &["req", "-in", "order.csr", "-verify", "-noout", "-text"],
        dir.path(),
    );
    assert!(
        text.contains("CN = web.example.com") || text.contains("CN=web.example.com"),
        "{text}"
    );
    assert!(text.contains("DNS:web.example.com"), "{text}");

    let listed = app.get("/api/1/pending_certificates");
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["items"][0]["id"], id);
    lists_filter_and_sort_as_the_certificate_list(&app, authority, id);
    let changed = app.daemon.put(
        &format!("/api/1/pending_certificates/{id}"),
        Some(&app.token),
        &json!({ "description": "web tier, EU" }),
    );
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["description"], "web tier, EU");
    assert_eq!(changed.body["owner"], "web@example.com");

    // The key waits sealed with the order; it is the CSR's.
    let key = app.get(&format!("/api/1/pending_certificates/{id}/key"));
    assert_eq!(key.status, 200, "{}", key.text);
    let key = key.body["key"].as_str().unwrap().to_owned();
    assert_eq!(public_key("key", &key), public_key("csr", &csr));

    // Deliveries that are not the CA's answer to this order are refused, naming why.
    let refused = |body: &str, field: &str, why: &str| {
        let reply = deliver(&app, id, body);
        assert_eq!(reply.status, 400, "{why}: {}", reply.text);
        let reason = reply.body["reasons"][field].as_str().unwrap_or_default();
        assert!(reason.contains(why), "{why}: {}", reply.text);
    };
    refused(
        &ca.sign(&openssl_csr(&["web.example.com"]).1),
        "body",
        "another key",
    );
    refused(
        &OfflineCa::new("Someone Else").sign(&csr),
        "body",
        "not signed by",
    );
    refused(
        &ca.sign_with(
            &csr,
            &[],
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:web.example.com,DNS:bank.example.com\n",
        ),
        "body",
        "did not ask for",
    );
    refused(
        &ca.sign_with(
            &csr,
            &["-subj", "/CN=bank.example.com"],
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:web.example.com\n",
        ),
        "body",
        "common name",
    );
    refused(
        &ca.sign_with(
            &csr,
            &["-copy_extensions", "copy"],
            "basicConstraints=CA:FALSE\nextendedKeyUsage=codeSigning\n",
        ),
        "body",
        "TLS server certificate",
    );
    refused(
        &ca.sign_with(
            &csr,
            &["-copy_extensions", "copy"],
            "basicConstraints=critical,CA:TRUE\nextendedKeyUsage=serverAuth\n",
        ),
        "body",
        "CA certificate",
    );
    // A chain of the deliverer's making is not stored with it: only the authority's is taken.
    let signed = ca.sign(&csr);
    let forged_chain = OfflineCa::new("Offline Root").certificate;
    let reply = app.post(
        &format!("/api/1/pending_certificates/{id}/upload"),
        &json!({ "body": signed, "chain": forged_chain }),
    );
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.body["reasons"]["chain"].is_string(), "{}", reply.text);

    // The CA's answer becomes the certificate, with the order's owner, description and key;
    // the answer is the order, resolved, as Lemur's.
    let delivered = app.post(
        &format!("/api/1/pending_certificates/{id}/upload"),
        &json!({ "body": signed, "chain": ca.certificate }),
    );
    assert_eq!(delivered.status, 200, "{}", delivered.text);
    assert_eq!(delivered.body["resolved"], true, "{}", delivered.text);
    let certificate_id = delivered.body["resolvedCertId"].as_i64().unwrap();
    let certificate = app
        .get(&format!("/api/1/certificates/{certificate_id}"))
        .body;
    assert_eq!(certificate["owner"], "web@example.com");
    assert_eq!(certificate["description"], "web tier, EU");
    assert_eq!(certificate["authority"]["id"], authority);
    assert_eq!(certificate["hasPrivateKey"], true);
    assert_eq!(
        certificate["chain"].as_str().unwrap().trim(),
        ca.certificate.trim()
    );
    let stored_key = app.get(&format!("/api/1/certificates/{certificate_id}/key"));
    assert_eq!(stored_key.status, 200, "{}", stored_key.text);
    assert_eq!(stored_key.body["key"].as_str().unwrap(), key);
    let resolved = app.get(&format!("/api/1/pending_certificates/{id}"));
    assert_eq!(resolved.body, delivered.body);
    assert_eq!(
        resolved.body["hasPrivateKey"], false,
        "the key moved to the certificate"
    );
    assert_eq!(app.get("/api/1/pending_certificates").body["total"], 0);
    assert_eq!(deliver(&app, id, &ca.sign(&csr)).status, 409);
    let path = format!("/api/1/pending_certificates/{id}");
    assert_eq!(app.daemon.delete(&path, Some(&app.token), None).status, 409);

    // A revocation is recorded here; the CA is out of reach.
    let revoked = app.daemon.put(
        &format!("/api/1/certificates/{certificate_id}/revoke"),
        Some(&app.token),
        &json!({ "crlReason": "superseded" }),
    );
    assert_eq!(revoked.status, 200, "{}", revoked.text);

    // An order from the requester's CSR goes to the CA as it is, and is retried safely.
    let (_, own_csr) = openssl_csr(&["api.example.com"]);
    let with_names = order(
        &app,
        authority,
        json!({ "csr": own_csr, "extensions": { "subAltNames": { "names": [
            { "nameType": "DNSName", "value": "extra.example.com" } ] } } }),
    );
    assert_eq!(with_names.status, 400, "{}", with_names.text);
    assert!(with_names.body["reasons"]["extensions.subAltNames"].is_string());
    let request =
        json!({ "owner": "api@example.com", "authority": { "id": authority }, "csr": own_csr });
    let headers = [("Idempotency-Key", "order-api-1")];
    let first = app
        .daemon
        .post_with("/api/1/certificates", Some(&app.token), &request, &headers);
    let again = app
        .daemon
        .post_with("/api/1/certificates", Some(&app.token), &request, &headers);
    assert_eq!(
        (first.status, again.status),
        (202, 202),
        "{}\n{}",
        first.text,
        again.text
    );
    assert_eq!(first.body["id"], again.body["id"]);
    assert_eq!(first.body["csr"].as_str().unwrap().trim(), own_csr.trim());
    assert_eq!(first.body["hasPrivateKey"], false);
    let other = app.daemon.post_with(
        "/api/1/certificates",
        Some(&app.token),
        &json!({ "owner": "else@example.com", "authority": { "id": authority }, "csr": own_csr }),
        &headers,
    );
    assert_eq!(other.status, 422, "{}", other.text);
    let own_id = first.body["id"].as_i64().unwrap();
    let no_key = app.get(&format!("/api/1/pending_certificates/{own_id}/key"));
    assert_eq!(no_key.status, 404, "{}", no_key.text);

    // Cancelling deletes the order, with its note in the audit log.
    let path = format!("/api/1/pending_certificates/{own_id}");
    let cancelled = app.daemon.delete(
        &path,
        Some(&app.token),
        Some(&json!({ "note": "not needed" })),
    );
    assert_eq!(cancelled.status, 204, "{}", cancelled.text);
    assert_eq!(app.get(&path).status, 404);
    assert_eq!(
        app.query("SELECT COUNT(*) FROM logs WHERE log_type = 'cancel_pending' AND details LIKE '%not needed%'")
            .trim(),
        "1"
    );
    assert_eq!(
        app.query("SELECT COUNT(*) FROM pending_certificates")
            .trim(),
        "1",
        "the delivered order is kept; the retried one was stored once, then cancelled"
    );

    // An RSA key made for an order (its CSR signed by rcgen with it), replacing a certificate
    // once delivered; a cancellation needs no body.
    let rsa = order(
        &app,
        authority,
        json!({ "commonName": "rsa.example.com", "keyType": "RSA2048",
                "replaces": [{ "id": certificate_id }] }),
    );
    assert_eq!(rsa.status, 202, "{}", rsa.text);
    assert_eq!(rsa.body["keyType"], "RSA2048");
    assert_eq!(rsa.body["replaces"], json!([{ "id": certificate_id }]));
    let rsa_csr = rsa.body["csr"].as_str().unwrap();
    let dir = scratch();
    std::fs::write(dir.path().join("rsa.csr"), rsa_csr).unwrap();
    let text = openssl(
        &["req", "-in", "rsa.csr", "-verify", "-noout", "-text"],
        dir.path(),
    );
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    let rsa_id = rsa.body["id"].as_i64().unwrap();
    let delivered = deliver(&app, rsa_id, &ca.sign(rsa_csr));
    assert_eq!(delivered.status, 200, "{}", delivered.text);
    let replacement = app.get(&format!(
        "/api/1/certificates/{}",
        delivered.body["resolvedCertId"]
    ));
    assert_eq!(replacement.body["keyType"], "RSA2048");
    assert_eq!(replacement.body["replaces"][0]["id"], certificate_id);
    let unwanted = order(
        &app,
        authority,
        json!({ "commonName": "unwanted.example.com" }),
    );
    assert_eq!(unwanted.status, 202, "{}", unwanted.text);
    let path = format!("/api/1/pending_certificates/{}", unwanted.body["id"]);
    assert_eq!(app.daemon.delete(&path, Some(&app.token), None).status, 204);
    assert_eq!(app.get(&path).status, 404);
}

#[test]
fn an_offline_authority_takes_orders_and_their_delivery_on_sqlite() {
    offline_orders(Db::Sqlite);
}

#[test]
fn an_offline_authority_takes_orders_and_their_delivery_on_postgresql() {
    offline_orders(Db::Postgres);
}
