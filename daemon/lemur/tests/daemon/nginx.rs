//! The bundled nginx configuration (`nginx/lemur.conf`), run by Debian's nginx as an
//! unprivileged process on loopback ports in front of the real daemon on its unix socket, with
//! a certificate the daemon's own HSM CA issued: the API and the UI through it, its headers,
//! redirects and limits, and testssl.sh's verdict on its TLS.

use crate::support::{Response, curl};
use lemur_testkit::daemon::Daemon;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The front end's name (RFC 6761's reserved `.test`), resolved to loopback by curl.
const FRONT_NAME: &str = "lemur.test";

/// The unprivileged user nginx runs as when the tests run as root.
const NOBODY: u32 = 65534;

/// Debian's nginx with the bundled configuration in front of a daemon on a unix socket.
pub(crate) struct Front {
    pub(crate) daemon: Daemon,
    nginx: Child,
    dir: tempfile::TempDir,
    /// The HTTPS and plain HTTP ports.
    pub(crate) https: u16,
    http: u16,
    /// The daemon's root CA, which issued nginx's certificate.
    ca: PathBuf,
    /// An admin token, obtained through nginx.
    token: String,
}

impl Front {
    /// nginx serving a stand-in for the web UI (one page, one asset).
    fn start() -> Self {
        Self::start_serving(None)
    }

    /// nginx serving the web UI built in `web` (its `dist`), or the stand-in.
    pub(crate) fn start_serving(web: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let root = lemur_testkit::is_root();
        // nginx runs as nobody when the tests run as root: it may read what it serves, and
        // reach the socket through its directory's group, as www-data does on the appliance.
        chmod(path, 0o755);
        let sockets = path.join("run");
        std::fs::create_dir(&sockets).unwrap();
        chmod(&sockets, 0o2750);
        if root {
            chown(&sockets, None, Some(NOBODY));
        }
        let socket = sockets.join("lemur.sock");
        // At debug level, so the log secret scan reads everything the daemon can say.
        let mut daemon = Daemon::start_with_env(
            Path::new(env!("CARGO_BIN_EXE_lemur")),
            None,
            &[
                "--listen".as_ref(),
                format!("unix:{}", socket.display()).as_ref(),
            ],
            &[("LEMUR_LOG", "debug".as_ref())],
        );
        // The appliance's CA, then the daemon told to keep nginx's certificate current from it:
        // it issues one before it reports ready.
        let ca = path.join("ca.pem");
        appliance_root(&daemon, &socket, &ca);
        let tls = path.join("frontend");
        let config = std::fs::read_to_string(daemon.config_path()).unwrap();
        std::fs::write(
            daemon.config_path(),
            format!(
                "{}\n[frontend]\nauthority = \"appliance\"\nnames = [\"{FRONT_NAME}\", \"127.0.0.1\"]\n\
                 certificate = \"{chain}\"\nprivate_key = \"{key}\"\n",
                config.replace("trusted_proxies = []", "trusted_proxies = [\"unix\"]"),
                chain = tls.join("chain.pem").display(),
                key = tls.join("key.pem").display(),
            ),
        )
        .unwrap();
        daemon.restart();
        let mode = std::fs::metadata(&socket).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o660,
            "the socket is for its owner and its directory's group"
        );
        assert_eq!(crate::support::mode_of(&tls.join("key.pem")), 0o600);
        let web_root = path.join("web");
        match web {
            Some(built) => {
                let copied = Command::new("cp")
                    .arg("-r")
                    .arg(built)
                    .arg(&web_root)
                    .status()
                    .unwrap();
                assert!(copied.success(), "copying {}", built.display());
                let readable = Command::new("chmod")
                    .args(["-R", "a+rX"])
                    .arg(&web_root)
                    .status()
                    .unwrap();
                assert!(readable.success());
            }
            None => {
                std::fs::create_dir_all(web_root.join("assets")).unwrap();
                std::fs::write(
                    web_root.join("index.html"),
                    "<!doctype html><title>Lemur-HSM</title>",
                )
                .unwrap();
                std::fs::write(
                    web_root.join("assets/app-1a2b3c.js"),
                    "console.log('lemur');",
                )
                .unwrap();
            }
        }
        let web = web_root;
        for dir in ["logs", "temp"] {
            std::fs::create_dir(path.join(dir)).unwrap();
        }
        if root {
            for owned in ["logs", "temp"] {
                chown(&path.join(owned), Some(NOBODY), Some(NOBODY));
            }
        }
        hand_to_nginx(&tls);

        let main = path.join("nginx.conf");
        std::fs::write(
            &main,
            format!(
                "daemon off;\npid {dir}/logs/nginx.pid;\nerror_log {dir}/logs/error.log notice;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  include /etc/nginx/mime.types;\n  access_log {dir}/logs/access.log;\n\
                 client_body_temp_path {dir}/temp/body;\n  proxy_temp_path {dir}/temp/proxy;\n\
                 fastcgi_temp_path {dir}/temp/fastcgi;\n  uwsgi_temp_path {dir}/temp/uwsgi;\n\
                 scgi_temp_path {dir}/temp/scgi;\n  include {dir}/lemur.conf;\n}}\n",
                dir = path.display()
            ),
        )
        .unwrap();
        let nginx = |test: bool| {
            let mut command = if root {
                let mut command = Command::new("setpriv");
                command.args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--inh-caps=-all",
                    "nginx",
                ]);
                command
            } else {
                Command::new("nginx")
            };
            command.arg("-c").arg(&main).arg("-p").arg(path);
            if test {
                command.arg("-t");
            }
            command
        };
        // Ports found free may be taken by another test before nginx binds them: nginx then
        // exits, and it is started again on other ports.
        let (child, https, http) = (0..5)
            .find_map(|_| {
                let (https, http) = (lemur_testkit::free_port(), lemur_testkit::free_port());
                std::fs::write(
                    path.join("lemur.conf"),
                    templated(&socket, &tls, &web, https, http),
                )
                .unwrap();
                let checked = nginx(true).output().expect("nginx (Debian package nginx)");
                assert!(
                    checked.status.success(),
                    "nginx -t: {}",
                    String::from_utf8_lossy(&checked.stderr)
                );
                let mut child = nginx(false).spawn().unwrap();
                let deadline = Instant::now() + Duration::from_secs(20);
                while std::net::TcpStream::connect(("127.0.0.1", https)).is_err() {
                    if child.try_wait().unwrap().is_some() {
                        return None;
                    }
                    assert!(Instant::now() < deadline, "nginx did not listen");
                    std::thread::park_timeout(Duration::from_millis(50));
                }
                Some((child, https, http))
            })
            .expect("nginx could not bind free ports in 5 attempts");
        let mut front = Self {
            daemon,
            nginx: child,
            dir,
            https,
            http,
            ca,
            token: String::new(),
        };
        let login = front.post(
            "/api/1/auth/login",
            &json!({ "username": "lemur", "password": front.daemon.admin_password }),
            false,
        );
        assert_eq!(login.status, 200, "{}", login.body);
        front.token = login.json()["token"].as_str().unwrap().to_owned();
        front
    }

    /// A request through nginx over HTTPS, the daemon's CA trusted; the last argument is the
    /// path.
    fn https(&self, arguments: &[&str]) -> Response {
        let (path, options) = arguments.split_last().unwrap();
        let url = format!("https://{FRONT_NAME}:{}{path}", self.https);
        let resolve = format!("{FRONT_NAME}:{}:127.0.0.1", self.https);
        let mut all = vec!["--cacert", self.ca.to_str().unwrap(), "--resolve", &resolve];
        all.extend_from_slice(options);
        all.push(&url);
        curl(&all)
    }

    /// A JSON POST through nginx, with the admin's token when `authorized`.
    fn post(&self, path: &str, body: &Value, authorized: bool) -> Response {
        let body = body.to_string();
        let arguments = [
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            &body,
            path,
        ];
        if authorized {
            self.authorized(&arguments)
        } else {
            self.https(&arguments)
        }
    }

    fn authorized(&self, arguments: &[&str]) -> Response {
        let bearer = format!("Authorization: Bearer {}", self.token);
        let mut all = vec!["-H", bearer.as_str()];
        all.extend_from_slice(arguments);
        self.https(&all)
    }

    /// Makes the daemon an appliance's as far as backups go: root's backup service on a socket
    /// in the front's directory, whose path this returns (nothing listens yet).
    pub(crate) fn with_backup_service(&mut self) -> PathBuf {
        let socket = self.dir.path().join("backup.sock");
        let config = std::fs::read_to_string(self.daemon.config_path()).unwrap();
        std::fs::write(
            self.daemon.config_path(),
            format!(
                "{config}\n[backups]\nsocket = {:?}\n",
                socket.display().to_string()
            ),
        )
        .unwrap();
        self.daemon.restart();
        socket
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }
}

impl Front {
    /// The directory the daemon writes nginx's certificate and key to.
    fn tls(&self) -> PathBuf {
        self.dir.path().join("frontend")
    }

    /// The serial of the certificate nginx serves now.
    fn served_serial(&self) -> String {
        let handshake = Command::new("openssl")
            .args(["s_client", "-servername", FRONT_NAME, "-connect"])
            .arg(format!("127.0.0.1:{}", self.https))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        serial_of(&String::from_utf8_lossy(&handshake.stdout))
    }

    /// Tells nginx to reload, as `systemd/lemur-frontend.path` has systemd do when the chain
    /// file changes.
    fn reload_nginx(&self) {
        hand_to_nginx(&self.tls());
        let status = Command::new("kill")
            .args(["-HUP", &self.nginx.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// The serial (hex) of the first certificate in `text`.
fn serial_of(text: &str) -> String {
    leaf(text).0
}

/// The serial (hex), subject alternative names and notAfter of the first certificate in `text`.
fn leaf(text: &str) -> (String, Vec<String>, i64) {
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text.as_bytes()[start..]).unwrap();
    let certificate = pem.parse_x509().unwrap();
    let names = certificate
        .subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => (*dns).to_owned(),
                    x509_parser::extensions::GeneralName::IPAddress([a, b, c, d]) => {
                        std::net::Ipv4Addr::new(*a, *b, *c, *d).to_string()
                    }
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    (
        certificate.raw_serial_as_string(),
        names,
        certificate.validity().not_after.timestamp(),
    )
}

impl Drop for Front {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (SIGKILL would leave them running).
        let _ = Command::new("kill")
            .args(["-TERM", &self.nginx.id().to_string()])
            .status();
        let _ = self.nginx.wait();
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

fn chown(path: &Path, user: Option<u32>, group: Option<u32>) {
    std::os::unix::fs::chown(path, user, group).unwrap();
}

/// `nginx/lemur.conf` with the appliance's paths and ports replaced by the test's; each one
/// must be found, so the test follows the file.
fn templated(socket: &Path, tls: &Path, web: &Path, https: u16, http: u16) -> String {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../nginx/lemur.conf"),
    )
    .unwrap();
    let replacements = [
        (
            "unix:/run/lemur/lemur.sock".to_owned(),
            format!("unix:{}", socket.display()),
        ),
        (
            "/var/lib/lemur/frontend".to_owned(),
            tls.display().to_string(),
        ),
        (
            "/usr/share/lemur-hsm/web".to_owned(),
            web.display().to_string(),
        ),
        (
            "listen 80 default_server;".to_owned(),
            format!("listen 127.0.0.1:{http} default_server;"),
        ),
        (
            "listen 443 ssl http2 default_server;".to_owned(),
            format!("listen 127.0.0.1:{https} ssl http2 default_server;"),
        ),
        // Loopback only: the test machine may have no IPv6.
        ("listen [::]:80 default_server;".to_owned(), String::new()),
        (
            "listen [::]:443 ssl http2 default_server;".to_owned(),
            String::new(),
        ),
    ];
    let mut text = shipped;
    for (from, to) in replacements {
        assert!(
            text.contains(&from),
            "nginx/lemur.conf no longer has {from:?}"
        );
        text = text.replace(&from, &to);
    }
    text
}

/// Creates the appliance's root authority through the daemon's socket and writes its
/// certificate to `ca`.
fn appliance_root(daemon: &Daemon, socket: &Path, ca: &Path) {
    let socket = socket.to_str().unwrap();
    let call = |path: &str, token: Option<&str>, body: Value| {
        let url = format!("http://lemur{path}");
        let bearer = token.map(|t| format!("Authorization: Bearer {t}"));
        let body = body.to_string();
        let mut arguments = vec!["--unix-socket", socket, "-X", "POST"];
        if let Some(bearer) = &bearer {
            arguments.extend(["-H", bearer.as_str()]);
        }
        arguments.extend([
            "-H",
            "Content-Type: application/json",
            "--data",
            &body,
            &url,
        ]);
        let response = curl(&arguments);
        assert_eq!(response.status, 200, "POST {path}: {}", response.body);
        response.json()
    };
    let login = call(
        "/api/1/auth/login",
        None,
        json!({ "username": "lemur", "password": daemon.admin_password }),
    );
    let root = call(
        "/api/1/authorities",
        login["token"].as_str(),
        json!({
            "name": "appliance", "owner": "pki@example.com", "commonName": "Appliance Root",
            "type": "root", "keyType": "ECCPRIME256V1", "validityYears": 5,
            "crlUrl": format!("http://{FRONT_NAME}/crl/appliance.crl"),
        }),
    );
    std::fs::write(ca, root["authorityCertificate"]["body"].as_str().unwrap()).unwrap();
}

/// Lets the test's unprivileged nginx read the certificate and key the daemon wrote (0600, its
/// own): on the appliance nginx's master process runs as root and reads them as they are.
fn hand_to_nginx(tls: &Path) {
    if lemur_testkit::is_root() {
        for file in ["", "chain.pem", "key.pem"] {
            chown(&tls.join(file), Some(NOBODY), Some(NOBODY));
        }
    }
}

#[test]
fn the_bundled_nginx_fronts_the_daemon_with_its_headers_and_limits() {
    let mut front = Front::start();

    // Plain HTTP only redirects, keeping the path and query.
    let redirect = curl(&[&format!(
        "http://127.0.0.1:{}/certificates?page=2",
        front.http
    )]);
    assert_eq!(redirect.status, 301);
    assert_eq!(
        redirect.header("location"),
        Some("https://127.0.0.1/certificates?page=2")
    );

    // The API through nginx: an authenticated call works, and the daemon saw the client's own
    // address (a failed login is audited with it), not the socket.
    let me = front.authorized(&["/api/1/auth/me"]);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["username"], "lemur");
    let failed = front.post(
        "/api/1/auth/login",
        &json!({ "username": "lemur", "password": "not the password" }),
        false,
    );
    assert_eq!(failed.status, 401, "{}", failed.body);
    let audited = crate::support::sqlite_query(
        &front.daemon,
        "SELECT source_address FROM logs WHERE log_type = 'login_failed' ORDER BY id DESC LIMIT 1",
    );
    assert_eq!(audited.trim(), "127.0.0.1");

    // Every response carries the security headers and no version banner, errors included.
    for response in [&me, &failed, &front.https(&["/"])] {
        for (name, value) in [
            ("strict-transport-security", "max-age=63072000"),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
        ] {
            assert_eq!(response.header(name), Some(value), "{name}");
        }
        let csp = response
            .header("content-security-policy")
            .unwrap_or_default();
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert!(response.header("permissions-policy").is_some());
        assert_eq!(response.header("server"), Some("nginx"));
        assert_eq!(response.header("x-xss-protection"), None);
    }

    // The UI: its files, any other path is the application's, hashed assets cached for long.
    let index = front.https(&["/certificates/42"]);
    assert_eq!(index.status, 200);
    assert!(index.body.contains("<title>Lemur-HSM</title>"));
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    let asset = front.https(&["/assets/app-1a2b3c.js"]);
    assert_eq!(asset.status, 200);
    assert_eq!(asset.header("cache-control"), Some("max-age=31536000"));

    // Metrics reach a scraper on this machine (nginx allows loopback, the daemon the address
    // nginx passes on), with the requests above counted.
    let metrics = front.https(&["/metrics"]);
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert!(
        metrics.body.contains(
            "lemur_http_requests_total{route=\"/api/1/auth/me\",method=\"GET\",status=\"200\"} 1"
        ),
        "{}",
        metrics.body
    );

    // The CRL over plain HTTP (the certificate names it), and nothing else.
    let crl = curl(&[&format!(
        "http://127.0.0.1:{}/crl/appliance.crl",
        front.http
    )]);
    assert_eq!(crl.status, 200, "{}", crl.body);
    assert_eq!(crl.header("content-type"), Some("application/pkix-crl"));
    assert_eq!(
        curl(&[
            "-X",
            "POST",
            &format!("http://127.0.0.1:{}/crl/appliance.crl", front.http)
        ])
        .status,
        403
    );

    // A body over the limit stops at nginx.
    let big = front.dir.path().join("big.json");
    std::fs::write(&big, "x".repeat(2 * 1024 * 1024)).unwrap();
    let too_big = front.authorized(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &format!("@{}", big.display()),
        "/api/1/certificates/upload",
    ]);
    assert_eq!(too_big.status, 413);

    // Sign-in attempts are rate limited per address: a burst past the allowance gets 429s.
    let mut limited = 0;
    for _ in 0..20 {
        let attempt = front.post(
            "/api/1/auth/login",
            &json!({ "username": "nobody", "password": "x" }),
            false,
        );
        // nginx's refusal, not the daemon's own throttle (which answers JSON).
        if attempt.status == 429 && attempt.body.contains("<center>nginx</center>") {
            limited += 1;
        }
    }
    assert!(limited >= 5, "nginx limited {limited} of 20 rapid logins");

    // TLS 1.1 is refused; 1.2 and 1.3 are spoken.
    // The client's security level is lowered so that a refusal of TLS 1.1 is the server's, not
    // OpenSSL 3's own.
    for (version, accepted) in [("-tls1_1", false), ("-tls1_2", true), ("-tls1_3", true)] {
        let handshake = Command::new("openssl")
            .args([
                "s_client",
                version,
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
                "-connect",
            ])
            .arg(format!("127.0.0.1:{}", front.https))
            .arg("-CAfile")
            .arg(&front.ca)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&handshake.stdout);
        let spoken =
            !text.contains("Cipher is (NONE)") && text.contains("Verify return code: 0 (ok)");
        assert_eq!(spoken, accepted, "{version}: {text}");
    }

    let log = front.error_log();
    println!("{log}");
    assert!(
        !["[emerg]", "[alert]", "[crit]"]
            .iter()
            .any(|level| log.contains(level)),
        "{log}"
    );

    // The daemon stopped (a restart, an upgrade): the API and the CRLs are an outage, 503
    // with Retry-After and the daemon's JSON error shape, with the security headers still on.
    front.daemon.stop();
    let outage = front.authorized(&["/api/1/auth/me"]);
    assert_eq!(outage.status, 503, "{}", outage.body);
    assert_eq!(outage.header("retry-after"), Some("5"));
    assert_eq!(outage.header("content-type"), Some("application/json"));
    assert_eq!(
        outage.json()["code"],
        "service_unavailable",
        "{}",
        outage.body
    );
    assert_eq!(outage.header("x-frame-options"), Some("DENY"));
    let crl = curl(&[&format!(
        "http://127.0.0.1:{}/crl/appliance.crl",
        front.http
    )]);
    assert_eq!(crl.status, 503, "{}", crl.body);
    assert_eq!(crl.header("retry-after"), Some("5"));
    // Nothing else carries Retry-After: the UI is served as before.
    let index = front.https(&["/"]);
    assert_eq!(index.status, 200);
    assert_eq!(index.header("retry-after"), None);
}

/// The daemon keeps nginx's certificate: a current one stays, one from another authority or
/// with other names is replaced (audited as the system's issuance), and nginx,
/// reloaded as the path unit has systemd do, serves the new one.
#[test]
fn the_daemon_keeps_the_front_ends_certificate_current() {
    let mut front = Front::start();
    let chain = front.tls().join("chain.pem");
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    let first = read(&chain);
    assert_eq!(front.served_serial(), serial_of(&first));
    let (_, names, not_after) = leaf(&first);
    assert_eq!(names, [FRONT_NAME, "127.0.0.1"]);
    #[allow(clippy::disallowed_methods)] // compared with the certificate's real dates
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((not_after - now - 90 * 86_400).abs() < 3_600, "{not_after}");

    front.daemon.restart();
    assert_eq!(read(&chain), first, "a current certificate is kept");

    // A certificate from another authority, put in place by hand (one near its end is
    // replaced too: `frontend::tests`).
    let other = front.post(
        "/api/1/authorities",
        &json!({
            "name": "elsewhere", "owner": "pki@example.com", "commonName": "Elsewhere Root",
            "type": "root", "keyType": "ECCPRIME256V1", "validityYears": 1,
        }),
        true,
    );
    assert_eq!(other.status, 200, "{}", other.body);
    let old = front.post(
        "/api/1/certificates",
        &json!({
            "owner": "pki@example.com", "commonName": FRONT_NAME, "authority": { "name": "elsewhere" },
            "keyType": "ECCPRIME256V1",
            "extensions": { "subAltNames": { "names": [
                { "nameType": "DNSName", "value": FRONT_NAME },
                { "nameType": "IPAddress", "value": "127.0.0.1" },
            ] } },
        }),
        true,
    );
    assert_eq!(old.status, 200, "{}", old.body);
    let old = old.json();
    let key = front.authorized(&[&format!("/api/1/certificates/{}/key", old["id"])]);
    std::fs::write(&chain, old["body"].as_str().unwrap()).unwrap();
    std::fs::write(
        front.tls().join("key.pem"),
        key.json()["key"].as_str().unwrap(),
    )
    .unwrap();
    front.daemon.restart();
    let renewed = read(&chain);
    assert_ne!(
        serial_of(&renewed),
        serial_of(old["body"].as_str().unwrap())
    );
    assert!(leaf(&renewed).2 > now + 80 * 86_400);

    // Another name wanted.
    let config = read(&front.daemon.config_path());
    std::fs::write(
        front.daemon.config_path(),
        config.replace(
            &format!("names = [\"{FRONT_NAME}\", "),
            &format!("names = [\"{FRONT_NAME}\", \"www.{FRONT_NAME}\", "),
        ),
    )
    .unwrap();
    front.daemon.restart();
    let newest = read(&chain);
    assert_eq!(
        leaf(&newest).1,
        [FRONT_NAME, &format!("www.{FRONT_NAME}"), "127.0.0.1"]
    );
    assert_eq!(crate::support::mode_of(&front.tls().join("key.pem")), 0o600);

    // Revoked: replaced, and the revoked one is marked replaced in the inventory.
    let current = crate::support::sqlite_query(
        &front.daemon,
        &format!(
            "SELECT id FROM certificates WHERE serial_hex = '{}'",
            serial_of(&newest)
                .replace(':', "")
                .to_uppercase()
                .trim_start_matches('0')
        ),
    );
    let current = current.trim();
    assert!(
        !current.is_empty(),
        "the certificate in place is in the inventory"
    );
    let revoke = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args(["-H", &format!("Authorization: Bearer {}", front.token)])
        .args([
            "-H",
            "Content-Type: application/json",
            "--data",
            "{\"crlReason\":\"keyCompromise\"}",
        ])
        .args(["--cacert", front.ca.to_str().unwrap()])
        .args([
            "--resolve",
            &format!("{FRONT_NAME}:{}:127.0.0.1", front.https),
        ])
        .arg(format!(
            "https://{FRONT_NAME}:{}/api/1/certificates/{current}/revoke",
            front.https
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&revoke.stdout), "200");
    front.daemon.restart();
    let after_revocation = read(&chain);
    assert_ne!(serial_of(&after_revocation), serial_of(&newest));
    let replaced = crate::support::sqlite_query(
        &front.daemon,
        &format!(
            "SELECT count(*) FROM certificate_replacements WHERE replaced_certificate_id = {current}"
        ),
    );
    assert_eq!(replaced.trim(), "1");

    // A key that does not fit the certificate (a crash between the two writes): replaced.
    std::fs::write(
        front.tls().join("key.pem"),
        key.json()["key"].as_str().unwrap(),
    )
    .unwrap();
    front.daemon.restart();
    let newest = read(&chain);
    assert_ne!(serial_of(&newest), serial_of(&after_revocation));

    let issued_by_system = crate::support::sqlite_query(
        &front.daemon,
        "SELECT count(*) FROM logs WHERE log_type = 'create_cert' AND user_id IS NULL",
    );
    assert_eq!(issued_by_system.trim(), "5");

    front.reload_nginx();
    let deadline = Instant::now() + Duration::from_secs(10);
    while front.served_serial() != serial_of(&newest) {
        assert!(
            Instant::now() < deadline,
            "nginx still serves the old certificate"
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

#[test]
fn testssl_finds_no_high_or_critical_issue_in_the_bundled_nginx() {
    let front = Front::start();
    let report = front.dir.path().join("testssl.json");
    let started = Instant::now();
    let output = Command::new("testssl")
        .args([
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--severity",
            "HIGH",
        ])
        .arg("--add-ca")
        .arg(&front.ca)
        .arg("--jsonfile")
        .arg(&report)
        .args(["--ip", "127.0.0.1"])
        .arg(format!("https://{FRONT_NAME}:{}", front.https))
        .output()
        .expect("testssl (Debian package testssl.sh)");
    let findings: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_else(|error| {
            panic!(
                "testssl wrote no report ({error}): {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        }))
        .unwrap();
    // The JSON holds only findings of HIGH severity and above (--severity), plus testssl's own
    // scan notes.
    let serious: Vec<&Value> = findings
        .iter()
        .filter(|finding| matches!(finding["severity"].as_str(), Some("HIGH" | "CRITICAL")))
        .collect();
    println!(
        "testssl.sh: {} findings of HIGH or CRITICAL severity, in {:.0?}",
        serious.len(),
        started.elapsed()
    );
    assert!(
        serious.is_empty(),
        "testssl.sh found: {}",
        serde_json::to_string_pretty(&serious).unwrap()
    );
    // It really tested this server: protocols and the certificate's chain were examined.
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("TLS 1.3") && text.contains("Chain of trust"),
        "{text}"
    );
}

/// The base64 lines of a PEM document: what a leaked key or certificate would show in a log.
fn pem_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|line| !line.starts_with("-----") && line.len() >= 32)
        .map(str::to_owned)
        .collect()
}

#[test]
fn no_log_holds_a_secret_after_a_full_scenario() {
    let front = Front::start();
    let state = front.daemon.state_dir();
    let read = |path: PathBuf| std::fs::read_to_string(path).unwrap().trim().to_owned();
    let mut secrets = vec![
        ("the HSM PIN", read(state.join("secrets/hsm-pin"))),
        ("the HSM SO PIN", read(state.join("secrets/hsm-so-pin"))),
        ("the token secret", read(state.join("secrets/token-secret"))),
        ("the admin password", front.daemon.admin_password.clone()),
        ("the admin's token", front.token.clone()),
    ];
    for line in pem_lines(&read(front.dir.path().join("frontend/key.pem"))) {
        secrets.push(("the front end's private key", line));
    }

    // Through nginx: a failed login with a password-like secret, an import with its key, the
    // key viewed, an issuance with a key made in the HSM, a password change.
    let wrong = "Wr0ng-but-secret-Passw0rd!";
    secrets.push(("a mistyped password", wrong.to_owned()));
    let failed = front.post(
        "/api/1/auth/login",
        &json!({ "username": "lemur", "password": wrong }),
        false,
    );
    assert_eq!(failed.status, 401);
    let imported_key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["imported.example.com".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "imported.example.com");
    let imported = params.self_signed(&imported_key).unwrap();
    for line in pem_lines(&imported_key.serialize_pem()) {
        secrets.push(("an imported private key", line));
    }
    let upload = front.post(
        "/api/1/certificates/upload",
        &json!({
            "owner": "pki@example.com", "body": imported.pem(),
            "privateKey": imported_key.serialize_pem(),
        }),
        true,
    );
    assert_eq!(upload.status, 200, "{}", upload.body);
    let viewed = front.authorized(&[&format!("/api/1/certificates/{}/key", upload.json()["id"])]);
    assert_eq!(viewed.status, 200, "{}", viewed.body);
    let authorities = front.authorized(&["/api/1/authorities"]);
    let authority = authorities.json()["items"][0]["id"].clone();
    let issued = front.post(
        "/api/1/certificates",
        &json!({
            "owner": "pki@example.com", "commonName": "app.example.com",
            "authority": { "id": authority }, "keyType": "ECCPRIME256V1",
        }),
        true,
    );
    assert_eq!(issued.status, 200, "{}", issued.body);
    let issued_key =
        front.authorized(&[&format!("/api/1/certificates/{}/key", issued.json()["id"])]);
    for line in pem_lines(issued_key.json()["key"].as_str().unwrap()) {
        secrets.push(("an issued private key", line));
    }
    let new_password = front.dir.path().join("new-password");
    std::fs::write(&new_password, "An0ther-Secret-Passw0rd").unwrap();
    secrets.push(("a new password", "An0ther-Secret-Passw0rd".to_owned()));
    let reset = front
        .daemon
        .command()
        .args(["reset_password", "-u", "lemur", "-p"])
        .arg(&new_password)
        .output()
        .unwrap();
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let reset_output = format!(
        "{}{}",
        String::from_utf8_lossy(&reset.stdout),
        String::from_utf8_lossy(&reset.stderr)
    );

    // Every log: the daemon's (debug level), nginx's access and error logs, the CLI's output,
    // and the audit log in the database.
    let nginx_logs = ["access.log", "error.log"].map(|name| {
        std::fs::read_to_string(front.dir.path().join("logs").join(name)).unwrap_or_default()
    });
    let audit = crate::support::sqlite_query(&front.daemon, "SELECT * FROM logs");
    let logs = [
        ("the daemon's log", front.daemon.log()),
        ("nginx's access log", nginx_logs[0].clone()),
        ("nginx's error log", nginx_logs[1].clone()),
        ("lemur reset_password", reset_output),
        ("the audit log", audit),
    ];
    // Each log recorded the scenario, so an empty or unread log cannot pass for a clean one.
    for (index, expected) in [
        (0, "POST /api/1/certificates/upload 200"),
        (1, "\"POST /api/1/auth/login HTTP/2.0\" 401"),
        (3, "lemur"),
        (4, "key_view"),
    ] {
        assert!(
            logs[index].1.contains(expected),
            "{}: {}",
            logs[index].0,
            logs[index].1
        );
    }
    for (log, text) in &logs {
        for (what, secret) in &secrets {
            assert!(!secret.is_empty());
            assert!(!text.contains(secret.as_str()), "{log} holds {what}");
        }
    }
}

/// A backup that fails after part of the archive went out reaches the client through nginx as a
/// broken transfer, over HTTP/2 and HTTP/1.1, never as a whole-looking file: nginx passes on the
/// daemon's cut-off rather than end the answer as if it were complete.
#[test]
fn a_backup_that_breaks_off_stays_broken_through_nginx() {
    let mut front = Front::start();
    let socket = front.with_backup_service();
    let service = crate::support::breaking_backup_service(&socket, 2);
    let resolve = format!("{FRONT_NAME}:{}:127.0.0.1", front.https);
    let url = format!(
        "https://{FRONT_NAME}:{}/api/1/appliance/backup",
        front.https
    );
    let bearer = format!("Authorization: Bearer {}", front.token);
    let body = json!({ "passphrase": "a backup passphrase through nginx" }).to_string();
    for version in ["--http2", "--http1.1"] {
        let saved = front.dir.path().join("backup.lemur");
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "30", version])
            .arg("--cacert")
            .arg(&front.ca)
            .args(["--resolve", &resolve, "-H", &bearer])
            .args(["-H", "Content-Type: application/json", "--data", &body])
            .arg("--output")
            .arg(&saved)
            .arg(&url)
            .output()
            .expect("curl (Debian package curl)");
        let said = String::from_utf8_lossy(&output.stderr);
        // 18: a transfer closed with data outstanding; 92: an HTTP/2 stream reset.
        assert!(
            matches!(output.status.code(), Some(18 | 92)),
            "{version}: curl says {:?}: {said}",
            output.status.code()
        );
        let got = std::fs::metadata(&saved).map_or(0, |file| file.len());
        assert!(
            got > 0,
            "{version}: the archive's beginning never came through"
        );
        std::fs::remove_file(&saved).unwrap();
    }
    service.join().unwrap();
}
