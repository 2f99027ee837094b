//! A large inventory: builds N real certificates (default 1,000,000) through the store's bulk
//! path, then measures what users of a big inventory wait for, on SQLite and on PostgreSQL, each
//! figure beside its target from issue 15.
//!
//! Inventory: four P-256 root authorities in the daemon's SoftHSM2 token; each certificate
//! signed by one of them in the token (so the crypto floor of this machine bounds how fast it is
//! built), 100 owners, 1 to 5 DNS names, `notAfter` spread over two years around today, and 1%
//! with `foo` in the CN. Queries go through the API (HTTP/1.1 keep-alive, admin token, client
//! on the same machine), each repeated `LEMUR_BENCH_SAMPLES` times (default 50).
//!
//! Each database runs in a child process of its own (the PKCS#11 module reads its
//! configuration once per process), and the expiration scan in another, so its peak memory is
//! its own.
//!
//! Run: `cargo bench -p lemur --bench inventory`; `LEMUR_BENCH_INVENTORY=20000` for a smaller
//! inventory (CI runs a smoke size).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a benchmark fails loudly

use lemur_core::ca::x509;
use lemur_core::config::DatabaseConfig;
use lemur_core::model::{LogEntry, NewCertificate};
use lemur_hsm::{HsmConfig, HsmSigner, KeyStore, Pkcs11KeyStore};
use lemur_store::SqlStore;
use lemur_testkit::bench;
use lemur_testkit::daemon::Daemon;
use lemur_testkit::postgres::Postgres;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400;
const OWNERS: usize = 100;
const AUTHORITIES: usize = 4;
const BATCH: usize = 2_000;

fn inventory_size() -> usize {
    std::env::var("LEMUR_BENCH_INVENTORY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

fn samples() -> usize {
    std::env::var("LEMUR_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
}

#[allow(clippy::disallowed_methods)] // the inventory is dated around the real today
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// A well-spread pseudo-random number for certificate `i` (SplitMix64).
fn spread(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn owner(i: usize) -> String {
    format!("team{:02}@example.com", i % OWNERS)
}

fn common_name(i: usize) -> String {
    // 1% carry the word the substring search looks for.
    let marked = if i.is_multiple_of(100) { "-foo" } else { "" };
    format!("svc-{i:07}{marked}.team{:02}.example.com", i % OWNERS)
}

fn alt_name(i: usize, k: usize) -> String {
    format!("alt{k}-{i:07}.team{:02}.example.com", i % OWNERS)
}

/// One authority as the generator signs with it.
struct Authority {
    id: i64,
    key_uri: String,
    certificate: Vec<u8>,
    /// The chain its certificates ship (its own certificate), PEM.
    pem: String,
}

/// Builds certificates `range` signed in the token, parsed as the store keeps them.
fn build(
    keys: &Arc<Pkcs11KeyStore>,
    authorities: &[Authority],
    subject_keys: &[rcgen::KeyPair],
    range: std::ops::Range<usize>,
    now: i64,
) -> Vec<(x509::ParsedCertificate, usize)> {
    let signers: Vec<HsmSigner> = authorities
        .iter()
        .map(|a| {
            let keys: Arc<dyn KeyStore> = Arc::clone(keys) as Arc<dyn KeyStore>;
            HsmSigner::new(keys, a.key_uri.parse().unwrap()).unwrap()
        })
        .collect();
    let issuers: Vec<_> = authorities
        .iter()
        .zip(&signers)
        .map(|(a, signer)| {
            rcgen::Issuer::from_ca_cert_der(&a.certificate.as_slice().into(), signer).unwrap()
        })
        .collect();
    range
        .map(|i| {
            let r = spread(i as u64);
            let sans = 1 + (r % 5) as usize;
            let mut names = vec![common_name(i)];
            names.extend((1..sans).map(|k| alt_name(i, k)));
            let mut params = rcgen::CertificateParams::new(names).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, common_name(i));
            let not_after = now - 365 * DAY + ((r >> 8) % (730 * DAY as u64)) as i64;
            params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
            params.not_before =
                time::OffsetDateTime::from_unix_timestamp(not_after - 90 * DAY).unwrap();
            params.serial_number = Some(rcgen::SerialNumber::from(
                (r | 1 << 63).to_be_bytes().to_vec(),
            ));
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
            let authority = i % AUTHORITIES;
            let key = &subject_keys[i % subject_keys.len()];
            let certificate = params.signed_by(key, &issuers[authority]).unwrap();
            (x509::parse(certificate.der(), "body").unwrap(), authority)
        })
        .collect()
}

/// Builds the inventory and stores it through the bulk path; returns certificates per second.
fn populate(daemon: &Daemon, database_url: &str, authorities: &[Authority], size: usize) -> f64 {
    lemur_testkit::use_softhsm_conf(&daemon.state_dir().join("softhsm/softhsm2.conf"));
    let threads = bench::cpus();
    let mut config = HsmConfig::new("lemur", daemon.state_dir().join("secrets/hsm-pin"));
    config.pool_size = Some(threads);
    let monitor = Arc::new(lemur_entropy::HealthMonitor::with_os_source());
    let keys = Arc::new(Pkcs11KeyStore::open(&config, monitor).unwrap());
    let subject_keys: Vec<rcgen::KeyPair> = (0..64)
        .map(|_| rcgen::KeyPair::generate().unwrap())
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime
        .block_on(SqlStore::connect(
            &serde_json::from_value::<DatabaseConfig>(json!({ "url": database_url })).unwrap(),
            None,
        ))
        .unwrap();
    let now = now();
    let started = Instant::now();
    let (sender, batches) = std::sync::mpsc::sync_channel::<Vec<_>>(threads * 2);
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (keys, subject_keys, sender) = (&keys, &subject_keys, sender.clone());
            scope.spawn(move || {
                let mut start = thread * BATCH;
                while start < size {
                    let range = start..(start + BATCH).min(size);
                    let built = build(keys, authorities, subject_keys, range, now);
                    sender.send(built).unwrap();
                    start += threads * BATCH;
                }
            });
        }
        drop(sender);
        let mut stored = 0;
        for batch in batches {
            let owners: Vec<String> = (0..batch.len()).map(|n| owner(stored + n)).collect();
            let names: Vec<[String; 2]> = batch
                .iter()
                .map(|(parsed, _)| lemur_core::certificates::lemur_name(parsed))
                .collect();
            let domains: Vec<Vec<String>> = batch
                .iter()
                .map(|(parsed, _)| lemur_core::certificates::dns_domains(parsed))
                .collect();
            let rows: Vec<(NewCertificate<'_>, LogEntry<'_>)> = batch
                .iter()
                .enumerate()
                .map(|(n, (parsed, authority))| {
                    let authority = &authorities[*authority];
                    let new = NewCertificate {
                        parsed,
                        names: [&names[n][0], &names[n][1]],
                        owner: &owners[n],
                        description: "inventory benchmark",
                        notify: true,
                        rotation: false,
                        chain: Some(&authority.pem),
                        csr: None,
                        sealed_private_key: None,
                        authority_id: Some(authority.id),
                        root_authority_id: Some(authority.id),
                        user_id: Some(1),
                        rotation_policy_id: None,
                        replaces: &[],
                        domains: &domains[n],
                        idempotency: None,
                    };
                    let log = LogEntry {
                        certificate_id: None,
                        log_type: "create_cert",
                        user_id: Some(1),
                        source_address: Some("inventory benchmark"),
                        details: "bulk import",
                    };
                    (new, log)
                })
                .collect();
            runtime
                .block_on(store.store_certificates(&rows, now))
                .unwrap();
            stored += batch.len();
        }
    });
    runtime.block_on(lemur_core::store::Store::close(&store));
    size as f64 / started.elapsed().as_secs_f64()
}

/// A memory figure of process `pid` from `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in MiB; 0
/// when the process is gone.
fn memory(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// The daemon's resident memory, and its peak, in MiB.
fn rss(pid: u32) -> (f64, f64) {
    (memory(pid, "VmRSS:"), memory(pid, "VmHWM:"))
}

/// Latencies of `samples` requests of `path` after a first one: (p50, p99), and the last reply.
/// The first request's time is printed on its own: it may count a large total (see the
/// store's listing), which later requests reuse for a minute.
fn timed(daemon: &Daemon, token: &str, path: &str, samples: usize) -> (Duration, Duration, Value) {
    let started = Instant::now();
    let first = daemon.get(path, Some(token));
    let cold = started.elapsed();
    assert_eq!(first.status, 200, "{path}: {}", first.text);
    if cold > Duration::from_millis(50) {
        println!("{:<11} (first request of {path}: {:.0} ms)", "", ms(cold));
    }
    let mut latencies = Vec::with_capacity(samples);
    let mut last = Value::Null;
    for _ in 0..samples {
        let started = Instant::now();
        let reply = daemon.get(path, Some(token));
        latencies.push(started.elapsed());
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        last = reply.body;
    }
    latencies.sort_unstable();
    let at = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    (at(50), at(99), last)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn row(database: &str, what: &str, figure: &str, target: &str, met: bool) {
    let verdict = if met { "met" } else { "MISSED" };
    println!("{database:<11} {what:<44} {figure:>24}  {target} {verdict}");
}

fn serial_forms(decimal: &str) -> [String; 3] {
    let value: u128 = decimal.parse().unwrap();
    let hex = format!("{value:X}");
    let padded = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.clone()
    };
    let colons = padded
        .as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    [decimal.to_owned(), format!("0x{hex}"), colons]
}

/// One database's figures.
fn leg(database: &'static str, url: Option<&str>) {
    let size = inventory_size();
    let samples = samples();
    let binary = Path::new(env!("CARGO_BIN_EXE_lemur"));
    let web = web_ui();
    let serve_ui: Vec<&std::ffi::OsStr> = match &web {
        Some(web) => vec!["--web-root".as_ref(), web.dist.as_os_str()],
        None => Vec::new(),
    };
    let mut daemon = Daemon::start_with(binary, url, &serve_ui);
    let token = daemon.admin_token();
    let authorities: Vec<Authority> = (0..AUTHORITIES)
        .map(|n| {
            let reply = daemon.post(
                "/api/1/authorities",
                Some(&token),
                &json!({
                    "name": format!("inventory-{n}"), "owner": "pki@example.com",
                    "commonName": format!("Inventory Root {n}"), "type": "root",
                    "keyType": "ECCPRIME256V1", "validityYears": 5,
                }),
            );
            assert_eq!(reply.status, 200, "{}", reply.text);
            let pem = reply.body["authorityCertificate"]["body"].as_str().unwrap();
            Authority {
                id: reply.body["id"].as_i64().unwrap(),
                key_uri: reply.body["keyUri"].as_str().unwrap().to_owned(),
                certificate: pem::parse(pem).unwrap().into_contents(),
                pem: pem.to_owned(),
            }
        })
        .collect();
    let sqlite_url = format!("sqlite://{}", daemon.state_dir().join("lemur.db").display());
    let database_url = url.map_or(sqlite_url, str::to_owned);
    let built = populate(&daemon, &database_url, &authorities, size);
    if let Some(url) = url {
        // What autovacuum does after a bulk load, done now rather than whenever it wakes.
        let vacuumed = Command::new("psql")
            .args([url, "-q", "-c", "VACUUM ANALYZE"])
            .status()
            .unwrap();
        assert!(vacuumed.success());
    }
    row(
        database,
        &format!("bulk build of {size} certificates (signed)"),
        &format!("{built:.0}/s"),
        "(no target)",
        true,
    );
    let restart = Instant::now();
    daemon.restart();
    let ready = restart.elapsed();
    row(
        database,
        "daemon stop + start, ready",
        &format!("{:.0} ms", ms(ready)),
        "< 1 s",
        ready < Duration::from_secs(1),
    );
    if url.is_none() {
        let bytes: u64 = ["lemur.db", "lemur.db-wal"]
            .iter()
            .map(|name| std::fs::metadata(daemon.state_dir().join(name)).map_or(0, |m| m.len()))
            .sum();
        let per_10k = bytes as f64 / 1_048_576.0 / (size as f64 / 10_000.0);
        row(
            database,
            "database size per 10,000 certificates",
            &format!("{per_10k:.1} MB"),
            "<= 20 MB",
            per_10k <= 20.0,
        );
    }
    let (idle, _) = rss(daemon.pid());
    row(
        database,
        "daemon RSS idle",
        &format!("{idle:.1} MB"),
        "< 40 MB",
        idle < 40.0,
    );

    let first = timed(&daemon, &token, "/api/1/certificates?count=10", 1).2;
    let sample = &first["items"][0];
    let serial = sample["serial"].as_str().unwrap().to_owned();
    let san = sample["domains"][0]["name"].as_str().unwrap().to_owned();
    let [decimal, hex, colons] = serial_forms(&serial);
    let queries = [
        ("first page", "/api/1/certificates?count=10".to_owned()),
        (
            "sorted by notAfter",
            "/api/1/certificates?count=10&sortBy=notAfter&sortDir=asc".to_owned(),
        ),
        (
            "filter=cn;foo (substring)",
            "/api/1/certificates?count=10&filter=cn;foo".to_owned(),
        ),
        (
            "filter=owner",
            "/api/1/certificates?count=10&filter=owner;team07@example.com".to_owned(),
        ),
        (
            "by SAN",
            format!("/api/1/certificates?count=10&filter=san;{san}"),
        ),
        (
            "by serial, decimal",
            format!("/api/1/certificates?count=10&serial={decimal}"),
        ),
        (
            "by serial, hex",
            format!("/api/1/certificates?count=10&serial={hex}"),
        ),
        (
            "by serial, colon-hex",
            format!("/api/1/certificates?count=10&serial={colons}"),
        ),
    ];
    for (what, path) in &queries {
        let (p50, p99, _) = timed(&daemon, &token, path, samples);
        row(
            database,
            &format!("first page, {what}"),
            &format!("p50 {:.1} / p99 {:.1} ms", ms(p50), ms(p99)),
            "p99 < 50 ms",
            p99 < Duration::from_millis(50),
        );
    }
    // Page 1,000 when the owner has that many pages (a smoke-sized inventory has fewer).
    let depth = (size / OWNERS / 10).clamp(2, 1000);
    let deep = "/api/1/certificates?count=10&filter=owner;team07@example.com";
    let (p50, p99, reply) = timed(&daemon, &token, &format!("{deep}&page={depth}"), samples);
    row(
        database,
        &format!("page {depth} of filter=owner"),
        &format!("p50 {:.1} / p99 {:.1} ms", ms(p50), ms(p99)),
        "p99 < 100 ms",
        p99 < Duration::from_millis(100),
    );
    let (_, _, before) = timed(&daemon, &token, &format!("{deep}&page={}", depth - 1), 1);
    let cursor = before["next"].as_str().unwrap_or_default().to_owned();
    let (p50, p99, _) = timed(&daemon, &token, &format!("{deep}&cursor={cursor}"), samples);
    row(
        database,
        "the same depth by keyset cursor",
        &format!("p50 {:.1} / p99 {:.1} ms", ms(p50), ms(p99)),
        "p99 < 100 ms",
        p99 < Duration::from_millis(100) && reply["items"] != Value::Null,
    );
    let metrics = [
        "bits",
        "issuer",
        "signing_algorithm",
        "not_after",
        "expiring",
        "expires_per_week",
        "issued_per_day",
    ];
    for metric in metrics {
        let (_, p99, _) = timed(
            &daemon,
            &token,
            &format!("/api/1/certificates/stats?metric={metric}"),
            samples.min(10),
        );
        row(
            database,
            &format!("stats, metric={metric}"),
            &format!("{:.0} ms", ms(p99)),
            "< 500 ms",
            p99 < Duration::from_millis(500),
        );
    }
    match &web {
        Some(web) => browser(database, &daemon, web, size, samples.min(20)),
        None => println!(
            "{database:<11} (the web UI's timing needs web/dist, web/node_modules and Debian's chromium)"
        ),
    }
    let (after, peak) = rss(daemon.pid());
    row(
        database,
        "daemon RSS after the list workload (peak)",
        &format!("{after:.1} MB ({peak:.1})"),
        "< 150 MB",
        peak < 150.0,
    );
    let (elapsed, peak, report) = expiration_scan(binary, &daemon);
    row(
        database,
        "expiration scan (`lemur notify expirations`)",
        &format!("{:.2} s, peak RSS {peak:.0} MB", elapsed.as_secs_f64()),
        "< 10 s, < 200 MB",
        elapsed < Duration::from_secs(10) && peak < 200.0,
    );
    println!(
        "{database:<11}   {}",
        report.lines().last().unwrap_or_default()
    );
}

/// The built web UI and what runs its browser test, when all are here.
struct WebUi {
    dir: std::path::PathBuf,
    dist: std::path::PathBuf,
}

fn web_ui() -> Option<WebUi> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let dist = dir.join("dist");
    let ready = dist.join("index.html").exists()
        && dir.join("node_modules").exists()
        && Path::new("/usr/bin/chromium").exists();
    ready.then_some(WebUi { dir, dist })
}

/// The certificates screen in Debian's Chromium against this inventory, served by the daemon
/// itself (`web/tests/scale.spec.ts`): its first page from navigation to rows, and a change of
/// filter from Enter to the new rows, each `samples` times.
fn browser(database: &str, daemon: &Daemon, web: &WebUi, size: usize, samples: usize) {
    let output = Command::new("npx")
        .args(["playwright", "test", "scale"])
        .current_dir(&web.dir)
        .env("LEMUR_URL", &daemon.base)
        .env("LEMUR_PASSWORD", &daemon.admin_password)
        .env("LEMUR_BENCH_INVENTORY", size.to_string())
        .env("LEMUR_BENCH_SAMPLES", samples.to_string())
        .output()
        .expect("npx (Node.js)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Playwright: {report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (figure, what, limit) in [
        ("first_page", "web UI: certificates, first page", 1_000),
        ("filter_change", "web UI: certificates, filter change", 500),
    ] {
        let line = report
            .lines()
            .find_map(|line| line.trim().strip_prefix(&format!("LEMUR_FIGURE {figure} ")))
            .unwrap_or_else(|| panic!("no {figure} figure in: {report}"));
        let value = |key: &str| -> u64 {
            line.split_whitespace()
                .find_map(|pair| pair.strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{key} in {line}"))
        };
        let (p50, max) = (value("p50="), value("max="));
        row(
            database,
            what,
            &format!("p50 {p50} / max {max} ms"),
            &format!("< {limit} ms"),
            max < limit,
        );
    }
}

/// Runs `lemur notify expirations --dry-run` on the daemon's configuration: its time, its peak
/// memory (read from /proc while it runs) and what it printed.
fn expiration_scan(binary: &Path, daemon: &Daemon) -> (Duration, f64, String) {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["notify", "expirations", "--dry-run"])
        .env("LEMUR_CONF", daemon.config_path())
        .env("LEMUR_LOG", "warn")
        .env_remove("SOFTHSM2_CONF")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0.0_f64;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(memory(child.id(), "VmHWM:"));
        std::thread::park_timeout(Duration::from_millis(2));
    }
    let elapsed = started.elapsed();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the expiration scan failed");
    (
        elapsed,
        peak,
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn main() {
    if let Ok(leg_name) = std::env::var("LEMUR_BENCH_LEG") {
        let url = std::env::var("LEMUR_BENCH_DATABASE_URL").ok();
        let database = if leg_name == "postgres" {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        leg(database, url.as_deref());
        return;
    }
    println!(
        "Inventory benchmark: {} certificates, {} samples per query; lemur dev ({}, SoftHSM2); {}",
        inventory_size(),
        samples(),
        bench::build(),
        bench::machine()
    );
    println!(
        "{:<11} {:<44} {:>24}  target",
        "database", "figure", "measured"
    );
    let help = (0..20)
        .map(|_| {
            let started = Instant::now();
            let status = Command::new(env!("CARGO_BIN_EXE_lemur"))
                .arg("--help")
                .output()
                .unwrap()
                .status;
            assert!(status.success());
            started.elapsed()
        })
        .min()
        .unwrap();
    row(
        "-",
        "`lemur --help` (best of 20)",
        &format!("{:.1} ms", ms(help)),
        "< 50 ms",
        help < Duration::from_millis(50),
    );
    let postgres = Postgres::start();
    for (leg_name, url) in [("sqlite", None), ("postgres", Some(postgres.url.as_str()))] {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.env("LEMUR_BENCH_LEG", leg_name);
        if let Some(url) = url {
            command.env("LEMUR_BENCH_DATABASE_URL", url);
        }
        let status = command.status().unwrap();
        assert!(status.success(), "the {leg_name} leg failed");
    }
}
