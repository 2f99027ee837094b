//! Logging: the access log as separate journal fields when the daemon's stderr is the journal
//! and as lines on stderr otherwise; and the shipped rsyslog drop-in (`rsyslog/lemur-remote.conf`)
//! carrying the journal to a remote server over TLS, through the server's outage, an rsyslog
//! restart and servers the CA pin must refuse. The real systemd-journald (its socket paths are
//! fixed, so root only: `LEMUR_TEST_AS_ROOT=1`) and Debian's rsyslogd, as the appliance runs them:
//! daemon → journald → rsyslog → TLS → a second rsyslogd on loopback acting as the server.

use lemur_testkit::daemon::Daemon;
use serde_json::Value;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory journald's sockets are in (clients, the daemon's logger too, look there).
const JOURNAL_SOCKETS: &str = "/run/systemd/journal";
/// Where journald keeps a journal that is not persistent.
const JOURNAL_FILES: &str = "/run/log/journal";
/// The name the remote's certificate carries, and the drop-in's permitted peer in the tests.
const REMOTE_NAME: &str = "logs.lemur.test";

/// Whether `test` can run here: it starts systemd-journald, which needs root and a machine whose
/// journald is not systemd's own (a container). Skips with the reason otherwise, unless
/// `LEMUR_TEST_AS_ROOT` says it must run.
fn may_run(test: &str) -> bool {
    let root = lemur_testkit::is_root();
    let reason = if !root {
        "it starts systemd-journald, which needs root"
    } else if Path::new("/run/systemd/system").exists() {
        "systemd runs this machine, and its journald is not the test's to replace"
    } else {
        return true;
    };
    assert!(
        std::env::var_os("LEMUR_TEST_AS_ROOT").is_none(),
        "LEMUR_TEST_AS_ROOT is set, but {test} cannot run: {reason}"
    );
    eprintln!("skipped {test}: {reason}");
    false
}

/// Polls `probe` until it gives a value; after `within`, fails with `what` and the last state
/// `probe` reported.
fn wait_for<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(state) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; {state}")
            }
            Err(_) => std::thread::park_timeout(Duration::from_millis(50)),
        }
    }
}

/// Stops `child` with SIGTERM, as systemd stops a service, and waits for it (SIGKILL after 15 s).
fn terminate(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::park_timeout(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// An appended log file for a child's stdout or stderr.
fn log_file(path: &Path) -> Stdio {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .into()
}

/// systemd-journald of the test's own. One can run at a time, so the tests that need one take
/// turns on a lock file; dropped (the test passed or failed), it stops journald and removes its
/// sockets and journal.
struct Journald {
    child: Child,
    /// Held until journald is gone.
    _turn: File,
}

impl Journald {
    fn start() -> Self {
        let turn = File::create(std::env::temp_dir().join("lemur-test-journald.lock")).unwrap();
        turn.lock().unwrap();
        let socket = Path::new(JOURNAL_SOCKETS).join("socket");
        if socket.exists() {
            assert!(
                UnixDatagram::unbound().unwrap().connect(&socket).is_err(),
                "a journald this test did not start listens on {}",
                socket.display()
            );
            // Left by a test killed before it could clean up.
            remove_journal();
        }
        let child = Command::new("/usr/lib/systemd/systemd-journald")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("systemd-journald (Debian package systemd)");
        let journald = Self { child, _turn: turn };
        wait_for(Duration::from_secs(10), "journald listening", || {
            UnixDatagram::unbound()
                .unwrap()
                .connect(&socket)
                .map_err(|e| format!("{}: {e}", socket.display()))
        });
        journald
    }

    /// The entries matching `matches` (journalctl's `FIELD=value`), oldest first.
    fn entries(&self, matches: &[&str]) -> Vec<Value> {
        let output = Command::new("journalctl")
            .args(["--directory", JOURNAL_FILES, "--output=json", "--no-pager"])
            .args(matches)
            .output()
            .expect("journalctl");
        assert!(
            output.status.success(),
            "journalctl: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

fn remove_journal() {
    let _ = std::fs::remove_dir_all(JOURNAL_SOCKETS);
    let _ = std::fs::remove_dir_all(JOURNAL_FILES);
}

impl Drop for Journald {
    fn drop(&mut self) {
        terminate(&mut self.child);
        remove_journal();
    }
}

/// `lemur dev`, started as systemd starts a service whose stderr goes to the journal: stderr a
/// stream to journald that began with the stream header (identifier, unit, priority, level
/// prefix, forwarding), and `JOURNAL_STREAM` that stream's device and inode. The testkit pipes
/// the daemon's stderr, so a script in between opens the stream: systemd-cat, through
/// libsystemd's `sd_journal_stream_fd`, which writes the header as systemd does; the script sets
/// `JOURNAL_STREAM`, which systemd-cat does not, and gives stdout back to the testkit (the
/// daemon says there where it listens). Every step is an exec: the daemon keeps the script's pid.
fn daemon_under_journal(dir: &Path) -> Daemon {
    let script = dir.join("lemur-under-journal");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec 3>&1\nexec systemd-cat --identifier=lemur /bin/sh -c '\
             exec 1>&3 3>&-\n\
             JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2)\n\
             export JOURNAL_STREAM\n\
             exec \"$0\" \"$@\"' '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_lemur")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, PermissionsExt::from_mode(0o755)).unwrap();
    Daemon::start_with_env(&script, None, &[], &[])
}

/// A field of a journal entry as text (empty when absent).
fn field<'a>(entry: &'a Value, name: &str) -> &'a str {
    entry[name].as_str().unwrap_or_default()
}

/// Under systemd the access log arrives as one journal entry per request with each datum in a
/// field of its own, the request id the one the client got back; without the journal, or with a
/// `JOURNAL_STREAM` that is not this process's stderr, it is lines on stderr.
#[test]
fn access_log_is_journal_fields_under_systemd_and_stderr_lines_otherwise() {
    if !may_run("access_log_is_journal_fields_under_systemd_and_stderr_lines_otherwise") {
        return;
    }
    let journald = Journald::start();
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon_under_journal(dir.path());
    let token = daemon.admin_token();
    let me = daemon.get("/api/1/auth/me", Some(&token));
    assert_eq!(me.status, 200, "{}", me.text);
    let refused = daemon.get("/api/1/certificates", None);
    assert_eq!(refused.status, 401, "{}", refused.text);
    let unknown = daemon.get("/api/1/no-such-route", Some(&token));
    assert_eq!(unknown.status, 404, "{}", unknown.text);

    let pid = format!("_PID={}", daemon.pid());
    let expected = [
        (&me, "/api/1/auth/me", "200", "user:lemur"),
        (&refused, "/api/1/certificates", "401", "anonymous"),
        (&unknown, "unmatched", "404", "anonymous"),
    ];
    let ids: Vec<&str> = expected
        .iter()
        .map(|(reply, ..)| reply.header("x-request-id").expect("X-Request-Id"))
        .collect();
    let access = wait_for(Duration::from_secs(10), "the access entries", || {
        let entries = journald.entries(&[&pid, "TARGET=lemur::access"]);
        match ids
            .iter()
            .all(|id| entries.iter().any(|e| field(e, "REQUEST_ID") == *id))
        {
            true => Ok(entries),
            false => Err(format!("{} access entries: {entries:?}", entries.len())),
        }
    });
    for ((_, route, status, subject), id) in expected.iter().zip(&ids) {
        let entry = access
            .iter()
            .find(|e| field(e, "REQUEST_ID") == *id)
            .unwrap();
        let fields = [
            "ROUTE",
            "STATUS",
            "SUBJECT",
            "METHOD",
            "SYSLOG_IDENTIFIER",
            "PRIORITY",
            "_TRANSPORT",
        ]
        .map(|name| field(entry, name));
        // PRIORITY: the logger maps log's info to the journal's notice. _TRANSPORT: sent as a
        // structured entry, not written as a line on the stderr stream.
        let wanted = [*route, *status, *subject, "GET", "lemur", "5", "journal"];
        let show = serde_json::to_string_pretty(entry).unwrap();
        assert_eq!(fields, wanted, "{show}");
        assert!(field(entry, "DURATION_MS").parse::<f64>().is_ok(), "{show}");
        assert!(
            field(entry, "MESSAGE").contains(&format!("[{id}]")),
            "{show}"
        );
    }
    let on_stream = journald.entries(&[&pid, "_TRANSPORT=stdout"]);
    assert!(
        !on_stream
            .iter()
            .any(|e| ids.iter().any(|id| field(e, "MESSAGE").contains(id))),
        "the access log was written to the stderr stream as well: {on_stream:?}"
    );

    // Not connected: no JOURNAL_STREAM (the testkit's daemon, stderr a pipe), and one inherited
    // from a parent whose stderr was the journal (the daemon above), which the logger must not
    // take for its own. Both log lines on stderr although journald runs.
    let lemur = Path::new(env!("CARGO_BIN_EXE_lemur"));
    let stream = std::fs::metadata(format!("/proc/{}/fd/2", daemon.pid())).unwrap();
    let inherited = format!("{}:{}", stream.dev(), stream.ino());
    for (case, stderr_daemon) in [
        ("without JOURNAL_STREAM", Daemon::start(lemur, None)),
        (
            "with an inherited JOURNAL_STREAM",
            Daemon::start_with_env(lemur, None, &[], &[("JOURNAL_STREAM", inherited.as_ref())]),
        ),
    ] {
        let reply = stderr_daemon.get("/api/1/healthcheck", None);
        let id = reply
            .header("x-request-id")
            .expect("X-Request-Id")
            .to_owned();
        let line = wait_for(Duration::from_secs(10), case, || {
            let log = stderr_daemon.log();
            log.lines()
                .find(|line| line.ends_with(&format!("[{id}]")))
                .map(str::to_owned)
                .ok_or(log)
        });
        assert!(
            line.starts_with("lemur[INFO]: GET /api/1/healthcheck 200 "),
            "{case}: {line}"
        );
        let pid = format!("_PID={}", stderr_daemon.pid());
        let journaled = journald.entries(&[&pid, "TARGET=lemur::access"]);
        assert!(journaled.is_empty(), "{case}: {journaled:?}");
    }
}

/// A test CA in `dir` (`ca.pem`, `ca.key`), named `name`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let subject = format!("/CN={name}");
    let rest = ["-out", "ca.pem", "-subj", &subject, "-days", "2"];
    lemur_testkit::openssl_p256_request(dir, "-x509", "ca.key", &rest);
    dir.join("ca.pem")
}

/// A server certificate for `host` from the CA in `dir`: `host.pem` and `host.key` there.
fn make_server_certificate(dir: &Path, host: &str) -> (PathBuf, PathBuf) {
    let (csr, extensions, pem) = (
        format!("{host}.csr"),
        format!("{host}.ext"),
        format!("{host}.pem"),
    );
    lemur_testkit::openssl_p256_request(
        dir,
        "-new",
        &format!("{host}.key"),
        &["-out", &csr, "-subj", &format!("/CN={host}")],
    );
    std::fs::write(
        dir.join(&extensions),
        format!(
            "subjectAltName=DNS:{host}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
        ),
    )
    .unwrap();
    lemur_testkit::openssl_ca_sign(dir, &csr, "2", &extensions, &pem);
    (dir.join(pem), dir.join(format!("{host}.key")))
}

/// The remote syslog server: Debian's rsyslogd taking RFC 5425 on a loopback port, writing each
/// frame to `received.log` as it came. It does not parse octet counting, so a frame's length
/// stays in front of the message for the test to check (our messages hold no newline).
struct Remote {
    dir: PathBuf,
    port: u16,
    ca: PathBuf,
    child: Option<Child>,
}

impl Remote {
    fn new(dir: &Path, ca: &Path) -> Self {
        std::fs::create_dir_all(dir.join("work")).unwrap();
        Self {
            dir: dir.to_owned(),
            port: lemur_testkit::free_port(),
            ca: ca.to_owned(),
            child: None,
        }
    }

    /// Starts it with `certificate` and `key`, and waits until it listens.
    fn serve(&mut self, certificate: &Path, key: &Path) {
        let config = self.dir.join("remote.conf");
        std::fs::write(
            &config,
            format!(
                "global(workDirectory=\"{dir}/work\" DefaultNetstreamDriver=\"gtls\"\n\
                 \x20 DefaultNetstreamDriverCAFile=\"{ca}\"\n\
                 \x20 DefaultNetstreamDriverCertFile=\"{certificate}\"\n\
                 \x20 DefaultNetstreamDriverKeyFile=\"{key}\")\n\
                 module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" \
                 StreamDriver.AuthMode=\"anon\")\n\
                 template(name=\"asReceived\" type=\"string\" string=\"%rawmsg%\\n\")\n\
                 ruleset(name=\"received\") {{\n\
                 \x20 action(type=\"omfile\" file=\"{dir}/received.log\" template=\"asReceived\")\n}}\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"received\" \
                 SupportOctetCountedFraming=\"off\")\n",
                dir = self.dir.display(),
                ca = self.ca.display(),
                certificate = certificate.display(),
                key = key.display(),
                port = self.port,
            ),
        )
        .unwrap();
        self.child = Some(rsyslogd(&config, &self.dir.join("remote.pid"), &self.log()));
        let address = format!("127.0.0.1:{}", self.port);
        wait_for(Duration::from_secs(10), "the remote listening", || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "the remote rsyslogd exited ({status}): {}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
            std::net::TcpStream::connect(&address).map_err(|e| format!("{address}: {e}"))
        });
    }

    /// Kills it, as a crash would: no goodbye to the connected client.
    fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("remote.pid"));
    }

    fn log(&self) -> PathBuf {
        self.dir.join("remote.log")
    }

    /// The frames received so far, in order.
    fn frames(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("received.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            terminate(child);
        }
    }
}

/// rsyslogd in the foreground on `config` alone (never /etc/rsyslog.conf), with its own pid file;
/// its own messages (errors included) go to `log`.
fn rsyslogd(config: &Path, pid_file: &Path, log: &Path) -> Child {
    Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(config)
        .arg("-i")
        .arg(pid_file)
        .stdin(Stdio::null())
        .stdout(log_file(log))
        .stderr(log_file(log))
        .spawn()
        .expect("rsyslogd (Debian packages rsyslog and rsyslog-gnutls)")
}

/// `rsyslog/lemur-remote.conf` with the values a site sets replaced by the test's; each must be
/// found, so the test follows the file.
fn drop_in(port: u16, ca: &Path) -> String {
    let mut text = std::fs::read_to_string(shipped_drop_in()).unwrap();
    let (port, ca) = (port.to_string(), ca.display().to_string());
    for (key, shipped, ours) in [
        ("target", "logs.example.net", "127.0.0.1"),
        ("port", "6514", &port),
        (
            "StreamDriverPermittedPeers",
            "logs.example.net",
            REMOTE_NAME,
        ),
        (
            "StreamDriver.CAFile",
            "/etc/rsyslog.d/lemur-remote-ca.pem",
            &ca,
        ),
        // Retrying every 30 s would make each test wait that long for the remote's return.
        ("action.resumeInterval", "30", "1"),
    ] {
        let from = format!(r#"{key}="{shipped}""#);
        assert_eq!(
            text.matches(&from).count(),
            1,
            "rsyslog/lemur-remote.conf no longer has {from} once"
        );
        text = text.replace(&from, &format!(r#"{key}="{ours}""#));
    }
    text
}

fn shipped_drop_in() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rsyslog/lemur-remote.conf")
}

/// The drop-in as installed: Debian's own rsyslog.conf, including it from rsyslog.d, passes
/// rsyslogd's configuration check (modules, parameters, no clash with Debian's inputs). Needs no
/// root, so it runs wherever rsyslog is installed.
#[test]
fn rsyslog_drop_in_passes_rsyslogds_check_beside_debians_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let included = dir.path().join("rsyslog.d");
    std::fs::create_dir(&included).unwrap();
    std::fs::copy(shipped_drop_in(), included.join("lemur-remote.conf")).unwrap();
    crate::support::rsyslog_accepts_debians_configuration_with(&format!(
        "$IncludeConfig {}/*.conf",
        included.display()
    ));
}

/// The appliance's rsyslogd: the shipped drop-in (templated), included from a main configuration
/// that sets the work directory as Debian's does (/var/spool/rsyslog there).
struct Local {
    dir: PathBuf,
    child: Option<Child>,
}

impl Local {
    fn start(dir: &Path, remote_port: u16, ca: &Path) -> Self {
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let drop_in_path = dir.join("lemur-remote.conf");
        std::fs::write(&drop_in_path, drop_in(remote_port, ca)).unwrap();
        std::fs::write(
            dir.join("rsyslog.conf"),
            format!(
                "global(workDirectory=\"{}/work\")\ninclude(file=\"{}\")\n",
                dir.display(),
                drop_in_path.display()
            ),
        )
        .unwrap();
        let mut local = Self {
            dir: dir.to_owned(),
            child: None,
        };
        local.restart();
        local
    }

    fn restart(&mut self) {
        self.stop();
        self.child = Some(rsyslogd(
            &self.dir.join("rsyslog.conf"),
            &self.dir.join("rsyslog.pid"),
            &self.dir.join("rsyslog.log"),
        ));
    }

    /// Stops it as systemd does (SIGTERM), so it saves its queue.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }

    /// What rsyslogd said about itself so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslog.log")).unwrap_or_default()
    }

    /// Waits until rsyslogd says `what` once more than in `before` (a log read earlier), running
    /// the check `meanwhile` at each look.
    fn wait_to_say(&self, what: &str, before: &str, meanwhile: impl Fn()) {
        let seen = before.matches(what).count();
        wait_for(
            Duration::from_secs(15),
            &format!("rsyslog saying {what:?}"),
            || {
                meanwhile();
                let log = self.log();
                (log.matches(what).count() > seen).then_some(()).ok_or(log)
            },
        );
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The chain as the appliance runs it: journald, the daemon logging to it, the remote with a
/// certificate from the pinned CA, and the local rsyslogd.
struct Chain {
    remote: Remote,
    local: Local,
    daemon: Daemon,
    /// The pinned CA's directory, with the remote's certificate and key.
    pki: PathBuf,
    _dir: tempfile::TempDir,
    /// Last: stopped after everything that logs to it.
    _journald: Journald,
}

impl Chain {
    /// Everything started; the remote serving unless `serving` is false.
    fn start(serving: bool) -> Self {
        let journald = Journald::start();
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let ca = make_ca(&pki, "Test log server CA");
        make_server_certificate(&pki, REMOTE_NAME);
        let remote = Remote::new(&dir.path().join("remote"), &ca);
        let local = Local::start(&dir.path().join("local"), remote.port, &ca);
        let daemon = daemon_under_journal(dir.path());
        let mut chain = Self {
            remote,
            local,
            daemon,
            pki,
            _dir: dir,
            _journald: journald,
        };
        if serving {
            chain.serve();
        }
        chain
    }

    /// Starts the remote with its certificate from the pinned CA.
    fn serve(&mut self) {
        let file = |extension| self.pki.join(format!("{REMOTE_NAME}.{extension}"));
        self.remote.serve(&file("pem"), &file("key"));
    }

    /// One access-log line per marker (`phase-N`, sent as the request id), in order.
    fn send(&self, phase: &str, numbers: std::ops::RangeInclusive<u32>) {
        for n in numbers {
            let id = format!("{phase}-{n}");
            let reply = self
                .daemon
                .get_with("/api/1/auth/me", None, &[("X-Request-Id", &id)]);
            assert_eq!(reply.status, 401, "{}", reply.text);
        }
    }

    /// Waits until the remote received every marker of `phase` in `wanted`; returns the numbers
    /// of all `phase`'s markers it received, in the order received.
    fn wait_for_all(&self, phase: &str, wanted: &[u32]) -> Vec<u32> {
        wait_for(
            Duration::from_secs(30),
            &format!("{phase} at the remote"),
            || {
                let received = markers(&self.remote.frames(), phase);
                let missing: Vec<_> = wanted.iter().filter(|n| !received.contains(n)).collect();
                match missing.is_empty() {
                    true => Ok(received),
                    false => Err(format!(
                        "missing {missing:?}; received {received:?}; rsyslog said:\n{}",
                        self.local.log()
                    )),
                }
            },
        )
    }

    /// The remote crashes and `phase` 1..=`n` is logged; returns once rsyslog has found the
    /// remote gone, the lines waiting in its queue.
    fn outage(&mut self, phase: &str, n: u32) {
        let log = self.local.log();
        self.remote.crash();
        self.send(phase, 1..=n);
        self.local
            .wait_to_say("cannot connect to 127.0.0.1", &log, || ());
    }
}

/// The marker numbers of `phase` in `frames`: the daemon logs the request id it was sent with its
/// own suffix, `[phase-N.xxxx-M]`.
fn markers(frames: &[String], phase: &str) -> Vec<u32> {
    let tag = format!("[{phase}-");
    frames
        .iter()
        .filter_map(|frame| {
            let (_, after) = frame.split_once(&tag)?;
            after.split_once('.')?.0.parse().ok()
        })
        .collect()
}

/// `received` without repeats (first arrival kept), and the numbers that came more than once.
fn first_arrivals(received: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut firsts = Vec::new();
    let mut repeated = Vec::new();
    for n in received {
        if firsts.contains(n) {
            repeated.push(*n);
        } else {
            firsts.push(*n);
        }
    }
    (firsts, repeated)
}

/// Checks a frame as RFC 5425 and RFC 5424 have it: `LENGTH SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME
/// PROCID MSGID STRUCTURED-DATA MSG`; returns the MSG.
fn check_frame(frame: &str, pid: u32) -> &str {
    let (length, message) = frame.split_once(' ').unwrap_or_default();
    // The length counts the template's final newline too, which ends the frame.
    assert_eq!(
        length.parse::<usize>().ok(),
        Some(message.len() + 1),
        "not octet-counted: {frame}"
    );
    let parts: Vec<&str> = message.splitn(8, ' ').collect();
    assert_eq!(parts.len(), 8, "{frame}");
    // User facility (the entry names none: imjournal's default), notice severity (the journal
    // logger's for log's info).
    assert_eq!(parts[0], "<13>1", "PRI and VERSION: {frame}");
    assert!(
        time::OffsetDateTime::parse(parts[1], &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "TIMESTAMP: {frame}"
    );
    assert!(!parts[2].is_empty() && parts[2] != "-", "HOSTNAME: {frame}");
    assert_eq!(parts[3], "lemur", "APP-NAME: {frame}");
    assert_eq!(parts[4], pid.to_string(), "PROCID: {frame}");
    assert_eq!(parts[5..7], ["-", "-"], "MSGID, STRUCTURED-DATA: {frame}");
    parts[7]
}

/// The remote gets the daemon's access log as RFC 5424 in RFC 5425 frames; it is down for a
/// while, and every line logged meanwhile arrives once it is back, in order.
#[test]
fn remote_syslog_receives_everything_logged_during_an_outage() {
    if !may_run("remote_syslog_receives_everything_logged_during_an_outage") {
        return;
    }
    let mut chain = Chain::start(true);
    chain.send("before", 1..=5);
    chain.wait_for_all("before", &[1, 2, 3, 4, 5]);
    let frames = chain.remote.frames();
    let first = frames.iter().find(|f| f.contains("[before-1.")).unwrap();
    let message = check_frame(first, chain.daemon.pid());
    assert!(message.starts_with("GET /api/1/auth/me 401 "), "{message}");

    const N: u32 = 200;
    chain.outage("outage", N);
    assert!(markers(&chain.remote.frames(), "outage").is_empty());
    chain.serve();
    let all: Vec<u32> = (1..=N).collect();
    let received = chain.wait_for_all("outage", &all);
    let (firsts, repeated) = first_arrivals(&received);
    assert_eq!(firsts, all, "out of order");
    if !repeated.is_empty() {
        eprintln!("arrived twice (delivery is at least once): {repeated:?}");
    }
}

/// rsyslog stopped and started again while the remote is down (the appliance restarts during an
/// outage) keeps what it had queued: saved in its work directory on the way down, sent once the
/// remote is back. All but the line rsyslog was sending when it stopped: rsyslog drops the batch
/// its action holds (rsyslog issue #2710), one line with the drop-in's batch size.
#[test]
fn remote_syslog_keeps_its_queue_across_an_rsyslog_restart() {
    if !may_run("remote_syslog_keeps_its_queue_across_an_rsyslog_restart") {
        return;
    }
    let mut chain = Chain::start(true);
    chain.send("before", 1..=1);
    chain.wait_for_all("before", &[1]);
    chain.outage("queued", 100);
    chain.local.stop();
    // What rsyslog had read of the journal waits in the queue, saved in its work directory; the
    // journal position it keeps is past those lines, so only the saved queue can bring them.
    // (How many it had read by now varies; it had read more than the line it was sending.)
    let work = chain.local.dir.join("work");
    let spool = std::fs::read(work.join("lemur-remote.00000001")).unwrap_or_default();
    let spool: Vec<String> = String::from_utf8_lossy(&spool)
        .lines()
        .map(Into::into)
        .collect();
    let (saved, _) = first_arrivals(&markers(&spool, "queued"));
    let files: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !saved.is_empty(),
        "rsyslog saved no queue on shutdown: its work directory has {files:?}; it said:\n{}",
        chain.local.log()
    );
    chain.local.restart();
    chain.send("queued", 101..=200);
    chain.serve();
    let received = chain.wait_for_all("queued", &(2..=200).collect::<Vec<_>>());
    let (firsts, repeated) = first_arrivals(&received);
    if firsts.len() < 200 {
        eprintln!("lost the line in flight when rsyslog stopped: queued-1");
    }
    let ahead: Vec<u32> = (0..firsts.len())
        .filter(|&i| firsts[i + 1..].iter().any(|later| *later < firsts[i]))
        .map(|i| firsts[i])
        .collect();
    if !ahead.is_empty() {
        eprintln!("arrived ahead of earlier lines across the restart: {ahead:?}");
    }
    if !repeated.is_empty() {
        eprintln!("arrived twice (delivery is at least once): {repeated:?}");
    }
}

/// The drop-in pins the server's CA and name: a server with a certificate from another CA, or
/// from the pinned CA for another name, gets nothing, not even the journal's first lines; the
/// right server then gets what was held back, so the silence was the pin's doing.
#[test]
fn remote_syslog_sends_nothing_to_a_server_the_pin_refuses() {
    if !may_run("remote_syslog_sends_nothing_to_a_server_the_pin_refuses") {
        return;
    }
    let mut chain = Chain::start(false);
    let other = chain.pki.join("other");
    make_ca(&other, "Another CA");
    let impostors = [
        (
            make_server_certificate(&other, REMOTE_NAME),
            "certificate invalid",
        ),
        (
            make_server_certificate(&chain.pki, "elsewhere.lemur.test"),
            "peer name not authorized",
        ),
    ];
    chain.send("held", 1..=3);
    for ((certificate, key), refusal) in impostors {
        let log = chain.local.log();
        chain.remote.serve(&certificate, &key);
        chain.local.wait_to_say(refusal, &log, || {
            let frames = chain.remote.frames();
            assert!(
                frames.is_empty(),
                "{} reached a server the pin refuses: {} frames, from {:?}",
                certificate.display(),
                frames.len(),
                frames.first()
            );
        });
        chain.remote.crash();
    }
    chain.serve();
    chain.wait_for_all("held", &[1, 2, 3]);
}
