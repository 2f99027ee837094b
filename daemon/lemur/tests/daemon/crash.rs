//! The daemon killed with SIGKILL under issuance load: every certificate it answered for is
//! there exactly once, no partial rows are left, and each request whose answer was lost, retried
//! with its `Idempotency-Key`, gets the certificate its first attempt made (if it made one)
//! rather than a second.

use crate::on_both_databases;
use crate::support::{Appliance, Db};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Requests at once while the daemon is killed.
const CLIENTS: usize = 8;

/// Certificates answered before the kill.
const ANSWERED_BEFORE_KILL: usize = 300;

/// One request of the load: its key and body, and the certificate id if it was answered.
struct Attempt {
    key: String,
    body: Value,
    id: Option<i64>,
}

fn request(authority: i64, key: &str) -> Value {
    json!({
        "owner": "crash@example.com", "authority": { "id": authority },
        "commonName": format!("{key}.example.com"),
    })
}

/// Issues from one client until the daemon stops answering; the last attempt has no answer.
fn load(app: &Appliance, authority: i64, client: usize, answered: &AtomicUsize) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    for n in 0.. {
        let key = format!("crash-{client}-{n}");
        let body = request(authority, &key);
        let reply = app.daemon.try_post_with(
            "/api/1/certificates",
            Some(&app.token),
            &body,
            &[("Idempotency-Key", &key)],
        );
        let id = match reply {
            Some(reply) => {
                assert_eq!(reply.status, 200, "{}", reply.text);
                answered.fetch_add(1, Ordering::Relaxed);
                Some(reply.body["id"].as_i64().unwrap())
            }
            None => None,
        };
        attempts.push(Attempt { key, body, id });
        if id.is_none() {
            break;
        }
    }
    attempts
}

/// The single number a query returns.
fn count(app: &Appliance, sql: &str) -> usize {
    app.query(sql).trim().parse().unwrap()
}

fn crash(db: Db) {
    let mut app = Appliance::start(db);
    let authority = app.root("crash", "ECCPRIME256V1")["id"].as_i64().unwrap();
    let answered = AtomicUsize::new(0);
    let attempts: Vec<Attempt> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (app, answered) = (&app, &answered);
                scope.spawn(move || load(app, authority, client, answered))
            })
            .collect();
        // A client that failed ends early: the test fails at its join rather than waiting here.
        while answered.load(Ordering::Relaxed) < ANSWERED_BEFORE_KILL
            && !clients.iter().any(|client| client.is_finished())
        {
            std::thread::park_timeout(Duration::from_millis(5));
        }
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &app.daemon.pid().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        clients
            .into_iter()
            .flat_map(|client| client.join().unwrap())
            .collect()
    });
    app.daemon.crash_and_restart();

    let (acknowledged, lost): (Vec<&Attempt>, Vec<&Attempt>) =
        attempts.iter().partition(|attempt| attempt.id.is_some());
    assert_eq!(lost.len(), CLIENTS, "each client loses its last request");
    for attempt in &acknowledged {
        let id = attempt.id.unwrap();
        let stored = app.get(&format!("/api/1/certificates/{id}"));
        assert_eq!(stored.status, 200, "acknowledged certificate {id} is gone");
        assert_eq!(stored.body["cn"], format!("{}.example.com", attempt.key));
    }
    let ours = "FROM certificates c WHERE c.cn LIKE 'crash-%'";
    let stored = count(&app, &format!("SELECT COUNT(*) {ours}"));
    assert!(
        (acknowledged.len()..=attempts.len()).contains(&stored),
        "{stored} stored for {} acknowledged and {} lost",
        acknowledged.len(),
        lost.len()
    );
    let partial = format!(
        "SELECT COUNT(*) {ours} AND (
            NOT EXISTS (SELECT 1 FROM logs l WHERE l.certificate_id = c.id AND l.log_type = 'create_cert')
            OR NOT EXISTS (SELECT 1 FROM certificate_domains cd WHERE cd.certificate_id = c.id))"
    );
    assert_eq!(
        count(&app, &partial),
        0,
        "a certificate lacks its audit row or domain"
    );

    // Answers lost on the way too: a client that hangs up before the answer comes, at whatever
    // stage its request had reached, some of them stored already.
    let hung_up: Vec<Attempt> = (0..60)
        .map(|n| {
            let key = format!("crash-hung-up-{n}");
            let body = request(authority, &key);
            let reply = app.daemon.post_giving_up_after(
                "/api/1/certificates",
                Some(&app.token),
                &body,
                &[("Idempotency-Key", &key)],
                Duration::from_micros(500 + 50 * n),
            );
            let id = reply.map(|reply| reply.body["id"].as_i64().unwrap());
            Attempt { key, body, id }
        })
        .collect();
    let lost: Vec<&Attempt> = lost
        .into_iter()
        .chain(hung_up.iter().filter(|attempt| attempt.id.is_none()))
        .collect();
    let attempts = attempts.len() + hung_up.len();

    let answered = attempts - lost.len();
    let unanswered_but_stored = count(&app, &format!("SELECT COUNT(*) {ours}")) - answered;
    eprintln!(
        "{answered} answered, {} lost, {unanswered_but_stored} of them stored",
        lost.len()
    );

    // The lost requests, retried as a client would: each ends with exactly one certificate.
    for attempt in &lost {
        let retried = app.daemon.post_with(
            "/api/1/certificates",
            Some(&app.token),
            &attempt.body,
            &[("Idempotency-Key", &attempt.key)],
        );
        assert_eq!(retried.status, 200, "{}", retried.text);
        assert_eq!(retried.body["cn"], format!("{}.example.com", attempt.key));
    }
    assert_eq!(
        count(&app, &format!("SELECT COUNT(*) {ours}")),
        attempts,
        "one certificate per request, however often it was sent"
    );
    let twice =
        format!("SELECT COUNT(*) FROM (SELECT c.cn {ours} GROUP BY c.cn HAVING COUNT(*) > 1) AS d");
    assert_eq!(count(&app, &twice), 0, "a request made two certificates");

    // An acknowledged request sent again gets its certificate back, not a new one.
    let first = acknowledged[0];
    let again = app.daemon.post_with(
        "/api/1/certificates",
        Some(&app.token),
        &first.body,
        &[("Idempotency-Key", &first.key)],
    );
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["id"].as_i64(), first.id);
    // The same request sent by several clients at once makes one certificate, and each gets it.
    let racing = request(authority, "crash-racing");
    let ids: Vec<i64> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    let reply = app.daemon.post_with(
                        "/api/1/certificates",
                        Some(&app.token),
                        &racing,
                        &[("Idempotency-Key", "crash-racing")],
                    );
                    assert_eq!(reply.status, 200, "{}", reply.text);
                    reply.body["id"].as_i64().unwrap()
                })
            })
            .collect();
        senders.into_iter().map(|s| s.join().unwrap()).collect()
    });
    assert!(ids.windows(2).all(|pair| pair[0] == pair[1]), "{ids:?}");
    // The same key with another request is refused, naming the header's rule.
    let other = request(authority, "another-request");
    let reused = app.daemon.post_with(
        "/api/1/certificates",
        Some(&app.token),
        &other,
        &[("Idempotency-Key", &first.key)],
    );
    assert_eq!(reused.status, 422, "{}", reused.text);
    assert_eq!(reused.body["code"], "idempotency_key_reused");
    let bad = app.daemon.post_with(
        "/api/1/certificates",
        Some(&app.token),
        &other,
        &[("Idempotency-Key", "")],
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("Idempotency-Key"), "{}", bad.text);
}

on_both_databases!(
    a_crash_under_load_loses_no_acknowledged_certificate_and_retries_make_no_duplicate,
    crash
);
