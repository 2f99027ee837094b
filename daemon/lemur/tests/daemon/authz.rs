//! The authorization matrix: every route the server serves, asked by every kind of caller, gets
//! the status one table expects. The routes come from the server's own route table, so a new
//! route that is missing here fails this test until someone decides who may call it.
//!
//! The users are made with `lemur create_user` against the running daemon's configuration alone
//! (no SoftHSM2 variable in the environment): the configuration says how to reach its token.

use crate::support::{Appliance, Db, OfflineCa, openssl_csr};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use lemur_testkit::daemon::Reply;
use serde_json::{Value, json};

/// Who asks, in the order of the table's columns.
const CALLERS: [&str; 9] = [
    "anonymous",
    "expired token",
    "no role",
    "read-only",
    "auditor",
    "certificate owner",
    "other user",
    "authority operator",
    "admin",
];

/// Expected status per route and caller (columns as [`CALLERS`]).
#[rustfmt::skip]
const MATRIX: &[(&str, &str, [u16; 9])] = &[
    //                                        anon expd none  ro  aud  own  oth  cao  adm
    ("GET",  "/healthcheck",                 [200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ("GET",  "/healthcheck/details",         [401, 401, 403, 403, 200, 403, 403, 403, 200]),
    ("POST", "/auth/login",                  [200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ("POST", "/auth/logout",                 [401, 401, 204, 204, 204, 204, 204, 204, 204]),
    ("GET",  "/auth/me",                     [401, 401, 200, 200, 200, 200, 200, 200, 200]),
    ("GET",  "/auth/providers",              [200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ("GET",  "/authorities",                 [401, 401, 403, 200, 200, 403, 200, 200, 200]),
    ("POST", "/authorities",                 [401, 401, 403, 403, 403, 403, 403, 403, 200]),
    ("GET",  "/authorities/{id}",            [401, 401, 403, 200, 200, 403, 200, 200, 200]),
    ("GET",  "/certificates",                [401, 401, 200, 200, 200, 200, 200, 200, 200]),
    ("POST", "/certificates",                [401, 401, 403, 403, 403, 403, 403, 200, 200]),
    ("POST", "/certificates/upload",         [401, 401, 403, 403, 403, 403, 403, 403, 200]),
    ("GET",  "/certificates/stats",          [401, 401, 200, 200, 200, 200, 200, 200, 200]),
    ("GET",  "/certificates/{id}",           [401, 401, 403, 200, 200, 200, 403, 403, 200]),
    ("GET",  "/certificates/{id}/key",       [401, 401, 403, 403, 403, 200, 403, 403, 200]),
    ("PUT",  "/certificates/{id}/revoke",    [401, 401, 403, 403, 403, 200, 403, 403, 200]),
    ("GET",  "/domains",                     [401, 401, 403, 200, 200, 403, 200, 200, 200]),
    ("POST", "/domains",                     [401, 401, 403, 403, 403, 403, 403, 403, 200]),
    ("GET",  "/domains/{id}",                [401, 401, 403, 200, 200, 403, 200, 200, 200]),
    ("PUT",  "/domains/{id}",                [401, 401, 403, 403, 403, 403, 403, 403, 200]),
    ("GET",  "/pending_certificates",        [401, 401, 200, 200, 200, 200, 200, 200, 200]),
    // The authority's operator runs its CA: it reads the orders it is to sign.
    ("GET",  "/pending_certificates/{id}",   [401, 401, 403, 200, 200, 200, 403, 200, 200]),
    ("PUT",  "/pending_certificates/{id}",   [401, 401, 403, 403, 403, 200, 403, 403, 200]),
    ("DELETE", "/pending_certificates/{id}", [401, 401, 403, 403, 403, 204, 403, 403, 204]),
    ("GET",  "/pending_certificates/{id}/key", [401, 401, 403, 403, 403, 200, 403, 403, 200]),
    // Whoever runs the offline CA delivers: the authority's operator too.
    ("POST", "/pending_certificates/{id}/upload", [401, 401, 403, 403, 403, 200, 403, 200, 200]),
    ("GET",  "/plugins",                     [401, 401, 200, 200, 200, 200, 200, 200, 200]),
    ("GET",  "/plugins/{slug}",              [401, 401, 200, 200, 200, 200, 200, 200, 200]),
    // Administrators only; the test daemon is no appliance, so even they are refused (409).
    ("POST", "/appliance/upgrade",           [401, 401, 403, 403, 403, 403, 403, 403, 409]),
    ("GET",  "/appliance/upgrade",           [401, 401, 403, 403, 403, 403, 403, 403, 409]),
    ("POST", "/appliance/backup",            [401, 401, 403, 403, 403, 403, 403, 403, 409]),
    ("POST", "/appliance/restore",           [401, 401, 403, 403, 403, 403, 403, 403, 409]),
    ("GET",  "/appliance/restore",           [401, 401, 403, 403, 403, 403, 403, 403, 409]),
    ("GET",  "/openapi.json",                [200, 200, 200, 200, 200, 200, 200, 200, 200]),
];

/// Runs `lemur ARGS` on the daemon's configuration alone.
fn lemur(app: &Appliance, args: &[&str]) {
    let output = app.daemon.command().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "lemur {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `lemur create_user` with the password `password`.
fn create_user(app: &Appliance, name: &str, email: &str, roles: &[&str], password: &str) {
    let file = app.daemon.state_dir().join(format!("{name}-password"));
    std::fs::write(&file, password).unwrap();
    let mut args = vec![
        "create_user",
        "-u",
        name,
        "-e",
        email,
        "-p",
        file.to_str().unwrap(),
    ];
    for role in roles {
        args.extend(["-r", role]);
    }
    lemur(app, &args);
}

fn login(app: &Appliance, name: &str, password: &str) -> String {
    let reply = app.daemon.post(
        "/api/1/auth/login",
        None,
        &json!({ "username": name, "password": password }),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["token"].as_str().unwrap().to_owned()
}

/// A token for the admin, signed with the daemon's own secret, that expired an hour ago.
fn expired_token(app: &Appliance) -> String {
    let secret = std::fs::read(app.daemon.state_dir().join("secrets/token-secret")).unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.trim_ascii_end());
    #[allow(clippy::disallowed_methods)] // the daemon checks expiry against the real clock
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = B64.encode(json!({ "sub": 1, "iat": now - 7200, "exp": now - 3600 }).to_string());
    let signed = format!("{header}.{claims}");
    let signature = B64.encode(ring::hmac::sign(&key, signed.as_bytes()).as_ref());
    format!("{signed}.{signature}")
}

/// What one call sends: the concrete path and body for a route.
struct Fixture {
    authority: i64,
    certificate: i64,
    domain: i64,
    pending: i64,
    admin_password: String,
}

impl Fixture {
    fn path(&self, path: &str) -> String {
        let concrete = if path.starts_with("/authorities/") {
            path.replace("{id}", &self.authority.to_string())
        } else if path.starts_with("/domains/") {
            path.replace("{id}", &self.domain.to_string())
        } else if path.starts_with("/pending_certificates/") {
            path.replace("{id}", &self.pending.to_string())
        } else if path == "/certificates/stats" {
            format!("{path}?metric=bits")
        } else {
            path.replace("{id}", &self.certificate.to_string())
                .replace("{slug}", "cryptography-issuer")
        };
        format!("/api/1{concrete}")
    }

    fn body(&self, path: &str, caller: usize) -> Value {
        match path {
            "/auth/login" => json!({ "username": "lemur", "password": self.admin_password }),
            "/authorities" => json!({
                "name": format!("matrix-{caller}"), "owner": "pki@example.com",
                "commonName": "Matrix Root", "type": "root", "keyType": "ECCPRIME256V1",
                "validityYears": 1,
            }),
            "/certificates" => json!({
                "owner": "owner@example.com", "authority": { "id": self.authority },
                "csr": openssl_csr(&["matrix.example.com"]).1,
            }),
            "/certificates/{id}/revoke" => {
                json!({ "crlReason": "superseded", "comments": "matrix" })
            }
            "/domains" => json!({ "name": format!("d{caller}.example.com") }),
            "/domains/{id}" => json!({ "sensitive": false }),
            "/appliance/backup" => json!({ "passphrase": "a long backup passphrase" }),
            "/pending_certificates/{id}" => json!({ "description": format!("matrix {caller}") }),
            "/certificates/upload" => {
                let (body, chain, key) = crate::ca::external_certificate();
                json!({ "owner": "owner@example.com", "body": body, "chain": chain, "privateKey": key })
            }
            _ => Value::Null,
        }
    }
}

fn call(app: &Appliance, method: &str, path: &str, token: Option<&str>, body: &Value) -> Reply {
    match method {
        "GET" => app.daemon.get(path, token),
        "POST" => app.daemon.post(path, token, body),
        "PUT" => app.daemon.put(path, token, body),
        "DELETE" => app.daemon.delete(path, token, Some(body)),
        other => panic!("no client call for {other}"),
    }
}

/// A new certificate of `owner@example.com`, so each caller revokes one of its own.
fn owned_certificate(app: &Appliance, authority: i64) -> i64 {
    let issued = app.post(
        "/api/1/certificates",
        &json!({ "owner": "owner@example.com", "authority": { "id": authority },
                 "csr": openssl_csr(&["revocable.example.com"]).1 }),
    );
    assert_eq!(issued.status, 200, "{}", issued.text);
    issued.body["id"].as_i64().unwrap()
}

/// A new order of `owner@example.com` from the offline authority (its key generated here).
fn owned_order(app: &Appliance, authority: i64) -> (i64, String) {
    let ordered = app.post(
        "/api/1/certificates",
        &json!({ "owner": "owner@example.com", "authority": { "id": authority },
                 "commonName": "ordered.example.com", "keyType": "ECCPRIME256V1" }),
    );
    assert_eq!(ordered.status, 202, "{}", ordered.text);
    (
        ordered.body["id"].as_i64().unwrap(),
        ordered.body["csr"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn every_route_answers_every_caller_as_the_matrix_says() {
    let app = Appliance::start(Db::Sqlite);
    let root = app.root("matrix", "ECCPRIME256V1");
    let issued = app.post(
        "/api/1/certificates",
        &json!({ "owner": "owner@example.com", "authority": { "id": root["id"] },
                 "commonName": "owned.example.com", "keyType": "ECCPRIME256V1" }),
    );
    assert_eq!(issued.status, 200, "{}", issued.text);
    let offline_ca = OfflineCa::new("Matrix Offline");
    let offline = offline_ca.register(&app, "matrixoff")["id"]
        .as_i64()
        .unwrap();
    let password = "a long matrix password";
    lemur(
        &app,
        &["create_role", "-n", "team-other", "-d", "Another team"],
    );
    let users: [(&str, &str, &[&str]); 6] = [
        ("noroles", "noroles@example.com", &[]),
        ("readonly", "readonly@example.com", &["read-only"]),
        ("auditor", "auditor@example.com", &["auditor"]),
        ("owner", "owner@example.com", &[]),
        ("other", "other@example.com", &["team-other"]),
        (
            "caoperator",
            "caoperator@example.com",
            &["matrix_operator", "matrixoff_operator"],
        ),
    ];
    for (name, email, roles) in users {
        create_user(&app, name, email, roles, password);
    }
    let mut tokens: Vec<Option<String>> = vec![None, Some(expired_token(&app))];
    tokens.extend(
        users
            .iter()
            .map(|(name, ..)| Some(login(&app, name, password))),
    );
    tokens.push(Some(app.token.clone()));
    let admin_password = app.daemon.admin_password.clone();
    let mut logins: Vec<Option<(&str, &str)>> = vec![None, None];
    logins.extend(users.iter().map(|(name, ..)| Some((*name, password))));
    logins.push(Some(("lemur", admin_password.as_str())));
    let fixture = Fixture {
        authority: root["id"].as_i64().unwrap(),
        certificate: issued.body["id"].as_i64().unwrap(),
        domain: app.get("/api/1/domains").body["items"][0]["id"]
            .as_i64()
            .unwrap(),
        pending: owned_order(&app, offline).0,
        admin_password: app.daemon.admin_password.clone(),
    };
    let mut failures = Vec::new();
    for route in lemur_server::ROUTES {
        let Some((_, _, expected)) = MATRIX
            .iter()
            .find(|(method, path, _)| *method == route.method && *path == route.path)
        else {
            failures.push(format!(
                "{} {} is served but missing from the authorization matrix",
                route.method, route.path
            ));
            continue;
        };
        for (caller, token) in tokens.iter().enumerate() {
            let body = fixture.body(route.path, caller);
            // Logging out ends the session it is given: each caller logs out a fresh one.
            let fresh;
            let token = match (route.path, logins[caller]) {
                ("/auth/logout", Some((name, password))) => {
                    fresh = Some(login(&app, name, password));
                    &fresh
                }
                _ => token,
            };
            // What a call settles (a revocation, a cancellation, a delivery) is made afresh.
            let (path, body) = match (route.method, route.path) {
                (_, "/certificates/{id}/revoke") => (
                    format!(
                        "/api/1/certificates/{}/revoke",
                        owned_certificate(&app, fixture.authority)
                    ),
                    body,
                ),
                ("DELETE", "/pending_certificates/{id}") => (
                    format!(
                        "/api/1/pending_certificates/{}",
                        owned_order(&app, offline).0
                    ),
                    json!({ "note": "matrix" }),
                ),
                (_, "/pending_certificates/{id}/upload") => {
                    let (id, csr) = owned_order(&app, offline);
                    (
                        format!("/api/1/pending_certificates/{id}/upload"),
                        json!({ "body": offline_ca.sign(&csr) }),
                    )
                }
                _ => (fixture.path(route.path), body),
            };
            let reply = call(&app, route.method, &path, token.as_deref(), &body);
            if reply.status != expected[caller] {
                failures.push(format!(
                    "{} {} as {}: {} (expected {}): {}",
                    route.method,
                    route.path,
                    CALLERS[caller],
                    reply.status,
                    expected[caller],
                    reply.text
                ));
            }
            if reply.status == 403 {
                assert_eq!(reply.body["code"], "forbidden", "{}", reply.text);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every refused key view is audited: one per 403 in the key route's row.
    assert_eq!(
        app.query("SELECT COUNT(*) FROM logs WHERE log_type = 'key_view_denied'")
            .trim(),
        "5"
    );

    assert_eq!(
        app.query("SELECT COUNT(*) FROM logs WHERE log_type = 'pending_key_view_denied'")
            .trim(),
        "5"
    );
    // Orders are listed to their owner and to whoever runs their authority's CA, not to others.
    let orders = |token: &Option<String>| {
        app.daemon
            .get("/api/1/pending_certificates?count=100", token.as_deref())
            .body["total"]
            .as_i64()
            .unwrap()
    };
    assert!(orders(&tokens[5]) >= 1, "the owner sees their orders");
    assert_eq!(
        orders(&tokens[7]),
        orders(&tokens[8]),
        "the CA's operator sees them all"
    );
    assert_eq!(orders(&tokens[6]), 0, "another user sees none");
    assert_eq!(orders(&tokens[2]), 0, "a user with no role sees none");

    // Lists are filtered, not refused: a user sees what they own and no more.
    let list = |token: &Option<String>| {
        app.daemon
            .get("/api/1/certificates?count=100", token.as_deref())
            .body["total"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(list(&tokens[2]), 0, "a user with no role owns nothing");
    assert!(list(&tokens[5]) >= 1, "the owner sees their certificate");
    assert!(
        list(&tokens[8]) > list(&tokens[5]),
        "the admin sees everything"
    );
    assert_eq!(
        list(&tokens[3]),
        list(&tokens[8]),
        "read-only sees everything"
    );
}

/// An authority's automatic roles are its own: a role made earlier under one of their names, or
/// an owner named like a built-in or another authority's role, would hand the authority to that
/// role's holders, so such names are refused.
#[test]
fn automatic_role_names_cannot_be_taken_over() {
    let app = Appliance::start(Db::Sqlite);
    lemur(
        &app,
        &[
            "create_role",
            "-n",
            "taken_operator",
            "-d",
            "Made before the authority",
        ],
    );
    let root = |name: &str, owner: &str| {
        app.post(
            "/api/1/authorities",
            &json!({ "name": name, "owner": owner, "commonName": format!("{name} Root"),
                     "type": "root", "keyType": "ECCPRIME256V1", "validityYears": 1 }),
        )
    };
    let taken = root("taken", "pki@example.com");
    assert_eq!(taken.status, 400, "{}", taken.text);
    assert!(
        taken.body["reasons"]["name"]
            .as_str()
            .unwrap()
            .contains("taken_operator")
    );
    for owner in [
        "operator",
        "admin",
        "auditor",
        "read-only",
        "other_operator",
        "other_admin",
    ] {
        let reply = root("fresh", owner);
        assert_eq!(reply.status, 400, "{owner}: {}", reply.text);
        assert!(
            reply.body["reasons"]["owner"].is_string(),
            "{owner}: {}",
            reply.text
        );
    }
    let fresh = root("fresh", "pki@example.com");
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    let names: Vec<&str> = fresh.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fresh_admin", "fresh_operator", "pki@example.com"]);
}

/// A sensitive domain, and every name under it, is for administrators (and the configured
/// sensitive-domain roles) alone, even for a holder of the authority's role; marking one is too.
#[test]
fn sensitive_domains_are_issued_for_by_administrators_only() {
    let app = Appliance::start(Db::Sqlite);
    let root = app.root("guarded", "ECCPRIME256V1");
    create_user(
        &app,
        "operator",
        "op@example.com",
        &["guarded_operator"],
        "a long operator password",
    );
    let operator = login(&app, "operator", "a long operator password");
    let marked = app.post(
        "/api/1/domains",
        &json!({ "name": "secret.example.com", "sensitive": true }),
    );
    assert_eq!(marked.status, 200, "{}", marked.text);
    let issue = |token: &str, name: &str| {
        app.daemon.post(
            "/api/1/certificates",
            Some(token),
            &json!({ "owner": "op@example.com", "authority": { "id": root["id"] },
                     "csr": openssl_csr(&[name]).1 }),
        )
    };
    for guarded in [
        "secret.example.com",
        "www.secret.example.com",
        "*.secret.example.com",
    ] {
        let refused = issue(&operator, guarded);
        assert_eq!(refused.status, 403, "{guarded}: {}", refused.text);
        assert!(
            refused.body["message"]
                .as_str()
                .unwrap()
                .contains("secret.example.com")
        );
    }
    assert_eq!(issue(&operator, "open.example.com").status, 200);
    assert_eq!(issue(&app.token, "www.secret.example.com").status, 200);
    let unmark = app.daemon.put(
        &format!("/api/1/domains/{}", marked.body["id"]),
        Some(&operator),
        &json!({ "sensitive": false }),
    );
    assert_eq!(unmark.status, 403, "{}", unmark.text);
    assert!(
        app.query("SELECT log_type FROM logs WHERE log_type = 'create_domain'")
            .contains("create_domain")
    );
}

/// Lemur's domain authorization: with `[names] allowed_domains` set, only administrators and
/// `global_cert_issuer` issue for names outside it.
#[test]
fn allowed_domains_bind_all_but_admins_and_global_cert_issuers() {
    let mut app = Appliance::start(Db::Sqlite);
    let config = std::fs::read_to_string(app.daemon.config_path()).unwrap();
    let config = config.replace(
        "allowed_domains = []",
        "allowed_domains = [\"example.com\"]",
    );
    std::fs::write(app.daemon.config_path(), config).unwrap();
    app.daemon.restart();
    let root = app.root("allowed", "ECCPRIME256V1");
    let password = "a long enough password";
    create_user(
        &app,
        "plain",
        "plain@example.com",
        &["allowed_operator"],
        password,
    );
    create_user(
        &app,
        "global",
        "global@example.com",
        &["allowed_operator", "global_cert_issuer"],
        password,
    );
    let issue = |token: &str, name: &str| {
        app.daemon
            .post(
                "/api/1/certificates",
                Some(token),
                &json!({ "owner": "plain@example.com", "authority": { "id": root["id"] },
                         "csr": openssl_csr(&[name]).1 }),
            )
            .status
    };
    let plain = login(&app, "plain", password);
    let global = login(&app, "global", password);
    assert_eq!(issue(&plain, "www.example.com"), 200);
    assert_eq!(issue(&plain, "www.example.org"), 403);
    assert_eq!(issue(&global, "www.example.org"), 200);
    assert_eq!(issue(&app.token, "www.example.org"), 200);
}
