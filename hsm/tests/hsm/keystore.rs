//! Key generation, signing, listing and destruction in a real token.

use lemur_hsm::{KeyAlgorithm, KeyClass, KeyStore, Sealer, SignatureScheme, verify_signature};
use lemur_testkit::{TempToken, openssl};

#[test]
fn every_algorithm_generates_in_the_token_and_signs_with_every_scheme() {
    let token = TempToken::new();
    let store = token.open();
    for algorithm in KeyAlgorithm::ALL {
        let label = format!("ca-{algorithm}");
        let info = store.generate_key_pair(&label, algorithm, false).unwrap();
        assert_eq!(info.key_type, algorithm.name());
        assert_eq!(info.class, KeyClass::Private);
        assert!(
            info.sensitive && !info.extractable && info.persistent,
            "{info:?}"
        );
        assert!(
            info.uri
                .to_string()
                .starts_with(&format!("pkcs11:token={};object={label};id=%", token.label))
        );
        let public = store.public_key(&info.uri).unwrap();
        assert_eq!(public.algorithm(), algorithm);
        for scheme in SignatureScheme::ALL {
            let signed = store.sign(&info.uri, scheme, b"tbs certificate");
            if algorithm.supports(scheme) {
                let signature = signed.unwrap();
                assert!(
                    verify_signature(&public, scheme, b"tbs certificate", &signature),
                    "{algorithm} {scheme}"
                );
                assert!(!verify_signature(
                    &public,
                    scheme,
                    b"tbs certificatf",
                    &signature
                ));
            } else {
                assert!(signed.is_err(), "{algorithm} must refuse {scheme}");
            }
        }
    }
}

#[test]
fn public_keys_are_spki_that_openssl_reads() {
    let token = TempToken::new();
    let store = token.open();
    for (algorithm, expected) in [
        (KeyAlgorithm::EcP256, "Public-Key: (256 bit)"),
        (KeyAlgorithm::EcP384, "Public-Key: (384 bit)"),
        (KeyAlgorithm::Rsa3072, "Public-Key: (3072 bit)"),
    ] {
        let info = store
            .generate_key_pair(algorithm.name(), algorithm, false)
            .unwrap();
        let spki = store.public_key(&info.uri).unwrap().spki_der();
        let file = format!("{algorithm}.der");
        std::fs::write(token.scratch_dir().join(&file), spki).unwrap();
        let text = openssl(
            &[
                "pkey", "-pubin", "-inform", "DER", "-noout", "-text", "-in", &file,
            ],
            token.scratch_dir(),
        );
        assert!(text.contains(expected), "{algorithm}: {text}");
    }
}

#[test]
fn private_keys_cannot_be_read_or_wrapped_out_of_the_token() {
    let token = TempToken::new();
    let store = token.open();
    for algorithm in [KeyAlgorithm::EcP256, KeyAlgorithm::Rsa2048] {
        let info = store
            .generate_key_pair(algorithm.name(), algorithm, false)
            .unwrap();
        let probe = store.probe_extraction(&info.uri).unwrap();
        assert_eq!(
            probe.read_secret_value, "CKR_ATTRIBUTE_SENSITIVE",
            "{algorithm}"
        );
        assert_eq!(probe.wrap_attempt, "CKR_KEY_UNEXTRACTABLE", "{algorithm}");
        assert!(probe.key_stays_in_token(), "{probe:?}");
    }
}

#[test]
fn list_shows_keys_and_destroy_removes_both_halves() {
    let token = TempToken::new();
    let store = token.open();
    let a = store
        .generate_key_pair("root-a", KeyAlgorithm::EcP256, false)
        .unwrap();
    store
        .generate_key_pair("root-b", KeyAlgorithm::Rsa2048, false)
        .unwrap();
    let labels: Vec<_> = store.list().unwrap().into_iter().map(|k| k.label).collect();
    assert_eq!(labels, ["root-a", "root-b"]);
    store.destroy(&a.uri).unwrap();
    let labels: Vec<_> = store.list().unwrap().into_iter().map(|k| k.label).collect();
    assert_eq!(labels, ["root-b"]);
    assert!(store.public_key(&a.uri).is_err());
    let error = store
        .sign(&a.uri, SignatureScheme::EcdsaSha256, b"x")
        .unwrap_err();
    assert!(
        error.to_string().contains("no key pkcs11:token="),
        "{error}"
    );
    assert!(store.destroy(&a.uri).is_err());
}

#[test]
fn duplicate_labels_are_refused() {
    let token = TempToken::new();
    let store = token.open();
    store
        .generate_key_pair("root", KeyAlgorithm::EcP256, false)
        .unwrap();
    let error = store
        .generate_key_pair("root", KeyAlgorithm::EcP384, false)
        .unwrap_err();
    assert!(
        matches!(error, lemur_hsm::Error::KeyExists { .. }),
        "{error}"
    );
}

#[test]
fn ephemeral_keys_are_session_objects() {
    let token = TempToken::new();
    let store = token.open();
    let info = store
        .generate_key_pair("scratch", KeyAlgorithm::EcP256, true)
        .unwrap();
    assert!(!info.persistent);
    drop(store);
    assert!(token.open().list().unwrap().is_empty());
}

#[test]
fn the_token_rng_fills_buffers() {
    let token = TempToken::new();
    let store = token.open();
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    store.random(&mut a).unwrap();
    store.random(&mut b).unwrap();
    assert_ne!(a, b);
}

#[test]
fn exportable_leaf_keys_are_pkcs8_that_openssl_reads_and_leave_nothing_in_the_token() {
    let token = TempToken::new();
    let store = token.open();
    for (algorithm, expected) in [
        (KeyAlgorithm::EcP256, "Private-Key: (256 bit"),
        (KeyAlgorithm::EcP384, "Private-Key: (384 bit"),
        (KeyAlgorithm::Rsa2048, "Private-Key: (2048 bit"),
    ] {
        let pair = store.generate_exportable_key_pair(algorithm).unwrap();
        assert_eq!(pair.public.algorithm(), algorithm);
        let file = format!("{algorithm}.p8");
        let path = token.scratch_dir().join(&file);
        std::fs::write(&path, pair.pkcs8.as_slice()).unwrap();
        let text = openssl(
            &[
                "pkey", "-inform", "DER", "-check", "-noout", "-text", "-in", &file,
            ],
            token.scratch_dir(),
        );
        assert!(text.contains(expected), "{algorithm}: {text}");
        let public = std::process::Command::new("openssl")
            .args([
                "pkey", "-inform", "DER", "-pubout", "-outform", "DER", "-in",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            public.stdout,
            pair.public.spki_der(),
            "{algorithm}: public halves differ"
        );
    }
    assert!(store.list().unwrap().is_empty());
}

/// SoftHSM2's file object store fails a token object's creation, or an operation beside it, when
/// they overlap (CKR_GENERAL_ERROR, CKR_TEMPLATE_INCONSISTENT): the key store must keep them
/// apart, since an authority is created while requests sign, seal and take leaf keys.
#[test]
fn token_keys_made_and_destroyed_beside_signing_sealing_and_leaf_keys_all_succeed() {
    let token = TempToken::new();
    let store = std::sync::Arc::new(token.open());
    store.create_kek().unwrap();
    let signer = store
        .generate_key_pair("signer", KeyAlgorithm::EcP256, false)
        .unwrap()
        .uri;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = std::sync::Arc::new(std::sync::Barrier::new(6));
    let writers: Vec<_> = (0..3)
        .map(|worker| {
            let (store, start) = (std::sync::Arc::clone(&store), std::sync::Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                for i in 0..12 {
                    let label = format!("ca-{worker}-{i}");
                    let key = store
                        .generate_key_pair(&label, KeyAlgorithm::EcP256, false)
                        .unwrap_or_else(|e| panic!("{label}: {e}"));
                    if i % 2 == 0 {
                        store
                            .destroy(&key.uri)
                            .unwrap_or_else(|e| panic!("{label}: {e}"));
                    }
                }
            })
        })
        .collect();
    let beside: Vec<_> = (0..3)
        .map(|worker| {
            let (store, signer, done, start) = (
                std::sync::Arc::clone(&store),
                signer.clone(),
                std::sync::Arc::clone(&done),
                std::sync::Arc::clone(&start),
            );
            std::thread::spawn(move || {
                start.wait();
                for rounds in 0.. {
                    let leaf = store
                        .generate_exportable_key_pair(KeyAlgorithm::EcP256)
                        .unwrap_or_else(|e| panic!("leaf key {worker}/{rounds}: {e}"));
                    store
                        .seal(&leaf.pkcs8, b"context")
                        .unwrap_or_else(|e| panic!("seal {worker}/{rounds}: {e}"));
                    store
                        .sign(&signer, SignatureScheme::EcdsaSha256, b"tbs")
                        .unwrap_or_else(|e| panic!("sign {worker}/{rounds}: {e}"));
                    if done.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for worker in beside {
        worker.join().unwrap();
    }
    // The signer, and half of each writer's keys.
    assert_eq!(
        store
            .list()
            .unwrap()
            .iter()
            .filter(|k| k.class == KeyClass::Private)
            .count(),
        1 + 3 * 6
    );
}
