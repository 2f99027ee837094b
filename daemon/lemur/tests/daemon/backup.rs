//! `lemur backup` of a daemon while it issues, and `lemur restore` into its emptied state
//! directory: the daemon comes back with every certificate the snapshot held, its CA keys in the
//! token working, and nothing of what came after; a wrong passphrase, a changed archive or a
//! state directory in use restore nothing.

use crate::support::{Appliance, Db, scratch, sqlite_query, verify_with_openssl};
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};

/// `lemur backup -o FILE` or `lemur restore -a FILE` with the passphrase in `passphrase`, and
/// `extra` arguments, on the daemon's configuration.
fn lemur(app: &Appliance, command: &str, file: &Path, passphrase: &Path, extra: &[&str]) -> Output {
    let flag = if command == "backup" { "-o" } else { "-a" };
    app.daemon
        .command()
        .args([command, flag])
        .arg(file)
        .arg("--passphrase-file")
        .arg(passphrase)
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The command failed, saying `expected`.
fn refused(output: Output, expected: &str) {
    let said = stderr(&output);
    assert!(
        !output.status.success() && said.contains(expected),
        "{said}"
    );
}

fn count(app: &Appliance) -> usize {
    sqlite_query(&app.daemon, "SELECT count(*) FROM certificates")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_backup_taken_under_load_restores_its_certificates_and_working_keys() {
    let mut app = Appliance::start(Db::Sqlite);
    let authority = app.root("backed-up", "ECCPRIME256V1")["id"]
        .as_i64()
        .unwrap();
    let before = app.issue(authority, "before");
    let dir = scratch();
    let passphrase = dir.path().join("passphrase");
    std::fs::write(&passphrase, "backup passphrase for the tests\n").unwrap();
    let archive = dir.path().join("backup.lemur");

    // The backup is taken while certificates are issued.
    let issuing = AtomicBool::new(true);
    let (output, during) = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            let mut issued = 0;
            while issuing.load(Ordering::Relaxed) {
                app.issue(authority, &format!("during-{issued}"));
                issued += 1;
            }
            issued
        });
        let output = lemur(&app, "backup", &archive, &passphrase, &[]);
        issuing.store(false, Ordering::Relaxed);
        (output, load.join().unwrap())
    });
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(during > 0, "no certificate was issued while the backup ran");
    let mode = std::fs::metadata(&archive).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    let after = app.issue(authority, "after");
    let issued_in_all = count(&app);

    // Neither a short passphrase nor an existing file; no restore over the state in use.
    let short = dir.path().join("short");
    std::fs::write(&short, "too short\n").unwrap();
    let other = dir.path().join("other.lemur");
    refused(
        lemur(&app, "backup", &other, &short, &[]),
        "shorter than 12",
    );
    assert!(!other.exists(), "a refused backup leaves no file");
    refused(
        lemur(&app, "backup", &archive, &passphrase, &[]),
        "never overwrites",
    );
    refused(
        lemur(&app, "restore", &archive, &passphrase, &[]),
        "is not empty",
    );
    refused(
        lemur(&app, "backup", &other, &passphrase, &["--no-database"]),
        "belongs in the backup",
    );

    assert!(app.daemon.stop(), "the daemon did not stop cleanly");
    let state = app.daemon.state_dir();
    let aside = state.with_extension("before-restore");
    std::fs::rename(&state, &aside).unwrap();

    // A wrong passphrase and a changed archive restore nothing.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase at all\n").unwrap();
    refused(
        lemur(&app, "restore", &archive, &wrong, &[]),
        "passphrase: does not open",
    );
    assert!(!state.exists(), "a wrong passphrase wrote nothing");
    let mut changed = std::fs::read(&archive).unwrap();
    let middle = changed.len() / 2;
    changed[middle] ^= 1;
    let changed_archive = dir.path().join("changed.lemur");
    std::fs::write(&changed_archive, changed).unwrap();
    refused(
        lemur(&app, "restore", &changed_archive, &passphrase, &[]),
        "damaged or was changed",
    );
    std::fs::remove_dir_all(&state).unwrap();

    let restored = lemur(&app, "restore", &archive, &passphrase, &[]);
    assert!(restored.status.success(), "{}", stderr(&restored));
    app.daemon.start_again();
    let app = app.signed_in_again();
    let status = |certificate: &Value| {
        app.get(&format!("/api/1/certificates/{}", certificate["id"]))
            .status
    };
    assert_eq!(status(&before), 200, "a certificate from before the backup");
    assert_eq!(status(&after), 404, "a certificate from after the backup");
    let restored_count = count(&app);
    assert!(
        restored_count > 1 && restored_count < issued_in_all,
        "the snapshot holds {restored_count} of {issued_in_all}"
    );
    assert_eq!(
        sqlite_query(&app.daemon, "PRAGMA integrity_check").trim(),
        "ok"
    );
    // The CA's key came back in the token: it signs again, and what it signs chains to it.
    let again = app.issue(authority, "again");
    verify_with_openssl(
        again["body"].as_str().unwrap(),
        again["chain"].as_str().unwrap(),
    );
    assert!(aside.join("lemur.db").exists());
}
