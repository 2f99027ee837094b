//! Rendering results for people (aligned text) or scripts (`--json`).

use lemur_entropy::HealthReport;
use lemur_hsm::admin::{Status, TokenSummary};
use lemur_hsm::self_test::SelfTestReport;
use lemur_hsm::{ExtractionProbe, KekInfo, KeyInfo};
use serde::Serialize;
use serde_json::json;

pub struct Output {
    json: bool,
}

fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("lemur-hsm: cannot render JSON: {error}"),
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok  " } else { "FAIL" }
}

fn pem(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der))
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    pub fn error(&self, message: &str, code: u8) {
        if self.json {
            print_json(&json!({ "error": message, "exit_code": code }));
        } else {
            eprintln!("lemur-hsm: error: {message}");
        }
    }

    pub fn message(&self, message: &str) {
        if self.json {
            print_json(&json!({ "result": message }));
        } else {
            println!("{message}");
        }
    }

    pub fn init_token(&self, token: &TokenSummary) {
        if self.json {
            print_json(token);
        } else {
            println!(
                "initialised token {:?} (serial {}) in slot {}; user PIN set",
                token.label, token.serial, token.slot
            );
        }
    }

    pub fn status(&self, status: &Status, label: &str) {
        if self.json {
            print_json(status);
            return;
        }
        println!("module:   {}", status.module.display());
        println!(
            "library:  {} {} (Cryptoki {})",
            status.library, status.library_version, status.cryptoki_version
        );
        println!("slots:");
        for slot in &status.slots {
            match &slot.token {
                Some(t) => println!(
                    "  {:>10}  {:<24} initialised={} user-pin={} locked={}",
                    slot.slot, t.label, t.initialized, t.user_pin_initialized, t.user_pin_locked
                ),
                None => println!("  {:>10}  (no token) {}", slot.slot, slot.description),
            }
        }
        match &status.token {
            None => println!(
                "token {label:?}: not present; create it with `lemur-hsm init-token --token {label}`"
            ),
            Some(token) => {
                println!("token {label:?}: login {}", token.login);
                for m in &token.mechanisms {
                    println!("  [{}] {:<24} {}", mark(m.present), m.mechanism, m.used_for);
                }
                println!("{}", if token.ready() { "ready" } else { "NOT READY" });
            }
        }
    }

    pub fn keys(&self, keys: &[KeyInfo]) {
        if self.json {
            print_json(&keys);
            return;
        }
        if keys.is_empty() {
            println!("no keys in the token");
        }
        for key in keys {
            let flags = format!(
                "{}{}{}",
                if key.sensitive {
                    "sensitive "
                } else {
                    "NOT-SENSITIVE "
                },
                if key.extractable {
                    "EXTRACTABLE "
                } else {
                    "non-extractable "
                },
                if key.persistent { "token" } else { "session" }
            );
            println!(
                "{:<28} {:<8} {:<40} {}",
                key.label, key.key_type, flags, key.uri
            );
        }
    }

    pub fn generated_key(&self, key: &KeyInfo, spki: &[u8]) {
        let public_key = pem("PUBLIC KEY", spki);
        if self.json {
            print_json(&json!({ "key": key, "public_key_pem": public_key }));
        } else {
            println!("generated {} key {}\n{public_key}", key.key_type, key.uri);
        }
    }

    pub fn probe(&self, probe: &ExtractionProbe) {
        if self.json {
            print_json(probe);
            return;
        }
        println!(
            "sensitive={} extractable={} always-sensitive={} never-extractable={}",
            probe.sensitive, probe.extractable, probe.always_sensitive, probe.never_extractable
        );
        println!(
            "read secret value: {}\nwrap attempt:      {}",
            probe.read_secret_value, probe.wrap_attempt
        );
        println!(
            "{}",
            if probe.key_stays_in_token() {
                "the key cannot leave the token"
            } else {
                "THE KEY CAN LEAVE THE TOKEN"
            }
        );
    }

    pub fn kek(&self, kek: &KekInfo, verb: &str) {
        if self.json {
            print_json(kek);
        } else {
            println!(
                "key-encryption key {verb} version {}: {}",
                kek.version, kek.uri
            );
        }
    }

    pub fn self_test(&self, report: &SelfTestReport) {
        if self.json {
            print_json(report);
            return;
        }
        for step in &report.steps {
            println!(
                "[{}] {:<36} {:>8.1} ms  {}",
                mark(step.passed),
                step.name,
                step.millis,
                step.detail
            );
        }
        println!(
            "{}",
            if report.passed {
                "self-test passed"
            } else {
                "SELF-TEST FAILED"
            }
        );
    }

    pub fn entropy(&self, report: &HealthReport) {
        if self.json {
            print_json(report);
        } else {
            println!("{report}");
        }
    }
}
