//! Certificates issued per second through the API, next to the raw HSM signing rate measured in
//! the same run on the same token and CA key.
//!
//! Workload: `lemur dev` (release build, SQLite, SoftHSM2) with a P-256 root authority; clients
//! POST `/api/1/certificates` with a fresh P-256 CSR (made beforehand) and the admin token, at
//! concurrency 1 and 4, for a fixed time each. The raw rate is `KeyStore::sign` (ECDSA P-256 with
//! SHA-256) with the CA key through a pool of the same size. Target: the API at 50% of the raw rate
//! or better.
//!
//! Run: `cargo bench -p lemur --bench issue`. `LEMUR_BENCH_SECONDS` sets the time per figure
//! (default 5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a benchmark fails loudly

use lemur_hsm::{HsmConfig, KeyStore, Pkcs11KeyStore, SignatureScheme};
use lemur_testkit::daemon::Daemon;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Runs `op` on `threads` threads for `duration`; returns successful operations per second.
fn rate(threads: usize, duration: Duration, op: impl Fn() -> bool + Sync) -> (f64, u64) {
    let done = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while started.elapsed() < duration {
                    if op() {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    (
        done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed),
    )
}

fn main() {
    let seconds: u64 = std::env::var("LEMUR_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    let daemon = Daemon::start(Path::new(env!("CARGO_BIN_EXE_lemur")), None);
    let token = daemon.admin_token();
    let root = daemon.post(
        "/api/1/authorities",
        Some(&token),
        &json!({ "name": "bench-root", "owner": "bench@example.com", "commonName": "Bench Root", "type": "root", "keyType": "ECCPRIME256V1", "validityYears": 2 }),
    );
    assert_eq!(root.status, 200, "{}", root.text);
    let authority = root.body["id"].as_i64().unwrap();
    let key_uri = root.body["keyUri"].as_str().unwrap().to_owned();
    let pool = Arc::new(Mutex::new(csrs(40_000)));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "Issuance benchmark: lemur dev (release, SQLite WAL, SoftHSM2), P-256 CA, P-256 CSRs; {cpus} x {cpu}; {seconds} s per figure"
    );

    let issued = AtomicUsize::new(0);
    let mut api = Vec::new();
    for concurrency in [1, 4] {
        let (per_second, failed) = rate(concurrency, duration, || {
            let Some(csr) = pool.lock().unwrap().pop() else {
                return false;
            };
            let reply = daemon.post("/api/1/certificates", Some(&token), &json!({ "owner": "bench@example.com", "authority": { "id": authority }, "csr": csr }));
            issued.fetch_add(1, Ordering::Relaxed);
            reply.status == 200
        });
        api.push((concurrency, per_second, failed));
    }

    lemur_testkit::use_softhsm_conf(&daemon.state_dir().join("softhsm/softhsm2.conf"));
    let mut raw = Vec::new();
    for sessions in [1, 4] {
        let mut config = HsmConfig::new("lemur", daemon.state_dir().join("secrets/hsm-pin"));
        config.pool_size = Some(sessions);
        let monitor = Arc::new(lemur_entropy::HealthMonitor::with_os_source());
        let store = Pkcs11KeyStore::open(&config, monitor).unwrap();
        let uri = key_uri.parse().unwrap();
        let (per_second, _) = rate(sessions, duration, || {
            store
                .sign(
                    &uri,
                    SignatureScheme::EcdsaSha256,
                    b"benchmark tbs certificate",
                )
                .is_ok()
        });
        raw.push((sessions, per_second));
    }

    println!(
        "{:<12} {:>16} {:>16} {:>10} {:>8}",
        "concurrency", "API issued/s", "raw HSM signs/s", "API/raw", "errors"
    );
    for ((concurrency, api_rate, failed), (_, raw_rate)) in api.iter().zip(&raw) {
        println!(
            "{concurrency:<12} {api_rate:>16.1} {raw_rate:>16.0} {:>9.1}% {failed:>8}",
            100.0 * api_rate / raw_rate
        );
    }
    println!(
        "({} certificates issued in all)",
        issued.load(Ordering::Relaxed)
    );
}
