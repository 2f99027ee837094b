//! Secrets under the HSM's key-encryption key: `lemur lock` / `unlock` of the secret files, and
//! `lemur rotate_kek` while clients issue and read keys.

use crate::on_both_databases;
use crate::support::{Appliance, Db, OfflineCa, mode_of};
use lemur_core::locked::sealed_path;
use lemur_testkit::daemon::Daemon;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs `lemur ARGS` beside the daemon; its standard output, after asserting it succeeded.
fn lemur(daemon: &Daemon, args: &[&str]) -> String {
    let output = daemon.command().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "lemur {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The KEK version an envelope names.
fn kek_version(envelope: &[u8]) -> u32 {
    lemur_hsm::envelope::parse(envelope).unwrap().0.kek_version
}

/// Adds `line` to the `[database]` table of the daemon's configuration.
fn configure_database(daemon: &Daemon, line: &str) {
    let path = daemon.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\n[database]\n"), "{text}");
    std::fs::write(
        &path,
        text.replacen("\n[database]\n", &format!("\n[database]\n{line}\n"), 1),
    )
    .unwrap();
}

/// Locks the token secret, a third-party credential in the keys directory and (on PostgreSQL,
/// which then asks for it) the database password; the daemon starts on the locked files and
/// unlocking gives back the same bytes.
fn lock_and_unlock(db: Db) {
    let mut app = Appliance::start(db);
    let state = app.daemon.state_dir();
    let keys_dir = state.join("keys");
    std::fs::create_dir(&keys_dir).unwrap();
    let credential = keys_dir.join("aws-secret-access-key");
    lemur_testkit::write_secret_file(&credential, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    let mut files = vec![state.join("secrets/token-secret"), credential];
    if let Some(postgres) = &app.postgres {
        let password = state.join("secrets/db-password");
        lemur_testkit::write_secret_file(&password, "a database passphrase");
        postgres.require_password("a database passphrase");
        configure_database(
            &app.daemon,
            &format!("password_file = \"{}\"", password.display()),
        );
        files.push(password);
    }
    let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();

    let out = lemur(&app.daemon, &["lock"]);
    for (file, original) in files.iter().zip(&originals) {
        assert!(out.contains(&format!("{} locked", file.display())), "{out}");
        assert!(!file.exists(), "{} is still in clear", file.display());
        let envelope = std::fs::read(sealed_path(file)).unwrap();
        assert_eq!(mode_of(&sealed_path(file)), 0o600);
        assert!(
            !envelope
                .windows(original.len())
                .any(|w| w == original.as_slice()),
            "{} holds its secret in clear",
            file.display()
        );
    }
    for file in files_below(&state) {
        let bytes = std::fs::read(&file).unwrap();
        for original in &originals {
            assert!(
                !bytes
                    .windows(original.len())
                    .any(|w| w == original.as_slice()),
                "{} holds a locked secret in clear",
                file.display()
            );
        }
    }
    let pin = state.join("secrets/hsm-pin");
    assert!(
        pin.exists() && !sealed_path(&pin).exists(),
        "the PIN stays: {out}"
    );
    assert!(lemur(&app.daemon, &["lock"]).contains("was locked"));

    // The daemon starts on the locked files: the same token secret (the old token is still
    // good), the database password (PostgreSQL refuses a connection without it).
    app.daemon.restart();
    assert_eq!(app.get("/api/1/auth/me").status, 200);
    assert!(app.daemon.admin_token().len() > 20);

    // A locked file renamed to stand for another does not open, and says which file.
    std::fs::copy(
        sealed_path(&files[1]),
        sealed_path(&keys_dir.join("stand-in")),
    )
    .unwrap();
    let refused = app.daemon.command().arg("unlock").output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stand-in.sealed does not unseal"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    std::fs::remove_file(sealed_path(&keys_dir.join("stand-in"))).unwrap();

    let out = lemur(&app.daemon, &["unlock"]);
    for (file, original) in files.iter().zip(&originals) {
        assert!(
            out.contains(&format!("{} unlocked", file.display())),
            "{out}"
        );
        assert_eq!(&std::fs::read(file).unwrap(), original);
        assert_eq!(mode_of(file), 0o600);
        assert!(!sealed_path(file).exists());
    }
    app.daemon.restart();
    assert_eq!(app.get("/api/1/auth/me").status, 200);
}
on_both_databases!(locked_secret_files, lock_and_unlock);

/// Every file below `dir`.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_below(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Every sealed key the database holds, by certificate id, with its KEK version.
fn stored_versions(app: &Appliance, db: Db, table: &str) -> Vec<(i64, u32)> {
    let hex = match db {
        Db::Sqlite => "hex(sealed_private_key)",
        Db::Postgres => "encode(sealed_private_key, 'hex')",
    };
    app.query(&format!(
        "SELECT id, {hex} FROM {table} WHERE sealed_private_key IS NOT NULL ORDER BY id"
    ))
    .lines()
    .map(|line| {
        let (id, hex) = line.split_once('|').unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        (id.parse().unwrap(), kek_version(&bytes))
    })
    .collect()
}

/// Two rotations while three clients issue certificates with HSM-generated keys and read keys
/// back: no request fails, every key ends under the newest version (those waiting with orders
/// too, and keys stocked ahead), every key reads as before, the locked token secret moves too, and
/// each rotation is in the audit log.
fn rotate_under_load(db: Db) {
    let mut app = Appliance::start(db);
    // Keys stocked in the database move too (P-384, which the pool keeps one of: the clients'
    // P-256 keys are made as they go, so the stock stays as it was filled).
    let config = std::fs::read_to_string(app.daemon.config_path()).unwrap();
    let config = config
        .replace(
            "ready = { RSA2048 = 32 }",
            "ready = { RSA2048 = 32, ECCSECP384R1 = 1 }",
        )
        .replace("stock = {}", "stock = { ECCSECP384R1 = 8 }");
    std::fs::write(app.daemon.config_path(), config).unwrap();
    app.daemon.restart();
    let mut app = app.signed_in_again();
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.query("SELECT count(*) FROM stocked_keys").trim() != "8" {
        assert!(Instant::now() < deadline, "the stock never filled");
        std::thread::park_timeout(Duration::from_millis(100));
    }
    let authority = app.root("Rotation", "ECCPRIME256V1")["id"]
        .as_i64()
        .unwrap();
    let offline = OfflineCa::new("Rotation Offline");
    let offline_id = offline.register(&app, "rotation-offline")["id"]
        .as_i64()
        .unwrap();
    let ordered = app.post(
        "/api/1/certificates",
        &json!({ "owner": "load@example.com", "commonName": "waiting.example.com",
                 "authority": { "id": offline_id }, "keyType": "ECCPRIME256V1" }),
    );
    assert_eq!(ordered.status, 202, "{}", ordered.text);
    let pending = ordered.body["id"].as_i64().unwrap();
    let pending_key = |app: &Appliance| {
        app.get(&format!("/api/1/pending_certificates/{pending}/key"))
            .body["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let waiting_key = pending_key(&app);
    let token_secret = app.daemon.state_dir().join("secrets/token-secret");
    let keys_dir = app.daemon.state_dir().join("keys");
    std::fs::create_dir(&keys_dir).unwrap();
    let credential = keys_dir.join("smtp-password");
    lemur_testkit::write_secret_file(&credential, "an SMTP password");
    lemur(&app.daemon, &["lock"]);
    assert_eq!(
        kek_version(&std::fs::read(sealed_path(&token_secret)).unwrap()),
        1
    );

    let stop = AtomicBool::new(false);
    let issued = std::sync::Mutex::new(Vec::<(i64, String)>::new());
    let failures = std::sync::Mutex::new(Vec::<String>::new());
    let client = |n: usize| {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let reply = app.post(
                "/api/1/certificates",
                &json!({
                    "owner": "load@example.com", "commonName": format!("k{n}-{i}.example.com"),
                    "authority": { "id": authority }, "keyType": "ECCPRIME256V1",
                }),
            );
            if reply.status != 200 {
                failures.lock().unwrap().push(reply.text);
                continue;
            }
            let id = reply.body["id"].as_i64().unwrap();
            let key = app.get(&format!("/api/1/certificates/{id}/key"));
            match key.body["key"].as_str() {
                Some(pem) if key.status == 200 => issued.lock().unwrap().push((id, pem.to_owned())),
                _ => failures.lock().unwrap().push(key.text),
            }
        }
    };
    /// Stops the clients however the scope ends: a failed check would otherwise wait for them
    /// forever.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let rotations = std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        for n in 0..3 {
            scope.spawn(move || client(n));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while issued.lock().unwrap().len() < 30 {
            assert!(
                Instant::now() < deadline,
                "the clients issued too little: {:?}",
                failures.lock().unwrap().first()
            );
            std::thread::park_timeout(Duration::from_millis(50));
        }
        let rotations = [
            lemur(&app.daemon, &["rotate_kek"]),
            lemur(&app.daemon, &["rotate_kek"]),
        ];
        let after = issued.lock().unwrap().len();
        while issued.lock().unwrap().len() < after + 10 {
            assert!(
                Instant::now() < deadline,
                "the clients stopped after the rotation"
            );
            std::thread::park_timeout(Duration::from_millis(50));
        }
        rotations
    });
    let moved = |out: &str| -> usize {
        let line = out.lines().find(|l| l.ends_with(" private keys")).unwrap();
        line.split_whitespace()
            .rev()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(moved(&rotations[0]) >= 30, "{}", rotations[0]);
    assert!(rotations[1].contains("version 3"), "{}", rotations[1]);
    assert!(
        failures.lock().unwrap().is_empty(),
        "{:?}",
        failures.lock().unwrap()
    );

    let issued = issued.into_inner().unwrap();
    assert_eq!(
        stored_versions(&app, db, "pending_certificates"),
        vec![(pending, 3)]
    );
    assert_eq!(pending_key(&app), waiting_key);
    let stocked = stored_versions(&app, db, "stocked_keys");
    assert_eq!(stocked.len(), 8, "{stocked:?}");
    assert!(
        stocked.iter().all(|(_, version)| *version == 3),
        "stocked keys left under an older version: {stocked:?}"
    );
    let versions = stored_versions(&app, db, "certificates");
    assert!(versions.len() >= issued.len(), "{versions:?}");
    assert!(
        versions.iter().all(|(_, version)| *version == 3),
        "keys left under an older version: {versions:?}"
    );
    for (id, pem) in &issued {
        let key = app.get(&format!("/api/1/certificates/{id}/key"));
        assert_eq!(
            key.body["key"].as_str(),
            Some(pem.as_str()),
            "certificate {id}"
        );
    }
    for file in [&token_secret, &credential] {
        assert_eq!(kek_version(&std::fs::read(sealed_path(file)).unwrap()), 3);
    }
    app.daemon.restart();
    assert_eq!(app.get("/api/1/auth/me").status, 200);
    let audit = app.query("SELECT details FROM logs WHERE log_type = 'kek_rotated' ORDER BY id");
    let audit: Vec<&str> = audit.lines().collect();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit[1].starts_with("key-encryption key v3:"), "{audit:?}");
    assert!(audit[1].contains("2 locked files"), "{audit:?}");
    assert!(
        audit[1].ends_with("0 left under an older version"),
        "{audit:?}"
    );
}
on_both_databases!(kek_rotation_under_load, rotate_under_load);
