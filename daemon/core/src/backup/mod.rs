//! Backups: one archive, encrypted under a passphrase, that brings a Lemur-HSM back on a fresh
//! machine (`lemur backup`, `lemur restore`).
//!
//! The archive is a tar stream sealed by [`sealed`]: `backup.toml` (the [`Manifest`]) first, then
//! the secrets (`secrets/NAME`: the HSM PINs, the login token secret, the admin's first password,
//! where the installation keeps them apart from its state), then the state directory
//! (`state/...`): the configuration, SoftHSM2's token directory, the appliance's certificates,
//! and a consistent snapshot of the SQLite database in place of the live file. With a hardware
//! HSM the keys stay in the HSM: the database holds references to them (labels), which the
//! restored daemon finds in the same HSM.
//!
//! The state is written from what the daemon's user can change, so the side that reads the
//! secrets (root, on the appliance) handles state entries as opaque: it checks their names and
//! kinds and copies their bytes, and only the daemon's user unpacks them.

pub mod api_restore;
pub mod sealed;
pub mod service;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use zeroize::Zeroizing;

pub use sealed::{MIN_PASSPHRASE, Opener, Passphrase, Sealer};

/// The manifest member, first.
const MANIFEST: &str = "backup.toml";
/// The prefix of secrets' members.
const SECRETS: &str = "secrets/";
/// The prefix of the state directory's members.
pub const STATE: &str = "state/";
/// The format of the manifest and the members this build writes and reads.
const FORMAT: u32 = 1;
const MAX_MANIFEST: u64 = 64 << 10;
const MAX_SECRET: u64 = 4 << 10;

/// `backup.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// `lemur-hsm`.
    pub product: String,
    /// The release that wrote it; a restore refuses an archive of a newer one.
    pub version: String,
    /// When it was written (Unix seconds).
    pub created: i64,
    /// The state directory it was taken from.
    pub state_dir: PathBuf,
    /// Where the database is: `sqlite` (its snapshot is in the state), or `external` (a
    /// PostgreSQL server, backed up apart, with `pg_dump`).
    pub database: String,
    /// The secrets it holds, by name.
    pub secrets: Vec<String>,
}

impl Manifest {
    /// A manifest for this release, now.
    pub fn new(state_dir: &Path, database: &str, secrets: Vec<String>, created: i64) -> Self {
        Self {
            format: FORMAT,
            product: "lemur-hsm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            created,
            state_dir: state_dir.to_owned(),
            database: database.into(),
            secrets,
        }
    }

    fn parse(bytes: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("backup.toml is not UTF-8"))?;
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| invalid(format!("backup.toml: {}", e.message())))?;
        if manifest.format != FORMAT || manifest.product != "lemur-hsm" {
            return Err(invalid(format!(
                "it is a backup of {:?}, format {}; this release restores lemur-hsm backups of format {FORMAT}",
                manifest.product, manifest.format
            )));
        }
        if crate::upgrade::is_older(env!("CARGO_PKG_VERSION"), &manifest.version) {
            return Err(invalid(format!(
                "it was written by Lemur-HSM {}, newer than this {}: its database may not be one this release can read. Restore onto that release or a later one",
                manifest.version,
                env!("CARGO_PKG_VERSION")
            )));
        }
        let plain = manifest
            .state_dir
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !manifest.state_dir.is_absolute() || !plain {
            return Err(invalid(format!(
                "backup.toml names the state directory {:?}: not an absolute plain path",
                manifest.state_dir
            )));
        }
        if let Some(name) = manifest.secrets.iter().find(|name| !is_secret_name(name)) {
            return Err(invalid(format!("backup.toml names a secret {name:?}")));
        }
        Ok(manifest)
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::invalid("backup", reason)
}

/// A secret's name: a credential's (`hsm-pin`), never a path.
fn is_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A member of the state directory: a directory or a regular file, by its path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Directory,
    /// A regular file of this many bytes.
    File(u64),
}

/// A tar header of `kind`, owned by nobody in particular, mode 0700/0600, path and checksum
/// left to `append_data` (which writes a GNU long name where a path is longer than 100
/// bytes, as SoftHSM2's object files' are): the unpacking side decides ownership, and keeps
/// everything private to the daemon's user.
fn tar_header(kind: &Kind) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    let (entry_type, mode, size) = match kind {
        Kind::Directory => (tar::EntryType::Directory, 0o700, 0),
        Kind::File(size) => (tar::EntryType::Regular, 0o600, *size),
    };
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header
}

/// Appends a member.
fn append(
    tar: &mut tar::Builder<impl Write>,
    name: &str,
    kind: &Kind,
    content: impl Read,
) -> Result<()> {
    tar.append_data(&mut tar_header(kind), name, content)
        .map_err(Error::io(format!("adding {name} to the backup")))
}

/// Checks a state member's path: relative, below the state directory, nothing but plain names.
fn state_path(name: &str) -> Result<PathBuf> {
    let relative = name
        .strip_prefix(STATE)
        .ok_or_else(|| invalid(format!("{name:?} is not a member of the state directory")))?;
    let path = PathBuf::from(relative.trim_end_matches('/'));
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain || path.as_os_str().is_empty() {
        return Err(invalid(format!(
            "the member {name:?} would land outside the state directory"
        )));
    }
    Ok(path)
}

/// Appends state members to a tar stream: the state directory's side of a backup.
pub struct StateWriter<W: Write> {
    tar: tar::Builder<W>,
}

impl<W: Write> StateWriter<W> {
    /// State members on `out`.
    pub fn new(out: W) -> Self {
        Self {
            tar: tar::Builder::new(out),
        }
    }

    /// Adds the member `relative` (a path inside the state directory) with its content, which
    /// must be exactly as long as `kind` says (tar's stream would fall out of step otherwise).
    pub fn add(&mut self, relative: &Path, kind: &Kind, content: impl Read) -> Result<()> {
        let name = format!("{STATE}{}", relative.display());
        state_path(&name)?;
        let size = match kind {
            Kind::File(size) => *size,
            Kind::Directory => 0,
        };
        append(&mut self.tar, &name, kind, Exact::new(content, size, &name))
    }

    /// Adds the directory `dir` below the state directory `root`, walked in name order:
    /// directories and regular files, without those `skip` names, and, in place of a file
    /// `replace` names, the file it gives. Anything else (a link, a socket) is an error: the
    /// state directory holds none, and a backup that left one out would restore short.
    pub fn add_tree(
        &mut self,
        root: &Path,
        dir: &Path,
        skip: &dyn Fn(&Path) -> bool,
        replace: &dyn Fn(&Path) -> Option<PathBuf>,
    ) -> Result<()> {
        let context = || format!("reading {}", dir.display());
        let mut entries = std::fs::read_dir(dir)
            .map_err(Error::io(context()))?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(Error::io(context()))?;
        entries.sort();
        for path in entries {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_owned();
            if skip(&relative) {
                continue;
            }
            let source = replace(&relative).unwrap_or_else(|| path.clone());
            let found = std::fs::symlink_metadata(&source)
                .map_err(Error::io(format!("reading {}", source.display())))?;
            if found.is_dir() {
                self.add(&relative, &Kind::Directory, std::io::empty())?;
                self.add_tree(root, &path, skip, replace)?;
            } else if found.is_file() {
                let file = std::fs::File::open(&source)
                    .map_err(Error::io(format!("reading {}", source.display())))?;
                // The size read from the open file: the tar header must match what is copied.
                let size = file
                    .metadata()
                    .map_err(Error::io(format!("reading {}", source.display())))?
                    .len();
                self.add(&relative, &Kind::File(size), file.take(size))?;
            } else {
                return Err(Error::io(format!("backing up {}", path.display()))(
                    std::io::Error::other(
                        "it is neither a directory nor a regular file; move it out of the state directory",
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Ends the members (a tar stream's end) and returns the output.
    pub fn finish(self) -> Result<W> {
        self.tar
            .into_inner()
            .map_err(Error::io("ending the backup's state"))
    }
}

/// A member's content, exactly `remaining` bytes: more is cut off, and less (a file that shrank
/// while it was read) is an error rather than a stream out of step.
struct Exact<'a, R> {
    inner: R,
    remaining: u64,
    name: &'a str,
}

impl<'a, R: Read> Exact<'a, R> {
    fn new(inner: R, remaining: u64, name: &'a str) -> Self {
        Self {
            inner,
            remaining,
            name,
        }
    }
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let room = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..room])?;
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ended {} bytes short of its size: it changed while it was read; back up again",
                    self.name, self.remaining
                ),
            ));
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// Copies the state members of a plain tar stream (another process's [`StateWriter`]) into
/// `to`, checking each member's name and kind, never unpacking one.
pub fn copy_state(from: impl Read, to: &mut StateWriter<impl Write>) -> Result<()> {
    each_state_member(tar::Archive::new(from), |path, kind, content| {
        to.add(path, kind, content)
    })
}

/// Calls `each` for every state member of `archive`, in order; refuses any other member.
fn each_state_member<R: Read>(
    mut archive: tar::Archive<R>,
    mut each: impl FnMut(&Path, &Kind, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let entries = archive
        .entries()
        .map_err(Error::io("reading the backup's state"))?;
    for entry in entries {
        let mut entry = entry.map_err(Error::io("reading the backup's state"))?;
        let (name, kind) = member(&entry)?;
        each(&state_path(&name)?, &kind, &mut entry)?;
    }
    Ok(())
}

/// A member's name and kind; only directories and regular files are members.
fn member<R: Read>(entry: &tar::Entry<'_, R>) -> Result<(String, Kind)> {
    let name = String::from_utf8(entry.path_bytes().into_owned())
        .map_err(|_| invalid("a member's name is not UTF-8"))?;
    let kind = match entry.header().entry_type() {
        tar::EntryType::Directory => Kind::Directory,
        tar::EntryType::Regular => Kind::File(entry.size()),
        other => {
            return Err(invalid(format!(
                "the member {name:?} is a {other:?}: a backup holds only directories and files"
            )));
        }
    };
    Ok((name, kind))
}

/// Writes a backup: the manifest, the secrets, then the state.
pub struct Writer<W: Write> {
    state: StateWriter<Sealer<W>>,
}

impl<W: Write> Writer<W> {
    /// Starts a backup on `out`, sealed under `passphrase`, with the manifest and `secrets`
    /// (the names the manifest lists, in its order).
    pub fn new(
        out: W,
        passphrase: &str,
        manifest: &Manifest,
        secrets: &[(String, Zeroizing<Vec<u8>>)],
    ) -> Result<Self> {
        let mut tar = tar::Builder::new(Sealer::new(out, passphrase)?);
        let text =
            toml::to_string(manifest).map_err(|e| invalid(format!("writing backup.toml: {e}")))?;
        let mut append = |name: &str, bytes: &[u8]| {
            append(&mut tar, name, &Kind::File(bytes.len() as u64), bytes)
        };
        append(MANIFEST, text.as_bytes())?;
        for (name, value) in secrets {
            if !is_secret_name(name) {
                return Err(invalid(format!("a secret named {name:?}")));
            }
            append(&format!("{SECRETS}{name}"), value)?;
        }
        Ok(Self {
            state: StateWriter { tar },
        })
    }

    /// Where the state members go.
    pub fn state(&mut self) -> &mut StateWriter<Sealer<W>> {
        &mut self.state
    }

    /// Seals the end: without it the backup reads as cut short.
    pub fn finish(self) -> Result<W> {
        self.state.finish()?.finish()
    }
}

/// What a restore does with a backup's parts, in the order they come.
pub trait Restore {
    /// The manifest, first: refuse here what cannot be restored, before anything is written.
    fn manifest(&mut self, manifest: &Manifest) -> Result<()>;
    /// Each secret the manifest lists.
    fn secret(&mut self, name: &str, value: Zeroizing<Vec<u8>>) -> Result<()>;
    /// Each state member: a directory or a file with its content.
    fn state(&mut self, path: &Path, kind: &Kind, content: &mut dyn Read) -> Result<()>;
}

/// Reads the backup on `input` with `passphrase` into `restore`. A member out of place, a
/// secret the manifest does not list, or one it lists that is missing, fails the restore.
pub fn read(input: impl Read, passphrase: &str, restore: &mut dyn Restore) -> Result<Manifest> {
    let mut archive = tar::Archive::new(Opener::new(input, passphrase)?);
    let mut entries = archive.entries().map_err(Error::io("reading the backup"))?;
    let mut next = || {
        entries
            .next()
            .transpose()
            .map_err(|e| invalid(format!("reading it: {e}")))
    };
    let mut first = next()?.ok_or_else(|| invalid("it is empty"))?;
    if member(&first)? != (MANIFEST.into(), Kind::File(first.size())) {
        return Err(invalid("it does not start with backup.toml"));
    }
    let manifest = Manifest::parse(&read_small(&mut first, MAX_MANIFEST)?)?;
    drop(first);
    restore.manifest(&manifest)?;
    let mut secrets = manifest.secrets.iter();
    while let Some(mut entry) = next()? {
        let (name, kind) = member(&entry)?;
        if let Some(secret) = name.strip_prefix(SECRETS) {
            if secrets.next().map(String::as_str) != Some(secret) {
                return Err(invalid(format!(
                    "the secret {secret:?} is not where backup.toml lists it"
                )));
            }
            restore.secret(secret, read_small(&mut entry, MAX_SECRET)?)?;
        } else {
            if let Some(missing) = secrets.next() {
                return Err(invalid(format!("the secret {missing:?} is missing")));
            }
            restore.state(&state_path(&name)?, &kind, &mut entry)?;
        }
    }
    if let Some(missing) = secrets.next() {
        return Err(invalid(format!("the secret {missing:?} is missing")));
    }
    // The sealed stream to its last chunk: an archive whose writer failed still ends its tar
    // stream, and only the missing last chunk tells that it is incomplete.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
        .map_err(|e| invalid(format!("reading it: {e}")))?;
    Ok(manifest)
}

/// A small member's bytes, refused beyond `max`; read into room made first, so that no copy of
/// a secret is left behind by a growing buffer.
fn read_small(entry: &mut impl Read, max: u64) -> Result<Zeroizing<Vec<u8>>> {
    let capacity = usize::try_from(max + 1).unwrap_or(usize::MAX);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    entry
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| invalid(format!("reading it: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(invalid(format!("a member is larger than {max} bytes")));
    }
    Ok(bytes)
}

/// Unpacks state members into a directory that was empty: directories 0700 and files 0600,
/// each made new (never through a link, never over what is there), files synced.
pub struct Unpacker {
    root: PathBuf,
}

impl Unpacker {
    /// Unpacks into `root`, which must be an empty directory or not exist (it is then made,
    /// 0700): a restore never mixes a backup with what is there.
    pub fn new(root: &Path) -> Result<Self> {
        match std::fs::read_dir(root) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::invalid(
                        "state_dir",
                        format!(
                            "{} is not empty: a restore replaces the whole state, so move it aside first (stop the daemon, then mv {0} {0}.old)",
                            root.display()
                        ),
                    ));
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                crate::files::create_private_dir(root)?;
            }
            Err(error) => return Err(Error::io(format!("reading {}", root.display()))(error)),
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// Unpacks one member.
    pub fn add(&mut self, path: &Path, kind: &Kind, content: &mut dyn Read) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let target = self.root.join(path);
        let context = || format!("restoring {}", target.display());
        match kind {
            Kind::Directory => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&target)
                .map_err(Error::io(context())),
            Kind::File(size) => {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&target)
                    .map_err(Error::io(context()))?;
                let copied = std::io::copy(&mut content.take(*size), &mut file)
                    .map_err(Error::io(context()))?;
                if copied != *size {
                    return Err(invalid(format!("{} ends early", path.display())));
                }
                file.sync_all().map_err(Error::io(context()))
            }
        }
    }

    /// Unpacks the state members of a plain tar stream (from [`StateWriter`]).
    pub fn add_all(&mut self, from: impl Read) -> Result<()> {
        each_state_member(tar::Archive::new(from), |path, kind, content| {
            self.add(path, kind, content)
        })
    }

    /// Syncs the directories, so that what was restored survives a crash.
    pub fn finish(self) -> Result<()> {
        fn sync_all(dir: &Path) -> Result<()> {
            for entry in
                std::fs::read_dir(dir).map_err(Error::io(format!("reading {}", dir.display())))?
            {
                let path = entry
                    .map_err(Error::io(format!("reading {}", dir.display())))?
                    .path();
                if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                    sync_all(&path)?;
                }
            }
            crate::files::sync_dir(dir)
        }
        sync_all(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSPHRASE: &str = "a passphrase long enough";
    const TOKEN: &str = "softhsm/tokens/3abafb2a-1b1a-30a5-92e6-1a9f59f7f65d";
    const OBJECT: &str = "6da3bed2-a435-5fb5-5a04-4fc3cffccd4d.object";

    #[derive(Default)]
    struct Collected {
        manifest: Option<Manifest>,
        secrets: Vec<(String, Vec<u8>)>,
        state: Vec<(PathBuf, Kind, Vec<u8>)>,
    }

    impl Restore for Collected {
        fn manifest(&mut self, manifest: &Manifest) -> Result<()> {
            self.manifest = Some(manifest.clone());
            Ok(())
        }
        fn secret(&mut self, name: &str, value: Zeroizing<Vec<u8>>) -> Result<()> {
            self.secrets.push((name.into(), value.to_vec()));
            Ok(())
        }
        fn state(&mut self, path: &Path, kind: &Kind, content: &mut dyn Read) -> Result<()> {
            let mut bytes = Vec::new();
            content.read_to_end(&mut bytes).unwrap();
            self.state.push((path.into(), kind.clone(), bytes));
            Ok(())
        }
    }

    fn backup(secrets: &[(&str, &[u8])], state: &Path) -> Vec<u8> {
        let names = secrets.iter().map(|(name, _)| name.to_string()).collect();
        let manifest = Manifest::new(state, "sqlite", names, 1_700_000_000);
        let secrets: Vec<_> = secrets
            .iter()
            .map(|(name, value)| (name.to_string(), Zeroizing::new(value.to_vec())))
            .collect();
        let mut writer = Writer::new(Vec::new(), PASSPHRASE, &manifest, &secrets).unwrap();
        let snapshot = state.join("../snapshot");
        writer
            .state()
            .add_tree(
                state,
                state,
                &|path| path == Path::new("lemur.db-wal"),
                &|path| (path == Path::new("lemur.db")).then(|| snapshot.clone()),
            )
            .unwrap();
        writer.finish().unwrap()
    }

    fn state_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        // SoftHSM2's names: longer than a plain tar header holds.
        std::fs::create_dir_all(state.join(TOKEN)).unwrap();
        std::fs::write(state.join("lemur.toml"), "version = 1\n").unwrap();
        std::fs::write(state.join("lemur.db"), "live").unwrap();
        std::fs::write(state.join("lemur.db-wal"), "wal").unwrap();
        std::fs::write(state.join(TOKEN).join(OBJECT), vec![1u8; 100_000]).unwrap();
        std::fs::write(dir.path().join("snapshot"), "snapshot").unwrap();
        dir
    }

    #[test]
    fn a_backup_reads_back_with_its_secrets_and_state_in_order() {
        let dir = state_dir();
        let state = dir.path().join("state");
        let sealed = backup(&[("hsm-pin", b"1234"), ("token-secret", b"abcd")], &state);
        let mut collected = Collected::default();
        read(&sealed[..], PASSPHRASE, &mut collected).unwrap();
        assert_eq!(collected.manifest.unwrap().state_dir, state);
        assert_eq!(
            collected.secrets,
            [
                ("hsm-pin".into(), b"1234".to_vec()),
                ("token-secret".into(), b"abcd".to_vec())
            ]
        );
        let names: Vec<_> = collected
            .state
            .iter()
            .map(|(path, kind, _)| (path.display().to_string(), kind.clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("lemur.db".into(), Kind::File(8)),
                ("lemur.toml".into(), Kind::File(12)),
                ("softhsm".into(), Kind::Directory),
                ("softhsm/tokens".into(), Kind::Directory),
                (TOKEN.into(), Kind::Directory),
                (format!("{TOKEN}/{OBJECT}"), Kind::File(100_000)),
            ]
        );
        assert_eq!(collected.state[0].2, b"snapshot");
    }

    #[test]
    fn unpacking_restores_the_tree_privately_and_only_into_an_empty_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = state_dir();
        let state = dir.path().join("state");
        let mut plain = StateWriter::new(Vec::new());
        plain
            .add_tree(&state, &state, &|_| false, &|_| None)
            .unwrap();
        let plain = plain.finish().unwrap();
        assert!(
            Unpacker::new(&state).is_err(),
            "a full directory is refused"
        );
        let target = dir.path().join("restored");
        let mut unpacker = Unpacker::new(&target).unwrap();
        unpacker.add_all(&plain[..]).unwrap();
        unpacker.finish().unwrap();
        let object = target.join(TOKEN).join(OBJECT);
        assert_eq!(std::fs::read(&object).unwrap(), vec![1u8; 100_000]);
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&object), 0o600);
        assert_eq!(mode(&target.join("softhsm")), 0o700);
        assert_eq!(mode(&target), 0o700);
    }

    #[test]
    fn members_out_of_place_are_refused() {
        for name in [
            "state/../escape",
            "state//etc/passwd",
            "state/",
            "other/file",
        ] {
            assert!(state_path(name).is_err(), "{name}");
        }
        assert!(state_path("state/a/b").is_ok());
        let mut link = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        link.append_link(&mut header, "state/link", "/etc/shadow")
            .unwrap();
        let stream = link.into_inner().unwrap();
        let mut to = StateWriter::new(Vec::new());
        let error = copy_state(&stream[..], &mut to).unwrap_err().to_string();
        assert!(error.contains("Symlink"), "{error}");
    }

    #[test]
    fn an_archive_without_its_last_chunk_does_not_restore_though_its_tar_stream_is_whole() {
        // The tar stream fills two chunks exactly (manifest header and data, the member's
        // header and data, the end blocks), so the last chunk is empty: cut it off, and only
        // the sealing tells.
        let size = 2 * 65_536 - 3 * 512 - 1024;
        let manifest = Manifest::new(Path::new("/var/lib/lemur"), "sqlite", vec![], 0);
        let mut writer = Writer::new(Vec::new(), PASSPHRASE, &manifest, &[]).unwrap();
        let content = vec![5u8; size];
        writer
            .state()
            .add(Path::new("big"), &Kind::File(size as u64), &content[..])
            .unwrap();
        let sealed = writer.finish().unwrap();
        let cut = &sealed[..sealed.len() - 16];
        let error = read(cut, PASSPHRASE, &mut Collected::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("ends early"), "{error}");
        assert!(read(&sealed[..], PASSPHRASE, &mut Collected::default()).is_ok());
    }

    #[test]
    fn a_member_shorter_than_its_size_is_an_error_not_a_stream_out_of_step() {
        let mut state = StateWriter::new(Vec::new());
        let error = state
            .add(Path::new("shrunk"), &Kind::File(100), &[1u8; 60][..])
            .unwrap_err()
            .to_string();
        assert!(error.contains("40 bytes short"), "{error}");
    }

    #[test]
    fn newer_releases_and_foreign_products_are_refused() {
        let mut manifest = Manifest::new(Path::new("/var/lib/lemur"), "sqlite", vec![], 0);
        manifest.version = "999.0.0".into();
        let error = Manifest::parse(toml::to_string(&manifest).unwrap().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(error.contains("newer"), "{error}");
        manifest.version = env!("CARGO_PKG_VERSION").into();
        manifest.secrets = vec!["../../etc/shadow".into()];
        assert!(Manifest::parse(toml::to_string(&manifest).unwrap().as_bytes()).is_err());
        manifest.secrets = vec![];
        for state_dir in ["var/lib/lemur", "/var/lib/../../etc"] {
            manifest.state_dir = state_dir.into();
            assert!(Manifest::parse(toml::to_string(&manifest).unwrap().as_bytes()).is_err());
        }
    }
}
