//! The web UI in Debian's Chromium, driven by Playwright (`web/tests/`), against the real daemon
//! behind the real nginx over HTTPS: the UI built by `./dev test` (`web/dist`) is what nginx
//! serves. The browser signs in, makes a root and a sub-CA, issues from the wizard and from a
//! CSR, uploads, orders from an offline CA (openssl) and delivers its answer, searches, downloads
//! and checks with openssl, renews an ended session, reads the
//! dashboard and signs out; axe-core checks every screen. Screenshots of every screen, at desktop
//! and phone widths, go to `web/test-results/screens` (CI's artifacts). What the browser did is
//! then read back from the database: each change went through the API and was audited.

use crate::nginx::Front;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The web UI's directory, once `./dev test` has built it and installed what Playwright needs.
fn web_ui() -> PathBuf {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    assert!(
        web.join("dist/index.html").exists() && web.join("node_modules").exists(),
        "build the web UI first: cd web && npm ci && npm run build (./dev test does)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is needed (apt-get install chromium; ./dev test does)"
    );
    web
}

/// Runs Playwright's `arguments` in `web` against `front`, with `environment`; must pass.
fn playwright(web: &Path, front: &Front, arguments: &[&str], environment: &[(&str, &str)]) {
    let output = Command::new("npx")
        .args(["playwright", "test"])
        .args(arguments)
        .current_dir(web)
        .env("LEMUR_URL", format!("https://127.0.0.1:{}", front.https))
        .env("LEMUR_PASSWORD", &front.daemon.admin_password)
        .env("CHROMIUM", "/usr/bin/chromium")
        .envs(environment.iter().copied())
        .output()
        .expect("npx (Node.js)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(output.status.success(), "Playwright: {report}");
}

/// A backup that breaks off after part of the archive went out, asked for in the browser
/// through nginx: the page says it failed and nothing is saved (`web/tests/appliance.spec.ts`).
#[test]
fn a_backup_that_breaks_off_saves_nothing_in_the_browser() {
    let web = web_ui();
    let mut front = Front::start_serving(Some(&web.join("dist")));
    let socket = front.with_backup_service();
    let service = crate::support::breaking_backup_service(&socket, 1);
    playwright(
        &web,
        &front,
        &["tests/appliance.spec.ts"],
        &[("LEMUR_BACKUP_BREAKS", "1")],
    );
    service.join().unwrap();
}

#[test]
fn the_web_ui_makes_authorities_issues_uploads_and_finds_in_a_real_browser() {
    let web = web_ui();
    let front = Front::start_serving(Some(&web.join("dist")));
    playwright(&web, &front, &[], &[]);
    let count = |sql: &str| -> u32 {
        let answer = crate::support::sqlite_query(&front.daemon, sql);
        answer
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{sql}: {answer}"))
    };
    // The two key views in the browser (the appliance's key, the wizard's) were audited.
    assert!(count("SELECT count(*) FROM logs WHERE log_type = 'key_view'") >= 2);
    // The authorities made in the browser, the sub-CA under the root, each audited.
    let parent = crate::support::sqlite_query(
        &front.daemon,
        "SELECT p.name FROM authorities a JOIN authorities p ON p.id = a.parent_id \
         WHERE a.name = 'ui-sub' AND a.key_uri LIKE 'pkcs11:%'",
    );
    assert_eq!(parent.trim(), "ui-root");
    assert_eq!(
        count(
            "SELECT count(*) FROM logs WHERE log_type = 'create_authority' AND details LIKE 'authority ui-%'"
        ),
        3
    );
    // The order placed with the offline authority, delivered once: one certificate, resolved.
    assert_eq!(
        count(
            "SELECT count(*) FROM pending_certificates p JOIN certificates c ON c.id = p.resolved_cert_id \
             WHERE p.resolved = 1 AND c.cn = 'ordered.example.test' AND c.sealed_private_key IS NOT NULL"
        ),
        1
    );
    // The wizard's two certificates (one refused first, one after the session was renewed) and
    // the upload (refused twice first): each made once.
    assert_eq!(
        count(
            "SELECT count(*) FROM certificates c JOIN authorities a ON a.id = c.authority_id \
             WHERE a.name = 'ui-sub' AND c.cn IN ('www.example.test', 'csr.example.test')"
        ),
        2
    );
    assert_eq!(
        count("SELECT count(*) FROM certificates WHERE cn = 'uploaded.example.test'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM logs WHERE log_type = 'upload_cert'"),
        1
    );
}
