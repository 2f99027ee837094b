//! `lemur backup` of a daemon while it issues, and `lemur restore` into its emptied state
//! directory: the daemon comes back with every certificate the snapshot held, its CA keys in the
//! token working, and nothing of what came after; a wrong passphrase, a changed archive or a
//! state directory in use restore nothing.

use crate::support::{
    Appliance, Db, backup_service, frame, scratch, sqlite_query, verify_with_openssl,
};
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

    app.daemon.stop();
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

/// `POST /api/1/appliance/backup` against a backup service on a socket, as the appliance's
/// root service would answer it (here `lemur backup --framed`, one per connection, as
/// systemd's Accept=yes runs it): the archive comes whole and restores; a service that is not
/// there or refuses at once gives an error answer; one that fails part way cuts the download
/// off, so no broken archive passes for a whole one.
#[test]
fn a_backup_through_the_api_comes_whole_or_visibly_broken() {
    let mut app = Appliance::start(Db::Sqlite);
    let authority = app.root("api-backup", "ECCPRIME256V1")["id"]
        .as_i64()
        .unwrap();
    let issued = app.issue(authority, "backed-up-through-the-api");
    let dir = scratch();
    let socket = dir.path().join("backup.sock");
    let config = app.daemon.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[backups]\nsocket = {:?}\n",
            socket.display().to_string()
        ),
    )
    .unwrap();
    app.daemon.restart();
    let app = app.signed_in_again();
    let passphrase = "backup passphrase for the API test";
    let request = |passphrase: &str| {
        app.daemon.post_for_bytes(
            "/api/1/appliance/backup",
            &app.token,
            &serde_json::json!({ "passphrase": passphrase }),
        )
    };

    let short = app.post(
        "/api/1/appliance/backup",
        &serde_json::json!({ "passphrase": "too short" }),
    );
    assert_eq!(short.status, 400, "{}", short.text);
    assert!(
        short.body["reasons"]["passphrase"].is_string(),
        "{}",
        short.text
    );
    let absent = app.post(
        "/api/1/appliance/backup",
        &serde_json::json!({ "passphrase": passphrase }),
    );
    assert_eq!(absent.status, 503, "{}", absent.text);
    assert_eq!(absent.body["code"], "service_unavailable");

    // A service that refuses at once, then one that fails part way.
    let mut connection = 0;
    let failing = backup_service(&socket, 2, move |mut stream| {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut line).unwrap();
        assert_eq!(line, format!("{passphrase}\n"));
        connection += 1;
        if connection == 2 {
            frame(&mut stream, Some(b"the archive's first bytes"), "");
        }
        frame(&mut stream, None, "error: no room left on /var/lib/lemur");
    });
    let refused = app.post(
        "/api/1/appliance/backup",
        &serde_json::json!({ "passphrase": passphrase }),
    );
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(refused.text.contains("no room left"), "{}", refused.text);
    assert!(
        request(passphrase).is_err(),
        "a backup that failed part way reads as whole"
    );
    failing.join().unwrap();
    std::fs::remove_file(&socket).unwrap();

    // The real thing: lemur backup --framed on the connection.
    let mut command = Some(app.daemon.command());
    let service = backup_service(&socket, 1, move |stream| {
        let mut command = command.take().unwrap();
        let output = command
            .args([
                "backup",
                "--output",
                "-",
                "--passphrase-file",
                "-",
                "--framed",
            ])
            .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
                stream.try_clone().unwrap(),
            )))
            .stdout(std::process::Stdio::from(std::os::fd::OwnedFd::from(
                stream,
            )))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    });
    let (status, archive) = request(passphrase).expect("a whole download");
    service.join().unwrap();
    assert_eq!(status, 200);
    let archive_file = dir.path().join("through-the-api.lemur");
    std::fs::write(&archive_file, archive).unwrap();
    let passphrase_file = dir.path().join("passphrase");
    std::fs::write(&passphrase_file, format!("{passphrase}\n")).unwrap();
    assert_eq!(
        sqlite_query(
            &app.daemon,
            "SELECT count(*) FROM logs WHERE log_type = 'appliance_backup'"
        )
        .trim(),
        "3",
        "each backup asked of the service is audited"
    );
    // The archive is whole: it restores, and the daemon comes back with the certificate.
    let mut app = app;
    app.daemon.stop();
    let state = app.daemon.state_dir();
    std::fs::rename(&state, state.with_extension("before-restore")).unwrap();
    let restored = lemur(&app, "restore", &archive_file, &passphrase_file, &[]);
    assert!(restored.status.success(), "{}", stderr(&restored));
    app.daemon.start_again();
    let app = app.signed_in_again();
    assert_eq!(
        app.get(&format!("/api/1/certificates/{}", issued["id"]))
            .status,
        200
    );
}

/// Serves each connection on `socket` with the real root side of a restore through the API,
/// `lemur restore --archive - --served SPOOL`, as `lemur-restore@.service` runs it.
fn restore_service(
    app: &Appliance,
    socket: &Path,
    spool: &Path,
    connections: usize,
    extra: &[&str],
) -> std::thread::JoinHandle<()> {
    let mut commands: Vec<_> = (0..connections).map(|_| app.daemon.command()).collect();
    let spool = spool.to_owned();
    let extra: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
    backup_service(socket, connections, move |stream| {
        let mut command = commands.pop().unwrap();
        command
            .args(["restore", "--archive", "-", "--served"])
            .arg(&spool)
            .args(&extra)
            .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
                stream.try_clone().unwrap(),
            )))
            .stdout(std::process::Stdio::from(std::os::fd::OwnedFd::from(
                stream,
            )))
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
    })
}

/// `POST /api/1/appliance/restore` with root's restore service on a socket: the form must bring
/// the passphrase before the archive; the service keeps the archive and opens it whole before it
/// answers, so a wrong passphrase or an archive cut short is refused by name and changes nothing
/// (no status, no archive left); an archive that opens is accepted, and the restore then runs
/// and records how it went: here it fails (this test's state directory is in use, and only root
/// moves one aside), and the daemon serves on as it was. Each request that reached the service is
/// audited. (The restore that succeeds is the image test's: it needs root and systemd.)
#[test]
fn a_restore_through_the_api_is_checked_whole_before_it_is_accepted() {
    let app = Appliance::start(Db::Sqlite);
    let authority = app.root("api-restore", "ECCPRIME256V1")["id"]
        .as_i64()
        .unwrap();
    let issued = app.issue(authority, "kept-through-a-failed-restore");
    let dir = scratch();
    let passphrase = "restore passphrase for the API test";
    let passphrase_file = dir.path().join("passphrase");
    std::fs::write(&passphrase_file, format!("{passphrase}\n")).unwrap();
    let archive_file = dir.path().join("backup.lemur");
    let backed_up = lemur(&app, "backup", &archive_file, &passphrase_file, &[]);
    assert!(backed_up.status.success(), "{}", stderr(&backed_up));
    let archive = std::fs::read(&archive_file).unwrap();
    let socket = dir.path().join("restore.sock");
    let spool = dir.path().join("spool");
    let status_file = spool.join("status.json");
    let app = with_restore_service(app, dir.path(), &status_file);
    let restore = |fields: &[(&str, &[u8])]| {
        app.daemon
            .post_form("/api/1/appliance/restore", &app.token, fields)
    };
    let state = || app.get("/api/1/appliance/restore").body["state"].clone();
    assert_eq!(state(), "none");

    let not_a_form = app.post("/api/1/appliance/restore", &serde_json::json!({}));
    assert_eq!(not_a_form.status, 400, "{}", not_a_form.text);
    assert!(not_a_form.body["reasons"]["body"].is_string());
    let archive_first = restore(&[("archive", &archive), ("passphrase", passphrase.as_bytes())]);
    assert_eq!(archive_first.status, 400, "{}", archive_first.text);
    assert!(archive_first.body["reasons"]["passphrase"].is_string());
    let no_service = restore(&[("passphrase", passphrase.as_bytes()), ("archive", &archive)]);
    assert_eq!(no_service.status, 503, "{}", no_service.text);

    // While an upgrade is under way (on the appliance, one staged or on trial): a conflict.
    let staged = dir.path().join("staged.upgrade");
    std::fs::write(&staged, "").unwrap();
    let upgrading = restore_service(
        &app,
        &socket,
        &spool,
        1,
        &["--unless-exists", staged.to_str().unwrap()],
    );
    let crossing = restore(&[("passphrase", passphrase.as_bytes()), ("archive", &archive)]);
    upgrading.join().unwrap();
    std::fs::remove_file(&socket).unwrap();
    assert_eq!(crossing.status, 409, "{}", crossing.text);
    assert!(
        crossing.text.contains("upgrade is under way"),
        "{}",
        crossing.text
    );

    let service = restore_service(&app, &socket, &spool, 4, &[]);
    let wrong = restore(&[("passphrase", b"not the passphrase"), ("archive", &archive)]);
    assert_eq!(wrong.status, 400, "{}", wrong.text);
    assert!(
        wrong.body["reasons"]["passphrase"].is_string(),
        "{}",
        wrong.text
    );
    let cut_short = restore(&[
        ("passphrase", passphrase.as_bytes()),
        ("archive", &archive[..archive.len() / 2]),
    ]);
    assert_eq!(cut_short.status, 400, "{}", cut_short.text);
    assert!(
        cut_short.body["reasons"]["archive"].is_string(),
        "{}",
        cut_short.text
    );
    let field_after = restore(&[
        ("passphrase", passphrase.as_bytes()),
        ("archive", &archive[..archive.len() / 2]),
        ("comment", b"more"),
    ]);
    assert_eq!(field_after.status, 400, "{}", field_after.text);
    assert!(
        field_after.body["reasons"]["comment"].is_string(),
        "{}",
        field_after.text
    );
    assert_eq!(state(), "none", "a refused restore left a status");

    // The passphrase as a file holds it (curl -F 'passphrase=<FILE'): its line's end is not
    // part of it.
    let with_newline = format!("{passphrase}\n");
    let accepted = restore(&[
        ("passphrase", with_newline.as_bytes()),
        ("archive", &archive),
    ]);
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    assert_eq!(
        accepted.body["backupVersion"],
        env!("CARGO_PKG_VERSION"),
        "{}",
        accepted.text
    );
    service.join().unwrap();
    let status = app.get("/api/1/appliance/restore");
    assert_eq!(status.body["state"], "failed", "{}", status.text);
    assert_eq!(
        status.body["requestedAt"], accepted.body["requestedAt"],
        "the status is of the restore accepted: {}",
        status.text
    );
    assert!(
        status.body["error"]
            .as_str()
            .is_some_and(|error| error.contains(&app.daemon.state_dir().display().to_string())),
        "{}",
        status.text
    );
    assert_eq!(status.body["requestedBy"], "lemur", "{}", status.text);
    assert!(status.body["finishedAt"].is_string(), "{}", status.text);
    assert!(!spool.join("archive.lemur").exists());
    assert_eq!(
        app.get(&format!("/api/1/certificates/{}", issued["id"]))
            .status,
        200
    );
    assert_eq!(
        sqlite_query(
            &app.daemon,
            "SELECT count(*) FROM logs WHERE log_type = 'appliance_restore'"
        )
        .trim(),
        "5",
        "each restore that reached the service is audited"
    );
}

/// `app` restarted as an appliance's daemon: root's backup and restore services on sockets in
/// `dir`, the restore's status in `status_file`.
fn with_restore_service(mut app: Appliance, dir: &Path, status_file: &Path) -> Appliance {
    let config = app.daemon.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[backups]\nsocket = {:?}\nrestore_socket = {:?}\nrestore_status = {:?}\n",
            dir.join("backup.sock").display().to_string(),
            dir.join("restore.sock").display().to_string(),
            status_file.display().to_string(),
        ),
    )
    .unwrap();
    app.daemon.restart();
    app.signed_in_again()
}

/// The restored appliance's audit log shows the restore that brought it back, once, though the
/// request's own row went into the database the restore replaced; a failed restore, which left
/// the old database and its row, adds nothing.
#[test]
fn a_restored_appliance_audits_the_restore_once() {
    let app = Appliance::start(Db::Sqlite);
    let dir = scratch();
    let status_file = dir.path().join("status.json");
    let status = restore_status;
    let restored = |app: &Appliance| {
        sqlite_query(
            &app.daemon,
            "SELECT l.user_id IS NULL, l.source_address, l.logged_at, l.details FROM logs l \
             WHERE l.log_type = 'appliance_restored' ORDER BY l.id",
        )
    };
    std::fs::write(&status_file, status("failed", 1_780_000_000).to_string()).unwrap();
    let mut app = with_restore_service(app, dir.path(), &status_file);
    assert_eq!(restored(&app), "");

    std::fs::write(&status_file, status("restored", 1_780_000_100).to_string()).unwrap();
    for _ in 0..2 {
        app.daemon.restart();
    }
    let rows = restored(&app);
    let fields: Vec<&str> = rows.trim().split('|').collect();
    assert_eq!(fields.len(), 4, "one row: {rows}");
    assert_eq!(fields[..2], ["1", "192.0.2.44"], "{rows}");
    assert_eq!(fields[2], "1780000120", "logged when it finished: {rows}");
    assert!(
        fields[3].contains("release 0.1.0 made at 2026-01-01T00:00:00Z")
            && fields[3].contains("by lemur at 2026-05-28T20:28:20Z"),
        "{rows}"
    );

    // The next restore through the API is recorded too.
    std::fs::write(&status_file, status("restored", 1_780_000_500).to_string()).unwrap();
    app.daemon.restart();
    assert_eq!(restored(&app).trim().lines().count(), 2);
}

/// A restore's status file as root's restore service writes it, finished 20 s after it was
/// asked for.
fn restore_status(state: &str, requested_at: i64) -> Value {
    serde_json::json!({
        "state": state,
        "requested_by": { "user": "lemur", "source": "192.0.2.44" },
        "requested_at": requested_at,
        "finished_at": requested_at + 20,
        "backup_version": "0.1.0",
        "backup_created": 1_767_225_600,
        "error": null,
    })
}

/// A restore service that stops (its `ExecStopPost`, `--abandoned`) while the next request's
/// restore holds the spool leaves that restore's archive and status alone; with the spool free,
/// a restore left `restoring` is recorded as failed and its archive removed. (The image test
/// met the first: a refused restore's clean-up removed the archive of the one sent right after
/// it, which then failed.)
#[test]
fn an_abandoned_restore_cleans_up_only_a_spool_no_restore_holds() {
    let app = Appliance::start(Db::Sqlite);
    let dir = scratch();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let archive = spool.join("archive.lemur");
    std::fs::write(&archive, b"an archive being received").unwrap();
    let status_file = spool.join("status.json");
    let mut restoring = restore_status("restoring", 1_780_000_000);
    restoring["finished_at"] = Value::Null;
    std::fs::write(&status_file, restoring.to_string()).unwrap();
    let state = || {
        let status: Value = serde_json::from_slice(&std::fs::read(&status_file).unwrap()).unwrap();
        status["state"].as_str().unwrap().to_owned()
    };
    let abandoned = || {
        let output = app
            .daemon
            .command()
            .args(["restore", "--archive", "-", "--abandoned", "--served"])
            .arg(&spool)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    };

    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(spool.join("lock"))
        .unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    abandoned();
    assert!(archive.exists(), "the live restore's archive was removed");
    assert_eq!(state(), "restoring");

    drop(held);
    abandoned();
    assert!(!archive.exists(), "the dead restore's archive was kept");
    assert_eq!(state(), "failed");
}
