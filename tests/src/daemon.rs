//! A real `lemur` daemon for one test: `lemur dev` in a temporary state directory on a free
//! loopback port, with a typed-enough HTTP client. Stopped with SIGTERM on drop.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;

/// A running daemon.
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The admin user's password.
    pub admin_password: String,
    state: TempDir,
    agent: ureq::Agent,
    binary: PathBuf,
    arguments: Vec<std::ffi::OsString>,
    environment: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    log: Arc<Mutex<String>>,
}

/// A response: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub body: Value,
    /// Raw body.
    pub text: String,
    /// Response headers, lower-cased names.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// The header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Daemon {
    /// Starts `binary dev` on SQLite, or on `database_url`.
    pub fn start(binary: &Path, database_url: Option<&str>) -> Self {
        Self::start_with(binary, database_url, &[])
    }

    /// Like [`Daemon::start`], with more `lemur dev` arguments.
    pub fn start_with(
        binary: &Path,
        database_url: Option<&str>,
        extra: &[&std::ffi::OsStr],
    ) -> Self {
        Self::start_with_env(binary, database_url, extra, &[])
    }

    /// Like [`Daemon::start_with`], with variables added to the daemon's environment (kept
    /// across restarts).
    pub fn start_with_env(
        binary: &Path,
        database_url: Option<&str>,
        extra: &[&std::ffi::OsStr],
        environment: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        // Plain HTTP on TCP unless the test brought its own certificate (a unix socket is plain
        // anyway): the dev CA's HTTPS is for people, tried by `start_with_dev_ca`.
        let chosen = extra
            .iter()
            .any(|a| *a == "--tls-certificate" || a.to_string_lossy().starts_with("unix:"));
        let plain: &[&std::ffi::OsStr] = if chosen { &[] } else { &["--http".as_ref()] };
        Self::launch(binary, database_url, &[extra, plain].concat(), environment)
    }

    /// `lemur dev` as a person runs it: HTTPS with a certificate from its dev CA (its root in
    /// `dev-ca.pem` in the state directory); `extra` arguments added. [`Daemon::get`] and the
    /// like do not trust that CA: use curl with `--cacert`.
    pub fn start_with_dev_ca(binary: &Path, extra: &[&std::ffi::OsStr]) -> Self {
        Self::launch(binary, None, extra, &[])
    }

    fn launch(
        binary: &Path,
        database_url: Option<&str>,
        extra: &[&std::ffi::OsStr],
        environment: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        let environment: Vec<_> = environment
            .iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        let state = tempfile::Builder::new()
            .prefix("lemur-daemon-")
            .tempdir()
            .expect("state directory");
        let admin_password = format!("test-{}", super::random_hex(12));
        super::write_secret_file(&state.path().join("admin-password"), &admin_password);
        let mut arguments: Vec<std::ffi::OsString> = extra.iter().map(|a| a.into()).collect();
        if let Some(url) = database_url {
            arguments.extend(["--database-url".into(), url.into()]);
        }
        let log = Arc::default();
        let (child, base) = spawn(binary, state.path(), &arguments, &environment, &log);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Self {
            child,
            base,
            admin_password,
            state,
            agent,
            binary: binary.to_owned(),
            arguments,
            environment,
            log,
        }
    }

    /// Stops the daemon and starts it again on the same state directory (and configuration,
    /// which a test may have edited in between).
    pub fn restart(&mut self) {
        self.stop();
        self.respawn();
    }

    /// Starts the daemon again after [`Daemon::stop`], on what is in its state directory then
    /// (a test may have replaced it).
    pub fn start_again(&mut self) {
        self.respawn();
    }

    /// Starts the daemon again, as first started, on the same state.
    fn respawn(&mut self) {
        let (child, base) = spawn(
            &self.binary,
            self.state.path(),
            &self.arguments,
            &self.environment,
            &self.log,
        );
        self.child = child;
        self.base = base;
    }

    /// A `lemur` command on this daemon's configuration alone, as an operator runs one beside
    /// it: the module's environment comes from the configuration, not from this process.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env_remove("SOFTHSM2_CONF")
            .env("LEMUR_CONF", self.config_path())
            .env("LEMUR_LOG", "warn");
        command
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon logged so far (its warnings and errors also go to this process's stderr).
    pub fn log(&self) -> String {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// The log once it holds `needle` (it reaches this process through a pipe, a little after
    /// the answer it goes with), or as it is after 5 s.
    pub fn log_with(&self, needle: &str) -> String {
        let mut log = self.log();
        for _ in 0..100 {
            if log.contains(needle) {
                break;
            }
            std::thread::park_timeout(Duration::from_millis(50));
            log = self.log();
        }
        log
    }

    /// Whether `needle` occurs anywhere in the daemon's writable memory (heap, anonymous
    /// mappings, stacks), read through `/proc/PID/mem`. The daemon is not dumpable, so this needs
    /// root (`CAP_SYS_PTRACE`); `None` when this process may not read it.
    pub fn memory_holds(&self, needle: &[u8]) -> Option<bool> {
        use std::io::{Read, Seek, SeekFrom};
        let pid = self.child.id();
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .unwrap_or_else(|e| panic!("the daemon is not running: {e}"));
        let mut memory = match std::fs::File::open(format!("/proc/{pid}/mem")) {
            Ok(memory) => memory,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return None,
            Err(e) => panic!("/proc/{pid}/mem: {e}"),
        };
        let mut found = false;
        for line in maps.lines() {
            let mut fields = line.split_whitespace();
            let (Some(range), Some(permissions)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Some((start, end)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
            else {
                continue;
            };
            if !permissions.starts_with("rw") || line.contains("[vvar") {
                continue;
            }
            let mut region = vec![0u8; usize::try_from(end - start).ok()?];
            if memory.seek(SeekFrom::Start(start)).is_err() {
                continue;
            }
            match memory.read_exact(&mut region) {
                Ok(()) => found |= region.windows(needle.len()).any(|w| w == needle),
                Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => return None,
                Err(_) => continue,
            }
        }
        Some(found)
    }

    /// The configuration file `lemur dev` wrote.
    pub fn config_path(&self) -> PathBuf {
        self.state_dir().join("lemur.toml")
    }

    /// The daemon's state directory (`lemur dev --state-dir`).
    pub fn state_dir(&self) -> PathBuf {
        self.state.path().join("lemur")
    }

    /// Logs in as the admin and returns the token.
    pub fn admin_token(&self) -> String {
        let reply = self.post(
            "/api/1/auth/login",
            None,
            &serde_json::json!({ "username": "lemur", "password": self.admin_password }),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["token"].as_str().expect("token").to_owned()
    }

    fn finish(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        Self::try_finish(response).expect("HTTP request to the daemon")
    }

    /// The reply, or the transport error when there was none (the daemon is gone).
    fn try_finish(
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, ureq::Error> {
        let mut response = response?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            body,
            text,
            headers,
        })
    }

    /// POST JSON to `path` for a binary answer (a download), on a connection of its own: the
    /// status and the bytes, or why there are none whole (a download that broke off, before or
    /// after its status).
    pub fn post_for_bytes(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Result<(u16, Vec<u8>), String> {
        // A connection of its own: a download that broke off leaves none to reuse.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Bearer {token}"))
            .send(body.to_string())
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok((status, bytes))
    }

    /// GET `path` with an optional bearer token.
    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.get_with(path, token, &[])
    }

    /// GET `path` with an optional bearer token and more headers.
    pub fn get_with(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Self::finish(request.call())
    }

    /// POST JSON to `path` with an optional bearer token.
    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.post_with(path, token, body, &[])
    }

    /// POST JSON to `path` with an optional bearer token and more headers.
    pub fn post_with(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        Self::send(self.post_request(path, headers), token, body)
    }

    /// A POST of `path` with `headers`.
    fn post_request(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        headers.iter().fold(
            self.agent.post(format!("{}{path}", self.base)),
            |request, (name, value)| request.header(*name, *value),
        )
    }

    /// POST `body` as `application/octet-stream` to `path` with an optional bearer token.
    pub fn post_bytes(&self, path: &str, token: Option<&str>, body: &[u8]) -> Reply {
        let mut request = self
            .post_request(path, &[])
            .header("Content-Type", "application/octet-stream");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Self::finish(request.send(body))
    }

    /// POST a `multipart/form-data` form of `fields` (name and bytes, in this order) to `path`
    /// with a bearer token.
    pub fn post_form(&self, path: &str, token: &str, fields: &[(&str, &[u8])]) -> Reply {
        const BOUNDARY: &str = "lemur-test-form-7d3f9c";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let request = self
            .post_request(path, &[])
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .header("Authorization", format!("Bearer {token}"));
        Self::finish(request.send(&body[..]))
    }

    /// PUT JSON to `path` with an optional bearer token.
    pub fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        Self::send(self.agent.put(format!("{}{path}", self.base)), token, body)
    }

    /// DELETE `path` with an optional bearer token, and a JSON body if given (Lemur's
    /// cancellation may send one).
    pub fn delete(&self, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
        let request = self.agent.delete(format!("{}{path}", self.base));
        match body {
            Some(body) => Self::send(request.force_send_body(), token, body),
            None => {
                let request = match token {
                    Some(token) => request.header("Authorization", format!("Bearer {token}")),
                    None => request,
                };
                Self::finish(request.call())
            }
        }
    }

    fn send(
        request: ureq::RequestBuilder<ureq::typestate::WithBody>,
        token: Option<&str>,
        body: &Value,
    ) -> Reply {
        Self::try_send(request, token, body).expect("HTTP request to the daemon")
    }

    fn try_send(
        request: ureq::RequestBuilder<ureq::typestate::WithBody>,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Reply, ureq::Error> {
        let mut request = request.header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Self::try_finish(request.send(body.to_string()))
    }

    /// POST JSON like [`Daemon::post_with`], but `None` instead of a panic when no answer
    /// comes (the daemon died under the request).
    pub fn try_post_with(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Option<Reply> {
        Self::try_send(self.post_request(path, headers), token, body).ok()
    }

    /// POST JSON like [`Daemon::try_post_with`], hanging up when no answer came within
    /// `patience`, as an impatient client or a broken network loses an answer.
    pub fn post_giving_up_after(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
        headers: &[(&str, &str)],
        patience: Duration,
    ) -> Option<Reply> {
        let request = self
            .post_request(path, headers)
            .config()
            .timeout_global(Some(patience))
            .build();
        Self::try_send(request, token, body).ok()
    }

    /// Kills the daemon with SIGKILL, as a power cut or an OOM kill would, and starts it again
    /// on the same state.
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.respawn();
    }

    /// Stops the daemon with SIGTERM and waits for it; panics, with its log, unless it exits 0
    /// within 30 s (a daemon waits for the RSA key its stock is making, at the lowest priority).
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..600 {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "the daemon exited with {status} on SIGTERM; its log:\n{}",
                    self.log()
                );
                return;
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
        let threads = threads_of(&pid);
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "the daemon was still running 30 s after SIGTERM; its threads:\n{threads}\nits log:\n{}",
            self.log()
        );
    }
}

/// Where each thread of process `pid` is, from gdb when it is installed: what a daemon that
/// does not stop is waiting for.
fn threads_of(pid: &str) -> String {
    Command::new("gdb")
        .args(["-p", pid, "-batch", "-ex", "thread apply all bt"])
        .stdin(Stdio::null())
        .output()
        .map(|out| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .unwrap_or_else(|error| format!("(gdb: {error})"))
}

/// Runs `binary dev` on the state under `state` (`lemur/`, and `admin-password` beside it) with
/// `arguments` and `environment`; returns it and its base URL once it reports where it listens.
fn spawn(
    binary: &Path,
    state: &Path,
    arguments: &[std::ffi::OsString],
    environment: &[(std::ffi::OsString, std::ffi::OsString)],
    log: &Arc<Mutex<String>>,
) -> (Child, String) {
    // A free loopback port unless the test chose where to listen.
    let listen: &[&str] = if arguments.iter().any(|a| a == "--listen") {
        &[]
    } else {
        &["--listen", "127.0.0.1:0"]
    };
    let mut child = Command::new(binary)
        .arg("dev")
        .arg("--state-dir")
        .arg(state.join("lemur"))
        .args(listen)
        .arg("--admin-password-file")
        .arg(state.join("admin-password"))
        .args(arguments)
        .env_remove("SOFTHSM2_CONF")
        .env("LEMUR_LOG", "info")
        .envs(environment.iter().map(|(name, value)| (name, value)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lemur dev");
    let stderr = child.stderr.take().expect("daemon stderr");
    let log = Arc::clone(log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Warnings and errors show with a failing test; the access log stays in `log()`.
            if !line.contains("[INFO]") {
                eprintln!("{line}");
            }
            if let Ok(mut log) = log.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    let stdout = child.stdout.take().expect("daemon stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("lemur: listening on ") {
                let _ = tx.send(address.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the daemon did not report ready within 120 s");
    (child, base)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // A test already failing keeps its own message: a second panic would abort them all.
            if std::thread::panicking() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            } else {
                self.stop();
            }
        }
    }
}
