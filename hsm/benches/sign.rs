//! HSM signatures per second through our key store versus raw cryptoki, so the overhead of the
//! pool, the handle cache and the error mapping is a visible ratio (target: within 5% of raw).
//!
//! Workload: a fresh SoftHSM2 token, one P-256 and one RSA-2048 key; for 1 and N sessions (N =
//! available CPUs) each of N threads signs a 32-byte message in a loop for a fixed time.
//! * `ours`: `Pkcs11KeyStore::sign` with a pool of N sessions (hashing, mechanism, DER encoding of
//!   ECDSA signatures, pooled session, cached handle).
//! * `raw`: one cryptoki session per thread, logged in, key found once, `C_Sign` in a loop with the
//!   same mechanism and the same hashing and DER encoding, no pool.
//! * `signer`: `HsmSigner` as rcgen calls it: `ours` plus software verification of every signature.
//!
//! Run: `cargo bench -p lemur-hsm --bench sign` (release profile). Set `LEMUR_BENCH_SECONDS` to
//! change the time per measurement (default 3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // a benchmark fails loudly

use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use lemur_hsm::{HsmSigner, KeyAlgorithm, KeyStore, Pkcs11KeyStore, SignatureScheme};
use lemur_testkit::{TempToken, bench};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const MESSAGE: &[u8; 32] = b"lemur-hsm benchmark tbs 32 bytes";

/// Runs `op` for `duration` on `threads` threads; every call must succeed.
fn rate(threads: usize, duration: Duration, op: impl Fn() -> bool + Sync) -> f64 {
    let measured = bench::rate(threads, duration, op);
    assert_eq!(measured.failed, 0, "operations failed during the benchmark");
    measured.per_second
}

fn ours(
    token: &TempToken,
    sessions: usize,
    label: &str,
    scheme: SignatureScheme,
    duration: Duration,
) -> (f64, f64) {
    let mut config = token.config();
    config.pool_size = Some(sessions);
    let monitor = Arc::new(lemur_entropy::HealthMonitor::with_os_source());
    let store: Arc<dyn KeyStore> = Arc::new(Pkcs11KeyStore::open(&config, monitor).unwrap());
    let uri = store
        .list()
        .unwrap()
        .into_iter()
        .find(|k| k.label == label)
        .unwrap()
        .uri;
    store.sign(&uri, scheme, MESSAGE).unwrap();
    let ours = rate(sessions, duration, || {
        store.sign(&uri, scheme, MESSAGE).is_ok()
    });
    let signer = HsmSigner::new(Arc::clone(&store), uri).unwrap();
    let verified = rate(sessions, duration, || {
        rcgen::SigningKey::sign(&signer, MESSAGE).is_ok()
    });
    (ours, verified)
}

/// The ECDSA DER encoding our layer performs, done the same way for the raw measurement.
fn der_ecdsa(raw: &[u8]) -> Vec<u8> {
    let integer = |v: &[u8]| {
        let v = &v[v.iter().take_while(|&&b| b == 0).count()..];
        let mut out = vec![0x02, (v.len() + usize::from(v[0] >= 0x80)) as u8];
        if v[0] >= 0x80 {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let (r, s) = raw.split_at(raw.len() / 2);
    let body = [integer(r), integer(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

fn raw(token: &TempToken, sessions: usize, label: &str, ecdsa: bool, duration: Duration) -> f64 {
    let context = Pkcs11::new(lemur_hsm::resolve_module(None)).unwrap();
    context.initialize(CInitializeArgs::OsThreads).unwrap();
    let slot = context
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| context.get_token_info(*s).unwrap().label().trim_end() == token.label)
        .unwrap();
    let pin = AuthPin::new(
        std::fs::read_to_string(&token.pin_file)
            .unwrap()
            .trim()
            .to_owned(),
    );
    let session_list: Vec<_> = (0..sessions)
        .map(|_| context.open_rw_session(slot).unwrap())
        .collect();
    session_list[0].login(UserType::User, Some(&pin)).unwrap();
    let key = session_list[0]
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap()[0];
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for session in session_list {
            let done = &done;
            scope.spawn(move || {
                let mut count = 0;
                while started.elapsed() < duration {
                    if ecdsa {
                        let digest = ring::digest::digest(&ring::digest::SHA256, MESSAGE);
                        let signature = session
                            .sign(&Mechanism::Ecdsa, key, digest.as_ref())
                            .unwrap();
                        std::hint::black_box(der_ecdsa(&signature));
                    } else {
                        std::hint::black_box(
                            session
                                .sign(&Mechanism::Sha256RsaPkcs, key, MESSAGE)
                                .unwrap(),
                        );
                    }
                    count += 1;
                }
                done.fetch_add(count, Ordering::Relaxed);
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let duration = bench::seconds_per_figure(3);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let token = TempToken::new();
    {
        let store = token.open();
        store
            .generate_key_pair("bench-p256", KeyAlgorithm::EcP256, false)
            .unwrap();
        store
            .generate_key_pair("bench-rsa2048", KeyAlgorithm::Rsa2048, false)
            .unwrap();
    }
    let library = lemur_hsm::admin::status(&lemur_hsm::resolve_module(None), &token.label, None)
        .map(|s| format!("{} {}", s.library, s.library_version))
        .unwrap();
    println!(
        "HSM sign benchmark: {library}; {}; {} s per figure; 32-byte message",
        bench::machine(),
        duration.as_secs()
    );
    println!(
        "{:<10} {:>8} {:>12} {:>12} {:>9} {:>16}",
        "key", "sessions", "raw ops/s", "ours ops/s", "ours/raw", "signer+verify/s"
    );
    let mut sessions_list = vec![1];
    if cpus > 1 {
        sessions_list.push(cpus);
    }
    for (label, scheme, ecdsa) in [
        ("bench-p256", SignatureScheme::EcdsaSha256, true),
        ("bench-rsa2048", SignatureScheme::RsaPkcs1Sha256, false),
    ] {
        for &sessions in &sessions_list {
            let raw_rate = raw(&token, sessions, label, ecdsa, duration);
            let (ours_rate, signer_rate) = ours(&token, sessions, label, scheme, duration);
            println!(
                "{:<10} {:>8} {:>12.0} {:>12.0} {:>8.1}% {:>16.0}",
                label.trim_start_matches("bench-"),
                sessions,
                raw_rate,
                ours_rate,
                100.0 * ours_rate / raw_rate,
                signer_rate
            );
        }
    }
}
