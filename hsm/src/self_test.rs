//! The operator's proof that the token does what the appliance needs: for every key algorithm,
//! generate a key pair inside the token, sign with every scheme it supports, verify in software,
//! check that a wrong message fails, prove the private key cannot be read out or wrapped; then a
//! seal/unseal round trip under the current KEK, including tamper and wrong-context rejection.
//!
//! Key pairs are session objects destroyed at the end, so a self-test leaves nothing in the token.

use crate::{
    Error, KeyAlgorithm, KeyStore, Pkcs11KeyStore, Result, Sealer, SignatureScheme,
    verify_signature,
};
use serde::Serialize;
use std::time::Instant;

/// One checked property.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What was checked, e.g. `p256 ecdsa-sha256 sign+verify`.
    pub name: String,
    /// It held.
    pub passed: bool,
    /// What happened.
    pub detail: String,
    /// How long it took, in milliseconds.
    pub millis: f64,
}

/// Every step of a self-test.
#[derive(Debug, Clone, Serialize)]
pub struct SelfTestReport {
    /// Every step passed.
    pub passed: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

struct Recorder(Vec<Step>);

impl Recorder {
    fn check(&mut self, name: String, check: impl FnOnce() -> Result<String, String>) -> bool {
        let started = Instant::now();
        let outcome = check();
        let passed = outcome.is_ok();
        self.0.push(Step {
            name,
            passed,
            detail: outcome.unwrap_or_else(|e| e),
            millis: started.elapsed().as_secs_f64() * 1000.0,
        });
        passed
    }
}

/// Runs the self-test against `store`.
pub fn run(store: &Pkcs11KeyStore) -> SelfTestReport {
    let mut recorder = Recorder(Vec::new());
    for algorithm in KeyAlgorithm::ALL {
        key_pair_checks(store, algorithm, &mut recorder);
    }
    seal_checks(store, &mut recorder);
    let passed = recorder.0.iter().all(|s| s.passed);
    SelfTestReport {
        passed,
        steps: recorder.0,
    }
}

fn random_suffix(store: &Pkcs11KeyStore) -> String {
    let mut bytes = [0u8; 4];
    match store.random(&mut bytes) {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => "0".into(),
    }
}

fn key_pair_checks(store: &Pkcs11KeyStore, algorithm: KeyAlgorithm, recorder: &mut Recorder) {
    let label = format!("lemur-selftest-{algorithm}-{}", random_suffix(store));
    let mut generated = None;
    let ok = recorder.check(format!("{algorithm} generate in token"), || {
        let info = store
            .generate_key_pair(&label, algorithm, true)
            .map_err(|e| e.to_string())?;
        let detail = format!("{}", info.uri);
        generated = Some(info);
        Ok(detail)
    });
    let Some(info) = generated.filter(|_| ok) else {
        return;
    };
    let public = store.public_key(&info.uri);
    for scheme in SignatureScheme::ALL
        .into_iter()
        .filter(|s| algorithm.supports(*s))
    {
        recorder.check(format!("{algorithm} {scheme} sign+verify"), || {
            let public = public.as_ref().map_err(|e| e.to_string())?;
            let message = b"lemur-hsm self-test message";
            let signature = store
                .sign(&info.uri, scheme, message)
                .map_err(|e| e.to_string())?;
            if !verify_signature(public, scheme, message, &signature) {
                return Err("the signature does not verify".into());
            }
            if verify_signature(public, scheme, b"another message", &signature) {
                return Err("the signature also verifies for another message".into());
            }
            Ok(format!("{} byte signature verified", signature.len()))
        });
    }
    recorder.check(format!("{algorithm} private key stays in token"), || {
        let probe = store
            .probe_extraction(&info.uri)
            .map_err(|e| e.to_string())?;
        let detail = format!(
            "read: {}, wrap: {}",
            probe.read_secret_value, probe.wrap_attempt
        );
        if probe.key_stays_in_token() {
            Ok(detail)
        } else {
            Err(format!("the key can leave the token ({detail}): {probe:?}"))
        }
    });
    recorder.check(format!("{algorithm} destroy"), || {
        store
            .destroy(&info.uri)
            .map(|()| "destroyed".to_owned())
            .map_err(|e| e.to_string())
    });
}

fn seal_checks(store: &Pkcs11KeyStore, recorder: &mut Recorder) {
    recorder.check("seal/unseal round trip".into(), || {
        let mut secret = [0u8; 64];
        store.random(&mut secret).map_err(|e| e.to_string())?;
        let envelope = store
            .seal(&secret, b"self-test:1")
            .map_err(|e| e.to_string())?;
        let opened = store
            .unseal(&envelope, b"self-test:1")
            .map_err(|e| e.to_string())?;
        if opened.as_slice() != secret {
            return Err("unsealed bytes differ from the sealed ones".into());
        }
        let mut tampered = envelope.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        expect_rejected(
            store.unseal(&tampered, b"self-test:1"),
            "a tampered envelope",
        )?;
        expect_rejected(
            store.unseal(&envelope, b"self-test:2"),
            "another record's context",
        )?;
        Ok(format!(
            "{} byte envelope; tampering and wrong context rejected",
            envelope.len()
        ))
    });
}

fn expect_rejected<T>(result: Result<T>, what: &str) -> Result<(), String> {
    match result {
        Err(Error::SealAuthentication) => Ok(()),
        Err(other) => Err(format!("{what} failed with the wrong error: {other}")),
        Ok(_) => Err(format!("{what} was accepted")),
    }
}
