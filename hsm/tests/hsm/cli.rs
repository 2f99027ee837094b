//! The `lemur-hsm` binary as an operator runs it: real process, real SoftHSM2 token, in a token
//! directory of each test's own that only the CLI processes touch.

use lemur_testkit::TempToken;
use serde_json::Value;
use std::process::{Command, Output};

/// A token initialised by `lemur-hsm init-token` in the test's own token directory.
fn initialised() -> TempToken {
    let token = TempToken::uninitialised();
    let so_pin = token.so_pin_file.to_str().unwrap().to_owned();
    let init = lemur_hsm(&token, &["init-token", "--so-pin-file", &so_pin]);
    assert!(init.status.success(), "{}", stderr(&init));
    token
}

/// `lemur-hsm --token <label>` on the test's SoftHSM2, with no PIN source and no terminal.
fn command(token: &TempToken) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lemur-hsm"));
    command
        .env("SOFTHSM2_CONF", token.private_softhsm_conf())
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(std::process::Stdio::null())
        .args(["--token", &token.label]);
    command
}

/// `lemur-hsm` with the token's PIN file and `args`.
fn lemur_hsm(token: &TempToken, args: &[&str]) -> Output {
    command(token)
        .arg("--pin-file")
        .arg(&token.pin_file)
        .args(args)
        .output()
        .unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn init_token_then_status_reports_ready() {
    let token = initialised();
    let so_pin = token.so_pin_file.to_str().unwrap().to_owned();
    let again = lemur_hsm(&token, &["init-token", "--so-pin-file", &so_pin]);
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    assert!(stderr(&again).contains("already exists"));

    let status = lemur_hsm(&token, &["--json", "status"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let status = json(&status);
    assert_eq!(status["token"]["login"], "ok");
    assert_eq!(status["token"]["token"]["label"], token.label.as_str());
    assert!(
        status["token"]["mechanisms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["present"] == true)
    );
}

#[test]
fn keys_and_keks_are_managed_from_the_command_line() {
    let token = initialised();
    let generated = lemur_hsm(
        &token,
        &[
            "--json",
            "generate-key",
            "--label",
            "root-2026",
            "--algorithm",
            "ECCSECP384R1",
        ],
    );
    assert!(generated.status.success(), "{}", stderr(&generated));
    let generated = json(&generated);
    assert_eq!(generated["key"]["key_type"], "p384");
    assert!(
        generated["public_key_pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );

    assert!(lemur_hsm(&token, &["create-kek"]).status.success());
    let rotated = json(&lemur_hsm(&token, &["--json", "rotate-kek"]));
    assert_eq!(rotated["version"], 2);
    let exists = lemur_hsm(&token, &["create-kek"]);
    assert_eq!(exists.status.code(), Some(3));
    assert!(stderr(&exists).contains("rotate-kek"));

    let list = json(&lemur_hsm(&token, &["--json", "list"]));
    let labels: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["lemur-kek-v1", "lemur-kek-v2", "root-2026"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|k| k["sensitive"] == true && k["extractable"] == false)
    );

    let bad = lemur_hsm(
        &token,
        &["generate-key", "--label", "x", "--algorithm", "dsa1024"],
    );
    assert_eq!(bad.status.code(), Some(3));
    assert!(stderr(&bad).contains("use one of p256, p384"));
}

#[test]
fn self_test_and_entropy_pass_on_a_healthy_token_and_leave_nothing_behind() {
    let token = initialised();
    assert!(lemur_hsm(&token, &["create-kek"]).status.success());
    let report = lemur_hsm(&token, &["--json", "self-test"]);
    assert_eq!(
        report.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&report.stdout)
    );
    let report = json(&report);
    let steps = report["steps"].as_array().unwrap();
    assert!(steps.len() >= 26, "{report}");
    assert!(
        steps
            .iter()
            .any(|s| s["name"] == "rsa4096 private key stays in token" && s["passed"] == true)
    );
    let list = json(&lemur_hsm(&token, &["--json", "list"]));
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only the KEK remains: {list}"
    );

    let entropy = lemur_hsm(&token, &["--json", "entropy", "--samples", "8192"]);
    assert_eq!(entropy.status.code(), Some(0));
    let entropy = json(&entropy);
    assert_eq!(entropy["healthy"], true);
    let sources: Vec<&str> = entropy["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["os", "hsm"]);
    assert_eq!(entropy["rct_cutoff"], 7);
}

#[test]
fn self_test_without_a_kek_fails_the_seal_step_with_advice() {
    let token = initialised();
    let report = lemur_hsm(&token, &["self-test"]);
    assert_eq!(report.status.code(), Some(1));
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("lemur-hsm create-kek"), "{text}");
}

#[test]
fn change_pin_takes_the_new_pin_from_a_file_and_the_old_one_stops_working() {
    let token = initialised();
    let new_pin = token.scratch_dir().join("new.pin");
    lemur_testkit::write_secret_file(&new_pin, "a-new-pin-0042");
    let changed = lemur_hsm(
        &token,
        &["change-pin", "--new-pin-file", new_pin.to_str().unwrap()],
    );
    assert!(changed.status.success(), "{}", stderr(&changed));
    let old = lemur_hsm(&token, &["list"]);
    assert_eq!(old.status.code(), Some(4), "{}", stderr(&old));
    assert!(stderr(&old).contains("CKR_PIN_INCORRECT"));
    let new = command(&token)
        .arg("--pin-file")
        .arg(&new_pin)
        .arg("list")
        .output()
        .unwrap();
    assert!(new.status.success(), "{}", stderr(&new));
}

#[test]
fn failures_have_meaningful_exit_codes_and_never_print_the_pin() {
    let token = initialised();
    let wrong = command(&token)
        .arg("--pin-file")
        .arg(token.wrong_pin_file())
        .args(["--json", "list"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(4));
    let body = json(&wrong);
    assert_eq!(body["exit_code"], 4);
    assert!(!String::from_utf8_lossy(&wrong.stdout).contains("not-the-pin"));

    let missing = lemur_hsm(&TempToken::uninitialised(), &["list"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(stderr(&missing).contains("lemur-hsm init-token"));

    let no_module = lemur_hsm(&token, &["--module", "/nonexistent/p11.so", "status"]);
    assert_eq!(no_module.status.code(), Some(3));
    assert!(stderr(&no_module).contains("apt-get install softhsm2"));

    let no_prompt = command(&token).arg("list").output().unwrap();
    assert_eq!(no_prompt.status.code(), Some(3));
    assert!(stderr(&no_prompt).contains("--pin-file"));
}

#[test]
fn the_pin_can_come_from_a_systemd_credential() {
    let token = initialised();
    let credentials = token.scratch_dir().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::copy(&token.pin_file, credentials.join("hsm-pin")).unwrap();
    let listed = command(&token)
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .arg("list")
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", stderr(&listed));
}
