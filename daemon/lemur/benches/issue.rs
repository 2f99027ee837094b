//! Certificates issued per second through the API, next to the raw HSM signing rate measured in
//! the same run on the same token and CA key.
//!
//! Workload: `lemur dev` (release build, SoftHSM2) with a P-256 root authority, on SQLite and on
//! a throwaway local PostgreSQL cluster; clients (the typed `lemur-client`, HTTP/1.1 keep-alive)
//! POST `/api/1/certificates` with a fresh P-256 CSR (made beforehand) and the admin token, at concurrency 1 and 4, for a fixed time each. The raw
//! rate is `KeyStore::sign` (ECDSA P-256 with SHA-256) with the CA key through a pool of the same
//! size; the crypto floor is what the signature checks alone allow (see `crypto_floor`). Target:
//! the API at 50% of the raw rate or better.
//!
//! Run: `cargo bench -p lemur --bench issue`. `LEMUR_BENCH_SECONDS` sets the time per figure
//! (default 5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a benchmark fails loudly

use lemur_api::{CreateAuthority, CreateCertificate};
use lemur_client::Client;
use lemur_hsm::{HsmConfig, HsmSigner, KeyStore, Pkcs11KeyStore, SignatureScheme};
use lemur_testkit::bench::{self, Rate, rate};
use lemur_testkit::daemon::Daemon;
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

/// The figures of one database: API rates at concurrency 1 and 4, raw HSM signing rates with
/// pools of 1 and 4 sessions on the same daemon's token and CA key, and the crypto floor.
struct Figures {
    api: Vec<(usize, Rate)>,
    raw: Vec<f64>,
    floor: Vec<f64>,
}

/// Certificates per second when doing only the cryptography every issuance must do, in-process
/// with no HTTP, JSON or database: verify the CSR's signature, build and sign the certificate in
/// the HSM (the signer verifies the signature), and verify the certificate against the CA's.
/// No API can beat this on the same machine; it bounds the ratio the API can reach.
fn crypto_floor(
    store: &Arc<Pkcs11KeyStore>,
    key_uri: &str,
    ca_pem: &str,
    threads: usize,
    duration: Duration,
) -> f64 {
    let csrs = csrs(64);
    let next = AtomicUsize::new(0);
    let ca_der = pem::parse(ca_pem).unwrap().into_contents();
    let keys: Arc<dyn KeyStore> = Arc::clone(store) as Arc<dyn KeyStore>;
    let signer = HsmSigner::new(keys, key_uri.parse().unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_der(&ca_der.as_slice().into(), &signer).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let measured = rate(threads, duration, || {
        let csr = &csrs[next.fetch_add(1, Ordering::Relaxed) % csrs.len()];
        let Ok(request) = rcgen::CertificateSigningRequestParams::from_pem(csr) else {
            return false;
        };
        let Ok(certificate) = request.signed_by(&issuer) else {
            return false;
        };
        x509_parser::parse_x509_certificate(certificate.der())
            .is_ok_and(|(_, parsed)| parsed.verify_signature(Some(ca.public_key())).is_ok())
    });
    assert_eq!(measured.failed, 0, "the crypto floor loop failed");
    measured.per_second
}

fn measure(database_url: Option<&str>, csrs: &Mutex<Vec<String>>, duration: Duration) -> Figures {
    let daemon = Daemon::start(Path::new(env!("CARGO_BIN_EXE_lemur")), database_url);
    let client = Client::new(&daemon.base).with_token(daemon.admin_token());
    let root: CreateAuthority = serde_json::from_value(json!({
        "name": "bench-root", "owner": "bench@example.com", "commonName": "Bench Root", "type": "root",
        "keyType": "ECCPRIME256V1", "validityYears": 2,
    }))
    .unwrap();
    let root = client.create_authority(&root).unwrap();
    let authority = root.id;
    let key_uri = root.key_uri.unwrap();
    let ca_pem = root.authority_certificate.unwrap().body;
    let api = [1, 4, 16]
        .into_iter()
        .map(|concurrency| {
            let measured = rate(concurrency, duration, || {
                let Some(csr) = csrs.lock().unwrap().pop() else {
                    return false;
                };
                let request: CreateCertificate = serde_json::from_value(json!({
                    "owner": "bench@example.com", "authority": { "id": authority }, "csr": csr,
                }))
                .unwrap();
                client.issue(&request).is_ok()
            });
            (concurrency, measured)
        })
        .collect();
    lemur_testkit::use_softhsm_conf(&daemon.state_dir().join("softhsm/softhsm2.conf"));
    let (mut raw, mut floor) = (Vec::new(), Vec::new());
    for sessions in [1, 4, 16] {
        let mut config = HsmConfig::new("lemur", daemon.state_dir().join("secrets/hsm-pin"));
        config.pool_size = Some(sessions);
        let monitor = Arc::new(lemur_entropy::HealthMonitor::with_os_source());
        let store = Arc::new(Pkcs11KeyStore::open(&config, monitor).unwrap());
        let uri = key_uri.parse().unwrap();
        let message = b"benchmark tbs certificate";
        raw.push(
            rate(sessions, duration, || {
                store
                    .sign(&uri, SignatureScheme::EcdsaSha256, message)
                    .is_ok()
            })
            .per_second,
        );
        floor.push(crypto_floor(&store, &key_uri, &ca_pem, sessions, duration));
    }
    Figures { api, raw, floor }
}

fn main() {
    let duration = bench::seconds_per_figure(5);
    // Enough CSRs for the fastest plausible run, made before any clock starts.
    let csrs = Mutex::new(csrs(40_000));
    println!(
        "Issuance benchmark: lemur dev (release, SoftHSM2), P-256 CA, P-256 CSRs, client in the same machine; {}; {} s per figure",
        bench::machine(),
        duration.as_secs()
    );
    let postgres = Postgres::start();
    println!(
        "{:<20} {:>4} {:>13} {:>16} {:>8} {:>15} {:>10} {:>7}",
        "database",
        "c",
        "API issued/s",
        "raw HSM signs/s",
        "API/raw",
        "crypto floor/s",
        "API/floor",
        "errors"
    );
    for (database, url) in [
        ("SQLite (WAL, FULL)", None),
        ("PostgreSQL (local)", Some(postgres.url.as_str())),
    ] {
        let figures = measure(url, &csrs, duration);
        let rows = figures.api.iter().zip(&figures.raw).zip(&figures.floor);
        for (((concurrency, api), raw), floor) in rows {
            println!(
                "{database:<20} {concurrency:>4} {:>13.1} {raw:>16.0} {:>7.1}% {floor:>15.0} {:>9.1}% {:>7}",
                api.per_second,
                100.0 * api.per_second / raw,
                100.0 * api.per_second / floor,
                api.failed
            );
        }
    }
}
