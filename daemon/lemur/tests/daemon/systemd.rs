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
    assert!(daemon.stop(), "the daemon did not stop cleanly");
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
