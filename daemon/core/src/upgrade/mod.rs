//! Appliance upgrades: the signed bundle an upgrade arrives as, and staging one for installation.
//!
//! A bundle (`lemur-hsm-VERSION.upgrade`, made by `image/bundle.sh`) is a plain tar archive:
//! `upgrade.toml` (the [`Manifest`]: version, dm-verity root hash, kernel options, and the size and
//! SHA-256 of every other member), `upgrade.toml.sig` (an ECDSA P-256 SHA-256 signature of those
//! exact bytes by the release key), then the root slot's file system, its hash tree, the kernel
//! and the initrd. The signature covers the manifest and the manifest covers every byte, so a
//! bundle is checked in one pass while it is read: nothing in it is believed before the
//! signature verifies, and a member is used only once its digest matched.
//!
//! The daemon checks an uploaded bundle whole before it stages it (so the administrator hears at
//! once what is wrong); root checks it again while it writes the inactive slot (`lemur appliance
//! upgrade`), since root does not trust what the daemon's user can write.

pub mod status;

use crate::App;
use crate::error::{Error, Result};
use crate::model::LogEntry;
use crate::policy::{Action, Subject, authorize};
use ring::digest::{Context, SHA256};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The manifest member, first in the archive.
pub const MANIFEST: &str = "upgrade.toml";
/// The manifest's signature, second.
pub const SIGNATURE: &str = "upgrade.toml.sig";
/// The members the manifest must list, in any order after the signature.
pub const MEMBERS: [&str; 4] = ["root.img", "verity.img", "vmlinuz", "initrd"];
/// The bundle format this build reads.
pub const FORMAT: u32 = 1;
/// The name of a checked bundle in the spool directory, which root's `lemur-upgrade.path` waits
/// for.
pub const STAGED: &str = "staged.upgrade";
const INCOMING: &str = "incoming.upgrade";
const MAX_MANIFEST: u64 = 64 << 10;
const MAX_SIGNATURE: u64 = 512;

/// `upgrade.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// `lemur-hsm`.
    pub product: String,
    /// The release's version.
    pub version: String,
    /// The commit it was built from.
    pub source: String,
    /// The dm-verity root hash of `root.img` (hex).
    pub roothash: String,
    /// The kernel command line, less what names the slot (root hash, partitions, slot letter),
    /// which the installer adds.
    pub options: String,
    /// Size and digest of every other member.
    pub files: BTreeMap<String, Member>,
}

/// A member's size and SHA-256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Bytes.
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

impl Manifest {
    fn parse(bytes: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("the manifest is not UTF-8"))?;
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| invalid(format!("manifest: {}", e.message())))?;
        if manifest.format != FORMAT {
            return Err(invalid(format!(
                "bundle format {} is not the {FORMAT} this release installs: upgrade through \
                 the releases in between",
                manifest.format
            )));
        }
        if manifest.product != "lemur-hsm" {
            return Err(invalid(format!(
                "this is a bundle of {:?}, not of lemur-hsm",
                manifest.product
            )));
        }
        let names: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
        let mut expected = MEMBERS.to_vec();
        expected.sort_unstable();
        if names != expected {
            return Err(invalid(format!(
                "the manifest lists {names:?}; a bundle holds exactly {expected:?}"
            )));
        }
        // Both reach the boot entry's title and the logs: one short word each.
        let word = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        };
        if !word(&manifest.version) || !word(&manifest.source) {
            return Err(invalid(
                "version and source: letters, digits and ._+- only, at most 64",
            ));
        }
        let hex = |s: &str, len| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(&manifest.roothash, 64) {
            return Err(invalid("roothash is not a SHA-256 in hex"));
        }
        if let Some((name, _)) = manifest.files.iter().find(|(_, m)| !hex(&m.sha256, 64)) {
            return Err(invalid(format!("{name}: sha256 is not a SHA-256 in hex")));
        }
        // The installer writes these onto the kernel command line: one line, no quoting games.
        if manifest.options.chars().any(|c| c.is_control() || c == '"') {
            return Err(invalid(
                "options: one line of kernel parameters, without quotes",
            ));
        }
        Ok(manifest)
    }
}

/// Whether release `candidate` is older than release `running`, by their numeric
/// `major.minor.patch` (a pre-release, `1.2.0-rc1`, comes before its release; build metadata,
/// `+...`, is ignored). An upgrade never goes back: a daemon's user who could stage an old,
/// validly signed release could otherwise bring back what a later one fixed.
pub fn is_older(candidate: &str, running: &str) -> bool {
    fn key(version: &str) -> (Vec<u64>, bool) {
        let version = version.split('+').next().unwrap_or_default();
        let (numbers, pre) = match version.split_once('-') {
            Some((numbers, _)) => (numbers, true),
            None => (version, false),
        };
        let numbers = numbers
            .split('.')
            .map(|part| part.parse().unwrap_or(0))
            .collect();
        // A release sorts after its pre-releases.
        (numbers, !pre)
    }
    key(candidate) < key(running)
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::invalid("bundle", reason)
}

/// The release key that signs bundles: an EC P-256 public key (PEM `PUBLIC KEY`).
pub struct ReleaseKey {
    point: Vec<u8>,
}

impl ReleaseKey {
    /// The key in `path` (on the appliance, `/usr/share/lemur-hsm/upgrade-key.pem`, on the
    /// verified root).
    pub fn load(path: &Path) -> Result<Self> {
        let pem = std::fs::read(path).map_err(Error::io(format!("reading {}", path.display())))?;
        Self::from_pem(&pem).map_err(|reason| Error::Config {
            path: path.to_owned(),
            reason,
        })
    }

    fn from_pem(pem: &[u8]) -> std::result::Result<Self, String> {
        use x509_parser::prelude::FromDer;
        let block = pem::parse(pem).map_err(|e| format!("not PEM: {e}"))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(format!("a PUBLIC KEY is needed, not {}", block.tag()));
        }
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(block.contents())
            .map_err(|e| format!("not a public key: {e}"))?;
        let prime256v1 = x509_parser::oid_registry::OID_EC_P256;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        if spki.algorithm.algorithm != x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
            || curve != Some(prime256v1)
        {
            return Err("the release key must be an EC P-256 key".into());
        }
        Ok(Self {
            point: spki.subject_public_key.data.to_vec(),
        })
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &self.point,
        )
        .verify(message, signature)
        .map_err(|_| {
            invalid(
                "its signature does not verify with this appliance's release key: not a \
                 release of this product, or changed since it was signed",
            )
        })
    }
}

/// Reads a bundle from `archive`, checking it as it goes, and hands each member's bytes to the
/// writer `place(name, size)` returns (an [`std::io::sink`] only to check). A member's bytes reach
/// its writer before its digest is known: the caller must not use anything it wrote until this
/// returns the manifest.
pub fn read(
    archive: impl Read,
    key: &ReleaseKey,
    mut place: impl FnMut(&str, u64) -> Result<Box<dyn Write>>,
) -> Result<Manifest> {
    let mut archive = tar::Archive::new(archive);
    let mut entries = archive
        .entries()
        .map_err(|e| invalid(format!("not a tar archive: {e}")))?;
    let manifest_bytes = small_member(next(&mut entries, MANIFEST)?, MANIFEST, MAX_MANIFEST)?;
    let signature = small_member(next(&mut entries, SIGNATURE)?, SIGNATURE, MAX_SIGNATURE)?;
    key.verify(&manifest_bytes, &signature)?;
    let manifest = Manifest::parse(&manifest_bytes)?;
    let mut seen = Vec::new();
    while seen.len() < MEMBERS.len() {
        let entry = next(&mut entries, "the last member")?;
        let name = member_name(&entry)?;
        let expected = manifest
            .files
            .get(&name)
            .filter(|_| !seen.contains(&name))
            .ok_or_else(|| invalid(format!("unexpected member {name:?}")))?;
        if entry.header().size().ok() != Some(expected.size) {
            return Err(invalid(format!(
                "{name} is not the {} bytes the manifest says",
                expected.size
            )));
        }
        let writer = place(&name, expected.size)?;
        let digest = copy_hashing(entry, writer, &name)?;
        if digest != expected.sha256.to_ascii_lowercase() {
            return Err(invalid(format!(
                "{name} does not match its digest in the signed manifest"
            )));
        }
        seen.push(name);
    }
    Ok(manifest)
}

/// Checks the bundle in `path` whole.
pub fn check(path: &Path, key: &ReleaseKey) -> Result<Manifest> {
    let file = crate::files::open_untrusted(path, None)?;
    read(std::io::BufReader::new(file), key, |_, _| {
        Ok(Box::new(std::io::sink()))
    })
}

fn next<'a, R: Read>(entries: &mut tar::Entries<'a, R>, name: &str) -> Result<tar::Entry<'a, R>> {
    entries
        .next()
        .ok_or_else(|| invalid(format!("it ends before {name}")))?
        .map_err(|e| invalid(format!("damaged archive before {name}: {e}")))
}

fn member_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String> {
    let path = entry
        .path()
        .map_err(|e| invalid(format!("a member's name: {e}")))?;
    let name = path.to_string_lossy().into_owned();
    if entry.header().entry_type() != tar::EntryType::Regular || name.contains('/') {
        return Err(invalid(format!("{name:?} is not a plain file at the top")));
    }
    Ok(name)
}

fn small_member<R: Read>(entry: tar::Entry<'_, R>, name: &str, max: u64) -> Result<Vec<u8>> {
    let found = member_name(&entry)?;
    if found != name {
        return Err(invalid(format!("{name} must come first, found {found:?}")));
    }
    let mut bytes = Vec::new();
    entry
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| invalid(format!("reading {name}: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(invalid(format!("{name} is larger than {max} bytes")));
    }
    Ok(bytes)
}

/// Copies `from` into `to` and returns the SHA-256 (hex) of what passed.
fn copy_hashing(mut from: impl Read, mut to: Box<dyn Write>, name: &str) -> Result<String> {
    let mut context = Context::new(&SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = from
            .read(&mut buffer)
            .map_err(|e| invalid(format!("reading {name}: {e}")))?;
        if read == 0 {
            break;
        }
        context.update(&buffer[..read]);
        to.write_all(&buffer[..read])
            .map_err(Error::io(format!("writing {name}")))?;
    }
    to.flush().map_err(Error::io(format!("writing {name}")))?;
    Ok(crate::ca::x509::hex(context.finish().as_ref()))
}

/// An upload being received into the spool directory; removed unless [`Staging::finish`]
/// stages it.
pub struct Staging {
    file: Option<tokio::fs::File>,
    path: PathBuf,
    spool: PathBuf,
    key: PathBuf,
    written: u64,
    max: u64,
    staged: bool,
}

/// Starts receiving a bundle of `announced` bytes, if the client said: administrators only, on
/// a daemon configured for upgrades, one upload at a time, not while a staged one waits to be
/// installed, and not larger than allowed or than the spool's free space.
pub async fn begin(app: &App, subject: &Subject, announced: Option<u64>) -> Result<Staging> {
    authorize(subject, Action::UpgradeAppliance)?;
    let config = app.config.upgrades.clone().ok_or_else(|| {
        Error::Conflict(
            "this daemon takes no upgrades: only the appliance image configures [upgrades]".into(),
        )
    })?;
    if let Some(size) = announced.filter(|size| *size > config.max_bytes) {
        return Err(too_large(size, config.max_bytes));
    }
    let spool = config.spool.clone();
    tokio::task::spawn_blocking(move || open_incoming(&spool, announced))
        .await
        .map_err(Error::task("opening the upgrade spool"))?
        .map(|file| Staging {
            file: Some(tokio::fs::File::from_std(file)),
            path: config.spool.join(INCOMING),
            spool: config.spool,
            key: config.key,
            written: 0,
            max: config.max_bytes,
            staged: false,
        })
}

/// The incoming file, locked for this upload (the lock goes with the process, so a crash
/// leaves nothing to clean up) and emptied, once the spool has room for what was `announced`.
fn open_incoming(spool: &Path, announced: Option<u64>) -> Result<std::fs::File> {
    crate::files::ensure_private_dir(spool)?;
    let path = spool.join(INCOMING);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io(format!("creating {}", path.display())))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| Error::Conflict("another upgrade is being uploaded; wait for it to finish".into()),
    )?;
    // Under the lock, so that no upload can stage over one that root is installing.
    if spool.join(STAGED).exists() {
        return Err(Error::Conflict(
            "an upgrade is staged and being installed; the appliance restarts when it is done"
                .into(),
        ));
    }
    file.set_len(0)
        .map_err(Error::io(format!("emptying {}", path.display())))?;
    // Once the lock is ours and the last upload's bytes are gone: a busy spool is a 409, not
    // a full one.
    if let Some(size) = announced {
        // Refused: the emptied file goes too (it is ours while locked).
        check_room(spool, size).inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })?;
    }
    Ok(file)
}

fn too_large(size: u64, max: u64) -> Error {
    invalid(format!(
        "{size} bytes: larger than the {max} bytes upgrades.max_bytes allows"
    ))
}

/// What an operator does when the spool's file system is full.
fn no_room(spool: &Path, needed: u64) -> Error {
    Error::InsufficientStorage(format!(
        "the upgrade spool {} has no room for {needed} bytes: free space on its file system (the appliance's data partition), or give the appliance a larger disk (it grows into it at the next boot)",
        spool.display()
    ))
}

/// Writing the upload failed: a full file system is the operator's to fix (507), anything else
/// is ours.
fn write_failed(spool: &Path, path: &Path, written: u64, error: std::io::Error) -> Error {
    if error.kind() == std::io::ErrorKind::StorageFull {
        no_room(spool, written)
    } else {
        Error::io(format!("writing {}", path.display()))(error)
    }
}

/// Refuses an upload of `size` bytes that the spool's file system cannot hold.
fn check_room(spool: &Path, size: u64) -> Result<()> {
    let stats = rustix::fs::statvfs(spool)
        .map_err(|e| Error::io(format!("reading {}'s free space", spool.display()))(e.into()))?;
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    if size > free {
        return Err(no_room(spool, size));
    }
    Ok(())
}

impl Staging {
    /// Appends the next part of the upload.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        self.written += chunk.len() as u64;
        if self.written > self.max {
            return Err(too_large(self.written, self.max));
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| invalid("already finished"))?;
        file.write_all(chunk)
            .await
            .map_err(|e| write_failed(&self.spool, &self.path, self.written, e))
    }

    /// Checks the whole bundle and stages it for root to install; audited first, so nothing is
    /// installed that the audit log does not show.
    pub async fn finish(mut self, app: &App, subject: &Subject) -> Result<Manifest> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| invalid("already finished"))?;
        // tokio writes in the background: the last write's error comes with the flush, and
        // would be lost by into_std.
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(|e| write_failed(&self.spool, &self.path, self.written, e))?;
        let file = file.into_std().await;
        let (path, key) = (self.path.clone(), self.key.clone());
        let (spool, written) = (self.spool.clone(), self.written);
        let (file, manifest) = tokio::task::spawn_blocking(move || {
            file.sync_all()
                .map_err(|e| write_failed(&spool, &path, written, e))?;
            let manifest = check(&path, &ReleaseKey::load(&key)?)?;
            Ok::<_, Error>((file, manifest))
        })
        .await
        .map_err(Error::task("checking the upgrade bundle"))??;
        let details = format!(
            "staged the upgrade to {} (source {})",
            manifest.version, manifest.source
        );
        app.store
            .log(
                &LogEntry {
                    certificate_id: None,
                    log_type: "upgrade_appliance",
                    user_id: subject.user_id(),
                    source_address: subject.source(),
                    details: &details,
                },
                app.clock.unix(),
            )
            .await?;
        let (path, spool) = (self.path.clone(), self.spool.clone());
        tokio::task::spawn_blocking(move || {
            let staged = spool.join(STAGED);
            std::fs::rename(&path, &staged)
                .map_err(Error::io(format!("staging {}", staged.display())))?;
            crate::files::sync_dir(&spool)?;
            // Unlocked only now: no other upload opened the file while it had this name.
            drop(file);
            Ok::<_, Error>(())
        })
        .await
        .map_err(Error::task("staging the upgrade bundle"))??;
        self.staged = true;
        log::info!("{details}");
        Ok(manifest)
    }
}

impl Drop for Staging {
    /// An upload that did not finish, or was refused, leaves nothing behind.
    fn drop(&mut self) {
        if !self.staged {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_names_exactly_the_members() {
        let member = r#"{ size = 1, sha256 = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb" }"#;
        let good = format!(
            "format = 1\nproduct = \"lemur-hsm\"\nversion = \"0.2.0\"\nsource = \"abc\"\nroothash = \"{}\"\noptions = \"ro quiet\"\n[files]\n\"root.img\" = {member}\n\"verity.img\" = {member}\nvmlinuz = {member}\ninitrd = {member}\n",
            "0".repeat(64)
        );
        assert!(Manifest::parse(good.as_bytes()).is_ok());
        let missing = good.replace("initrd = ", "extra = ");
        let err = Manifest::parse(missing.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("exactly"), "{err}");
        let quoted = good.replace("ro quiet", "ro \\\"init=/bin/sh\\\"");
        assert!(Manifest::parse(quoted.as_bytes()).is_err());
        let future = good.replace("format = 1", "format = 2");
        let err = Manifest::parse(future.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("releases in between"), "{err}");
    }

    /// A bundle of `members` (name, bytes) whose manifest lists `listed`, signed by `signer`.
    fn bundle(
        signer: &ring::signature::EcdsaKeyPair,
        listed: &[(&str, &[u8])],
        members: &[(&str, &[u8])],
    ) -> Vec<u8> {
        let digest = |bytes: &[u8]| -> String {
            ring::digest::digest(&SHA256, bytes)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let mut manifest = format!(
            "format = 1\nproduct = \"lemur-hsm\"\nversion = \"0.2.0\"\nsource = \"abc\"\nroothash = \"{}\"\noptions = \"ro quiet\"\n[files]\n",
            "1".repeat(64)
        );
        for (name, bytes) in listed {
            manifest += &format!(
                "\"{name}\" = {{ size = {}, sha256 = \"{}\" }}\n",
                bytes.len(),
                digest(bytes)
            );
        }
        let random = ring::rand::SystemRandom::new();
        let signature = signer.sign(&random, manifest.as_bytes()).unwrap();
        let mut archive = tar::Builder::new(Vec::new());
        let mut add = |name: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive.append_data(&mut header, name, bytes).unwrap();
        };
        add(MANIFEST, manifest.as_bytes());
        add(SIGNATURE, signature.as_ref());
        for (name, bytes) in members {
            add(name, bytes);
        }
        archive.into_inner().unwrap()
    }

    fn release_key() -> (ring::signature::EcdsaKeyPair, ReleaseKey) {
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
        let random = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &random).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &random)
                .unwrap();
        let key = ReleaseKey {
            point: pair.public_key().as_ref().to_vec(),
        };
        (pair, key)
    }

    const GOOD: [(&str, &[u8]); 4] = [
        ("root.img", b"erofs"),
        ("verity.img", b"hashes"),
        ("vmlinuz", b"kernel"),
        ("initrd", b"initrd"),
    ];

    fn reading(bytes: &[u8], key: &ReleaseKey) -> Result<(Manifest, Vec<String>)> {
        let placed = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let record = std::rc::Rc::clone(&placed);
        let manifest = read(bytes, key, move |name, _| {
            record.borrow_mut().push(name.to_owned());
            Ok(Box::new(std::io::sink()))
        })?;
        let names = placed.borrow().clone();
        Ok((manifest, names))
    }

    #[test]
    fn a_signed_bundle_reads_and_every_member_is_placed() {
        let (signer, key) = release_key();
        let (manifest, placed) = reading(&bundle(&signer, &GOOD, &GOOD), &key).unwrap();
        assert_eq!(manifest.version, "0.2.0");
        assert_eq!(placed, ["root.img", "verity.img", "vmlinuz", "initrd"]);
    }

    #[test]
    fn a_changed_member_another_signer_or_a_missing_member_is_refused() {
        let (signer, key) = release_key();
        let changed = [GOOD[0], GOOD[1], ("vmlinuz", b"kernE1".as_slice()), GOOD[3]];
        let err = reading(&bundle(&signer, &GOOD, &changed), &key).unwrap_err();
        assert!(err.to_string().contains("vmlinuz does not match"), "{err}");

        let (other, _) = release_key();
        let err = reading(&bundle(&other, &GOOD, &GOOD), &key).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");

        let err = reading(&bundle(&signer, &GOOD, &GOOD[..3]), &key).unwrap_err();
        assert!(err.to_string().contains("ends before"), "{err}");

        let twice = [GOOD[0], GOOD[0], GOOD[2], GOOD[3]];
        let err = reading(&bundle(&signer, &GOOD, &twice), &key).unwrap_err();
        assert!(err.to_string().contains("unexpected member"), "{err}");

        let err = reading(b"not a tar archive at all", &key).unwrap_err();
        assert!(matches!(err, Error::Validation { .. }), "{err}");
    }

    #[test]
    fn releases_compare_by_number_and_a_pre_release_comes_first() {
        assert!(is_older("0.1.0", "0.2.0"));
        assert!(is_older("0.9.9", "0.10.0"));
        assert!(is_older("1.0.0-rc1", "1.0.0"));
        assert!(!is_older("0.1.0", "0.1.0"));
        assert!(!is_older("0.1.0+rebuilt", "0.1.0"));
        assert!(!is_older("1.0.0", "0.99.0"));
    }

    #[test]
    fn only_an_ec_p256_public_key_is_a_release_key() {
        assert!(ReleaseKey::from_pem(b"not pem").is_err());
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert!(ReleaseKey::from_pem(p384.public_key_pem().as_bytes()).is_err());
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        assert!(ReleaseKey::from_pem(ec.public_key_pem().as_bytes()).is_ok());
    }
}
