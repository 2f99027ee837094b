//! The web UI in Debian's Chromium, driven by Playwright (`web/tests/`), against the real daemon
//! behind the real nginx over HTTPS: the UI built by `./dev test` (`web/dist`) is what nginx
//! serves. Screenshots of every screen, at desktop and phone widths, go to
//! `web/test-results/screens` (CI's artifacts).

use crate::nginx::Front;
use std::path::Path;
use std::process::Command;

#[test]
fn the_web_ui_signs_in_finds_shows_and_signs_out_in_a_real_browser() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let dist = web.join("dist");
    assert!(
        dist.join("index.html").exists() && web.join("node_modules").exists(),
        "build the web UI first: cd web && npm ci && npm run build (./dev test does)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is needed (apt-get install chromium; ./dev test does)"
    );
    let front = Front::start_serving(Some(&dist));
    let output = Command::new("npx")
        .args(["playwright", "test"])
        .current_dir(&web)
        .env("LEMUR_URL", format!("https://127.0.0.1:{}", front.https))
        .env("LEMUR_PASSWORD", &front.daemon.admin_password)
        .env("CHROMIUM", "/usr/bin/chromium")
        .output()
        .expect("npx (Node.js)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(output.status.success(), "Playwright: {report}");
    // The key view in the browser was audited.
    let views = crate::support::sqlite_query(
        &front.daemon,
        "SELECT count(*) FROM logs WHERE log_type = 'key_view'",
    );
    assert!(views.trim().parse::<u32>().unwrap() >= 1, "{views}");
}
