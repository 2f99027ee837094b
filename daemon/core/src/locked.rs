//! Locked files: secret files sealed on disk under the HSM's key-encryption key (`lemur lock`).
//!
//! A locked `NAME` is stored as `NAME.sealed`, a sealed envelope bound to the file's name, so a
//! copy of the disk (a backup, a stolen image) holds nothing usable without the token, and one
//! locked file cannot stand in for another. Whoever reads a secret file reads it through
//! [`read`], which takes either form: locking needs no change of configuration.
//!
//! Files are replaced by writing a new one beside them and renaming it over, then syncing the
//! directory, so a crash leaves the old or the new form, never a torn one. The clear file is
//! unlinked, not overwritten: on journaling and copy-on-write file systems an overwrite does
//! not reach the old blocks (SECURITY.md says so).

use crate::error::{Error, Result};
use crate::files;
use lemur_hsm::{Sealer, envelope};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The suffix a locked file carries.
pub const SUFFIX: &str = ".sealed";

/// Where `path`'s locked form lives.
pub fn sealed_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(SUFFIX);
    PathBuf::from(name)
}

/// The secret files in `dir`, each by its clear name whether it is locked or not (a missing
/// directory holds none).
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        entries => entries.map_err(Error::io(format!("listing {}", dir.display())))?,
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io(format!("listing {}", dir.display())))?;
        let path = entry.path();
        let name = path.as_os_str().as_encoded_bytes();
        if !path.is_file() || name.ends_with(b".tmp") {
            continue;
        }
        files.push(match name.strip_suffix(SUFFIX.as_bytes()) {
            Some(clear) => PathBuf::from(os_string_of(clear)),
            None => path,
        });
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// The bytes of an `OsStr` cut at an ASCII boundary, as an `OsString`.
fn os_string_of(bytes: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes).to_owned()
}

/// Removes what a crash while replacing `path` or its locked form may have left (a temporary
/// file that may hold the secret in clear); the files it removed.
pub fn remove_leftovers(path: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for leftover in [
        files::temporary_path(path),
        files::temporary_path(&sealed_path(path)),
    ] {
        match std::fs::remove_file(&leftover) {
            Ok(()) => removed.push(leftover),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(Error::io(format!("removing {}", leftover.display()))(error));
            }
        }
    }
    Ok(removed)
}

/// The form of `path` present on disk: the clear file when there is one, else the locked one,
/// else `path` itself (so the caller's error names what the configuration says).
pub fn on_disk(path: &Path) -> PathBuf {
    let sealed = sealed_path(path);
    if !path.exists() && sealed.exists() {
        sealed
    } else {
        path.to_owned()
    }
}

/// What an envelope is bound to: the file's name, not its directory, so a restored backup in
/// another place still opens.
fn context(path: &Path) -> Vec<u8> {
    let name = path.file_name().unwrap_or(path.as_os_str());
    let mut context = b"lemur:locked-file:".to_vec();
    context.extend_from_slice(name.as_encoded_bytes());
    context
}

/// The secret in `path`, read from the clear file or, when only the locked form exists,
/// unsealed by `sealer`.
pub fn read(path: &Path, sealer: &dyn Sealer) -> Result<Zeroizing<Vec<u8>>> {
    let found = on_disk(path);
    let bytes = Zeroizing::new(
        std::fs::read(&found).map_err(Error::io(format!("reading {}", found.display())))?,
    );
    if found == path {
        return Ok(bytes);
    }
    sealer
        .unseal(&bytes, &context(path))
        .map_err(|e| Error::Locked {
            path: found,
            reason: e.to_string(),
        })
}

/// What locking, unlocking or re-sealing did to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The file was changed.
    Done,
    /// The file was already in the wanted form.
    AlreadyDone,
}

/// Seals `path` into its locked form and removes the clear file. A clear file beside a locked
/// one is newer (unlocked to be edited), so it wins.
pub fn lock(path: &Path, sealer: &dyn Sealer) -> Result<Outcome> {
    if !path.exists() {
        return already(path, sealed_path(path).exists());
    }
    let clear = Zeroizing::new(
        std::fs::read(path).map_err(Error::io(format!("reading {}", path.display())))?,
    );
    let sealed = sealer.seal(&clear, &context(path))?;
    files::replace_private(&sealed_path(path), &sealed, Some(path))?;
    remove(path)?;
    Ok(Outcome::Done)
}

/// Opens `path`'s locked form back into the clear file (0600) and removes the locked one.
pub fn unlock(path: &Path, sealer: &dyn Sealer) -> Result<Outcome> {
    let sealed = sealed_path(path);
    if path.exists() || !sealed.exists() {
        return already(path, path.exists());
    }
    let clear = read(path, sealer)?;
    files::replace_private(path, &clear, Some(&sealed))?;
    remove(&sealed)?;
    Ok(Outcome::Done)
}

/// Seals `path`'s locked form again under the newest KEK when it was sealed under an older
/// version than `newest`; clear files are left alone.
pub fn reseal(path: &Path, sealer: &dyn Sealer, newest: u32) -> Result<Outcome> {
    let sealed = sealed_path(path);
    if path.exists() || !sealed.exists() {
        return Ok(Outcome::AlreadyDone);
    }
    let bytes =
        std::fs::read(&sealed).map_err(Error::io(format!("reading {}", sealed.display())))?;
    let version = envelope::parse(&bytes)
        .map_err(|e| Error::Locked {
            path: sealed.clone(),
            reason: e.to_string(),
        })?
        .0
        .kek_version;
    if version >= newest {
        return Ok(Outcome::AlreadyDone);
    }
    let clear = read(path, sealer)?;
    files::replace_private(
        &sealed,
        &sealer.seal(&clear, &context(path))?,
        Some(&sealed),
    )?;
    Ok(Outcome::Done)
}

fn already(path: &Path, present: bool) -> Result<Outcome> {
    if present {
        Ok(Outcome::AlreadyDone)
    } else {
        Err(Error::io(format!("reading {}", path.display()))(
            std::io::ErrorKind::NotFound.into(),
        ))
    }
}

fn remove(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(Error::io(format!("removing {}", path.display())))?;
    files::sync_parent(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seals by prefixing the context and a version byte: enough to see which file and version
    /// an envelope was made for.
    struct Tagged(std::sync::atomic::AtomicU32);

    impl Sealer for Tagged {
        fn seal(&self, plaintext: &[u8], context: &[u8]) -> lemur_hsm::Result<Vec<u8>> {
            let header = envelope::Header {
                kek_label: "test".into(),
                kek_version: self.0.load(std::sync::atomic::Ordering::Relaxed),
                nonce: [0; envelope::NONCE_LEN],
            };
            let mut out = header.encode().map_err(lemur_hsm::Error::from)?;
            out.extend_from_slice(&(context.len() as u32).to_be_bytes());
            out.extend_from_slice(context);
            out.extend_from_slice(plaintext);
            Ok(out)
        }

        fn unseal(&self, sealed: &[u8], context: &[u8]) -> lemur_hsm::Result<Zeroizing<Vec<u8>>> {
            let (_, body) = envelope::parse(sealed).map_err(lemur_hsm::Error::from)?;
            let (length, rest) = body.split_at(4);
            let length = u32::from_be_bytes(length.try_into().unwrap()) as usize;
            if &rest[..length] != context {
                return Err(lemur_hsm::Error::SealAuthentication);
            }
            Ok(Zeroizing::new(rest[length..].to_vec()))
        }
    }

    #[test]
    fn a_locked_file_reads_as_before_and_unlocks_to_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Tagged(1.into());
        let secret = dir.path().join("token-secret");
        crate::files::write_private(&secret, b"s3cret").unwrap();

        assert_eq!(lock(&secret, &sealer).unwrap(), Outcome::Done);
        assert!(!secret.exists());
        assert!(!std::fs::read(sealed_path(&secret)).unwrap().is_empty());
        assert_eq!(on_disk(&secret), sealed_path(&secret));
        assert_eq!(read(&secret, &sealer).unwrap().as_slice(), b"s3cret");
        assert_eq!(lock(&secret, &sealer).unwrap(), Outcome::AlreadyDone);

        assert_eq!(unlock(&secret, &sealer).unwrap(), Outcome::Done);
        assert_eq!(std::fs::read(&secret).unwrap(), b"s3cret");
        assert!(!sealed_path(&secret).exists());
        crate::files::check_private(&secret).unwrap();
        assert_eq!(unlock(&secret, &sealer).unwrap(), Outcome::AlreadyDone);
    }

    #[test]
    fn a_locked_file_cannot_stand_in_for_another() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Tagged(1.into());
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        crate::files::write_private(&a, b"for a").unwrap();
        lock(&a, &sealer).unwrap();
        std::fs::rename(sealed_path(&a), sealed_path(&b)).unwrap();
        let error = read(&b, &sealer).unwrap_err().to_string();
        assert!(error.contains("b.sealed"), "{error}");
    }

    #[test]
    fn reseal_moves_only_older_envelopes_to_the_newest_version() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Tagged(1.into());
        let secret = dir.path().join("db-password");
        crate::files::write_private(&secret, b"pw").unwrap();
        lock(&secret, &sealer).unwrap();
        assert_eq!(reseal(&secret, &sealer, 1).unwrap(), Outcome::AlreadyDone);
        sealer.0.store(2, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(reseal(&secret, &sealer, 2).unwrap(), Outcome::Done);
        let sealed = std::fs::read(sealed_path(&secret)).unwrap();
        assert_eq!(envelope::parse(&sealed).unwrap().0.kek_version, 2);
        assert_eq!(read(&secret, &sealer).unwrap().as_slice(), b"pw");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing");
        let error = lock(&missing, &Tagged(1.into())).unwrap_err().to_string();
        assert!(error.contains("nothing"), "{error}");
    }
}
