//! The daemon under systemd: the notifications `Type=notify` and `WatchdogSec=` rely on, heard
//! on a socket of the test's own as systemd would hear them.

use lemur_testkit::daemon::Daemon;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

/// Reads notifications until one satisfies `wanted` or `within` passes; returns all it read.
fn listen_until(
    socket: &UnixDatagram,
    within: Duration,
    wanted: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut heard = Vec::new();
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .unwrap();
        let Ok(length) = socket.recv(&mut buffer) else {
            break;
        };
        let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
        let done = wanted(&message);
        heard.push(message);
        if done {
            break;
        }
    }
    heard
}

#[test]
fn the_daemon_tells_systemd_it_is_ready_alive_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut daemon = Daemon::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_lemur")),
        None,
        &[],
        &[
            ("NOTIFY_SOCKET", path.as_os_str()),
            // 200 ms: a ping every 100 ms.
            ("WATCHDOG_USEC", "200000".as_ref()),
        ],
    );

    // The daemon reported where it listens; READY came with it, naming the same address,
    // and the API answers at once.
    let heard = listen_until(&socket, Duration::from_secs(5), |m| m.contains("READY=1"));
    let ready = heard.last().expect("no notification at all");
    assert_eq!(
        ready,
        &format!("READY=1\nSTATUS=serving on {}", daemon.base),
        "heard: {heard:?}"
    );
    assert_eq!(daemon.get("/api/1/healthcheck", None).status, 200);

    // Watchdog pings keep coming while it serves.
    let started = Instant::now();
    let mut pings = 0;
    while pings < 5 {
        let heard = listen_until(&socket, Duration::from_secs(5), |m| m == "WATCHDOG=1");
        assert_eq!(
            heard.last().map(String::as_str),
            Some("WATCHDOG=1"),
            "heard: {heard:?}"
        );
        pings += 1;
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "5 pings at a 100 ms period took {:?}",
        started.elapsed()
    );

    // SIGTERM: STOPPING before the process exits cleanly.
    daemon.stop();
    let heard = listen_until(&socket, Duration::from_secs(5), |m| {
        m.contains("STOPPING=1")
    });
    assert!(
        heard
            .iter()
            .any(|m| m == "STOPPING=1\nSTATUS=stopping: finishing requests in flight"),
        "heard: {heard:?}"
    );
}

#[test]
fn a_daemon_that_cannot_start_tells_systemd_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lemur"))
        .args(["--config", "/nonexistent/lemur.toml", "start"])
        .env("NOTIFY_SOCKET", &path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let heard = listen_until(&socket, Duration::from_secs(5), |m| {
        m.starts_with("STATUS=failed: ")
    });
    let failed = heard.last().expect("no notification at all");
    assert!(
        failed.starts_with("STATUS=failed: ") && failed.contains("/nonexistent/lemur.toml"),
        "heard: {heard:?}"
    );
    assert!(!failed.contains("READY=1"));
}

/// Every unit in `systemd/`.
const UNITS: [&str; 4] = [
    "lemur.service",
    "lemur-entropy.service",
    "lemur-frontend.path",
    "lemur-frontend-reload.service",
];

/// The repository's `systemd/` directory.
fn units_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../systemd")
}

/// The daemon's units as the appliance installs them, in a root of the test's own: the host's
/// own units (what they depend on), ours, nginx, systemctl, and `/usr/bin/lemur` starting the binary under
/// test.
fn installed_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|dir| Path::new(dir).join("sysinit.target").exists())
        .expect("systemd's own units (Debian package systemd)");
    let copied = std::process::Command::new("cp")
        .args(["-a", &format!("{host_units}/."), units.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
    assert!(
        units.join("nginx.service").exists(),
        "nginx.service is not installed (Debian package nginx): the drop-in is verified against it"
    );
    for unit in UNITS {
        std::fs::copy(units_dir().join(unit), units.join(unit)).unwrap();
    }
    let drop_in = root.path().join("etc/systemd/system/nginx.service.d");
    std::fs::create_dir_all(&drop_in).unwrap();
    std::fs::copy(
        units_dir().join("nginx.service.d/lemur.conf"),
        drop_in.join("lemur.conf"),
    )
    .unwrap();
    let sbin = root.path().join("usr/sbin");
    std::fs::create_dir_all(&sbin).unwrap();
    std::fs::copy("/usr/sbin/nginx", sbin.join("nginx")).unwrap();
    let bin = root.path().join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/usr/bin/systemctl", bin.join("systemctl")).unwrap();
    let launcher = bin.join("lemur");
    std::fs::write(
        &launcher,
        format!("#!/bin/sh\nexec {} \"$@\"\n", env!("CARGO_BIN_EXE_lemur")),
    )
    .unwrap();
    std::fs::set_permissions(
        &launcher,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    root
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let root = installed_root();
    let output = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .args(UNITS)
        .arg("nginx.service")
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify: {report}");
    // Warnings (unknown keys, bad values) do not fail the command: any output is a finding.
    assert!(report.trim().is_empty(), "systemd-analyze verify: {report}");
}

#[test]
fn the_units_expose_at_most_1_5_to_systemd_analyze_security() {
    for unit in UNITS.iter().filter(|unit| unit.ends_with(".service")) {
        let output = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=15"])
            .arg(units_dir().join(unit))
            .output()
            .expect("systemd-analyze (Debian package systemd)");
        let report = String::from_utf8_lossy(&output.stdout);
        let overall = report
            .lines()
            .find(|line| line.contains("Overall exposure level"))
            .unwrap_or_default()
            .to_owned();
        println!("{overall}");
        assert!(
            output.status.success(),
            "{unit} exposes more than 1.5:\n{report}"
        );
    }
}

#[test]
fn the_entropy_check_the_daemon_waits_for_reads_the_daemons_configuration() {
    let daemon = Daemon::start(Path::new(env!("CARGO_BIN_EXE_lemur")), None);
    let output = daemon
        .command()
        .args(["check", "entropy"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The kernel's source and the token's, each tested.
    assert!(printed.contains("[ok  ] os "), "{printed}");
    assert!(printed.contains("[ok  ] hsm "), "{printed}");
    assert!(printed.trim_end().ends_with("healthy"), "{printed}");
}

/// systemd may stop the daemon the moment it reports ready: the signal handlers are in place
/// before the ready line, so the stop is clean, never the default action's kill.
#[test]
fn a_stop_the_moment_the_daemon_is_ready_is_clean() {
    let mut daemon = Daemon::start(Path::new(env!("CARGO_BIN_EXE_lemur")), None);
    daemon.stop();
    for _ in 0..4 {
        daemon.restart();
    }
}
