//! `lemur dev` as a newcomer runs it: the web UI and the API over HTTPS on one port, with a
//! certificate from its own CA in the token, and the headers and caching the bundled nginx
//! configuration gives the appliance.

use crate::support::curl;
use lemur_testkit::daemon::Daemon;
use std::path::Path;

/// A stand-in for the built UI: an `index.html` and a hashed asset.
const INDEX: &str =
    "<!doctype html><title>Lemur-HSM</title><script type=module src=/assets/app-1a2b.js></script>";
const ASSET: &str = "console.log('ui')";

#[test]
fn lemur_dev_serves_the_ui_and_the_api_over_https_from_its_own_ca() {
    let web = tempfile::tempdir().unwrap();
    std::fs::create_dir(web.path().join("assets")).unwrap();
    std::fs::write(web.path().join("index.html"), INDEX).unwrap();
    std::fs::write(web.path().join("assets/app-1a2b.js"), ASSET).unwrap();
    let mut daemon = Daemon::start_with_dev_ca(
        Path::new(env!("CARGO_BIN_EXE_lemur")),
        &["--web-root".as_ref(), web.path().as_os_str()],
    );
    assert!(
        daemon.base.starts_with("https://127.0.0.1:"),
        "{}",
        daemon.base
    );
    let root = daemon.state_dir().join("dev-ca.pem");
    let first_root = std::fs::read_to_string(&root).unwrap();
    let get = |daemon: &Daemon, path: &str| {
        let url = format!("{}{path}", daemon.base);
        curl(&["--cacert", root.to_str().unwrap(), &url])
    };

    // A deep link is the application, uncached, with the front end's headers.
    let page = get(&daemon, "/certificates/7");
    assert_eq!((page.status, page.body.as_str()), (200, INDEX));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(page.header("strict-transport-security").is_some());
    let asset = get(&daemon, "/assets/app-1a2b.js");
    assert_eq!((asset.status, asset.body.as_str()), (200, ASSET));
    assert_eq!(
        asset.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(asset.header("content-type").unwrap().contains("javascript"));

    // The API beside it; what it does not route stays a JSON 404, not the application.
    let health = get(&daemon, "/api/1/healthcheck");
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    for path in [
        "/api/1/no-such-route",
        "/api/2/certificates",
        "/api/",
        "/api",
    ] {
        let missing = get(&daemon, path);
        assert_eq!(missing.status, 404, "{path}");
        assert_eq!(
            missing.json()["code"],
            "not_found",
            "{path}: {}",
            missing.body
        );
    }
    // Nothing outside the UI's files is served through `..`.
    let escape = curl(&[
        "--cacert",
        root.to_str().unwrap(),
        "--path-as-is",
        &format!("{}/../lemur.toml", daemon.base),
    ]);
    assert!(!escape.body.contains("[hsm]"), "{}", escape.body);

    // The CA is made once: a restart serves a certificate the same root vouches for.
    daemon.restart();
    assert_eq!(std::fs::read_to_string(&root).unwrap(), first_root);
    assert_eq!(get(&daemon, "/api/1/healthcheck").status, 200);
}

#[test]
fn lemur_dev_refuses_a_web_root_without_a_built_ui() {
    let empty = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lemur"))
        .arg("dev")
        .arg("--state-dir")
        .arg(state.path().join("lemur"))
        .args(["--listen", "127.0.0.1:0", "--web-root"])
        .arg(empty.path())
        .env_remove("SOFTHSM2_CONF")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("has no index.html") && stderr.contains("npm run build"),
        "{stderr}"
    );
}
