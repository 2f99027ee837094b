//! The failures an operator meets: wrong PIN, missing module, missing token, a token that goes
//! away and comes back, a closed entropy gate.

use lemur_entropy::{CheckConfig, HealthMonitor};
use lemur_hsm::{Error, HsmConfig, KeyAlgorithm, KeyStore, Pkcs11KeyStore, SignatureScheme};
use lemur_testkit::{RemoteToken, ScriptedSource, TempToken};
use std::path::PathBuf;
use std::sync::Arc;

fn healthy_monitor() -> Arc<HealthMonitor> {
    let monitor = Arc::new(HealthMonitor::with_os_source());
    assert!(monitor.check().healthy);
    monitor
}

#[test]
fn a_wrong_pin_stops_at_the_first_attempt_without_locking_the_token() {
    let token = TempToken::new();
    let mut config = token.config();
    config.pin_file = token.wrong_pin_file();
    for _ in 0..5 {
        let error = Pkcs11KeyStore::open(&config, healthy_monitor())
            .err()
            .unwrap();
        assert!(matches!(error, Error::PinIncorrect { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.starts_with("C_Login: CKR_PIN_INCORRECT"),
            "{message}"
        );
        assert!(!message.contains("not-the-pin"), "{message}");
    }
    // SoftHSM2 locks a PIN after too many failures; five refused opens must not have used them up.
    let status =
        lemur_hsm::admin::status(&TempToken::module(), &token.label, Some(&token.pin())).unwrap();
    let token_status = status.token.unwrap();
    assert_eq!(token_status.login, "ok");
    assert!(!token_status.token.user_pin_locked);
    token.open();
}

#[test]
fn a_missing_module_names_the_path_and_the_fix() {
    let token = TempToken::new();
    let mut config = token.config();
    config.module = Some(PathBuf::from("/nonexistent/libpkcs11.so"));
    let error = Pkcs11KeyStore::open(&config, healthy_monitor())
        .err()
        .unwrap();
    assert!(matches!(error, Error::ModuleNotFound { .. }));
    let message = error.to_string();
    assert!(message.contains("/nonexistent/libpkcs11.so"), "{message}");
    assert!(message.contains("apt-get install softhsm2"), "{message}");
}

#[test]
fn a_file_that_is_not_a_pkcs11_module_is_a_load_error() {
    let token = TempToken::new();
    let fake = token.scratch_dir().join("not-a-module.so");
    std::fs::write(&fake, b"not an ELF file").unwrap();
    let mut config = token.config();
    config.module = Some(fake);
    let error = Pkcs11KeyStore::open(&config, healthy_monitor())
        .err()
        .unwrap();
    assert!(matches!(error, Error::ModuleLoad { .. }), "{error}");
}

#[test]
fn a_missing_token_says_how_to_create_it() {
    let token = TempToken::uninitialised();
    let error = Pkcs11KeyStore::open(&token.config(), healthy_monitor())
        .err()
        .unwrap();
    assert!(matches!(error, Error::TokenNotFound { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("lemur-hsm init-token --label {}", token.label))
    );
    assert!(error.is_unavailable());
}

#[test]
fn a_missing_pin_file_is_named() {
    let token = TempToken::new();
    let config = HsmConfig::new(token.label.clone(), token.scratch_dir().join("absent.pin"));
    let error = Pkcs11KeyStore::open(&config, healthy_monitor())
        .err()
        .unwrap();
    assert!(matches!(error, Error::PinFile { .. }), "{error}");
    assert!(error.to_string().contains("absent.pin"));
}

#[test]
fn a_token_that_goes_away_gives_a_typed_error_and_the_pool_recovers_when_it_returns() {
    let token = TempToken::new();
    token
        .open()
        .generate_key_pair("root", KeyAlgorithm::EcP256, false)
        .unwrap();
    let mut remote = RemoteToken::serve(&token);
    let store = Pkcs11KeyStore::open(&remote.config(&token), healthy_monitor()).unwrap();
    let uri = store.list().unwrap().remove(0).uri;
    store
        .sign(&uri, SignatureScheme::EcdsaSha256, b"before")
        .unwrap();

    remote.stop();
    let error = store
        .sign(&uri, SignatureScheme::EcdsaSha256, b"while away")
        .unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    let again = store
        .sign(&uri, SignatureScheme::EcdsaSha256, b"while away")
        .unwrap_err();
    assert!(again.is_unavailable(), "{again}");
    assert!(again.to_string().contains(&token.label), "{again}");

    remote.start();
    store
        .sign(&uri, SignatureScheme::EcdsaSha256, b"after")
        .unwrap();
}

#[test]
fn key_generation_is_refused_while_entropy_health_fails() {
    let token = TempToken::new();
    let stuck = ScriptedSource::new("stuck", |buf: &mut [u8]| buf.fill(0));
    let monitor = Arc::new(HealthMonitor::new(
        CheckConfig::default(),
        vec![Arc::new(stuck)],
    ));
    let store = Pkcs11KeyStore::open(&token.config(), Arc::clone(&monitor)).unwrap();
    let refused = store
        .generate_key_pair("root", KeyAlgorithm::EcP256, false)
        .unwrap_err();
    assert!(
        refused.to_string().contains("not been checked"),
        "{refused}"
    );
    monitor.check();
    let refused = store
        .generate_key_pair("root", KeyAlgorithm::EcP256, false)
        .unwrap_err();
    assert!(matches!(refused, Error::Entropy(_)));
    assert!(
        refused.to_string().contains("stuck: repetition count test"),
        "{refused}"
    );
    assert!(matches!(store.create_kek(), Err(Error::Entropy(_))));
    assert!(store.list().unwrap().is_empty());
    // Every draw is gated (serial numbers and sealing nonces come from it).
    let mut serial = [0u8; 16];
    assert!(matches!(store.random(&mut serial), Err(Error::Entropy(_))));
}

#[test]
fn the_token_rng_passes_the_health_tests() {
    let token = TempToken::new();
    let store = token.open();
    let monitor = HealthMonitor::new(CheckConfig::default(), vec![store.rng_source()]);
    let report = monitor.check();
    assert!(report.healthy, "{report:?}");
    assert_eq!(report.sources[0].source, "hsm");
}

#[test]
fn more_threads_than_sessions_share_the_pool() {
    let token = TempToken::new();
    let mut config = token.config();
    config.pool_size = Some(2);
    let store = Arc::new(Pkcs11KeyStore::open(&config, healthy_monitor()).unwrap());
    let key = store
        .generate_key_pair("shared", KeyAlgorithm::EcP256, false)
        .unwrap();
    let public = store.public_key(&key.uri).unwrap();
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let (store, uri, public) = (Arc::clone(&store), key.uri.clone(), public.clone());
            std::thread::spawn(move || {
                for i in 0..25 {
                    let message = format!("worker {worker} message {i}");
                    let signature = store
                        .sign(&uri, SignatureScheme::EcdsaSha256, message.as_bytes())
                        .unwrap();
                    assert!(lemur_hsm::verify_signature(
                        &public,
                        SignatureScheme::EcdsaSha256,
                        message.as_bytes(),
                        &signature
                    ));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}
