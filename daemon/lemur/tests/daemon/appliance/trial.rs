//! The database across a release's trial boots (`lemur appliance trial`): in the slot on trial a
//! snapshot from before the new release ran, taken once; back in the previous slot after a
//! failed trial, that snapshot put back when the trial migrated the database (what it wrote kept
//! aside), the database left with the trial's writes when it did not; a passed trial forgets
//! the snapshot. As root, the way the image runs it (the daemon's user here is root too); the
//! daemon's side alone otherwise.

use super::{stderr, stdout};
use crate::support::{Appliance, Db, scratch, sqlite_query};
use serde_json::Value;
use std::path::Path;

/// The daemon started again on what the trial left, `name` issued, the daemon stopped.
fn issued_while_up(mut app: Appliance, authority: i64, name: &str) -> (Appliance, Value) {
    app.daemon.start_again();
    let app = app.signed_in_again();
    let issued = app.issue(authority, name);
    let mut app = app;
    app.daemon.stop();
    (app, issued)
}

/// The boot-time step: `lemur appliance trial` in `slot` (`--passed` for "passed") with the
/// marker in `dir`, as root; the daemon's side (`trial-database ACTION`) alone otherwise.
fn trial(app: &Appliance, dir: &Path, slot: &str, action: &str) -> String {
    let mut command = app.daemon.command();
    if lemur_testkit::is_root() {
        let cmdline = dir.join("cmdline");
        std::fs::write(&cmdline, format!("quiet lemur.slot={slot}\n")).unwrap();
        command
            .args(["appliance", "trial", "--user", "root", "--marker"])
            .arg(dir.join("marker"))
            .arg("--cmdline")
            .arg(&cmdline)
            .arg("--daemon-config")
            .arg(app.daemon.config_path())
            .arg("--on-trial")
            .arg(dir.join("on-trial"))
            .arg("--status")
            .arg(dir.join("status.json"));
        if action == "forget" {
            command.arg("--passed");
        }
    } else {
        command.args(["appliance", "trial-database", action]);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    if lemur_testkit::is_root() && action == "snapshot" {
        // Provisioning sees that this boot is a trial.
        assert!(dir.join("on-trial").exists());
    }
    stdout(&output)
}

/// The upgrade's status as the installer left it: written, restarting into `version`.
fn installed(dir: &Path, version: &str) {
    std::fs::write(
        dir.join("status.json"),
        format!(
            r#"{{"state": "restarting", "version": "{version}", "from_version": "0.1.0",
                "slot": "b", "written": 10, "total": 10, "started_at": 1700000000,
                "updated_at": 1700000001, "error": null}}"#
        ),
    )
    .unwrap();
}

/// The upgrade's state, as the trial carried it on (as root, the image's way; the daemon's
/// side alone has none to carry).
fn upgrade_state(dir: &Path) -> Option<Value> {
    lemur_testkit::is_root()
        .then(|| serde_json::from_slice(&std::fs::read(dir.join("status.json")).unwrap()).unwrap())
}

fn migrated_by_a_later_release(app: &Appliance) {
    let done = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nwith sqlite3.connect(sys.argv[1]) as db:\n    db.execute('INSERT INTO schema_migrations (version, applied_at) VALUES (100000, 0)')",
        ])
        .arg(app.daemon.state_dir().join("lemur.db"))
        .status()
        .unwrap();
    assert!(done.success());
}

#[test]
fn a_failed_trial_that_migrated_the_database_leaves_it_as_it_was_before() {
    let mut app = Appliance::start(Db::Sqlite);
    let authority = app.root("trial", "ECCPRIME256V1")["id"].as_i64().unwrap();
    let before = app.issue(authority, "before");
    let dir = scratch();
    std::fs::write(dir.path().join("marker"), "b 0.2.0\n").unwrap();
    installed(dir.path(), "0.2.0");
    let snapshot = app.daemon.state_dir().join("upgrade/before-trial.db");

    // The trial's first boot keeps the database as it was; its later tries keep that snapshot.
    app.daemon.stop();
    let said = trial(&app, dir.path(), "b", "snapshot");
    assert!(snapshot.exists(), "{said}");
    if let Some(status) = upgrade_state(dir.path()) {
        assert_eq!(status["state"], "on_trial", "{status}");
    }
    let taken = std::fs::metadata(&snapshot).unwrap().modified().unwrap();
    let (mut app, during) = issued_while_up(app, authority, "during");
    trial(&app, dir.path(), "b", "snapshot");
    assert_eq!(
        std::fs::metadata(&snapshot).unwrap().modified().unwrap(),
        taken
    );

    // The trial's release migrated the database, then failed: slot a boots on the snapshot.
    migrated_by_a_later_release(&app);
    let said = trial(&app, dir.path(), "a", "roll-back");
    assert!(said.contains("back as it was before the trial"), "{said}");
    assert!(!snapshot.exists());
    if lemur_testkit::is_root() {
        assert!(!dir.path().join("marker").exists(), "the trial is over");
    }
    if let Some(status) = upgrade_state(dir.path()) {
        assert_eq!(status["state"], "fell_back", "{status}");
        assert!(
            status["error"]
                .as_str()
                .is_some_and(|error| error.contains("release 0.2.0 failed its trial in slot b")),
            "{status}"
        );
    }
    let aside: Vec<_> = std::fs::read_dir(app.daemon.state_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("lemur.db.failed-trial-"))
        .collect();
    assert!(!aside.is_empty(), "what the trial wrote is kept aside");
    app.daemon.start_again();
    let token = app.daemon.admin_token();
    let get = |value: &Value| {
        app.daemon.get(
            &format!("/api/1/certificates/{}", value["id"]),
            Some(&token),
        )
    };
    assert_eq!(get(&before).status, 200);
    assert_eq!(
        get(&during).status,
        404,
        "the trial's write went with its database"
    );
    assert_eq!(
        sqlite_query(
            &app.daemon,
            "SELECT max(version) < 100000 FROM schema_migrations"
        )
        .trim(),
        "1"
    );
}

#[test]
fn a_trial_that_did_not_migrate_keeps_its_writes_and_a_passed_one_forgets_the_snapshot() {
    let mut app = Appliance::start(Db::Sqlite);
    let authority = app.root("trial", "ECCPRIME256V1")["id"].as_i64().unwrap();
    let dir = scratch();
    let snapshot = app.daemon.state_dir().join("upgrade/before-trial.db");
    let marker = dir.path().join("marker");

    std::fs::write(&marker, "b 0.2.0\n").unwrap();
    app.daemon.stop();
    trial(&app, dir.path(), "b", "snapshot");
    let (mut app, during) = issued_while_up(app, authority, "during");
    let said = trial(&app, dir.path(), "a", "roll-back");
    assert!(said.contains("did not migrate"), "{said}");
    assert!(!snapshot.exists());
    app.daemon.start_again();
    let token = app.daemon.admin_token();
    let reply = app.daemon.get(
        &format!("/api/1/certificates/{}", during["id"]),
        Some(&token),
    );
    assert_eq!(reply.status, 200, "the trial's write stays");

    // A trial that passes: the snapshot goes, and the marker with it.
    std::fs::write(&marker, "a 0.3.0\n").unwrap();
    installed(dir.path(), "0.3.0");
    app.daemon.stop();
    trial(&app, dir.path(), "a", "snapshot");
    assert!(snapshot.exists());
    trial(&app, dir.path(), "a", "forget");
    assert!(!snapshot.exists());
    if lemur_testkit::is_root() {
        assert!(!marker.exists());
    }
    if let Some(status) = upgrade_state(dir.path()) {
        assert_eq!(status["state"], "passed", "{status}");
        assert_eq!(status["version"], "0.3.0", "{status}");
    }
}
