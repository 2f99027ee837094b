//! The store as users meet it: a database outage reads as an outage (503, retry later), never as
//! "not found" or "bad request"; and a page of certificates costs the same number of queries
//! whatever its size.

use crate::support::{Appliance, Db, openssl_csr};
use lemur_testkit::daemon::Reply;
use serde_json::json;

/// Issues `count` certificates from a fresh root; returns the root's id.
fn issue_many(app: &Appliance, count: usize) -> i64 {
    let root = app.root("store-root", "ECCPRIME256V1");
    let root = root["id"].as_i64().unwrap();
    for i in 0..count {
        let reply = issue_one(app, root, &format!("host-{i}"));
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    root
}

#[test]
fn a_database_outage_is_a_503_with_a_retry_hint_and_service_resumes_after() {
    let mut app = Appliance::start(Db::Postgres);
    let root = issue_many(&app, 1);
    // Every request waits this long for a connection while the database is down.
    let config = std::fs::read_to_string(app.daemon.config_path()).unwrap();
    let config = config.replace("acquire_timeout_secs = 5", "acquire_timeout_secs = 1");
    std::fs::write(app.daemon.config_path(), config).unwrap();
    app.daemon.restart();
    // The certificate writer keeps the connection this issuance makes, and finds it dead later.
    assert_eq!(issue_one(&app, root, "before-outage").status, 200);
    let postgres = app.postgres.as_ref().unwrap();
    postgres.stop();
    for path in [
        "/api/1/certificates/1",
        "/api/1/certificates/999",
        "/api/1/certificates?filter=cn;host",
        "/api/1/authorities/1",
    ] {
        answers_outage(&app, path);
    }
    // The database answers again, but not for certificates: a failure after authentication is
    // still a 503, never "not found".
    postgres.start_again();
    answers_again(&app, "/api/1/auth/me");
    // The writer's connection died with the server: its statement fails, a new connection
    // finds nothing of the batch stored, and stores it.
    let issued = issue_one(&app, root, "after-restart");
    assert_eq!(issued.status, 200, "{}", issued.text);
    read_again_after_a_lost_connection(&app);
    postgres.query("ALTER TABLE certificates RENAME TO certificates_away");
    for path in ["/api/1/certificates/1", "/api/1/certificates/999"] {
        answers_outage(&app, path);
    }
    postgres.query("ALTER TABLE certificates_away RENAME TO certificates");
    postgres.stop();
    let issued = issue_one(&app, root, "during-outage");
    assert_eq!(issued.status, 503, "{}", issued.text);
    let login = app.daemon.post(
        "/api/1/auth/login",
        None,
        &json!({ "username": "lemur", "password": app.daemon.admin_password }),
    );
    assert_eq!(login.status, 503, "{}", login.text);
    assert_eq!(app.daemon.get("/api/1/healthcheck", None).status, 503);
    postgres.start_again();
    answers_again(&app, "/api/1/certificates/1");
    // The first issuance after the server came back is stored, on a new connection.
    let issued = issue_one(&app, root, "after-outage");
    assert_eq!(issued.status, 200, "{}", issued.text);
    // An administrator's restart tells the writer's idle session the server is shutting down:
    // the next batch reads that, and connects again rather than failing.
    postgres.stop_fast();
    postgres.start_again();
    answers_again(&app, "/api/1/certificates/1");
    let issued = issue_one(&app, root, "after-fast-restart");
    assert_eq!(issued.status, 200, "{}", issued.text);
}

/// Issues a certificate for `name`.example.com from authority `root`.
fn issue_one(app: &Appliance, root: i64, name: &str) -> Reply {
    app.post(
        "/api/1/certificates",
        &json!({ "owner": "store@example.com", "authority": { "id": root },
                 "csr": openssl_csr(&[&format!("{name}.example.com")]).1 }),
    )
}

/// The daemon's log says the writer read what its batch stored on a new connection, after its
/// statement's connection failed.
fn read_again_after_a_lost_connection(app: &Appliance) {
    let log = app.daemon.log();
    assert!(
        log.contains("connecting again to read what its batch stored"),
        "{log}"
    );
}

/// A psql session that has added the domain `name` in a transaction it holds open, and its
/// input (to commit it).
fn adding_a_domain(
    postgres: &lemur_testkit::postgres::Postgres,
    name: &str,
) -> (std::process::Child, std::process::ChildStdin) {
    use std::io::Write;
    let mut session = postgres.session();
    let mut input = session.stdin.take().unwrap();
    writeln!(
        input,
        "BEGIN; INSERT INTO domains (name) VALUES ('{name}');"
    )
    .unwrap();
    input.flush().unwrap();
    // psql may start after whatever the test does next: hold the row before going on.
    assert!(
        eventually_answers(
            postgres,
            "SELECT count(*) FROM pg_stat_activity
             WHERE state = 'idle in transaction' AND query LIKE 'INSERT INTO domains%'",
            "1",
        ),
        "the other session never added {name}"
    );
    (session, input)
}

/// Whether `sql` answers `expected` (trimmed) within 10 s, asked every 50 ms.
fn eventually_answers(
    postgres: &lemur_testkit::postgres::Postgres,
    sql: &str,
    expected: &str,
) -> bool {
    (0..200).any(|_| {
        let done = postgres.query(sql).trim() == expected;
        if !done {
            std::thread::park_timeout(std::time::Duration::from_millis(50));
        }
        done
    })
}

/// `path` answers as an outage: 503, the database's code, and when to retry.
fn answers_outage(app: &Appliance, path: &str) {
    let reply = app.get(path);
    assert_eq!(reply.status, 503, "{path}: {}", reply.text);
    assert_eq!(
        reply.body["code"], "database_unavailable",
        "{path}: {}",
        reply.text
    );
    assert!(
        reply.header("retry-after").is_some(),
        "{path}: no Retry-After"
    );
}

/// Waits (ten seconds at most) until `path` answers 200 again after the database came back.
fn answers_again(app: &Appliance, path: &str) {
    let mut reply = app.get(path);
    for _ in 0..50 {
        std::thread::park_timeout(std::time::Duration::from_millis(200));
        reply = app.get(path);
        if reply.status == 200 {
            return;
        }
    }
    panic!("{path} still answers {}: {}", reply.status, reply.text);
}

/// Statements the server executed between two marker queries, from its log.
fn statements_between(log: &str, from: &str, to: &str) -> usize {
    let start = log.find(from).expect("first marker in the log");
    let end = log.find(to).expect("second marker in the log");
    log[start..end]
        .lines()
        .filter(|line| line.contains("LOG:  execute") || line.contains("LOG:  statement"))
        .count()
        - 1
}

#[test]
fn a_list_page_costs_the_same_queries_whatever_its_size() {
    let app = Appliance::start(Db::Postgres);
    issue_many(&app, 30);
    app.root("second-root", "ECCPRIME256V1");
    let postgres = app.postgres.as_ref().unwrap();
    postgres.alter_system(&["log_statement = 'all'"]);
    // The fewest of three tries: the daemon's own background work (a recount, the key pool)
    // may run a statement inside one window.
    let mut counts = Vec::new();
    for (step, path) in [
        "/api/1/certificates?count=1",
        "/api/1/certificates?count=30",
        "/api/1/authorities?count=1",
        "/api/1/authorities?count=2",
    ]
    .iter()
    .enumerate()
    {
        let fewest = (0..3)
            .map(|try_| {
                let marker = |end: &str| format!("lemur-marker-{step}-{try_}-{end}");
                postgres.query(&format!("SELECT '{}'", marker("a")));
                let reply = app.get(path);
                assert_eq!(reply.status, 200, "{}", reply.text);
                postgres.query(&format!("SELECT '{}'", marker("b")));
                statements_between(&postgres.log(), &marker("a"), &marker("b"))
            })
            .min();
        counts.push(fewest.unwrap());
    }
    assert_eq!(counts[0], counts[1], "certificates: {counts:?}");
    assert_eq!(counts[2], counts[3], "authorities: {counts:?}");
    assert!(counts.iter().all(|&n| (1..=6).contains(&n)), "{counts:?}");
}

/// A domain that another transaction adds while the certificate writer links the same name is
/// still linked (PostgreSQL): the writer's insert waits for it, skips the name, and cannot see
/// the row in its statement's snapshot, so it links that batch again.
#[test]
fn a_domain_added_by_another_transaction_meanwhile_is_still_linked() {
    use std::io::Write;
    let app = Appliance::start(Db::Postgres);
    let root = app.root("race-root", "ECCPRIME256V1");
    let postgres = app.postgres.as_ref().unwrap();
    let name = format!("race-{}.example.com", std::process::id());
    let (mut other, mut input) = adding_a_domain(postgres, &name);
    // Whether the session holds its transaction open with `waiting` sessions blocked by it.
    let holding_with = |waiting: usize| {
        eventually_answers(
            postgres,
            "SELECT count(*) FILTER (WHERE state = 'idle in transaction'),
                        count(*) FILTER (WHERE cardinality(pg_blocking_pids(pid)) > 0)
                 FROM pg_stat_activity WHERE datname = current_database()",
            &format!("1|{waiting}"),
        )
    };
    assert!(holding_with(0), "the session never held the domain");
    let (blocked, reply) = std::thread::scope(|scope| {
        let issuing = scope.spawn(|| {
            app.post(
                "/api/1/certificates",
                &json!({ "owner": "race@example.com", "authority": { "id": root["id"] },
                         "csr": openssl_csr(&[&name]).1 }),
            )
        });
        let blocked = holding_with(1);
        // Committed either way, so the issuance never waits for a failed test.
        input.write_all(b"COMMIT;\n").unwrap();
        drop(input);
        (blocked, issuing.join().unwrap())
    });
    assert!(other.wait().unwrap().success());
    assert!(
        blocked,
        "the certificate writer never waited for the other transaction"
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let names: Vec<&str> = reply.body["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|domain| domain["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [name.as_str()], "{}", reply.text);
    let id = reply.body["id"].as_i64().unwrap();
    let linked = postgres.query(&format!(
        "SELECT d.name FROM certificate_domains cd JOIN domains d ON d.id = cd.domain_id
         WHERE cd.certificate_id = {id}"
    ));
    assert_eq!(linked.trim(), name);
}

/// Two imports of one certificate take turns on PostgreSQL (several daemons may share the
/// database): a live body is unique, so the INSERT waits for the other transaction storing it,
/// then skips the row, and the import is refused naming the other's certificate.
#[test]
fn an_import_waits_for_another_of_the_same_certificate_and_is_refused() {
    use std::io::Write;
    let app = Appliance::start(Db::Postgres);
    let postgres = app.postgres.as_ref().unwrap();
    // A server whose sessions default to repeatable read: the INSERT that waited would fail
    // instead, the other's row being newer than its transaction's snapshot.
    postgres.alter_system(&["default_transaction_isolation = 'repeatable read'"]);
    let (body, chain, _) = crate::ca::external_certificate();
    let der: String = body
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let mut other = postgres.session();
    let mut input = other.stdin.take().unwrap();
    // Another transaction imports the same certificate first, as another daemon would: a row
    // with this body (a copy of the root authority's certificate row), then a lock that says the
    // row is written.
    let root = app.root("held-root", "ECCPRIME256V1");
    let sha256 = format!("encode(sha256(decode('{der}', 'base64')), 'hex')");
    writeln!(
        input,
        "BEGIN;
         CREATE TEMP TABLE held AS SELECT * FROM certificates WHERE id = {};
         UPDATE held SET id = nextval(pg_get_serial_sequence('certificates', 'id')),
             name = 'held-by-another', body_der = decode('{der}', 'base64'), body_sha256 = {sha256};
         INSERT INTO certificates SELECT * FROM held;
         SELECT pg_advisory_xact_lock(1);",
        root["authorityCertificate"]["id"]
    )
    .unwrap();
    input.flush().unwrap();
    let waiting = |count: usize| {
        eventually_answers(
            postgres,
            "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0",
            &count.to_string(),
        )
    };
    let held = eventually_answers(
        postgres,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted",
        "1",
    );
    assert!(held, "the session never took the lock");
    let (blocked, reply) = std::thread::scope(|scope| {
        let importing = scope.spawn(|| {
            app.post(
                "/api/1/certificates/upload",
                &json!({ "owner": "race@example.com", "body": body, "chain": chain }),
            )
        });
        let blocked = waiting(1);
        // Committed either way, so the import never waits for a failed test.
        input.write_all(b"COMMIT;\n").unwrap();
        drop(input);
        (blocked, importing.join().unwrap())
    });
    assert!(other.wait().unwrap().success());
    assert!(blocked, "the import never waited for the other transaction");
    let held_id = postgres.query("SELECT id FROM certificates WHERE name = 'held-by-another'");
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert!(
        reply
            .text
            .contains(&format!("as certificate {}", held_id.trim())),
        "{}",
        reply.text
    );
}

/// A database from before live bodies were unique may hold one body twice (two daemons importing
/// it at once could store it so): migration 16 keeps both rows, marks the later as the first's
/// twin, and an import of that body is then refused naming the first.
fn twins_from_before_unique_bodies(db: Db) {
    let app = Appliance::start(db);
    let (body, chain, _) = crate::ca::external_certificate();
    let upload = json!({ "owner": "legacy@example.com", "body": body, "chain": chain });
    let first = app.post("/api/1/certificates/upload", &upload);
    assert_eq!(first.status, 200, "{}", first.text);
    let first = first.body["id"].as_i64().unwrap();
    let mut app = app;
    app.daemon.stop();
    // The schema as migration 15 left it, and a second live row with the first one's body.
    let next_id = match db {
        Db::Postgres => "nextval(pg_get_serial_sequence('certificates', 'id'))",
        Db::Sqlite => "(SELECT max(id) + 1 FROM certificates)",
    };
    app.script(&format!(
        "DROP INDEX certificates_live_body;
         ALTER TABLE certificates DROP COLUMN duplicate_of;
         CREATE INDEX certificates_body_sha256 ON certificates (body_sha256);
         DELETE FROM schema_migrations WHERE version = 16;
         CREATE TEMP TABLE twin AS SELECT * FROM certificates WHERE id = {first};
         UPDATE twin SET id = {next_id}, name = 'legacy-twin';
         INSERT INTO certificates SELECT * FROM twin;"
    ));
    app.daemon.start_again();
    let app = app.signed_in_again();
    let rows = app.query(
        "SELECT name, duplicate_of FROM certificates WHERE cn = 'imported.example.com' ORDER BY id",
    );
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].ends_with('|'), "the first is no twin: {rows:?}");
    assert_eq!(rows[1], format!("legacy-twin|{first}"));
    let again = app.post("/api/1/certificates/upload", &upload);
    assert_eq!(again.status, 409, "{}", again.text);
    assert!(
        again.text.contains(&format!("as certificate {first}")),
        "{}",
        again.text
    );
}
crate::on_both_databases!(
    twins_from_before_unique_bodies_are_kept_and_named,
    twins_from_before_unique_bodies
);

/// Rows stored before migration 4 have no details beside the certificate: the view parses the
/// body instead and shows the same.
#[test]
fn rows_without_stored_details_show_the_same_view() {
    let app = Appliance::start(Db::Postgres);
    let root = app.root("details-root", "ECCPRIME256V1");
    let issued = app.post(
        "/api/1/certificates",
        &json!({ "owner": "store@example.com", "authority": { "id": root["id"] },
                 "commonName": "details.example.com", "organization": "Details Inc",
                 "extensions": { "subAltNames": { "names": [
                     { "nameType": "DNSName", "value": "details.example.com" },
                     { "nameType": "IPAddress", "value": "192.0.2.7" } ] } } }),
    );
    assert_eq!(issued.status, 200, "{}", issued.text);
    let path = format!("/api/1/certificates/{}", issued.body["id"]);
    let stored = app.get(&path).body;
    assert_eq!(stored["organization"], "Details Inc");
    assert_eq!(
        stored["extensions"]["subAltNames"]["names"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    app.postgres.as_ref().unwrap().query(
        "UPDATE certificates SET alt_names = NULL, subject_organization = NULL, server_auth = NULL",
    );
    let parsed = app.get(&path).body;
    assert_eq!(parsed, stored);
}

/// PostgreSQL over TLS with the server's certificate and name verified: the daemon works, the
/// server sees TLS connections, and a CA that did not sign the server's certificate is refused.
#[test]
fn postgres_over_verified_tls() {
    let postgres = lemur_testkit::postgres::Postgres::start();
    let ca = postgres.enable_tls();
    let url = |ca: &std::path::Path| {
        format!(
            "postgres://lemur@localhost:{}/lemur?sslmode=verify-full&sslrootcert={}",
            postgres.port(),
            ca.display()
        )
    };
    let daemon = lemur_testkit::daemon::Daemon::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_lemur")),
        Some(&url(&ca)),
    );
    let token = daemon.admin_token();
    assert_eq!(daemon.get("/api/1/certificates", Some(&token)).status, 200);
    let encrypted = postgres.query(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.usename = 'lemur' AND s.ssl AND a.pid <> pg_backend_pid()",
    );
    assert!(encrypted.trim().parse::<u32>().unwrap() > 0, "{encrypted}");
    let plain = postgres.query(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.usename = 'lemur' AND NOT s.ssl AND a.pid <> pg_backend_pid()",
    );
    assert_eq!(plain.trim(), "0");

    let other = crate::support::scratch();
    lemur_testkit::openssl_p256_request(
        other.path(),
        "-x509",
        "other.key",
        &["-subj", "/CN=Another CA", "-days", "2", "-out", "other.pem"],
    );
    // The daemon's own configuration (so the token opens), with the server's CA swapped.
    let config = other.path().join("lemur.toml");
    let text = std::fs::read_to_string(daemon.config_path()).unwrap();
    let text = text.replace(&url(&ca), &url(&other.path().join("other.pem")));
    assert!(text.contains("other.pem"), "{text}");
    lemur_testkit::write_secret_file(&config, &text);
    let refused = daemon
        .command()
        .env("LEMUR_CONF", &config)
        .args(["init", "--password-file", "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && text.contains("database"),
        "{text}"
    );
}

/// `/healthcheck` needs no sign-in: a burst of probes reuses one verdict instead of taking a
/// database connection (and an HSM session) each.
#[test]
fn health_probes_reuse_a_recent_verdict() {
    let app = Appliance::start(Db::Postgres);
    let postgres = app.postgres.as_ref().unwrap();
    postgres.alter_system(&["log_statement = 'all'"]);
    postgres.query("SELECT 'lemur-marker-health-a'");
    for _ in 0..20 {
        assert_eq!(app.daemon.get("/api/1/healthcheck", None).status, 200);
    }
    postgres.query("SELECT 'lemur-marker-health-b'");
    let log = postgres.log();
    let start = log.find("lemur-marker-health-a").unwrap();
    let end = log.find("lemur-marker-health-b").unwrap();
    let pings = log[start..end].matches("CAST(1 AS BIGINT)").count();
    assert!(pings <= 1, "{pings} database pings for 20 probes");
}

#[test]
fn a_database_a_later_release_migrated_is_refused_by_name() {
    let mut app = Appliance::start(Db::Sqlite);
    app.daemon.stop();
    let database = app.daemon.state_dir().join("lemur.db");
    let inserted = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nwith sqlite3.connect(sys.argv[1]) as db:\n    db.execute('INSERT INTO schema_migrations (version, applied_at) VALUES (100000, 0)')",
        ])
        .arg(&database)
        .status()
        .unwrap();
    assert!(inserted.success());
    let before = std::fs::read(&database).unwrap();
    // The daemon as the test started it; killed if it has not refused within a minute.
    let mut daemon = app
        .daemon
        .command()
        .arg("dev")
        .arg("--state-dir")
        .arg(app.daemon.state_dir())
        .args(["--http", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while daemon.try_wait().unwrap().is_none() && started.elapsed().as_secs() < 60 {
        std::thread::park_timeout(std::time::Duration::from_millis(100));
    }
    let _ = daemon.kill();
    let output = daemon.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("schema is at version 100000, which a later release"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(&database).unwrap(),
        before,
        "the database was left as it was"
    );
}

/// On SQLite the certificate writer has a connection of its own; the daemon's other writes take
/// turns with it rather than poll for the lock, so they neither fail nor wait long while
/// issuance keeps the writer busy.
#[test]
fn other_writes_take_turns_with_a_busy_certificate_writer() {
    let app = Appliance::start(Db::Sqlite);
    let root = app.root("busy-root", "ECCPRIME256V1")["id"]
        .as_i64()
        .unwrap();
    let issuing = std::sync::atomic::AtomicBool::new(true);
    let issued = std::sync::atomic::AtomicUsize::new(0);
    let slowest = std::thread::scope(|scope| {
        for thread in 0..6 {
            let (app, issuing, issued) = (&app, &issuing, &issued);
            scope.spawn(move || {
                let mut i = 0;
                while issuing.load(std::sync::atomic::Ordering::Relaxed) {
                    app.issue(root, &format!("busy-{thread}-{i}"));
                    issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    i += 1;
                }
            });
        }
        let mut slowest = std::time::Duration::ZERO;
        for i in 0..20 {
            let started = std::time::Instant::now();
            let reply = app.post(
                "/api/1/domains",
                &json!({ "name": format!("turn-{i}.example.com"), "sensitive": true }),
            );
            assert_eq!(reply.status, 200, "{}", reply.text);
            slowest = slowest.max(started.elapsed());
        }
        issuing.store(false, std::sync::atomic::Ordering::Relaxed);
        slowest
    });
    let issued = issued.into_inner();
    assert!(
        issued >= 20,
        "issuance kept the writer busy ({issued} certificates)"
    );
    assert!(
        slowest < std::time::Duration::from_secs(5),
        "a write waited {slowest:?} for its turn"
    );
    let stored = app.query("SELECT COUNT(*) FROM domains WHERE name LIKE 'turn-%'");
    assert_eq!(stored.trim(), "20");
}

/// PostgreSQL's writer stores a batch in one statement outside a transaction; when the
/// connection fails after that statement committed, before its answer arrived, a new connection
/// reads what was stored: the request is answered with its certificate, stored once.
#[test]
fn a_batch_whose_answer_is_lost_after_it_committed_is_answered_from_what_was_stored() {
    let (app, relay) = behind_a_relay();
    let root = issue_many(&app, 1);
    relay.arm(b"lost-answer.example.com");
    let issued = issue_one(&app, root, "lost-answer");
    assert!(relay.cut(), "the relay never saw the statement's answer");
    assert_eq!(issued.status, 200, "{}", issued.text);
    let stored = app.query("SELECT id FROM certificates WHERE cn = 'lost-answer.example.com'");
    assert_eq!(stored.trim(), issued.body["id"].to_string(), "stored once");
    let logged = app.query(&format!(
        "SELECT count(*) FROM logs WHERE certificate_id = {}",
        issued.body["id"]
    ));
    assert_eq!(logged.trim(), "1");
    read_again_after_a_lost_connection(&app);
}

/// PostgreSQL's writer statement lost while the server still runs it (waiting for a lock
/// another transaction holds): the writer ends that session before it reads what was stored,
/// so the statement cannot commit behind its back, and stores the certificate once.
#[test]
fn a_statement_lost_while_it_waits_is_ended_before_its_batch_is_stored_again() {
    use std::io::Write;
    let (app, relay) = behind_a_relay();
    let root = issue_many(&app, 1);
    let postgres = app.postgres.as_ref().unwrap();
    let (mut other, mut input) = adding_a_domain(postgres, "held.example.com");
    let statement_waits = |count: &str| {
        eventually_answers(postgres, "SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND query LIKE 'WITH c AS (INSERT INTO certificates%'", count)
    };
    let issued = std::thread::scope(|scope| {
        let issuing = scope.spawn(|| issue_one(&app, root, "held"));
        assert!(statement_waits("1"), "the statement never waited");
        relay.cut_all();
        // The writer ends the lost session: no statement of its batch waits any more but the
        // one it sends anew (in a transaction, which has no such text).
        assert!(statement_waits("0"), "the lost statement still runs");
        input.write_all(b"COMMIT;\n").unwrap();
        drop(input);
        issuing.join().unwrap()
    });
    assert!(other.wait().unwrap().success());
    assert_eq!(issued.status, 200, "{}", issued.text);
    let stored = app.query("SELECT id FROM certificates WHERE cn = 'held.example.com'");
    assert_eq!(stored.trim(), issued.body["id"].to_string(), "stored once");
    read_again_after_a_lost_connection(&app);
}

/// A daemon whose PostgreSQL connections all pass through an [`AnswerCutter`].
fn behind_a_relay() -> (Appliance, AnswerCutter) {
    let postgres = lemur_testkit::postgres::Postgres::start();
    let server = postgres
        .url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(port, _)| port.parse::<u16>().unwrap())
        .unwrap();
    let relay = AnswerCutter::start(server);
    let url = postgres
        .url
        .replace(&format!(":{server}/"), &format!(":{}/", relay.port));
    let daemon = lemur_testkit::daemon::Daemon::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_lemur")),
        Some(&url),
    );
    let token = daemon.admin_token();
    let app = Appliance {
        daemon,
        postgres: Some(postgres),
        token,
    };
    (app, relay)
}

/// A TCP relay to PostgreSQL that, once armed with a marker, drops the first connection whose
/// server answer carries it, once that answer has ended (ReadyForQuery, sent after the commit)
/// and before the rest of it is passed on: a statement that committed and whose answer was
/// lost. It can also drop every connection it relays at once ([`AnswerCutter::cut_all`]).
struct AnswerCutter {
    port: u16,
    marker: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    relayed: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl AnswerCutter {
    fn start(server: u16) -> Self {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let marker = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let relayed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (armed, done, all) = (marker.clone(), cut.clone(), relayed.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let upstream = TcpStream::connect(("127.0.0.1", server)).unwrap();
                all.lock().unwrap().push(client.try_clone().unwrap());
                let (mut client_in, mut upstream_out) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_in, &mut upstream_out);
                });
                let (armed, done) = (armed.clone(), done.clone());
                std::thread::spawn(move || relay_answers(upstream, client, &armed, &done));
            }
        });
        Self {
            port,
            marker,
            cut,
            relayed,
        }
    }

    /// Drops every connection relayed so far, as a network failure would.
    fn cut_all(&self) {
        for client in self.relayed.lock().unwrap().drain(..) {
            let _ = client.shutdown(std::net::Shutdown::Both);
        }
    }

    fn arm(&self, marker: &[u8]) {
        *self.marker.lock().unwrap() = Some(marker.to_vec());
    }

    fn cut(&self) -> bool {
        self.cut.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Passes the server's bytes on to the client, but see [`AnswerCutter`].
fn relay_answers(
    mut upstream: std::net::TcpStream,
    mut client: std::net::TcpStream,
    armed: &std::sync::Mutex<Option<Vec<u8>>>,
    done: &std::sync::atomic::AtomicBool,
) {
    use std::io::{Read, Write};
    let mut buffer = [0u8; 65536];
    let mut held: Option<Vec<u8>> = None;
    loop {
        let Ok(read) = upstream.read(&mut buffer) else {
            return;
        };
        if read == 0 {
            return;
        }
        let chunk = &buffer[..read];
        if held.is_none() {
            let mut marker = armed.lock().unwrap();
            let found = marker
                .as_ref()
                .is_some_and(|marker| chunk.windows(marker.len()).any(|w| w == marker.as_slice()));
            if found {
                // Disarmed: the connection that reads back what was stored passes.
                *marker = None;
                held = Some(Vec::new());
            }
        }
        match &mut held {
            None => {
                if client.write_all(chunk).is_err() {
                    return;
                }
            }
            Some(answer) => {
                answer.extend_from_slice(chunk);
                // ReadyForQuery: 'Z', length 5, the transaction status.
                if answer.len() >= 6
                    && answer[answer.len() - 6..answer.len() - 1] == *b"Z\0\0\0\x05"
                {
                    done.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    let _ = upstream.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
    }
}
