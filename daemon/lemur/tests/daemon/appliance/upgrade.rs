//! Appliance upgrades: bundles made by the image's own `image/bundle.sh` and signed with a
//! release key of the test's own; the daemon receiving and checking them
//! (`POST /api/1/appliance/upgrade`), and root's installer (`lemur appliance upgrade`) writing
//! the slot not running and its boot entry, on a disk of plain files named as udev names
//! partitions. The boots themselves, boot counting and the fall-back are `image/test.sh`'s.

use super::{lemur, stderr, stdout};
use crate::support::scratch;
use lemur_testkit::daemon::Daemon;
use serde_json::Value;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

const OPTIONS: &str = "root=/dev/mapper/root ro rootfstype=erofs quiet console=ttyS0,115200";

/// A release key pair in `dir`: (private, public) PEM files.
fn release_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-out", private.to_str().unwrap()]));
    run(Command::new("openssl").args([
        "pkey",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]));
    (private, public)
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The members of a release: small stand-ins, distinct per version.
fn members(version: &str) -> [(&'static str, Vec<u8>); 4] {
    [
        (
            "root.img",
            format!("erofs of {version}").repeat(5000).into_bytes(),
        ),
        ("verity.img", format!("hash tree of {version}").into_bytes()),
        ("vmlinuz", format!("kernel of {version}").into_bytes()),
        ("initrd", format!("initrd of {version}").into_bytes()),
    ]
}

/// A bundle of `members` made by `image/bundle.sh`, signed with `key`.
fn bundle(dir: &Path, key: &Path, version: &str, members: &[(&str, Vec<u8>)]) -> PathBuf {
    let staged = dir.join(format!("members-{version}"));
    std::fs::create_dir_all(&staged).unwrap();
    for (name, bytes) in members {
        std::fs::write(staged.join(name), bytes).unwrap();
    }
    let out = dir.join(format!("lemur-hsm-{version}.upgrade"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../image/bundle.sh");
    run(Command::new(script)
        .args(["--key", key.to_str().unwrap()])
        .args(["--members", staged.to_str().unwrap()])
        .args(["--version", version, "--source", "0123abc"])
        .args(["--roothash", &"ab".repeat(32), "--options", OPTIONS])
        .arg(&out));
    out
}

/// The same bundle with one byte of `member`'s contents changed.
fn with_flipped_byte(path: &Path, member: &[u8]) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(member.len())
        .position(|window| window == member)
        .unwrap();
    bytes[at + member.len() / 2] ^= 0x01;
    bytes
}

#[test]
fn an_administrator_uploads_a_release_and_the_daemon_stages_it_only_once_checked() {
    let dir = scratch();
    let (key, public) = release_key(dir.path(), "release");
    let mut daemon = Daemon::start(Path::new(env!("CARGO_BIN_EXE_lemur")), None);
    let spool = daemon.state_dir().join("upgrade");
    let token = daemon.admin_token();
    let good = bundle(dir.path(), &key, "0.2.0", &members("0.2.0"));

    // Not an appliance: no [upgrades], so the daemon takes none.
    let refused = daemon.post_bytes("/api/1/appliance/upgrade", Some(&token), b"x");
    assert_eq!(refused.status, 409, "{}", refused.text);

    let config = std::fs::read_to_string(daemon.config_path()).unwrap();
    // As much as a bundle may be, so that the spool's free space is what refuses 2^61 bytes.
    let status_file = dir.path().join("status.json");
    let upgrades = format!(
        "{config}\n[upgrades]\nkey = {:?}\nspool = {:?}\nmax_bytes = 4611686018427387904\nstatus = {:?}\n",
        public.to_str().unwrap(),
        spool.to_str().unwrap(),
        status_file.to_str().unwrap()
    );
    std::fs::write(daemon.config_path(), upgrades).unwrap();
    daemon.restart();
    let token = daemon.admin_token();
    let upload = |bytes: &[u8]| daemon.post_bytes("/api/1/appliance/upgrade", Some(&token), bytes);

    let changed = with_flipped_byte(&good, b"kernel of 0.2.0");
    let refused = upload(&changed);
    assert_eq!(refused.status, 400, "{}", refused.text);
    let reason = refused.body["reasons"]["bundle"].as_str().unwrap();
    assert!(reason.contains("vmlinuz does not match"), "{reason}");
    let (other_key, _) = release_key(dir.path(), "other");
    let foreign = bundle(dir.path(), &other_key, "0.2.1", &members("0.2.1"));
    let refused = upload(&std::fs::read(&foreign).unwrap());
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(refused.text.contains("does not verify"), "{}", refused.text);
    let refused = upload(b"not a bundle");
    assert_eq!(refused.status, 400, "{}", refused.text);
    // What the client announces is refused before its body: too large for the settings (400),
    // or for the spool's file system (507, what to do said).
    let (status, answer) = announce(&daemon, &token, (1 << 62) + 1);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("upgrades.max_bytes"), "{answer}");
    let (status, answer) = announce(&daemon, &token, 1 << 61);
    assert_eq!(status, 507, "{answer}");
    assert!(
        answer.contains("insufficient_storage") && answer.contains("free space"),
        "{answer}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    assert!(leftovers.is_empty(), "refused uploads left {leftovers:?}");

    let bytes = std::fs::read(&good).unwrap();
    let staged = upload(&bytes);
    assert_eq!(staged.status, 202, "{}", staged.text);
    assert_eq!(staged.body["version"], "0.2.0");
    assert_eq!(staged.body["source"], "0123abc");
    assert_eq!(std::fs::read(spool.join("staged.upgrade")).unwrap(), bytes);
    assert!(
        daemon
            .log_with("staged the upgrade to 0.2.0")
            .contains("staged the upgrade to 0.2.0")
    );

    // One at a time: root has not installed the staged one yet.
    let busy = upload(&bytes);
    assert_eq!(busy.status, 409, "{}", busy.text);
    assert!(busy.text.contains("being installed"), "{}", busy.text);

    // What the API tells of it: staged, none taken up yet; then root's record, as its installer
    // writes it part way.
    let status = || daemon.get("/api/1/appliance/upgrade", Some(&token));
    let waiting = status();
    assert_eq!(waiting.status, 200, "{}", waiting.text);
    assert_eq!(waiting.body["staged"], true, "{}", waiting.text);
    assert_eq!(waiting.body["version"], env!("CARGO_PKG_VERSION"));
    assert!(waiting.body.get("last").is_none(), "{}", waiting.text);
    std::fs::write(
        &status_file,
        r#"{"state": "installing", "version": null, "from_version": "0.1.0", "slot": "b",
            "written": 1048576, "total": 4194304, "started_at": 1700000000,
            "updated_at": 1700000002, "error": null}"#,
    )
    .unwrap();
    let installing = status();
    assert_eq!(
        installing.body["last"]["state"], "installing",
        "{}",
        installing.text
    );
    assert_eq!(installing.body["last"]["written"], 1_048_576);
    assert_eq!(installing.body["last"]["startedAt"], "2023-11-14T22:13:20Z");
    std::fs::write(&status_file, "{").unwrap();
    let unreadable = status();
    assert_eq!(unreadable.status, 503, "{}", unreadable.text);
}

/// An upload that announces `length` bytes (Content-Length) and sends a few: its status and
/// answer, which come before any more of the body.
fn announce(daemon: &Daemon, token: &str, length: u64) -> (u16, String) {
    use std::io::{Read, Write};
    let address = daemon.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /api/1/appliance/upgrade HTTP/1.1\r\nHost: lemur\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\nthe start"
    )
    .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// A disk of plain files as udev names partitions, an ESP holding the entry of slot `a` as
/// the image ships it, and a kernel command line naming the running slot.
struct Disk {
    dir: tempfile::TempDir,
}

impl Disk {
    const PARTITIONS: [(&'static str, &'static str); 4] = [
        ("lemur-root-a", "2a6e3b7d-5c41-4f0a-9d2e-7b8c1a3f6e0a"),
        ("lemur-verity-a", "3b7f4c8e-6d52-4a1b-8e3f-8c9d2b4a7f0a"),
        ("lemur-root-b", "2a6e3b7d-5c41-4f0a-9d2e-7b8c1a3f6e0b"),
        ("lemur-verity-b", "3b7f4c8e-6d52-4a1b-8e3f-8c9d2b4a7f0b"),
    ];

    fn new() -> Self {
        let dir = scratch();
        for sub in [
            "dev",
            "disk/by-partlabel",
            "disk/by-partuuid",
            "esp/loader/entries",
            "esp/a",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        for (number, (label, uuid)) in Self::PARTITIONS.iter().enumerate() {
            let device = Self::partition(dir.path(), &format!("vda{}", number + 2));
            symlink(&device, dir.path().join("disk/by-partlabel").join(label)).unwrap();
            symlink(&device, dir.path().join("disk/by-partuuid").join(uuid)).unwrap();
        }
        // The running root: verity over slot a's partitions, on vda.
        std::fs::create_dir_all(dir.path().join("sys/block/dm-0/slaves/vda2")).unwrap();
        std::fs::create_dir_all(dir.path().join("sys/block/dm-0/slaves/vda3")).unwrap();
        std::fs::create_dir_all(dir.path().join("sys/block/dm-0/dm")).unwrap();
        std::fs::write(dir.path().join("sys/block/dm-0/dm/name"), "root\n").unwrap();
        std::fs::write(
            dir.path().join("esp/loader/entries/lemur-a.conf"),
            "title Lemur-HSM 0.1.0 (slot a)\nsort-key lemur-hsm\nversion 1\nlinux /a/vmlinuz\n",
        )
        .unwrap();
        Self { dir }
    }

    /// A partition device `name` (`vda4`) of 1 MiB, with its sysfs entry under its disk.
    fn partition(dir: &Path, name: &str) -> PathBuf {
        let device = dir.join("dev").join(name);
        std::fs::write(&device, vec![0u8; 1 << 20]).unwrap();
        let disk = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let node = dir.join("sys/devices/virtual/block").join(disk).join(name);
        std::fs::create_dir_all(&node).unwrap();
        std::fs::create_dir_all(dir.join("sys/class/block")).unwrap();
        symlink(&node, dir.join("sys/class/block").join(name)).unwrap();
        device
    }

    /// Makes udev's link for `label` point at a partition of another disk, `vdb`.
    fn label_on_another_disk(&self, label: &str) {
        let device = Self::partition(self.dir.path(), "vdb4");
        let link = self.path("disk/by-partlabel").join(label);
        std::fs::remove_file(&link).unwrap();
        symlink(&device, link).unwrap();
        let uuid = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
        symlink(&device, self.path("disk/by-partuuid").join(uuid)).unwrap();
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path("esp/loader/entries"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// `lemur appliance upgrade` with `bundle`, slot `running` running.
    fn install(&self, bundle: &Path, key: &Path, running: char) -> std::process::Output {
        let cmdline = self.path("cmdline");
        std::fs::write(
            &cmdline,
            format!("roothash=00 lemur.slot={running} quiet\n"),
        )
        .unwrap();
        let (esp, disks, marker) = (self.path("esp"), self.path("disk"), self.path("trial"));
        let (sys, status) = (self.path("sys"), self.path("status.json"));
        let paths = [bundle, key, &esp, &disks, &cmdline, &marker, &sys, &status]
            .map(|p| p.to_str().unwrap());
        let args = [
            "appliance",
            "upgrade",
            "--bundle",
            paths[0],
            "--key",
            paths[1],
            "--esp",
            paths[2],
            "--disks",
            paths[3],
            "--cmdline",
            paths[4],
            "--trial-marker",
            paths[5],
            "--sys",
            paths[6],
            "--status",
            paths[7],
        ];
        lemur(&args, &[])
    }

    /// The installer's status, for the daemon.
    fn status(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path("status.json")).unwrap()).unwrap()
    }

    /// Whether the partition's first bytes are `bytes`.
    fn holds(&self, device: &str, bytes: &[u8]) -> bool {
        std::fs::read(self.path(device)).unwrap().starts_with(bytes)
    }
}

#[test]
fn the_installer_writes_the_slot_not_running_and_boots_it_next_on_trial() {
    let keys = scratch();
    let (key, public) = release_key(keys.path(), "release");
    let disk = Disk::new();
    let v2 = members("0.2.0");
    let installed = disk.install(&bundle(keys.path(), &key, "0.2.0", &v2), &public, 'a');
    assert!(installed.status.success(), "{}", stderr(&installed));
    assert!(
        stdout(&installed).contains("into root slot b"),
        "{}",
        stdout(&installed)
    );
    assert!(disk.holds("dev/vda4", &v2[0].1) && disk.holds("dev/vda5", &v2[1].1));
    assert!(
        disk.holds("dev/vda2", &[0; 64]),
        "the running slot was written"
    );
    assert_eq!(std::fs::read(disk.path("esp/b/vmlinuz")).unwrap(), v2[2].1);
    assert_eq!(std::fs::read(disk.path("esp/b/initrd")).unwrap(), v2[3].1);
    assert_eq!(disk.entries(), ["lemur-a.conf", "lemur-b+3.conf"]);
    // The trial's marker, for `lemur appliance trial` at the next boots.
    assert_eq!(
        std::fs::read_to_string(disk.path("trial")).unwrap(),
        "b 0.2.0\n"
    );
    // The status the daemon serves: the whole bundle read and written, restarting into it.
    let status = disk.status();
    assert_eq!(status["state"], "restarting", "{status}");
    assert_eq!(status["version"], "0.2.0", "{status}");
    assert_eq!(status["slot"], "b", "{status}");
    assert_eq!(
        status["from_version"],
        env!("CARGO_PKG_VERSION"),
        "{status}"
    );
    assert!(status["total"].as_u64().unwrap() > 0, "{status}");
    assert_eq!(status["written"], status["total"], "{status}");
    assert_eq!(
        std::fs::metadata(disk.path("status.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    let entry = std::fs::read_to_string(disk.path("esp/loader/entries/lemur-b+3.conf")).unwrap();
    let expected = format!(
        "title Lemur-HSM 0.2.0 (slot b)\nsort-key lemur-hsm\nversion 2\nlinux /b/vmlinuz\n\
         initrd /b/initrd\noptions roothash={} \
         systemd.verity_root_data=PARTUUID=2a6e3b7d-5c41-4f0a-9d2e-7b8c1a3f6e0b \
         systemd.verity_root_hash=PARTUUID=3b7f4c8e-6d52-4a1b-8e3f-8c9d2b4a7f0b lemur.slot=b \
         {OPTIONS}\n",
        "ab".repeat(32)
    );
    assert_eq!(entry, expected);

    // Slot b booted well (systemd-bless-boot dropped its counter); the next release goes into
    // slot a, whose old entry goes, with a newer version than any.
    std::fs::rename(
        disk.path("esp/loader/entries/lemur-b+3.conf"),
        disk.path("esp/loader/entries/lemur-b.conf"),
    )
    .unwrap();
    let v3 = members("0.3.0");
    let installed = disk.install(&bundle(keys.path(), &key, "0.3.0", &v3), &public, 'b');
    assert!(installed.status.success(), "{}", stderr(&installed));
    assert_eq!(disk.entries(), ["lemur-a+3.conf", "lemur-b.conf"]);
    assert_eq!(
        std::fs::read_to_string(disk.path("trial")).unwrap(),
        "a 0.3.0\n"
    );
    let entry = std::fs::read_to_string(disk.path("esp/loader/entries/lemur-a+3.conf")).unwrap();
    assert!(
        entry.contains("\nversion 3\n") && entry.contains("lemur.slot=a"),
        "{entry}"
    );
    assert!(disk.holds("dev/vda2", &v3[0].1) && disk.holds("dev/vda4", &v2[0].1));

    // A damaged bundle: its slot is left without an entry, the running slot's stays.
    let damaged = keys.path().join("damaged.upgrade");
    let v4 = members("0.4.0");
    let good = bundle(keys.path(), &key, "0.4.0", &v4);
    std::fs::write(&damaged, with_flipped_byte(&good, b"initrd of 0.4.0")).unwrap();
    let refused = disk.install(&damaged, &public, 'a');
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("initrd does not match"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(disk.entries(), ["lemur-a+3.conf"]);
    let status = disk.status();
    assert_eq!(status["state"], "failed", "{status}");
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|error| error.contains("initrd does not match")),
        "{status}"
    );

    // An older release: refused, whoever signed it.
    let refused = disk.install(
        &bundle(keys.path(), &key, "0.0.9", &members("0.0.9")),
        &public,
        'a',
    );
    assert!(
        stderr(&refused).contains("older than the running"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(disk.entries(), ["lemur-a+3.conf"]);

    // A slot too small for the release: refused before anything is written there.
    let mut large = members("0.5.0");
    large[0].1 = vec![7u8; 2 << 20];
    let refused = disk.install(&bundle(keys.path(), &key, "0.5.0", &large), &public, 'a');
    assert!(
        stderr(&refused).contains("do not fit"),
        "{}",
        stderr(&refused)
    );
    assert!(!disk.holds("dev/vda4", &[7u8; 16]));

    // udev's link for the slot to write leads to another disk's partition of that name: nothing
    // is written, and the entries stay.
    disk.label_on_another_disk("lemur-root-b");
    let refused = disk.install(
        &bundle(keys.path(), &key, "0.5.0", &members("0.5.0")),
        &public,
        'a',
    );
    assert!(
        stderr(&refused).contains("is on vdb, not on vda, the disk the appliance runs from"),
        "{}",
        stderr(&refused)
    );
    assert!(
        disk.holds("dev/vdb4", &[0; 64]),
        "the other disk was written"
    );
    assert_eq!(disk.entries(), ["lemur-a+3.conf"]);
}
