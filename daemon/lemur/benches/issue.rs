//! Issuance and import through the API, beside the crypto floor measured in the same run.
//!
//! Workload: `lemur dev` (release build, SoftHSM2) with a P-256 root authority, on SQLite and on
//! a throwaway local PostgreSQL cluster (fsync on: its commits as durable as SQLite's); clients
//! on the same machine (the test kit's lean load client: HTTP/1.1 keep-alive, one connection
//! per thread, each answer checked for its status and certificate), with the admin token:
//! - from a CSR: `POST /certificates` with a fresh P-256 CSR (made beforehand), at 1 and 16
//!   connections;
//! - with a key generated in the HSM: P-256 at 16 connections; RSA-2048 at 4, as a burst the
//!   size of the appliance's stock of keys generated ahead (`[keys] stock`, 1,024), measured
//!   last, once the stock is full, beside the rate at which the token makes keys;
//! - import: `POST /certificates/upload` of a certificate, its chain and its P-256 key (made
//!   beforehand by a local software CA), at 4 connections.
//!
//! The crypto floor is what the cryptography every issuance from a CSR must do allows, and
//! nothing else: verify the CSR's signature, SHA-256 and `C_Sign` of the TBS in the token, and
//! verify that signature in software (the signer does; it is not verified twice). One thread
//! per CPU, one token session each, on the daemon's own token and CA key. No HSM-backed issuer
//! that checks what it signs can beat it on this machine. Each figure is set against the floor
//! measured around it (a slice of half its time just before and one just after; before only
//! for the RSA burst, after which the daemon makes keys again), since the speed of these shared
//! machines moves within seconds.
//!
//! The latency floor at one connection is what no single request goes below here: the floor's
//! cryptography on one thread, one certificate's durable commit with the daemon's schema (on
//! SQLite the rows an issuance writes, in a transaction on a connection of the benchmark's own;
//! on PostgreSQL the same rows in one prepared statement run by `pgbench`, as the certificate
//! writer sends one, though over the cluster's socket rather than TCP), and an API round trip
//! through the same client (`GET /auth/me`, authenticated and answered from the caller in
//! hand). Printed in every run (measured before the workloads, whichever are selected), it
//! shows how much of the 1 ms target at one connection is left for the rest of a request's
//! path.
//!
//! Run: `cargo bench -p lemur --bench issue`. `LEMUR_BENCH_SECONDS` sets the time per figure
//! (default 5); `LEMUR_BENCH_ONLY=import,P-256` measures only the workloads named,
//! `LEMUR_BENCH_DATABASE=PostgreSQL` only on the database named.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a benchmark fails loudly

use lemur_api::CreateAuthority;
use lemur_client::Client;
use lemur_hsm::{HsmConfig, HsmSigner, KeyStore, Pkcs11KeyStore, SignatureScheme};
use lemur_testkit::bench::{self, Rate, rate};
use lemur_testkit::daemon::Daemon;
use lemur_testkit::load::LoadClient;
use lemur_testkit::postgres::Postgres;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn csrs(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let key = rcgen::KeyPair::generate().unwrap();
            let name = format!("bench-{i}.example.com");
            let mut params = rcgen::CertificateParams::new(vec![name.clone()]).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.serialize_request(&key).unwrap().pem().unwrap()
        })
        .collect()
}

/// Certificates with their P-256 keys, issued by a software CA, and that CA's PEM (the chain).
fn imports(count: usize) -> (Vec<(String, String)>, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Bench Import CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let leaves = (0..count)
        .map(|i| {
            let key = rcgen::KeyPair::generate().unwrap();
            let name = format!("import-{i}.example.net");
            let mut params = rcgen::CertificateParams::new(vec![name.clone()]).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let certificate = params.signed_by(&key, &issuer).unwrap();
            (certificate.pem(), key.serialize_pem())
        })
        .collect();
    (leaves, ca.pem())
}

/// What the benchmark sends, made before any clock starts and consumed as it goes.
struct Inputs {
    csrs: Mutex<Vec<String>>,
    imports: Mutex<Vec<(String, String)>>,
    chain: String,
}

/// The crypto floor (see the module's comment) on a daemon's token and CA key: one thread per
/// CPU, a token session each. It is measured in slices beside each figure, not once: these
/// machines are shared, and the floor has moved by a third within one run and by half between
/// runs, so a figure is set against the floor measured just before and after it.
struct Floor {
    store: Arc<Pkcs11KeyStore>,
    key_uri: String,
    ca_der: Vec<u8>,
    csrs: Vec<String>,
    next: AtomicUsize,
    threads: usize,
}

impl Floor {
    fn open(daemon: &Daemon, key_uri: &str, ca_pem: &str) -> Self {
        lemur_testkit::use_softhsm_conf(&daemon.state_dir().join("softhsm/softhsm2.conf"));
        let threads = bench::cpus();
        let mut config = HsmConfig::new("lemur", daemon.state_dir().join("secrets/hsm-pin"));
        config.pool_size = Some(threads);
        let monitor = Arc::new(lemur_entropy::HealthMonitor::with_os_source());
        Self {
            store: Arc::new(Pkcs11KeyStore::open(&config, monitor).unwrap()),
            key_uri: key_uri.to_owned(),
            ca_der: pem::parse(ca_pem).unwrap().into_contents(),
            csrs: csrs(64),
            next: AtomicUsize::new(0),
            threads,
        }
    }

    /// Certificates per second doing only the floor's cryptography, for `duration`.
    fn rate(&self, duration: Duration) -> f64 {
        let keys: Arc<dyn KeyStore> = Arc::clone(&self.store) as Arc<dyn KeyStore>;
        let signer = HsmSigner::new(keys, self.key_uri.parse().unwrap()).unwrap();
        let issuer =
            rcgen::Issuer::from_ca_cert_der(&self.ca_der.as_slice().into(), &signer).unwrap();
        let floor = rate(self.threads, duration, || {
            let csr = &self.csrs[self.next.fetch_add(1, Ordering::Relaxed) % self.csrs.len()];
            // Parsing verifies the CSR's signature; the HSM signer verifies its own.
            rcgen::CertificateSigningRequestParams::from_pem(csr)
                .and_then(|request| request.signed_by(&issuer))
                .is_ok()
        });
        assert_eq!(floor.failed, 0, "the crypto floor loop failed");
        floor.per_second
    }

    /// Raw `C_Sign` P-256 signatures per second, for `duration`: what the token itself allows.
    fn raw_signatures(&self, duration: Duration) -> f64 {
        let uri = self.key_uri.parse().unwrap();
        let raw = rate(self.threads, duration, || {
            self.store
                .sign(
                    &uri,
                    SignatureScheme::EcdsaSha256,
                    b"benchmark tbs certificate",
                )
                .is_ok()
        });
        raw.per_second
    }
}

/// The floor's slices on one daemon's token, its raw signature rate, and the latencies of an
/// API round trip (see [`api_round_trip`]) and of one certificate's durable commit (see
/// [`one_certificate_commit`] and [`one_certificate_statement`]); all measured before the
/// workloads or between them, while the daemon makes no keys.
struct FloorSlices {
    database: &'static str,
    slices: Vec<f64>,
    raw: f64,
    round_trip: Duration,
    commit: Duration,
}

impl FloorSlices {
    /// The median slice (the mean of the middle two of an even number); none without slices,
    /// when `LEMUR_BENCH_ONLY` selects no workload.
    fn median(&self) -> Option<f64> {
        let mut sorted = self.slices.clone();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        match sorted.len() {
            0 => None,
            n if n % 2 == 0 => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
            _ => Some(sorted[middle]),
        }
    }
}

/// The latency of the durable commit every issuance waits for, measured on the daemon's own
/// SQLite database: one certificate's transaction, with the rows an issuance writes (a copy of
/// the newest certificate under a new name, serial and hash, its domain and link, its audit
/// row), on a connection of the benchmark's own with the certificate writer's settings (WAL,
/// `synchronous = FULL`, its page cache and checkpoint interval). That commit writes every page the schema's indexes and search index touch, not one:
/// no issuer that stores what it signed, with these indexes, answers one request faster than
/// this plus its cryptography.
fn one_certificate_commit(daemon: &Daemon, duration: Duration) -> Duration {
    let connection = rusqlite::Connection::open(daemon.state_dir().join("lemur.db")).unwrap();
    connection.busy_timeout(Duration::from_secs(10)).unwrap();
    connection
        .execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = 4000;",
        )
        .unwrap();
    let connection = Mutex::new(connection);
    let next = AtomicUsize::new(0);
    let commit = rate(1, duration, || {
        let connection = connection.lock().unwrap();
        let name = format!("floor-{}.example.com", next.fetch_add(1, Ordering::Relaxed));
        store_one_certificate(&connection, &name).is_ok()
    });
    assert_eq!(commit.failed, 0, "the one-certificate commit loop failed");
    commit.p50
}

/// The latency of what every request pays around its own work, through the load client that
/// measures the workloads, at one keep-alive connection: `GET /auth/me`, which the daemon
/// authenticates and answers from the caller it has in hand. No request the daemon serves is
/// faster than this, its own work aside. (A refused issuance request would also parse a body,
/// but the daemon closes the connection after refusing one, so each would pay a new connection.)
fn api_round_trip(load: &LoadClient, duration: Duration) -> Duration {
    let round_trip = rate(1, duration, || {
        load.get("/auth/me")
            .is_ok_and(|answer| answer.is(200, r#""username":"#))
    });
    assert_eq!(round_trip.failed, 0, "the API round-trip loop failed");
    round_trip.p50
}

/// [`one_certificate_commit`] on PostgreSQL: the same rows in one statement, committed as the
/// certificate writer's one-trip statement is, run by `pgbench` on the daemon's database over
/// the cluster's socket.
fn one_certificate_statement(postgres: &Postgres, duration: Duration) -> Duration {
    postgres.pgbench_p50(
        r"\set n random(1, 9223372036854775806)
WITH certificate AS (
    INSERT INTO certificates (name, owner, description, notify, rotation, body, body_der,
        body_sha256, chain_id, issuer, serial, serial_hex, cn, distinguished_name, san, bits,
        key_type, signing_algorithm, not_before, not_after, is_ca, authority_id, user_id,
        rotation_policy_id, date_created, alt_names)
    SELECT 'floor-' || :n::text, owner, description, notify, rotation, body, body_der,
        md5(random()::text) || md5(random()::text), chain_id, issuer, 'floor-' || :n::text,
        upper(md5(random()::text)), 'floor-' || :n::text, distinguished_name, san, bits, key_type,
        signing_algorithm, not_before, not_after, is_ca, authority_id, user_id,
        rotation_policy_id, date_created, alt_names
    FROM certificates ORDER BY id DESC LIMIT 1 RETURNING id
), domain AS (
    INSERT INTO domains (name) VALUES ('floor-' || :n::text) RETURNING id
), link AS (
    INSERT INTO certificate_domains (certificate_id, domain_id)
    SELECT certificate.id, domain.id FROM certificate, domain
)
INSERT INTO logs (certificate_id, log_type, logged_at, details)
SELECT id, 'create_cert', 0, 'benchmark floor' FROM certificate;
",
        duration,
    )
}

/// One certificate named `name`, as [`one_certificate_commit`] stores it.
fn store_one_certificate(connection: &rusqlite::Connection, name: &str) -> rusqlite::Result<()> {
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let id: i64 = connection.query_row(
        "INSERT INTO certificates (name, owner, description, notify, rotation, body, body_der,
             body_sha256, chain_id, issuer, serial, serial_hex, cn, distinguished_name, san, bits,
             key_type, signing_algorithm, not_before, not_after, is_ca, authority_id, user_id,
             rotation_policy_id, date_created, alt_names)
         SELECT ?1, owner, description, notify, rotation, body, body_der,
             lower(hex(randomblob(32))), chain_id, issuer, ?1, upper(hex(randomblob(16))), ?1,
             distinguished_name, san, bits, key_type, signing_algorithm, not_before, not_after,
             is_ca, authority_id, user_id, rotation_policy_id, date_created, alt_names
         FROM certificates ORDER BY id DESC LIMIT 1 RETURNING id",
        [name],
        |row| row.get(0),
    )?;
    connection.execute(
        "INSERT INTO domains (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
        [name],
    )?;
    connection.execute(
        "INSERT INTO certificate_domains (certificate_id, domain_id)
         SELECT ?1, id FROM domains WHERE name = ?2",
        rusqlite::params![id, name],
    )?;
    connection.execute(
        "INSERT INTO logs (certificate_id, log_type, logged_at, details)
         VALUES (?1, 'create_cert', 0, 'benchmark floor')",
        [id],
    )?;
    connection.execute_batch("COMMIT")
}

/// One workload's figure.
struct Figure {
    database: &'static str,
    workload: &'static str,
    connections: usize,
    rate: Rate,
    /// The crypto floor measured around it: the mean of a slice just before and one just
    /// after (before only for the RSA burst, after which the daemon makes keys again).
    floor: f64,
    target: &'static str,
    /// Whether the figure meets its target, given the crypto floor.
    met: fn(&Rate, f64) -> bool,
}

/// Whether `workload` is measured: all are, unless `LEMUR_BENCH_ONLY` names some (a substring
/// of each, comma-separated), e.g. to profile one.
fn selected(workload: &str) -> bool {
    named_in("LEMUR_BENCH_ONLY", workload)
}

/// Whether `name` is named in the list `variable` holds (a substring of it, comma-separated),
/// or the variable is unset.
fn named_in(variable: &str, name: &str) -> bool {
    std::env::var(variable).map_or(true, |list| {
        list.split(',').any(|part| name.contains(part.trim()))
    })
}

/// The RSA-2048 workload's name (what `LEMUR_BENCH_ONLY` matches).
const RSA_WORKLOAD: &str = "HSM key RSA-2048 (*)";

/// RSA-2048 certificates in the burst: the appliance's stock (a smoke run's is small).
fn rsa_burst() -> u64 {
    if cfg!(debug_assertions) { 16 } else { 1024 }
}

/// Restarts `daemon` keeping `[keys] stock` RSA-2048 keys, as the appliance does; when it
/// restarted (and began making them).
fn stock_rsa_keys(daemon: &mut Daemon, count: u64) -> std::time::Instant {
    let config = std::fs::read_to_string(daemon.config_path()).unwrap();
    assert!(config.contains("stock = {}"), "{config}");
    let config = config.replace("stock = {}", &format!("stock = {{ RSA2048 = {count} }}"));
    std::fs::write(daemon.config_path(), config).unwrap();
    let restarted = std::time::Instant::now();
    daemon.restart();
    restarted
}

/// Waits until the daemon's keys generated ahead of demand (`[keys] ready` in memory, `[keys]
/// stock` in the database) are all there, so their generation takes no CPU from the figures and
/// the RSA figure starts from a full supply.
fn wait_for_ready_keys(daemon: &Daemon) {
    let token = daemon.admin_token();
    let deadline = std::time::Instant::now() + Duration::from_secs(900);
    loop {
        let details = daemon.get("/api/1/healthcheck/details", Some(&token));
        let keys = details.body["readyKeys"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let full = |k: &serde_json::Value| {
            k["ready"] == k["target"] && (k["stockTarget"] == 0 || k["stocked"] == k["stockTarget"])
        };
        if keys.iter().all(full) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "keys never got ready: {}",
            details.text
        );
        std::thread::park_timeout(Duration::from_millis(200));
    }
}

/// The JSON of `POST /certificates` from `authority` with the fields of `body`.
fn issue_request(authority: i64, body: serde_json::Value) -> String {
    let mut request = json!({ "owner": "bench@example.com", "authority": { "id": authority } });
    request
        .as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    request.to_string()
}

/// Whether an answer is a certificate, as issuance and import give it.
fn is_certificate(answer: std::io::Result<lemur_testkit::load::Answer>) -> bool {
    answer.is_ok_and(|answer| answer.is(200, r#""body":"-----BEGIN CERTIFICATE-----"#))
}

/// Every selected workload's figure on `daemon` (on `postgres`' database, or else SQLite's);
/// `stocking` is when it began making the RSA keys stocked for the burst, if it does.
fn measure(
    database: &'static str,
    daemon: &Daemon,
    postgres: Option<&Postgres>,
    inputs: &Inputs,
    duration: Duration,
    stocking: Option<std::time::Instant>,
) -> (Vec<Figure>, FloorSlices) {
    let token = daemon.admin_token();
    let client = &Client::new(&daemon.base).with_token(token.clone());
    let load = &LoadClient::new(&daemon.base, &token);
    let root: CreateAuthority = serde_json::from_value(json!({
        "name": "bench-root", "owner": "bench@example.com", "commonName": "Bench Root", "type": "root",
        "keyType": "ECCPRIME256V1", "validityYears": 2,
    }))
    .unwrap();
    let root = client.create_authority(&root).unwrap();
    let authority = root.id;
    wait_for_ready_keys(daemon);
    let filled = stocking.map(|since| since.elapsed());
    let floor = Floor::open(
        daemon,
        root.key_uri.as_deref().unwrap(),
        &root.authority_certificate.as_ref().unwrap().body,
    );
    let slice = duration / 2;
    let raw = floor.raw_signatures(slice);
    let round_trip = api_round_trip(load, slice);
    let commit = match postgres {
        Some(postgres) => one_certificate_statement(postgres, duration),
        None => one_certificate_commit(daemon, duration),
    };
    let mut slices = Vec::new();
    let mut floor_slice = || {
        let rate = floor.rate(slice);
        slices.push(rate);
        rate
    };
    let from_csr = || {
        let Some(csr) = inputs.csrs.lock().unwrap().pop() else {
            return false;
        };
        is_certificate(load.post(
            "/certificates",
            &issue_request(authority, json!({ "csr": csr })),
        ))
    };
    let with_key = |key_type: &str| {
        let request = issue_request(
            authority,
            json!({ "commonName": "hsm-key.example.com", "keyType": key_type }),
        );
        move || is_certificate(load.post("/certificates", &request))
    };
    let import = || {
        let Some((body, key)) = inputs.imports.lock().unwrap().pop() else {
            return false;
        };
        let request = json!({
            "owner": "bench@example.com", "body": body, "chain": inputs.chain, "privateKey": key,
        });
        is_certificate(load.post("/certificates/upload", &request.to_string()))
    };
    // Each workload, measured only when selected; the RSA burst last: the stock refills after
    // it from idle CPU, and idle CPU is what the other figures measure.
    type Met = fn(&Rate, f64) -> bool;
    type Run<'r> = &'r dyn Fn() -> Rate;
    let workloads: [(&str, usize, &str, Met, Run); 5] = [
        (
            "from a CSR",
            1,
            "p50 < 1 ms",
            |rate, _| rate.p50 < Duration::from_millis(1),
            &|| rate(1, duration, from_csr),
        ),
        (
            "from a CSR",
            16,
            ">= 25% of floor",
            |rate, floor| rate.per_second >= 0.25 * floor,
            &|| rate(16, duration, from_csr),
        ),
        (
            "HSM key P-256",
            16,
            ">= 10% of floor",
            |rate, floor| rate.per_second >= 0.10 * floor,
            &|| rate(16, duration, with_key("ECCPRIME256V1")),
        ),
        (
            "import + chain + key",
            4,
            ">= 1,500/s",
            |rate, _| rate.per_second >= 1500.0,
            &|| rate(4, duration, import),
        ),
        (
            RSA_WORKLOAD,
            4,
            ">= 80/s, p99 < 300 ms",
            |rate, _| rate.per_second >= 80.0 && rate.p99 < Duration::from_millis(300),
            &|| {
                bench::burst(
                    4,
                    rsa_burst(),
                    Duration::from_secs(600),
                    with_key("RSA2048"),
                )
            },
        ),
    ];
    let figures = workloads
        .into_iter()
        .filter(|(workload, ..)| selected(workload))
        .map(|(workload, connections, target, met, run)| {
            let before = floor_slice();
            let rate = run();
            let floor = if workload == RSA_WORKLOAD {
                before
            } else {
                (before + floor_slice()) / 2.0
            };
            Figure {
                database,
                workload,
                connections,
                rate,
                floor,
                target,
                met,
            }
        })
        .collect();
    if let Some(filled) = filled {
        let keys = rsa_burst() + 32;
        println!(
            "{database}: {keys} RSA-2048 keys made ahead in {:.0} s from the restart, {:.1} keys/s (the pool's 32 at normal priority, the stock's at nice 19): about the pace past a burst",
            filled.as_secs_f64(),
            keys as f64 / filled.as_secs_f64()
        );
    }
    let slices = FloorSlices {
        database,
        slices,
        raw,
        round_trip,
        commit,
    };
    (figures, slices)
}

fn main() {
    let duration = bench::seconds_per_figure(5);
    // Enough for the fastest plausible run, made before any clock starts.
    let seconds = usize::try_from(duration.as_secs().max(1)).unwrap();
    let (leaves, chain) = imports(5_000 * seconds);
    let inputs = Inputs {
        csrs: Mutex::new(csrs(12_000 * seconds)),
        imports: Mutex::new(leaves),
        chain,
    };
    println!(
        "Issuance benchmark: lemur dev ({}, SoftHSM2), P-256 CA, clients on the same machine (HTTP/1.1 keep-alive); {}; {} s per figure",
        bench::build(),
        bench::machine(),
        duration.as_secs()
    );
    let postgres = Postgres::start_durable();
    let mut figures = Vec::new();
    let mut floors = Vec::new();
    for (database, postgres) in [("SQLite", None), ("PostgreSQL", Some(&postgres))]
        .into_iter()
        .filter(|(database, _)| named_in("LEMUR_BENCH_DATABASE", database))
    {
        let url = postgres.map(|postgres| postgres.url.as_str());
        let mut daemon = Daemon::start(Path::new(env!("CARGO_BIN_EXE_lemur")), url);
        let stocking = selected(RSA_WORKLOAD).then(|| stock_rsa_keys(&mut daemon, rsa_burst()));
        let (measured, slices) = measure(database, &daemon, postgres, &inputs, duration, stocking);
        figures.extend(measured);
        floors.push(slices);
    }
    if selected(RSA_WORKLOAD) {
        println!(
            "(*) a burst of {} certificates, served by the keys generated ahead of demand: 32 in memory ([keys] ready) refilled from {} sealed in the database ([keys] stock, as the appliance keeps); past those, the token's key generation bounds the rate",
            rsa_burst(),
            rsa_burst()
        );
    }
    for slices in &floors {
        let Some(median) = slices.median() else {
            continue;
        };
        let (low, high) = slices
            .slices
            .iter()
            .fold((f64::MAX, 0.0_f64), |(low, high), &s| {
                (low.min(s), high.max(s))
            });
        println!(
            "crypto floor on {}'s token: median {median:.0} certificates/s over {} slices of {:.1} s around the figures ({low:.0}-{high:.0}/s; {} threads, a token session each; raw C_Sign P-256 {:.0}/s)",
            slices.database,
            slices.slices.len(),
            (duration / 2).as_secs_f64(),
            bench::cpus(),
            slices.raw,
        );
        // The median floor's cryptography of one request, on one thread.
        let crypto = bench::cpus() as f64 / median;
        let (commit, round_trip) = (slices.commit.as_secs_f64(), slices.round_trip.as_secs_f64());
        println!(
            "latency floor at c=1 on {}: {:.2} ms = the cryptography on one thread ({:.2} ms) + one certificate's durable commit with the daemon's schema (its row, indexes, search index, domain and audit row; p50 {:.2} ms, {}) + an API round trip (p50 {:.2} ms: `GET /auth/me` through the same client and connection)",
            slices.database,
            (crypto + commit + round_trip) * 1e3,
            crypto * 1e3,
            commit * 1e3,
            if slices.database == "SQLite" {
                "one transaction on a connection of the benchmark's own"
            } else {
                "one statement run by pgbench"
            },
            round_trip * 1e3,
        );
    }
    println!(
        "{:<11} {:<21} {:>3} {:>9} {:>9} {:>9} {:>8} {:>8} {:>6}  target",
        "database", "workload", "c", "per s", "p50 ms", "p99 ms", "floor/s", "of floor", "errors"
    );
    for figure in &figures {
        let share = figure.rate.per_second / figure.floor;
        let verdict = if (figure.met)(&figure.rate, figure.floor) {
            "met"
        } else {
            "MISSED"
        };
        println!(
            "{:<11} {:<21} {:>3} {:>9.1} {:>9.2} {:>9.2} {:>8.0} {:>7.1}% {:>6}  {} {verdict}",
            figure.database,
            figure.workload,
            figure.connections,
            figure.rate.per_second,
            figure.rate.p50.as_secs_f64() * 1e3,
            figure.rate.p99.as_secs_f64() * 1e3,
            figure.floor,
            100.0 * share,
            figure.rate.failed,
            figure.target,
        );
    }
}
