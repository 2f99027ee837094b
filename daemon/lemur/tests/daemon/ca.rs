//! The local CA end to end: authorities, issuance from a CSR and with HSM-generated keys, import,
//! key retrieval, and what must never be in the database.

use crate::on_both_databases;
use crate::support::{
    Appliance, Db, OfflineCa, key_matches, lemur_hsm, openssl, openssl_csr, openssl_p256_request,
    pkilint, scratch, verify_with_openssl, window,
};
use serde_json::{Value, json};
use std::process::Command;

/// Issues a certificate, and checks that the answer shows it as a later read does (the writer
/// answers from the rows its `INSERT` returned, on PostgreSQL, with what their views join in
/// from its copy, without reading them back).
fn issue(app: &Appliance, body: Value) -> Value {
    let reply = app.post("/api/1/certificates", &body);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let read = app.get(&format!("/api/1/certificates/{}", reply.body["id"]));
    assert_eq!(read.body, reply.body, "{}\n{}", read.text, reply.text);
    reply.body
}

fn issue_and_verify(db: Db) {
    let app = Appliance::start(db);
    let root = app.root("root-ca", "ECCPRIME256V1");
    pkilint(root["authorityCertificate"]["body"].as_str().unwrap(), None);
    let root_id = root["id"].as_i64().unwrap();
    let issuing = app.sub_ca("issuing-ca", root_id, json!({}));
    let issuing_id = issuing["id"].as_i64().unwrap();
    let sub_ca_body = issuing["authorityCertificate"]["body"].as_str().unwrap();
    pkilint(sub_ca_body, None);
    verify_with_openssl(
        sub_ca_body,
        root["authorityCertificate"]["body"].as_str().unwrap(),
    );
    let nested = app.post(
        "/api/1/authorities",
        &json!({ "name": "nested", "owner": "pki@example.com", "commonName": "Nested", "type": "subca",
                 "parent": { "id": issuing_id }, "validityYears": 1 }),
    );
    assert_eq!(nested.status, 400, "{}", nested.text);
    assert!(
        nested.body["reasons"]["parent"]
            .as_str()
            .unwrap()
            .contains("path length is 0"),
        "{}",
        nested.text
    );
    let roles: Vec<&str> = issuing["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"issuing-ca_admin") && roles.contains(&"issuing-ca_operator"),
        "{roles:?}"
    );

    let (_, csr) = openssl_csr(&["csr.example.com", "www.csr.example.com"]);
    let from_csr = issue(
        &app,
        json!({ "owner": "alice@example.com", "authority": { "id": issuing_id }, "csr": csr }),
    );
    assert_eq!(from_csr["cn"], "csr.example.com");
    // `issue` checked the answer against a read; what a read joins in is there too.
    assert_eq!(from_csr["authority"]["id"], issuing_id);
    assert!(from_csr["user"]["email"].is_string(), "{from_csr}");
    assert!(from_csr["authority"]["authorityCertificate"]["notAfter"].is_string());
    assert!(from_csr["rotationPolicy"]["name"].is_string(), "{from_csr}");
    let extensions = &from_csr["extensions"];
    assert_eq!(
        extensions["extendedKeyUsage"]["useServerAuthentication"],
        true
    );
    assert_eq!(
        extensions["extendedKeyUsage"]["useClientAuthentication"],
        true
    );
    assert_eq!(extensions["basicConstraints"]["ca"], false);
    assert_eq!(from_csr["hasPrivateKey"], false);
    assert_eq!(from_csr["keyType"], "ECCPRIME256V1");
    let domains: Vec<&str> = from_csr["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(domains, ["csr.example.com", "www.csr.example.com"]);

    let (start, end) = window(-1, 90 * 24 * 60);
    let mut names = std::collections::HashSet::new();
    for key_type in ["ECCPRIME256V1", "ECCSECP384R1", "RSA2048"] {
        let generated = issue(
            &app,
            json!({
                "owner": "alice@example.com", "commonName": "gen.example.com", "authority": { "id": issuing_id },
                "keyType": key_type, "validityStart": start, "validityEnd": end,
                "extensions": { "subAltNames": { "names": [
                    { "nameType": "DNSName", "value": "gen.example.com" },
                    { "nameType": "IPAddress", "value": "192.0.2.7" }
                ] } },
            }),
        );
        assert_eq!(generated["keyType"], key_type);
        assert_eq!(generated["hasPrivateKey"], true);
        let name = generated["name"].as_str().unwrap().to_owned();
        assert!(
            name.starts_with("SAN-gen.example.com-issuingcaIssuing-"),
            "{name}"
        );
        assert!(names.insert(name), "certificate names are unique");
        assert_eq!(
            generated["validityStart"].as_str().unwrap(),
            start.replace(".000Z", "Z")
        );
        let id = generated["id"].as_i64().unwrap();
        let key = app.get(&format!("/api/1/certificates/{id}/key"));
        assert_eq!(key.status, 200, "{}", key.text);
        assert!(key.header("cache-control").unwrap().contains("no-store"));
        let pem = key.body["key"].as_str().unwrap();
        assert!(
            key_matches(generated["body"].as_str().unwrap(), pem),
            "{key_type}: the key must match the certificate"
        );
        let audit = app.query(&format!(
            "SELECT l.log_type, u.username, l.source_address FROM logs l JOIN users u ON u.id = l.user_id
             WHERE l.certificate_id = {id} ORDER BY l.id"
        ));
        assert_eq!(
            audit, "create_cert|lemur|127.0.0.1\nkey_view|lemur|127.0.0.1\n",
            "issuance and every key view are audited"
        );
        verify_with_openssl(
            generated["body"].as_str().unwrap(),
            generated["chain"].as_str().unwrap(),
        );
        pkilint(generated["body"].as_str().unwrap(), None);
    }
    verify_with_openssl(
        from_csr["body"].as_str().unwrap(),
        from_csr["chain"].as_str().unwrap(),
    );
    pkilint(from_csr["body"].as_str().unwrap(), None);

    let listed = app.get("/api/1/certificates?filter=cn;gen.example&count=2&page=1");
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["total"], 3);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
    let authorities = app.get("/api/1/authorities");
    assert_eq!(authorities.body["total"], 2);
}
on_both_databases!(issue_and_verify_everything, issue_and_verify);

fn cab_compliant(db: Db) {
    let app = Appliance::start(db);
    let root = app.post(
        "/api/1/authorities",
        &json!({
            "name": "public-root", "owner": "pki@example.com", "commonName": "Public Root",
            "type": "root", "keyType": "ECCSECP384R1", "validityYears": 10, "cabCompliant": true,
            "country": "US", "organization": "Lemur Tests", "organizationalUnit": "Dropped",
            "crlUrl": "http://crl.example.com/root.crl", "issuerUrl": "http://pki.example.com/root.crt",
        }),
    );
    assert_eq!(root.status, 200, "{}", root.text);
    let root = root.body;
    let no_crl = app.root("private-root", "ECCPRIME256V1");
    let refused = app.post(
        "/api/1/authorities",
        &json!({ "name": "no-crl", "owner": "pki@example.com", "commonName": "No CRL", "type": "subca",
                 "parent": { "id": no_crl["id"] }, "validityYears": 1, "cabCompliant": true,
                 "crlUrl": "http://crl.example.com/no-crl.crl" }),
    );
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.body["reasons"]["parent"]
            .as_str()
            .unwrap()
            .contains("crlUrl"),
        "{}",
        refused.text
    );
    let issuing = app.sub_ca(
        "public-issuing",
        root["id"].as_i64().unwrap(),
        json!({ "cabCompliant": true, "crlUrl": "http://crl.example.com/issuing.crl", "issuerUrl": "http://pki.example.com/issuing.crt" }),
    );
    assert!(
        issuing["defaultValidityDays"].as_i64().unwrap() <= 200,
        "{issuing}"
    );
    let issuing_id = issuing["id"].as_i64().unwrap();
    let leaf = issue(
        &app,
        json!({ "owner": "web@example.com", "commonName": "shop.example.com", "authority": { "id": issuing_id },
                "extensions": { "subAltNames": { "names": [{ "nameType": "DNSName", "value": "shop.example.com" }] } } }),
    );
    pkilint(leaf["body"].as_str().unwrap(), Some("OV-FINAL-CERTIFICATE"));
    pkilint(
        issuing["authorityCertificate"]["body"].as_str().unwrap(),
        Some("INTERNAL-UNCONSTRAINED-TLS-CA"),
    );
    pkilint(
        root["authorityCertificate"]["body"].as_str().unwrap(),
        Some("ROOT-CA"),
    );
    verify_with_openssl(
        leaf["body"].as_str().unwrap(),
        leaf["chain"].as_str().unwrap(),
    );
    let (too_long_start, too_long_end) = window(1, 400 * 24 * 60);
    let too_long = app.post(
        "/api/1/certificates",
        &json!({ "owner": "web@example.com", "commonName": "shop.example.com", "authority": { "id": issuing_id },
                 "validityStart": too_long_start, "validityEnd": too_long_end,
                 "extensions": { "subAltNames": { "names": [{ "nameType": "DNSName", "value": "shop.example.com" }] } } }),
    );
    assert_eq!(too_long.status, 400, "{}", too_long.text);
    assert!(
        too_long.body["reasons"]["validityEnd"]
            .as_str()
            .unwrap()
            .contains("maximum"),
        "{}",
        too_long.text
    );
    let cn_only = issue(
        &app,
        json!({ "owner": "web@example.com", "commonName": "cn-only.example.com", "authority": { "id": issuing_id } }),
    );
    assert_eq!(
        cn_only["extensions"]["subAltNames"]["names"][0]["value"], "cn-only.example.com",
        "a DNS name given only as CN becomes the SAN: {cn_only}"
    );
    pkilint(
        cn_only["body"].as_str().unwrap(),
        Some("OV-FINAL-CERTIFICATE"),
    );
    for (name_type, value) in [
        ("IPAddress", "10.1.2.3"),
        ("IPAddress", "::1"),
        ("DNSName", "intranet"),
    ] {
        let internal = app.post(
            "/api/1/certificates",
            &json!({ "owner": "web@example.com", "authority": { "id": issuing_id },
                     "extensions": { "subAltNames": { "names": [{ "nameType": name_type, "value": value }] } } }),
        );
        assert_eq!(internal.status, 400, "{value}: {}", internal.text);
        assert!(
            internal.body["reasons"]["extensions.subAltNames"]
                .as_str()
                .unwrap()
                .contains(value),
            "{}",
            internal.text
        );
    }
    let no_san = app.post(
        "/api/1/certificates",
        &json!({ "owner": "web@example.com", "commonName": "Shop Server", "authority": { "id": issuing_id } }),
    );
    assert_eq!(no_san.status, 400, "{}", no_san.text);
    assert!(
        no_san.body["reasons"]["extensions.subAltNames"].is_string(),
        "{}",
        no_san.text
    );
}
on_both_databases!(
    cab_compliant_authorities_issue_baseline_conforming_certificates,
    cab_compliant
);

fn ca_keys_stay_in_the_hsm(db: Db) {
    let app = Appliance::start(db);
    let root = app.root("hsm-root", "RSA2048");
    let key_uri = root["keyUri"].as_str().unwrap();
    assert!(
        key_uri.starts_with("pkcs11:token=lemur;object=lemur-ca-hsm-root-"),
        "{key_uri}"
    );
    let probe = hsm_cli(&app, &["probe", "--uri", key_uri]);
    assert_eq!(probe["read_secret_value"], "CKR_ATTRIBUTE_SENSITIVE");
    assert_eq!(probe["wrap_attempt"], "CKR_KEY_UNEXTRACTABLE");
    assert_eq!(probe["extractable"], false);

    // A name taken, even by two requests racing, leaves exactly one key behind.
    let ca_keys = |name: &str| {
        let prefix = format!("lemur-ca-{name}-");
        hsm_cli(&app, &["list"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| {
                k["label"].as_str().unwrap().starts_with(&prefix) && k["class"] == "private"
            })
            .count()
    };
    let body = json!({ "name": "hsm-root", "owner": "pki@example.com", "commonName": "Again", "type": "root", "validityYears": 1 });
    let taken = app.post("/api/1/authorities", &body);
    assert_eq!(taken.status, 400, "{}", taken.text);
    assert!(
        taken.body["reasons"]["name"]
            .as_str()
            .unwrap()
            .contains("exists")
    );
    assert_eq!(ca_keys("hsm-root"), 1);
    let racing = json!({ "name": "racing", "owner": "pki@example.com", "commonName": "Racing", "type": "root", "validityYears": 1 });
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| app.post("/api/1/authorities", &racing).status))
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 400 || s == 409),
        "{statuses:?}"
    );
    assert_eq!(ca_keys("racing"), 1, "{statuses:?}");
}

on_both_databases!(
    ca_private_keys_cannot_leave_the_hsm,
    ca_keys_stay_in_the_hsm
);

/// `lemur-hsm --json ARGS` on the daemon's token.
fn hsm_cli(app: &Appliance, args: &[&str]) -> Value {
    let state = app.daemon.state_dir();
    let output = Command::new(lemur_hsm())
        .env("SOFTHSM2_CONF", state.join("softhsm/softhsm2.conf"))
        .args(["--token", "lemur", "--json", "--pin-file"])
        .arg(state.join("secrets/hsm-pin"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&text).unwrap()
}

/// A CA and a leaf made by openssl, as an external certificate to import.
pub(crate) fn external_certificate() -> (String, String, String) {
    let dir = scratch();
    openssl_p256_request(
        dir.path(),
        "-x509",
        "ca.key",
        &["-subj", "/CN=External CA", "-days", "30", "-out", "ca.pem"],
    );
    openssl(
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-subj",
            "/CN=imported.example.com",
            "-out",
            "leaf.csr",
        ],
        dir.path(),
    );
    std::fs::write(
        dir.path().join("ext.cnf"),
        "subjectAltName=DNS:imported.example.com\n",
    )
    .unwrap();
    lemur_testkit::openssl_ca_sign(dir.path(), "leaf.csr", "20", "ext.cnf", "leaf.pem");
    openssl(
        &[
            "pkey",
            "-in",
            "leaf.key",
            "-traditional",
            "-out",
            "leaf.rsa.key",
        ],
        dir.path(),
    );
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    (read("leaf.pem"), read("ca.pem"), read("leaf.rsa.key"))
}

fn upload(db: Db) {
    let app = Appliance::start(db);
    let (body, chain, key) = external_certificate();
    let (_, _, other_key) = external_certificate();
    let mismatched = app.post("/api/1/certificates/upload", &json!({ "owner": "bob@example.com", "body": body, "chain": chain, "privateKey": other_key }));
    assert_eq!(mismatched.status, 400, "{}", mismatched.text);
    assert!(
        mismatched.body["reasons"]["privateKey"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );
    let (_, foreign_chain, _) = external_certificate();
    let bad_chain = app.post(
        "/api/1/certificates/upload",
        &json!({ "owner": "bob@example.com", "body": body, "chain": foreign_chain }),
    );
    assert_eq!(bad_chain.status, 400, "{}", bad_chain.text);
    assert!(bad_chain.body["reasons"]["chain"].is_string());

    let imported = app.post("/api/1/certificates/upload", &json!({ "owner": "bob@example.com", "body": body, "chain": chain, "privateKey": key, "description": "from the old CA" }));
    assert_eq!(imported.status, 200, "{}", imported.text);
    assert_eq!(imported.body["cn"], "imported.example.com");
    assert_eq!(imported.body["hasPrivateKey"], true);
    assert_eq!(imported.body["issuer"], "ExternalCA");
    let id = imported.body["id"].as_i64().unwrap();
    let returned = app.get(&format!("/api/1/certificates/{id}/key"));
    assert_eq!(returned.body["key"].as_str().unwrap().trim(), key.trim());

    let duplicate = app.post(
        "/api/1/certificates/upload",
        &json!({ "owner": "bob@example.com", "body": body }),
    );
    assert_eq!(duplicate.status, 409, "{}", duplicate.text);

    let (racing, racing_chain, _) = external_certificate();
    let body = json!({ "owner": "bob@example.com", "body": racing, "chain": racing_chain });
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| app.post("/api/1/certificates/upload", &body).status))
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [200, 409, 409, 409],
        "one import wins: {statuses:?}"
    );
}
on_both_databases!(upload_checks_key_chain_and_duplicates, upload);

/// The base64 lines of a PEM body, long enough to be unmistakable.
fn pem_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| l.len() >= 40 && !l.starts_with("-----"))
        .map(str::to_owned)
        .collect()
}

fn no_clear_keys(db: Db) {
    let app = Appliance::start(db);
    let root = app.root("seal-root", "ECCPRIME256V1");
    let generated = issue(
        &app,
        json!({ "owner": "carol@example.com", "commonName": "sealed.example.com", "authority": { "id": root["id"] }, "keyType": "RSA2048" }),
    );
    let generated_key = app
        .get(&format!("/api/1/certificates/{}/key", generated["id"]))
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (body, chain, uploaded_key) = external_certificate();
    let imported = app.post("/api/1/certificates/upload", &json!({ "owner": "carol@example.com", "body": body, "chain": chain, "privateKey": uploaded_key }));
    assert_eq!(imported.status, 200, "{}", imported.text);
    // A key generated for an order waits sealed too.
    let offline = OfflineCa::new("Seal Offline").register(&app, "seal-offline");
    let ordered = app.post(
        "/api/1/certificates",
        &json!({ "owner": "carol@example.com", "commonName": "waiting.example.com",
                 "authority": { "id": offline["id"] }, "keyType": "ECCPRIME256V1" }),
    );
    assert_eq!(ordered.status, 202, "{}", ordered.text);
    let order_key = app
        .get(&format!(
            "/api/1/pending_certificates/{}/key",
            ordered.body["id"]
        ))
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let database = app.database_bytes();
    let text = String::from_utf8_lossy(&database);
    assert!(
        text.contains("sealed.example.com") && text.contains("waiting.example.com"),
        "the scan must see the database's content"
    );
    for key in [&generated_key, &uploaded_key, &order_key] {
        assert!(
            !text.contains("PRIVATE KEY"),
            "a PEM private key header is in the database"
        );
        for line in pem_lines(key) {
            assert!(
                !text.contains(&line),
                "a line of a private key is in the database in clear"
            );
        }
    }
}
on_both_databases!(no_private_key_is_stored_in_clear, no_clear_keys);

fn import_authority(db: Db) {
    let app = Appliance::start(db);
    let state = app.daemon.state_dir();
    let generated = Command::new(lemur_hsm())
        .env("SOFTHSM2_CONF", state.join("softhsm/softhsm2.conf"))
        .args(["--token", "lemur", "--json", "--pin-file"])
        .arg(state.join("secrets/hsm-pin"))
        .args([
            "generate-key",
            "--label",
            "imported-ca",
            "--algorithm",
            "p256",
        ])
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let generated: Value = serde_json::from_slice(&generated.stdout).unwrap();
    let key_uri = generated["key"]["uri"].as_str().unwrap();
    let dir = scratch();
    std::fs::write(
        dir.path().join("pub.pem"),
        generated["public_key_pem"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("ca.cnf"), "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n").unwrap();
    openssl_p256_request(
        dir.path(),
        "-x509",
        "root.key",
        &[
            "-subj",
            "/CN=Offline Root",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-days",
            "365",
            "-out",
            "root.pem",
        ],
    );
    openssl(
        &[
            "x509",
            "-new",
            "-force_pubkey",
            "pub.pem",
            "-subj",
            "/CN=Imported Issuing CA",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-days",
            "300",
            "-extfile",
            "ca.cnf",
            "-out",
            "imported.pem",
        ],
        dir.path(),
    );
    let body = std::fs::read_to_string(dir.path().join("imported.pem")).unwrap();
    let root = std::fs::read_to_string(dir.path().join("root.pem")).unwrap();

    let wrong_key = app.post("/api/1/authorities", &json!({ "name": "wrong", "owner": "pki@example.com", "commonName": "x", "body": root, "keyUri": key_uri }));
    assert_eq!(wrong_key.status, 400, "{}", wrong_key.text);
    assert!(
        wrong_key.body["reasons"]["keyUri"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );
    let unchained = app.post("/api/1/authorities", &json!({ "name": "imported", "owner": "pki@example.com", "commonName": "Imported Issuing CA", "body": body, "keyUri": key_uri }));
    assert_eq!(unchained.status, 400, "{}", unchained.text);
    assert!(
        unchained.body["reasons"]["chain"].is_string(),
        "{}",
        unchained.text
    );
    let (_, foreign_root, _) = external_certificate();
    let foreign = app.post("/api/1/authorities", &json!({ "name": "imported", "owner": "pki@example.com", "commonName": "Imported Issuing CA", "body": body, "keyUri": key_uri, "chain": foreign_root }));
    assert_eq!(foreign.status, 400, "{}", foreign.text);
    assert!(
        foreign.body["reasons"]["chain"].is_string(),
        "{}",
        foreign.text
    );
    // The CA's certificate was in the inventory before (imported as any other): the authority's
    // own row repeats its body, as its twin, and a later import is refused naming the first.
    let uploaded = app.post(
        "/api/1/certificates/upload",
        &json!({ "owner": "pki@example.com", "body": body, "chain": root }),
    );
    assert_eq!(uploaded.status, 200, "{}", uploaded.text);
    let uploaded = uploaded.body["id"].as_i64().unwrap();
    let imported = app.post("/api/1/authorities", &json!({ "name": "imported", "owner": "pki@example.com", "commonName": "Imported Issuing CA", "body": body, "keyUri": key_uri, "chain": root }));
    assert_eq!(imported.status, 200, "{}", imported.text);
    assert_eq!(imported.body["keyUri"], key_uri);
    let own = imported.body["authorityCertificate"]["id"]
        .as_i64()
        .unwrap();
    assert_ne!(own, uploaded);
    let twin_of = app.query(&format!(
        "SELECT duplicate_of FROM certificates WHERE id = {own}"
    ));
    assert_eq!(twin_of.trim(), uploaded.to_string());
    let again = app.post(
        "/api/1/certificates/upload",
        &json!({ "owner": "pki@example.com", "body": body, "chain": root }),
    );
    assert_eq!(again.status, 409, "{}", again.text);
    assert!(
        again.text.contains(&format!("as certificate {uploaded}")),
        "{}",
        again.text
    );
    let leaf = issue(
        &app,
        json!({ "owner": "dave@example.com", "commonName": "via-import.example.com", "authority": { "id": imported.body["id"] } }),
    );
    // The chain given at import completes every leaf's chain up to the root.
    verify_with_openssl(
        leaf["body"].as_str().unwrap(),
        leaf["chain"].as_str().unwrap(),
    );
}
on_both_databases!(
    an_authority_whose_key_is_already_in_the_token_can_be_imported,
    import_authority
);

fn concurrent(db: Db) {
    let app = Appliance::start(db);
    let root = app.root("busy", "ECCPRIME256V1");
    // Same CN, issuer and day: every certificate starts from the same Lemur name.
    let body = json!({ "owner": "ops@example.com", "commonName": "busy.example.com", "authority": { "id": root["id"] },
                       "extensions": { "subAltNames": { "names": [{ "nameType": "DNSName", "value": "busy.example.com" }] } } });
    let replies: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    (0..5)
                        .map(|_| app.post("/api/1/certificates", &body))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut names = std::collections::HashSet::new();
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(names.insert(reply.body["name"].as_str().unwrap().to_owned()));
    }
    let listed = app.get("/api/1/certificates?filter=cn;busy.example.com");
    assert_eq!(listed.body["total"], 20, "{}", listed.text);
    let audited = app.query("SELECT count(*) FROM logs WHERE log_type = 'create_cert'");
    assert_eq!(audited.trim(), "20");
}
on_both_databases!(
    concurrent_issuance_with_colliding_names_loses_nothing,
    concurrent
);

/// Fills the file the daemon reads as a hardware RNG: random, or stuck at zero.
fn set_rng_device(path: &std::path::Path, healthy: bool) {
    let mut bytes = vec![0u8; 4096];
    if healthy {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut bytes)
            .unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

/// Polls the health details until the entropy verdict is `healthy`; returns the last reply.
fn wait_for_entropy(app: &Appliance, healthy: bool) -> lemur_testkit::daemon::Reply {
    for _ in 0..200 {
        let details = app.get("/api/1/healthcheck/details");
        if details.body["entropy"]["ok"] == healthy {
            return details;
        }
        std::thread::park_timeout(std::time::Duration::from_millis(50));
    }
    panic!("entropy health did not become {healthy} within 10 s");
}

#[test]
fn issuance_is_refused_with_503_while_entropy_health_fails_and_resumes_after() {
    let mut app = Appliance::start(Db::Sqlite);
    let root = app.root("entropy", "ECCPRIME256V1");
    let dir = scratch();
    let device = dir.path().join("hwrng");
    set_rng_device(&device, true);
    let config = std::fs::read_to_string(app.daemon.config_path()).unwrap();
    let config = config
        .replace("recheck_interval_secs = 600", "recheck_interval_secs = 1")
        .replace("devices = []", &format!("devices = [{:?}]", device));
    std::fs::write(app.daemon.config_path(), config).unwrap();
    app.daemon.restart();
    let generated = json!({ "owner": "alice@example.com", "authority": { "id": root["id"] }, "commonName": "gen.example.com", "extensions": { "subAltNames": { "names": [{ "nameType": "DNSName", "value": "gen.example.com" }] } } });
    assert_eq!(app.post("/api/1/certificates", &generated).status, 200);

    set_rng_device(&device, false);
    let details = wait_for_entropy(&app, false);
    assert!(
        details.body["entropy"]["error"]
            .as_str()
            .unwrap()
            .contains("repetition count test"),
        "{}",
        details.text
    );
    assert_eq!(app.daemon.get("/api/1/healthcheck", None).status, 503);
    let refused = app.post("/api/1/certificates", &generated);
    assert_eq!(refused.status, 503, "{}", refused.text);
    let reason = refused.body["message"].as_str().unwrap();
    assert!(
        reason.contains(device.to_str().unwrap()) && reason.contains("repetition count test"),
        "{reason}"
    );
    let (_, csr) = openssl_csr(&["csr.example.com"]);
    let from_csr =
        json!({ "owner": "alice@example.com", "authority": { "id": root["id"] }, "csr": csr });
    assert_eq!(
        app.post("/api/1/certificates", &from_csr).status,
        503,
        "serial numbers need healthy entropy too"
    );
    let authority = app.post(
        "/api/1/authorities",
        &json!({ "name": "refused", "owner": "pki@example.com", "commonName": "Refused Root", "type": "root", "validityYears": 1 }),
    );
    assert_eq!(authority.status, 503, "{}", authority.text);

    set_rng_device(&device, true);
    wait_for_entropy(&app, true);
    assert_eq!(app.post("/api/1/certificates", &generated).status, 200);
    assert_eq!(app.post("/api/1/certificates", &from_csr).status, 200);
}

/// A CA made before 2026-03-15 cannot sign a 398-day certificate today by backdating it: a
/// CA/Browser Forum compliant authority takes the maximum from the signing date and refuses a
/// notBefore more than 48 hours away from it.
#[test]
fn backdating_does_not_buy_a_longer_validity() {
    let app = Appliance::start(Db::Sqlite);
    let old_root = app.post(
        "/api/1/authorities",
        &json!({
            "name": "old-root", "owner": "pki@example.com", "commonName": "Old Public Root",
            "type": "root", "keyType": "ECCPRIME256V1", "cabCompliant": true,
            "validityStart": "2025-12-01T00:00:00Z", "validityEnd": "2035-12-01T00:00:00Z",
            "crlUrl": "http://crl.example.com/old.crl",
        }),
    );
    assert_eq!(old_root.status, 200, "{}", old_root.text);
    let backdated = app.post(
        "/api/1/certificates",
        &json!({ "owner": "web@example.com", "commonName": "old.example.com",
                 "authority": { "id": old_root.body["id"] }, "csr": openssl_csr(&["old.example.com"]).1,
                 "validityStart": "2026-01-01T00:00:00Z", "validityEnd": "2027-02-02T00:00:00Z" }),
    );
    assert_eq!(backdated.status, 400, "{}", backdated.text);
    assert!(
        backdated.body["reasons"]["validityStart"].is_string(),
        "{}",
        backdated.text
    );
    // Past today's maximum (200 days until 2027-03-15, shorter after).
    let (start, end) = window(-60, 200 * 24 * 60 + 60);
    let too_long = app.post(
        "/api/1/certificates",
        &json!({ "owner": "web@example.com", "commonName": "old.example.com",
                 "authority": { "id": old_root.body["id"] }, "csr": openssl_csr(&["old.example.com"]).1,
                 "validityStart": start, "validityEnd": end }),
    );
    assert_eq!(too_long.status, 400, "{}", too_long.text);
    assert!(
        too_long.body["reasons"]["validityEnd"]
            .as_str()
            .unwrap()
            .contains("CA/Browser Forum maximum"),
        "{}",
        too_long.text
    );
}

/// Names a publicly trusted certificate may not carry: a wildcard over a public suffix, a name
/// under no registered top-level domain; and for any authority, an IP address as a DNS name.
#[test]
fn cab_names_are_checked_against_the_public_suffix_list() {
    let app = Appliance::start(Db::Sqlite);
    let public = app.post(
        "/api/1/authorities",
        &json!({
            "name": "psl-root", "owner": "pki@example.com", "commonName": "PSL Root",
            "type": "root", "keyType": "ECCPRIME256V1", "cabCompliant": true, "validityYears": 5,
            "crlUrl": "http://crl.example.com/psl.crl",
        }),
    );
    assert_eq!(public.status, 200, "{}", public.text);
    let private = app.root("private-root", "ECCPRIME256V1");
    let issue = |authority: &Value, name: &str| {
        app.post(
            "/api/1/certificates",
            &json!({ "owner": "web@example.com", "authority": { "id": authority["id"] },
                     "csr": openssl_csr(&[name]).1 }),
        )
    };
    for refused in ["*.co.uk", "*.com", "host.internal", "printer.local"] {
        let reply = issue(&public.body, refused);
        assert_eq!(reply.status, 400, "{refused}: {}", reply.text);
        assert!(
            reply.body["reasons"]["extensions.subAltNames"].is_string(),
            "{refused}: {}",
            reply.text
        );
    }
    assert_eq!(issue(&public.body, "*.example.co.uk").status, 200);
    assert_eq!(
        issue(&private, "host.internal").status,
        200,
        "private CAs may"
    );
    let numeric = issue(&private, "10.0.0.1");
    assert_eq!(
        numeric.status, 400,
        "an IP address is no DNS name: {}",
        numeric.text
    );
}

/// An authority limited to some domains issues for nothing else, makes only sub-CAs within
/// them, and writes them into its sub-CAs' certificates as nameConstraints.
#[test]
fn permitted_domains_bound_an_authority_and_its_sub_cas() {
    let app = Appliance::start(Db::Sqlite);
    let root = app.post(
        "/api/1/authorities",
        &json!({ "name": "bounded", "owner": "pki@example.com", "commonName": "Bounded Root",
                 "type": "root", "keyType": "ECCPRIME256V1", "validityYears": 5,
                 "permittedDomains": ["Example.com", "example.net"] }),
    );
    assert_eq!(root.status, 200, "{}", root.text);
    assert_eq!(
        root.body["permittedDomains"],
        json!(["example.com", "example.net"])
    );
    let root_id = root.body["id"].as_i64().unwrap();
    let outside = app.post(
        "/api/1/authorities",
        &json!({ "name": "stray", "owner": "pki@example.com", "commonName": "Stray", "type": "subca",
                 "parent": { "id": root_id }, "keyType": "ECCPRIME256V1", "validityYears": 1,
                 "permittedDomains": ["example.org"] }),
    );
    assert_eq!(outside.status, 400, "{}", outside.text);
    assert!(outside.body["reasons"]["permittedDomains"].is_string());
    let shop = app.sub_ca(
        "shop",
        root_id,
        json!({ "permittedDomains": ["shop.example.com"] }),
    );
    let inherited = app.sub_ca("inherits", root_id, json!({}));
    assert_eq!(
        inherited["permittedDomains"],
        json!(["example.com", "example.net"])
    );
    let dir = scratch();
    std::fs::write(
        dir.path().join("shop.pem"),
        shop["authorityCertificate"]["body"].as_str().unwrap(),
    )
    .unwrap();
    let text = openssl(&["x509", "-in", "shop.pem", "-noout", "-text"], dir.path());
    assert!(
        text.contains("X509v3 Name Constraints") && text.contains("DNS:shop.example.com"),
        "{text}"
    );
    let issue = |authority: &Value, name: &str| {
        app.post(
            "/api/1/certificates",
            &json!({ "owner": "web@example.com", "authority": { "id": authority["id"] },
                     "csr": openssl_csr(&[name]).1 }),
        )
    };
    assert_eq!(issue(&root.body, "www.example.com").status, 200);
    assert_eq!(issue(&root.body, "www.example.net").status, 200);
    let stray = issue(&root.body, "www.example.org");
    assert_eq!(stray.status, 400, "{}", stray.text);
    assert!(
        stray.body["reasons"]["extensions.subAltNames"]
            .as_str()
            .unwrap()
            .contains("outside")
    );
    assert_eq!(issue(&shop, "www.shop.example.com").status, 200);
    assert_eq!(issue(&shop, "www.example.com").status, 400);
    // A certificate the sub-CA issues verifies within the constraint.
    let leaf = issue(&shop, "cart.shop.example.com");
    verify_with_openssl(
        leaf.body["body"].as_str().unwrap(),
        leaf.body["chain"].as_str().unwrap(),
    );
}

/// An uploaded private key, and the key view that returns it, leave no clear copy in the
/// daemon's memory once the connections close: the daemon's own secret types wipe themselves,
/// and its allocator wipes every block the libraries it uses free.
#[test]
fn an_uploaded_key_leaves_no_copy_in_the_daemons_memory() {
    use std::io::{Read, Write};
    let app = Appliance::start(Db::Sqlite);
    let (body, chain, key) = external_certificate();
    // A line of the key's base64: it occurs nowhere else.
    let marker = key.lines().nth(8).unwrap().to_owned();
    let address = app.daemon.base.trim_start_matches("http://").to_owned();
    let exchange = |request: String| {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };

    let upload = json!({ "owner": "bob@example.com", "body": body, "chain": chain,
                         "privateKey": key })
    .to_string();
    let answer = exchange(format!(
        "POST /api/1/certificates/upload HTTP/1.1\r\nHost: lemur\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{upload}",
        app.token,
        upload.len()
    ));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let id = answer.split("\"id\":").nth(1).unwrap();
    let id: String = id.chars().take_while(char::is_ascii_digit).collect();
    let view = exchange(format!(
        "GET /api/1/certificates/{id}/key HTTP/1.1\r\nHost: lemur\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\n\r\n",
        app.token
    ));
    assert!(view.contains(&marker), "{view}");

    // The search itself works: the daemon's configuration, which it keeps, is found.
    let kept = app.daemon.state_dir().display().to_string();
    match app.daemon.memory_holds(kept.as_bytes()) {
        None => {
            assert!(
                std::env::var_os("LEMUR_TEST_AS_ROOT").is_none(),
                "CI runs as root, where the daemon's memory must be readable"
            );
            eprintln!("skipped: reading the daemon's memory needs root");
            return;
        }
        found => assert_eq!(found, Some(true), "{kept} not found: the search is broken"),
    }
    let mut holds = app.daemon.memory_holds(marker.as_bytes());
    // The daemon frees a connection's buffers once it has seen the close.
    for _ in 0..50 {
        if holds == Some(false) {
            break;
        }
        std::thread::park_timeout(std::time::Duration::from_millis(100));
        holds = app.daemon.memory_holds(marker.as_bytes());
    }
    assert_eq!(
        holds,
        Some(false),
        "the daemon's memory still holds the key"
    );
}

/// The daemon keeps RSA-2048 keys generated ahead of demand, reports them in the health
/// details, hands each to one certificate (whose key it is) and makes more.
#[test]
fn rsa_keys_generated_ahead_are_each_given_to_one_certificate_and_replaced() {
    let app = Appliance::start(Db::Sqlite);
    let root = app.root("ready-keys", "ECCPRIME256V1");
    let ready = || {
        let details = app.get("/api/1/healthcheck/details");
        let keys = details.body["readyKeys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 1, "{}", details.text);
        assert_eq!(keys[0]["keyType"], "RSA2048");
        (
            keys[0]["ready"].as_u64().unwrap(),
            keys[0]["target"].as_u64().unwrap(),
        )
    };
    let wait_until_full = || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let (now, target) = ready();
            if now == target {
                return target;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the pool never filled"
            );
            std::thread::park_timeout(std::time::Duration::from_millis(100));
        }
    };
    let target = wait_until_full();
    assert!(target > 0);
    let mut keys = std::collections::HashSet::new();
    for n in 0..3 {
        let issued = issue(
            &app,
            json!({
                "owner": "alice@example.com", "commonName": format!("rsa-{n}.example.com"),
                "authority": { "id": root["id"] }, "keyType": "RSA2048",
            }),
        );
        assert_eq!(issued["keyType"], "RSA2048");
        let id = issued["id"].as_i64().unwrap();
        let key = app.get(&format!("/api/1/certificates/{id}/key"));
        assert_eq!(key.status, 200, "{}", key.text);
        let key = key.body["key"].as_str().unwrap();
        let body = issued["body"].as_str().unwrap();
        assert!(
            key_matches(body, key),
            "the certificate is for the key handed out"
        );
        assert!(keys.insert(key.to_owned()), "a key was handed out twice");
    }
    // The three came from the pool (refilling takes a tenth of a second a key), ...
    assert!(ready().0 < target, "the certificates took ready keys");
    // ... which makes new ones.
    assert_eq!(wait_until_full(), target, "used keys are replaced");
}

/// Fetches `path` from the daemon into `file` with curl (a CRL is binary); the status and the
/// content type.
fn fetch(app: &Appliance, path: &str, file: &std::path::Path) -> (String, String) {
    let output = Command::new("curl")
        .args(["-sS", "-o"])
        .arg(file)
        .args(["-w", "%{http_code} %{content_type}"])
        .arg(format!("{}{path}", app.daemon.base))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (status, kind) = text.split_once(' ').unwrap_or((&text, ""));
    (status.to_owned(), kind.to_owned())
}

/// The local CA's CRL: signed by the authority, named by what it issues, and listing a
/// revocation (with its reason) as soon as it is made, so openssl refuses the revoked
/// certificate and accepts the other.
fn crl_lists_revocations(db: Db) {
    let mut app = Appliance::start(db);
    let root = app.post(
        "/api/1/authorities",
        &json!({
            "name": "crl-root", "owner": "pki@example.com", "commonName": "CRL Root",
            "type": "root", "keyType": "ECCPRIME256V1", "validityYears": 2,
            "crlUrl": "http://pki.example.com/crl/crl-root.crl",
        }),
    );
    assert_eq!(root.status, 200, "{}", root.text);
    let dir = scratch();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(
        path("root.pem"),
        root.body["authorityCertificate"]["body"].as_str().unwrap(),
    )
    .unwrap();
    let mut leaves = Vec::new();
    for name in ["kept", "revoked"] {
        let leaf = issue(
            &app,
            json!({
                "owner": "pki@example.com", "commonName": format!("{name}.example.com"),
                "authority": { "name": "crl-root" }, "keyType": "ECCPRIME256V1",
            }),
        );
        std::fs::write(path(&format!("{name}.pem")), leaf["body"].as_str().unwrap()).unwrap();
        leaves.push(leaf);
    }
    let named = openssl(&["x509", "-in", "kept.pem", "-noout", "-text"], dir.path());
    assert!(
        named.contains("URI:http://pki.example.com/crl/crl-root.crl"),
        "{named}"
    );

    // The CRL in `file` as openssl reads it, its signature checked against the root.
    let crl_text = |file: &str| {
        openssl(
            &[
                "crl", "-inform", "DER", "-in", file, "-CAfile", "root.pem", "-noout", "-text",
            ],
            dir.path(),
        )
    };
    let (status, kind) = fetch(&app, "/crl/crl-root.crl", &path("first.crl"));
    assert_eq!(
        (status.as_str(), kind.as_str()),
        ("200", "application/pkix-crl")
    );
    let first = crl_text("first.crl");
    assert!(first.contains("verify OK"), "{first}");
    assert!(first.contains("No Revoked Certificates"), "{first}");
    let updates = |text: &str, field: &str| {
        let line = text.lines().find(|l| l.contains(field)).unwrap();
        openssl_date(line.split_once(": ").unwrap().1.trim())
    };
    let week = updates(&first, "Next Update") - updates(&first, "Last Update");
    assert_eq!(week, 7 * 86_400, "{first}");
    // Asked again, the same CRL: made once, not signed per request.
    fetch(&app, "/crl/crl-root.crl", &path("again.crl"));
    assert_eq!(
        std::fs::read(path("again.crl")).unwrap(),
        std::fs::read(path("first.crl")).unwrap()
    );

    let id = leaves[1]["id"].as_i64().unwrap();
    let revoked = app.daemon.put(
        &format!("/api/1/certificates/{id}/revoke"),
        Some(&app.token),
        &json!({ "crlReason": "keyCompromise" }),
    );
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    fetch(&app, "/crl/crl-root", &path("second.crl"));
    let second = crl_text("second.crl");
    assert!(second.contains("verify OK"), "{second}");
    let serial = leaves[1]["serial"].as_str().unwrap();
    let serial_hex = format!("{:X}", serial.parse::<u128>().unwrap());
    assert!(second.contains(&serial_hex), "{serial_hex} not in {second}");
    assert!(second.contains("Key Compromise"), "{second}");
    let number = |text: &str| {
        let line = text
            .lines()
            .skip_while(|l| !l.contains("X509v3 CRL Number"))
            .nth(1)
            .unwrap();
        u128::from_str_radix(line.trim(), 16).unwrap_or_else(|_| line.trim().parse().unwrap())
    };
    assert!(number(&second) > number(&first), "{first}\n{second}");

    std::fs::write(
        path("crl.pem"),
        openssl(&["crl", "-inform", "DER", "-in", "second.crl"], dir.path()),
    )
    .unwrap();
    let check = |name: &str| {
        Command::new("openssl")
            .args([
                "verify",
                "-crl_check",
                "-CAfile",
                "root.pem",
                "-CRLfile",
                "crl.pem",
            ])
            .arg(format!("{name}.pem"))
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    assert!(check("kept").status.success());
    let refused = check("revoked");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("certificate revoked")
            || String::from_utf8_lossy(&refused.stderr).contains("certificate revoked")
    );

    let (status, _) = fetch(&app, "/crl/no-such-authority.crl", &path("none"));
    assert_eq!(status, "404");

    // Numbers come from the database: a restarted daemon's next CRL still comes after.
    app.daemon.restart();
    fetch(&app, "/crl/crl-root.crl", &path("third.crl"));
    let third = crl_text("third.crl");
    assert!(number(&third) > number(&second), "{second}\n{third}");
    assert!(third.contains(&serial_hex), "{third}");
}

/// Unix seconds of a date as `openssl crl -text` prints it (`Dec  1 20:00:00 2026 GMT`).
fn openssl_date(text: &str) -> i64 {
    let format = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    time::PrimitiveDateTime::parse(text, &format)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .assume_utc()
        .unix_timestamp()
}
on_both_databases!(the_local_ca_publishes_a_crl, crl_lists_revocations);
