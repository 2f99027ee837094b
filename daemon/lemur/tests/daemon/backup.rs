//! `lemur backup` of a daemon while it issues, and `lemur restore` into its emptied state
//! directory: the daemon comes back with every certificate the snapshot held, its CA keys in the
//! token working, and nothing of what came after; a wrong passphrase, a changed archive or a
//! state directory in use restore nothing.

use crate::support::{Appliance, Db, scratch, sqlite_query, verify_with_openssl};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};

const PASSPHRASE: &str = "backup passphrase for the tests";

fn issue(app: &Appliance, authority: i64, name: &str) -> Value {
    let reply = app.post(
        "/api/1/certificates",
        &json!({
            "owner": "backup@example.com", "authority": { "id": authority },
            "commonName": format!("{name}.example.com"),
        }),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

fn lemur(app: &Appliance, args: &[&std::ffi::OsStr]) -> Output {
    app.daemon.command().args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
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
    let before = issue(&app, authority, "before");
    let dir = scratch();
    let passphrase = dir.path().join("passphrase");
    std::fs::write(&passphrase, format!("{PASSPHRASE}\n")).unwrap();
    let archive = dir.path().join("backup.lemur");
    let (a, p) = (archive.as_os_str(), passphrase.as_os_str());

    // The backup is taken while certificates are issued.
    let issuing = AtomicBool::new(true);
    let (output, during) = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            let mut issued = 0;
            while issuing.load(Ordering::Relaxed) {
                issue(&app, authority, &format!("during-{issued}"));
                issued += 1;
            }
            issued
        });
        let output = lemur(
            &app,
            &[
                "backup".as_ref(),
                "-o".as_ref(),
                a,
                "--passphrase-file".as_ref(),
                p,
            ],
        );
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
    let after = issue(&app, authority, "after");
    let issued_in_all = count(&app);

    // Neither a short passphrase nor an existing file; no restore over the state in use.
    let short = dir.path().join("short");
    std::fs::write(&short, "too short\n").unwrap();
    let other = dir.path().join("other.lemur");
    let refused = lemur(
        &app,
        &[
            "backup".as_ref(),
            "-o".as_ref(),
            other.as_os_str(),
            "--passphrase-file".as_ref(),
            short.as_os_str(),
        ],
    );
    assert!(
        stderr(&refused).contains("shorter than 12"),
        "{}",
        stderr(&refused)
    );
    assert!(!other.exists(), "a refused backup leaves no file");
    let refused = lemur(
        &app,
        &[
            "backup".as_ref(),
            "-o".as_ref(),
            a,
            "--passphrase-file".as_ref(),
            p,
        ],
    );
    assert!(
        stderr(&refused).contains("never overwrites"),
        "{}",
        stderr(&refused)
    );
    let refused = lemur(
        &app,
        &[
            "restore".as_ref(),
            "-a".as_ref(),
            a,
            "--passphrase-file".as_ref(),
            p,
        ],
    );
    assert!(
        stderr(&refused).contains("is not empty"),
        "{}",
        stderr(&refused)
    );
    let refused = lemur(
        &app,
        &[
            "backup".as_ref(),
            "-o".as_ref(),
            other.as_os_str(),
            "--passphrase-file".as_ref(),
            p,
            "--no-database".as_ref(),
        ],
    );
    assert!(
        stderr(&refused).contains("belongs in the backup"),
        "{}",
        stderr(&refused)
    );

    assert!(app.daemon.stop(), "the daemon did not stop cleanly");
    let state = app.daemon.state_dir();
    let aside = state.with_extension("before-restore");
    std::fs::rename(&state, &aside).unwrap();

    // A wrong passphrase and a changed archive restore nothing.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase at all\n").unwrap();
    let refused = lemur(
        &app,
        &[
            "restore".as_ref(),
            "-a".as_ref(),
            a,
            "--passphrase-file".as_ref(),
            wrong.as_os_str(),
        ],
    );
    assert!(
        stderr(&refused).contains("passphrase: does not open"),
        "{}",
        stderr(&refused)
    );
    assert!(!state.exists(), "a wrong passphrase wrote nothing");
    let mut changed = std::fs::read(&archive).unwrap();
    let middle = changed.len() / 2;
    changed[middle] ^= 1;
    let changed_archive = dir.path().join("changed.lemur");
    std::fs::write(&changed_archive, changed).unwrap();
    let refused = lemur(
        &app,
        &[
            "restore".as_ref(),
            "-a".as_ref(),
            changed_archive.as_os_str(),
            "--passphrase-file".as_ref(),
            p,
        ],
    );
    assert!(
        stderr(&refused).contains("damaged or was changed"),
        "{}",
        stderr(&refused)
    );
    std::fs::remove_dir_all(&state).unwrap();

    let restored = lemur(
        &app,
        &[
            "restore".as_ref(),
            "-a".as_ref(),
            a,
            "--passphrase-file".as_ref(),
            p,
        ],
    );
    assert!(restored.status.success(), "{}", stderr(&restored));
    app.daemon.start_again();
    let token = app.daemon.admin_token();
    let get = |id: &Value| {
        app.daemon
            .get(&format!("/api/1/certificates/{id}"), Some(&token))
    };
    assert_eq!(
        get(&before["id"]).status,
        200,
        "a certificate from before the backup"
    );
    assert_eq!(
        get(&after["id"]).status,
        404,
        "a certificate from after the backup"
    );
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
    let app = Appliance { token, ..app };
    let again = issue(&app, authority, "again");
    verify_with_openssl(
        again["body"].as_str().unwrap(),
        again["chain"].as_str().unwrap(),
    );
    assert!(Path::new(&aside).join("lemur.db").exists());
}
