//! The API's contract at its edges: health, login, tokens, and bad input answered with a 4xx that
//! names the field.

use crate::on_both_databases;
use crate::support::{Appliance, Db};
use serde_json::json;
use std::time::Duration;

fn edges(db: Db) {
    let app = Appliance::start(db);
    let health = app.daemon.get("/api/1/healthcheck", None);
    assert_eq!((health.status, health.text.as_str()), (200, "ok"));
    let details = app.get("/api/1/healthcheck/details");
    assert_eq!(details.body["healthy"], true, "{}", details.text);
    // The token and its session pool: the health check itself has used a session.
    let token = &details.body["token"];
    assert_eq!(token["label"], "lemur", "{}", details.text);
    assert!(token["module"].as_str().unwrap().ends_with(".so"));
    let (capacity, open) = (
        token["sessionsCapacity"].as_u64().unwrap(),
        token["sessionsOpen"].as_u64().unwrap(),
    );
    assert!(open >= 1 && open <= capacity, "{}", details.text);
    assert!(token["sessionsInUse"].as_u64().unwrap() <= open);
    assert_eq!(
        app.daemon.get("/api/1/healthcheck/details", None).status,
        401,
        "the reasons are for signed-in users"
    );

    let wrong = app.daemon.post(
        "/api/1/auth/login",
        None,
        &json!({ "username": "lemur", "password": "not the password" }),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["message"], "invalid username or password");
    let unknown = app.daemon.post(
        "/api/1/auth/login",
        None,
        &json!({ "username": "nobody", "password": "not the password" }),
    );
    assert_eq!(
        unknown.body, wrong.body,
        "unknown users and wrong passwords look alike"
    );

    let anonymous = app.daemon.get("/api/1/certificates", None);
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.body["message"].is_string());
    let forged = app.daemon.get(
        "/api/1/certificates",
        Some("eyJhbGciOiJub25lIn0.eyJzdWIiOjF9."),
    );
    assert_eq!(forged.status, 401);

    let me = app.get("/api/1/auth/me");
    assert_eq!(me.body["username"], "lemur");
    assert_eq!(me.body["roles"][0]["name"], "admin");

    let missing_owner = app.post(
        "/api/1/certificates",
        &json!({ "commonName": "x.example.com", "authority": { "id": 1 } }),
    );
    assert_eq!(missing_owner.status, 400);
    assert_eq!(missing_owner.body["reasons"]["owner"], "is required");
    let bad_type = app.post(
        "/api/1/certificates",
        &json!({ "owner": "a@example.com", "authority": { "id": "one" } }),
    );
    assert_eq!(bad_type.status, 400);
    assert!(
        bad_type.body["reasons"]["authority.id"].is_string(),
        "{}",
        bad_type.text
    );
    let no_authority = app.post("/api/1/certificates", &json!({ "owner": "a@example.com", "commonName": "x.example.com", "authority": { "id": 99 } }));
    assert_eq!(no_authority.status, 400, "{}", no_authority.text);
    assert!(no_authority.body["reasons"]["authority"].is_string());
    let not_json = app.daemon.post(
        "/api/1/authorities",
        Some(&app.token),
        &json!("just a string"),
    );
    assert_eq!(not_json.status, 400);

    let root = app.root("edge-root", "ECCPRIME256V1");
    let beyond = app.post(
        "/api/1/certificates",
        &json!({ "owner": "a@example.com", "commonName": "x.example.com", "authority": { "id": root["id"] },
                 "validityStart": "2026-01-01T00:00:00Z", "validityEnd": "2099-01-01T00:00:00Z" }),
    );
    assert_eq!(beyond.status, 400);
    assert!(beyond.body["reasons"]["validityEnd"].is_string());
    let bad_name = app.post(
        "/api/1/certificates",
        &json!({ "owner": "a@example.com", "commonName": "ok.example.com", "authority": { "id": root["id"] },
                 "extensions": { "subAltNames": { "names": [{ "nameType": "DNSName", "value": "bad_name.example.com" }] } } }),
    );
    assert_eq!(bad_name.status, 400);
    let bad_csr = app.post(
        "/api/1/certificates",
        &json!({ "owner": "a@example.com", "authority": { "id": root["id"] }, "csr": "garbage" }),
    );
    assert_eq!(bad_csr.status, 400);
    assert!(bad_csr.body["reasons"]["csr"].is_string());
    let missing = app.get("/api/1/certificates/12345");
    assert_eq!(missing.status, 404);
    let no_key = app.get("/api/1/certificates/1/key");
    assert_eq!(
        no_key.status, 404,
        "a CA certificate row has no stored key: {}",
        no_key.text
    );

    // Every 4xx is JSON naming what is wrong, on both databases alike.
    let reason = |reply: &lemur_testkit::daemon::Reply, field: &str| {
        assert_eq!(reply.status, 400, "{}", reply.text);
        reply.body["reasons"][field]
            .as_str()
            .unwrap_or_else(|| panic!("no reason for {field}: {}", reply.text))
            .to_owned()
    };
    assert!(reason(&app.get("/api/1/certificates/abc"), "id").contains("not a number"));
    assert!(reason(&app.get("/api/1/authorities/1x"), "id").contains("not a number"));
    reason(
        &app.get("/api/1/certificates?page=4611686018427387905&count=2"),
        "page",
    );
    assert!(reason(&app.get("/api/1/certificates?count=many"), "count").contains("invalid digit"));
    reason(&app.get("/api/1/certificates?filter=cn;%00"), "query");
    let nul_login = app.daemon.post(
        "/api/1/auth/login",
        None,
        &json!({ "username": "lemur\u{0}", "password": "x" }),
    );
    assert!(reason(&nul_login, "username").contains("NUL"));
    let control = app.post(
        "/api/1/certificates",
        &json!({ "owner": "a@example.com", "commonName": "ok.example.com", "organization": "Line\nBreak", "authority": { "id": root["id"] } }),
    );
    assert!(reason(&control, "organization").contains("control character"));
    let number = app.post(
        "/api/1/certificates",
        &json!({ "owner": "a@example.com", "commonName": "ok.example.com", "organization": 5, "authority": { "id": root["id"] } }),
    );
    assert!(reason(&number, "organization").contains("must be a string"));
    let long_cn = app.post(
        "/api/1/authorities",
        &json!({ "name": "long", "owner": "pki@example.com", "commonName": "x".repeat(65), "type": "root", "validityYears": 1 }),
    );
    assert!(reason(&long_cn, "commonName").contains("64"));
    for (settings, field) in [
        (json!({ "maxIssuanceDays": 0 }), "maxIssuanceDays"),
        (json!({ "defaultValidityDays": -5 }), "defaultValidityDays"),
        (json!({ "crlUrl": "ftp://crl.example.com/x.crl" }), "crlUrl"),
        (
            json!({ "issuerUrl": "http://pki.example.com/ca t.crt" }),
            "issuerUrl",
        ),
        (json!({ "cabCompliant": true }), "crlUrl"),
    ] {
        let mut body = json!({ "name": "settings", "owner": "pki@example.com", "commonName": "Settings", "type": "root", "validityYears": 1 });
        body.as_object_mut()
            .unwrap()
            .extend(settings.as_object().unwrap().clone());
        reason(&app.post("/api/1/authorities", &body), field);
    }
    let clamped = app.post(
        "/api/1/authorities",
        &json!({ "name": "clamped", "owner": "pki@example.com", "commonName": "Clamped", "type": "root", "validityYears": 1,
                 "maxIssuanceDays": 30, "defaultValidityDays": 90 }),
    );
    assert_eq!(clamped.status, 200, "{}", clamped.text);
    assert_eq!(
        clamped.body["defaultValidityDays"], 30,
        "the default is clamped to the maximum"
    );
    let unknown_plugin = app.post(
        "/api/1/authorities",
        &json!({ "name": "plugged", "owner": "pki@example.com", "commonName": "Plugged", "type": "root",
                 "validityYears": 1, "plugin": { "slug": "acme-issuer" } }),
    );
    assert!(reason(&unknown_plugin, "plugin.slug").contains("acme-issuer"));
    assert!(reason(&app.get("/api/1/plugins?type=printer"), "type").contains("printer"));
    assert_eq!(app.get("/api/1/plugins/no-such-plugin").status, 404);
}
on_both_databases!(edges_answer_with_clear_errors, edges);

/// `GET /plugins`, `?type=` and `/plugins/{slug}` in Lemur's shapes: `{items, total}` of
/// `{slug, title, description, pluginOptions}`, the issuer findable by Lemur's slug too.
#[test]
fn plugins_are_listed_in_lemurs_shapes() {
    let app = Appliance::start(Db::Sqlite);
    let all = app.get("/api/1/plugins");
    assert_eq!(all.status, 200, "{}", all.text);
    let items = all.body["items"].as_array().unwrap();
    assert_eq!(all.body["total"], items.len());
    let issuer = items
        .iter()
        .find(|p| p["slug"] == "hsm-issuer")
        .unwrap_or_else(|| panic!("no HSM issuer: {}", all.text));
    for field in ["title", "description"] {
        assert!(issuer[field].is_string(), "{field}: {issuer}");
    }
    assert!(issuer["pluginOptions"].is_array(), "{issuer}");
    let issuers = app.get("/api/1/plugins?type=issuer");
    assert_eq!(issuers.body["items"][0]["slug"], "hsm-issuer");
    let destinations = app.get("/api/1/plugins?type=destination");
    assert_eq!(destinations.body["total"], 0, "{}", destinations.text);
    for slug in ["hsm-issuer", "cryptography-issuer"] {
        let one = app.get(&format!("/api/1/plugins/{slug}"));
        assert_eq!(one.status, 200, "{}", one.text);
        assert_eq!(&one.body, issuer, "{slug}");
    }
}

/// Each request is logged once, with its id (the proxy's, or one made up), method, route,
/// status and subject, and the id comes back to the client.
#[test]
fn every_request_is_logged_once_with_its_id() {
    let app = Appliance::start(Db::Sqlite);
    let given = app.daemon.get_with(
        "/api/1/certificates/12345",
        Some(&app.token),
        &[("X-Request-Id", "report-4711")],
    );
    assert_eq!(given.status, 404);
    let given_id = given.header("x-request-id").unwrap().to_owned();
    assert!(given_id.starts_with("report-4711."), "{given_id}");
    let made = app.daemon.get_with(
        "/api/1/healthcheck",
        None,
        &[("X-Request-Id", "bad id with spaces")],
    );
    let made_id = made.header("x-request-id").unwrap().to_owned();
    assert!(!made_id.contains(' ') && !made_id.is_empty(), "{made_id}");
    let log = app.daemon.log_with(&format!("[{made_id}]"));
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("[{given_id}]")))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("GET /api/1/certificates/{id} 404") && lines[0].contains("user:lemur"),
        "{}",
        lines[0]
    );
    let anonymous = format!("[{made_id}]");
    assert!(
        log.lines().any(|l| l.contains(&anonymous)
            && l.contains("GET /api/1/healthcheck 200")
            && l.contains("anonymous")),
        "{log}"
    );
}

/// Failed logins slow down the account and the address they come from (429 with Retry-After,
/// the right password included), and each is audited without the password.
#[test]
fn failed_logins_are_throttled_and_audited() {
    let app = Appliance::start(Db::Sqlite);
    let login = |username: &str, password: &str| {
        app.daemon.post(
            "/api/1/auth/login",
            None,
            &json!({ "username": username, "password": password }),
        )
    };
    for _ in 0..5 {
        assert_eq!(login("lemur", "guess-number-one").status, 401);
    }
    let blocked = login("lemur", &app.daemon.admin_password);
    assert_eq!(blocked.status, 429, "{}", blocked.text);
    assert_eq!(blocked.body["code"], "rate_limited");
    let wait: u64 = blocked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    std::thread::park_timeout(std::time::Duration::from_millis(wait * 1000 + 200));
    assert_eq!(login("lemur", &app.daemon.admin_password).status, 200);
    let audited = app
        .query("SELECT user_id, source_address, details FROM logs WHERE log_type = 'login_failed'");
    assert_eq!(audited.lines().count(), 5, "{audited}");
    assert!(
        audited.lines().all(|l| l.starts_with("1|127.0.0.1|")),
        "{audited}"
    );
    assert!(!audited.contains("guess-number-one"), "{audited}");
    // The address has 5 failures; 15 more on other names block it for everyone.
    for n in 0..15 {
        assert_eq!(login(&format!("nobody-{n}"), "x").status, 401);
    }
    let address = login("someone-new", "x");
    assert_eq!(address.status, 429, "{}", address.text);
    assert!(
        address.body["message"]
            .as_str()
            .unwrap()
            .contains("address")
    );
}

/// The audit log records the TCP peer, unless the peer is a configured trusted proxy: only then
/// does the last `X-Forwarded-For` entry (the one the proxy appended) name the client.
#[test]
fn only_a_trusted_proxy_names_the_client() {
    let mut app = Appliance::start(Db::Sqlite);
    let fail = |app: &Appliance, header: (&str, &str)| {
        let reply = app.daemon.post_with(
            "/api/1/auth/login",
            None,
            &json!({ "username": "lemur", "password": "not it" }),
            &[header],
        );
        assert_eq!(reply.status, 401, "{}", reply.text);
        app.query("SELECT source_address FROM logs WHERE log_type = 'login_failed' ORDER BY id DESC LIMIT 1")
            .trim()
            .to_owned()
    };
    assert_eq!(fail(&app, ("X-Forwarded-For", "203.0.113.9")), "127.0.0.1");
    let config = std::fs::read_to_string(app.daemon.config_path()).unwrap();
    let config = config.replace("trusted_proxies = []", "trusted_proxies = [\"127.0.0.1\"]");
    std::fs::write(app.daemon.config_path(), config).unwrap();
    app.daemon.restart();
    assert_eq!(
        fail(&app, ("X-Forwarded-For", "203.0.113.9")),
        "203.0.113.9"
    );
    assert_eq!(
        fail(&app, ("X-Forwarded-For", "198.51.100.1, 203.0.113.10")),
        "203.0.113.10",
        "the entry the proxy appended, not the client's own"
    );
    assert_eq!(
        fail(&app, ("X-Real-IP", "198.51.100.7")),
        "127.0.0.1",
        "X-Real-IP is not trusted"
    );
    assert_eq!(
        fail(&app, ("X-Forwarded-For", "not an address")),
        "127.0.0.1"
    );
}

#[test]
fn sigterm_stops_the_daemon_cleanly() {
    let mut app = Appliance::start(Db::Sqlite);
    // A crash must not write the daemon's memory (keys, PINs) to a core file.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", app.daemon.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
        ["0", "0"],
        "{core}"
    );
    app.daemon.stop();
}

/// The subject of the certificate the daemon at `address` serves.
fn served_subject(address: &str) -> String {
    let output = std::process::Command::new("openssl")
        .args(["s_client", "-connect", address])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|line| line.starts_with("subject="))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_replaced_certificate_is_served_without_a_restart_once_it_fits_its_key() {
    use crate::support::{openssl_p256_request, scratch};
    use lemur_testkit::daemon::Daemon;
    let dir = scratch();
    for (name, key) in [("first", "key.pem"), ("second", "second-key.pem")] {
        openssl_p256_request(
            dir.path(),
            "-x509",
            key,
            &[
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-days",
                "2",
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
    let (cert, key) = (dir.path().join("first.pem"), dir.path().join("key.pem"));
    let served = dir.path().join("served.pem");
    std::fs::copy(&cert, &served).unwrap();
    let daemon = Daemon::start_with(
        std::path::Path::new(env!("CARGO_BIN_EXE_lemur")),
        None,
        &[
            "--tls-certificate".as_ref(),
            served.as_os_str(),
            "--tls-private-key".as_ref(),
            key.as_os_str(),
        ],
    );
    let address = daemon.base.trim_start_matches("https://").to_owned();
    assert!(served_subject(&address).contains("first"));
    let within = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {}",
                daemon.log()
            );
            std::thread::park_timeout(Duration::from_millis(200));
        }
    };

    // The new certificate before its key: the one that fits goes on being served.
    std::fs::copy(dir.path().join("second.pem"), &served).unwrap();
    within("a warning about the certificate that does not fit", &|| {
        daemon
            .log()
            .contains("kept serving the certificate loaded before")
    });
    assert!(served_subject(&address).contains("first"));
    // Then its key: served from the next connection on, by the same process.
    let pid = daemon.pid();
    std::fs::copy(dir.path().join("second-key.pem"), &key).unwrap();
    within("the second certificate served", &|| {
        served_subject(&address).contains("second")
    });
    assert_eq!(daemon.pid(), pid);
}

#[test]
fn the_daemon_serves_https_with_rustls_tls12_and_13_only() {
    use crate::support::{openssl_p256_request, scratch};
    use lemur_testkit::daemon::Daemon;
    let dir = scratch();
    openssl_p256_request(
        dir.path(),
        "-x509",
        "key.pem",
        &[
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-days",
            "2",
            "-out",
            "cert.pem",
        ],
    );
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let daemon = Daemon::start_with(
        std::path::Path::new(env!("CARGO_BIN_EXE_lemur")),
        None,
        &[
            "--tls-certificate".as_ref(),
            cert.as_os_str(),
            "--tls-private-key".as_ref(),
            key.as_os_str(),
        ],
    );
    let url = format!("{}/api/1/healthcheck", daemon.base);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let curl = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "ok",
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    let address = daemon.base.trim_start_matches("https://").to_owned();
    let old = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &address, "-tls1_1"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!old.status.success(), "TLS 1.1 must be refused");
    let modern = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &address, "-tls1_3", "-CAfile"])
        .arg(&cert)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&modern.stdout).contains("Verify return code: 0 (ok)"));
}

fn reset(db: Db) {
    let app = Appliance::start(db);
    // No waiting: a token issued in the same second as the reset is revoked too.
    assert_eq!(app.get("/api/1/auth/me").status, 200);
    let dir = crate::support::scratch();
    let new_password = dir.path().join("new-password");
    std::fs::write(&new_password, "a brand new passphrase\n").unwrap();
    let reset = app
        .daemon
        .command()
        .args(["reset_password", "-u", "lemur", "-p"])
        .arg(&new_password)
        .output()
        .unwrap();
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    // The daemon trusts a session it read for up to two seconds; a reset made by another
    // process is seen within that.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let revoked = loop {
        let answer = app.get("/api/1/auth/me");
        if answer.status != 200 || std::time::Instant::now() > deadline {
            break answer;
        }
        #[allow(clippy::disallowed_methods)] // the daemon's session copies age in real time
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(revoked.status, 401, "{}", revoked.text);
    assert!(
        revoked.body["message"]
            .as_str()
            .unwrap()
            .contains("log in again"),
        "{}",
        revoked.text
    );
    let login = app.daemon.post(
        "/api/1/auth/login",
        None,
        &json!({ "username": "lemur", "password": "a brand new passphrase" }),
    );
    assert_eq!(login.status, 200, "{}", login.text);
    let token = login.body["token"].as_str().unwrap();
    assert_eq!(app.daemon.get("/api/1/auth/me", Some(token)).status, 200);
}
on_both_databases!(a_password_reset_revokes_earlier_tokens, reset);

/// A client that sends its body slowly is cut off (408), and while the daemon serves as many
/// requests as it may, another is answered 503 at once instead of queueing.
#[test]
fn slow_requests_time_out_and_a_full_daemon_sheds_load() {
    use std::io::{Read, Write};
    let mut app = Appliance::start(Db::Sqlite);
    let config = std::fs::read_to_string(app.daemon.config_path()).unwrap();
    let config = config
        .replace("request_timeout_secs = 60", "request_timeout_secs = 6")
        .replace("max_in_flight_requests = 512", "max_in_flight_requests = 1");
    std::fs::write(app.daemon.config_path(), config).unwrap();
    app.daemon.restart();
    let address = app.daemon.base.trim_start_matches("http://").to_owned();
    let start_slow = || {
        let mut slow = std::net::TcpStream::connect(&address).unwrap();
        slow.write_all(
            b"POST /api/1/auth/login HTTP/1.1\r\nHost: lemur\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
        slow
    };
    // Whether the daemon has answered `slow` already: it was shed itself, having raced a probe
    // for the slot.
    let answered = |slow: &std::net::TcpStream| {
        slow.set_nonblocking(true).unwrap();
        let answered = slow.peek(&mut [0u8; 1]).is_ok();
        slow.set_nonblocking(false).unwrap();
        answered
    };
    // The slow request holds the only slot: another is shed.
    let mut slow = start_slow();
    let mut shed = app.daemon.get("/api/1/healthcheck", None);
    for _ in 0..80 {
        if shed.status == 503 {
            break;
        }
        if answered(&slow) {
            slow = start_slow();
        }
        std::thread::park_timeout(std::time::Duration::from_millis(50));
        shed = app.daemon.get("/api/1/healthcheck", None);
    }
    assert_eq!(shed.status, 503, "{}", shed.text);
    assert_eq!(shed.body["code"], "overloaded", "{}", shed.text);
    slow.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut answer = [0u8; 64];
    let read = slow.read(&mut answer).unwrap();
    let status_line = String::from_utf8_lossy(&answer[..read]);
    assert!(status_line.starts_with("HTTP/1.1 408"), "{status_line}");
    assert_eq!(app.daemon.get("/api/1/healthcheck", None).status, 200);
}

/// Connections past `server.max_connections` wait, unanswered, until one closes; past
/// `server.max_connections_per_client` from one address they are closed; and a connection that
/// does not finish its headers in time, or says nothing at all, is closed.
#[test]
fn silent_and_surplus_connections_are_bounded() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let mut app = Appliance::start(Db::Sqlite);
    let configured = std::fs::read_to_string(app.daemon.config_path()).unwrap();
    let set = |header_timeout: &str, connections: &str, per_client: &str| {
        let config = configured
            .replace(
                "header_timeout_secs = 30",
                &format!("header_timeout_secs = {header_timeout}"),
            )
            .replace(
                "max_connections = 768",
                &format!("max_connections = {connections}"),
            )
            .replace(
                "max_connections_per_client = 64",
                &format!("max_connections_per_client = {per_client}"),
            );
        assert_eq!(
            config.matches(" = ").count(),
            configured.matches(" = ").count()
        );
        config
    };
    std::fs::write(app.daemon.config_path(), set("30", "2", "64")).unwrap();
    app.daemon.restart();
    let address = app.daemon.base.trim_start_matches("http://").to_owned();
    let request = b"GET /api/1/healthcheck HTTP/1.1\r\nHost: lemur\r\nConnection: close\r\n\r\n";
    let answer = |stream: &mut TcpStream, wait: u64| {
        stream
            .set_read_timeout(Some(Duration::from_secs(wait)))
            .unwrap();
        let mut text = Vec::new();
        let outcome = stream.read_to_end(&mut text);
        (outcome, String::from_utf8_lossy(&text).into_owned())
    };

    // Two silent connections take both places (the second is served a request first, so both
    // are known to be accepted); a third is not answered while they stay open.
    let first = TcpStream::connect(&address).unwrap();
    let healthy = |address: &str| {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .write_all(b"GET /api/1/healthcheck HTTP/1.1\r\nHost: lemur\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        stream
    };
    let second = healthy(&address);
    let mut third = TcpStream::connect(&address).unwrap();
    third.write_all(request).unwrap();
    let (waiting, text) = answer(&mut third, 2);
    assert!(waiting.is_err() && text.is_empty(), "{waiting:?} {text}");
    drop(first);
    let (served, text) = answer(&mut third, 10);
    assert!(
        served.is_ok() && text.starts_with("HTTP/1.1 200"),
        "{served:?} {text}"
    );
    drop(second);

    // A third connection from one address when two may be open is closed unanswered, and
    // admitted once one of the two closes.
    std::fs::write(app.daemon.config_path(), set("30", "768", "2")).unwrap();
    app.daemon.restart();
    let address = app.daemon.base.trim_start_matches("http://").to_owned();
    let (first, _second) = (healthy(&address), healthy(&address));
    let mut third = TcpStream::connect(&address).unwrap();
    let _ = third.write_all(request);
    let (closed, text) = answer(&mut third, 10);
    assert!(text.is_empty(), "{closed:?} {text}");
    drop(first);
    // The daemon frees the place once it sees the close.
    let admitted = |address: &str| -> std::io::Result<TcpStream> {
        let mut stream = TcpStream::connect(address)?;
        stream.write_all(request)?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        assert_eq!(&head, b"HTTP/1.1 200");
        Ok(stream)
    };
    let mut fourth = admitted(&address);
    for _ in 0..50 {
        if fourth.is_ok() {
            break;
        }
        std::thread::park_timeout(Duration::from_millis(100));
        fourth = admitted(&address);
    }
    let mut fourth = fourth.unwrap();
    let (rest, text) = answer(&mut fourth, 10);
    assert!(rest.is_ok() && text.contains("\r\n\r\n"), "{rest:?} {text}");

    // A connection that never finishes its headers, and one that sends nothing, are closed.
    std::fs::write(app.daemon.config_path(), set("1", "768", "64")).unwrap();
    app.daemon.restart();
    let address = app.daemon.base.trim_start_matches("http://").to_owned();
    let mut partial = TcpStream::connect(&address).unwrap();
    partial
        .write_all(b"GET /api/1/healthcheck HTTP/1.1\r\nHost: lem")
        .unwrap();
    let mut silent = TcpStream::connect(&address).unwrap();
    let started = Instant::now();
    for stream in [&mut partial, &mut silent] {
        let (closed, text) = answer(stream, 10);
        assert!(
            text.is_empty()
                && closed.map_or_else(
                    |e| e.kind() == std::io::ErrorKind::ConnectionReset,
                    |_| true
                ),
            "{text}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let mut prompt = TcpStream::connect(&address).unwrap();
    prompt.write_all(request).unwrap();
    let (served, text) = answer(&mut prompt, 10);
    assert!(
        served.is_ok() && text.starts_with("HTTP/1.1 200"),
        "{served:?} {text}"
    );
}

/// The web UI's session: the login sets an HttpOnly, Secure, SameSite=Strict cookie when the web
/// UI asks; the cookie signs reads in, changes only with the web UI's header; logout ends it.
#[test]
fn the_web_uis_session_cookie_signs_in_and_guards_changes() {
    let app = Appliance::start(Db::Sqlite);
    let web = [("X-Requested-With", "lemur-web")];
    let credentials = json!({ "username": "lemur", "password": app.daemon.admin_password });
    let plain = app.daemon.post("/api/1/auth/login", None, &credentials);
    assert_eq!(
        plain.header("set-cookie"),
        None,
        "API clients get no cookie"
    );
    let login = app
        .daemon
        .post_with("/api/1/auth/login", None, &credentials, &web);
    assert_eq!(login.status, 200, "{}", login.text);
    let set = login.header("set-cookie").expect("a session cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/api/1"] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let with_cookie = [("Cookie", cookie.as_str())];
    assert_eq!(
        app.daemon
            .get_with("/api/1/auth/me", None, &with_cookie)
            .status,
        200
    );

    let body = json!({ "owner": "x@example.com" });
    let forged = app
        .daemon
        .post_with("/api/1/certificates", None, &body, &with_cookie);
    assert_eq!(forged.status, 403, "{}", forged.text);
    let both = [with_cookie[0], web[0]];
    let from_ui = app
        .daemon
        .post_with("/api/1/certificates", None, &body, &both);
    assert_eq!(
        from_ui.status, 400,
        "signed in, then validated: {}",
        from_ui.text
    );

    let logout = app
        .daemon
        .post_with("/api/1/auth/logout", None, &json!({}), &both);
    assert_eq!(logout.status, 204, "{}", logout.text);
    assert!(logout.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        app.daemon
            .get_with("/api/1/auth/me", None, &with_cookie)
            .status,
        401
    );
}
