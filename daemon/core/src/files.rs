//! Local files holding secrets: created 0600, refused when anyone but their owner (this
//! process's user) can read them, or when a directory above them, or the code the daemon loads,
//! could be changed by someone else.

use crate::error::{Error, Result};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// This process's effective user id.
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Keeps secrets out of core dumps: no core files, and no ptrace or `/proc/<pid>/mem` access for
/// other processes of the same user (`PR_SET_DUMPABLE` 0). Called first thing by every command.
pub fn forbid_core_dumps() -> Result<()> {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| Error::io("setting RLIMIT_CORE to 0")(e.into()))?;
    set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .map_err(|e| Error::io("clearing PR_SET_DUMPABLE")(e.into()))
}

/// Raises this process's open-file limit to its hard limit (as much as its unit allows, as Go
/// and nginx do) and returns it, so a daemon can check that its connection cap fits.
pub fn raise_open_file_limit() -> Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, raised)
            .map_err(|e| Error::io("raising RLIMIT_NOFILE to its hard limit")(e.into()))?;
    }
    Ok(limit.maximum.unwrap_or(u64::MAX))
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    effective_uid() == 0
}

fn metadata(path: &Path) -> Result<std::fs::Metadata> {
    std::fs::metadata(path).map_err(Error::io(format!("reading {}", path.display())))
}

fn refuse(path: &Path, problem: String, fix: String) -> Error {
    Error::Permissions {
        path: path.to_owned(),
        problem,
        fix,
    }
}

/// Fails with the fix when `path` is not owned by this process's user, or can be read (or, for
/// a directory, entered) by group or others, or lies below a directory someone else could
/// change.
pub fn check_private(path: &Path) -> Result<()> {
    let found = metadata(path)?;
    let uid = effective_uid();
    if found.uid() != uid {
        return Err(refuse(
            path,
            format!(
                "is owned by uid {}, not by this process's uid {uid}",
                found.uid()
            ),
            format!("chown {uid} {}", path.display()),
        ));
    }
    let mode = found.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        let fix = if found.is_dir() { "700" } else { "600" };
        return Err(refuse(
            path,
            format!("is readable by group or others (mode {mode:o})"),
            format!("chmod {fix} {}", path.display()),
        ));
    }
    check_parents(path)
}

/// A systemd credential: systemd writes it root-owned (0400 or 0440 with an ACL for the unit's
/// user) on a private read-only mount under `$CREDENTIALS_DIRECTORY`, so [`check_private`]'s
/// owner rule cannot apply. It must be owned by root or by this process's user and closed to
/// others.
pub fn check_credential(path: &Path) -> Result<()> {
    let found = metadata(path)?;
    let uid = effective_uid();
    if found.uid() != 0 && found.uid() != uid {
        return Err(refuse(
            path,
            format!(
                "is owned by uid {}, not by root or this process's uid {uid}",
                found.uid()
            ),
            "load it with LoadCredentialEncrypted= in the unit".to_owned(),
        ));
    }
    let mode = found.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(refuse(
            path,
            format!("is readable by others (mode {mode:o})"),
            "load it with LoadCredentialEncrypted= in the unit".to_owned(),
        ));
    }
    Ok(())
}

/// Fails with the fix when `path` (code the daemon loads, such as the PKCS#11 module) or a
/// directory above it could be changed by anyone but root or this process's user.
pub fn check_not_writable_by_others(path: &Path) -> Result<()> {
    let found = metadata(path)?;
    check_trusted_owner(path, &found)?;
    if found.permissions().mode() & 0o022 != 0 {
        return Err(refuse(
            path,
            "is writable by group or others".into(),
            format!("chmod go-w {}", path.display()),
        ));
    }
    check_parents(path)
}

fn check_trusted_owner(path: &Path, found: &std::fs::Metadata) -> Result<()> {
    let uid = effective_uid();
    if found.uid() != 0 && found.uid() != uid {
        return Err(refuse(
            path,
            format!(
                "is owned by uid {}, neither root nor this process's uid {uid}",
                found.uid()
            ),
            format!("chown root {}", path.display()),
        ));
    }
    Ok(())
}

/// Every directory above `path` is owned by root or this process's user, and not writable by
/// group or others unless it is sticky (as `/tmp`), where others cannot replace what is ours.
fn check_parents(path: &Path) -> Result<()> {
    let absolute =
        std::path::absolute(path).map_err(Error::io(format!("resolving {}", path.display())))?;
    for directory in absolute.ancestors().skip(1) {
        let found = metadata(directory)?;
        check_trusted_owner(directory, &found)?;
        let mode = found.permissions().mode();
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(refuse(
                directory,
                format!(
                    "is writable by group or others (mode {:o}), so what lies below can be replaced",
                    mode & 0o7777
                ),
                format!("chmod go-w {}", directory.display()),
            ));
        }
    }
    Ok(())
}

/// Writes `content` to a new file readable only by its owner; refuses to overwrite.
pub fn write_private(path: &Path, content: &[u8]) -> Result<()> {
    let context = format!("creating {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(context.clone()))?;
    file.write_all(content).map_err(Error::io(context))
}

/// Where [`replace_private`] writes before it renames: `NAME.tmp`. One left by a crash may
/// hold a secret; callers that list secret files remove it.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut temporary = OsString::from(path.as_os_str());
    temporary.push(".tmp");
    PathBuf::from(temporary)
}

/// Writes `content` to `path` (0600) through a temporary file renamed over it, both synced.
/// With `owner_of`, the new file gets that file's owner and group: an operator running a
/// command as root must not leave a file the daemon's user may not read (and one who is not
/// root is told so).
pub fn replace_private(path: &Path, content: &[u8], owner_of: Option<&Path>) -> Result<()> {
    replace(path, content, 0o600, owner_of)
}

/// Writes `content` to `path` with `mode` (whatever the umask) as [`replace_private`] does,
/// unless the file already holds exactly that with that mode; says whether it wrote. Files
/// made again at every boot stay untouched when nothing changed, so whoever watches them is
/// not woken for nothing.
pub fn replace_if_changed(path: &Path, content: &[u8], mode: u32) -> Result<bool> {
    let unchanged = std::fs::symlink_metadata(path).is_ok_and(|found| {
        found.is_file()
            && found.permissions().mode() & 0o7777 == mode
            && std::fs::read(path).is_ok_and(|old| old == content)
    });
    if unchanged {
        return Ok(false);
    }
    replace(path, content, mode, None)?;
    Ok(true)
}

fn replace(path: &Path, content: &[u8], mode: u32, owner_of: Option<&Path>) -> Result<()> {
    let temporary = temporary_path(path);
    let context = format!("writing {}", temporary.display());
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(Error::io(context.clone()))?;
    if mode != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(Error::io(context.clone()))?;
    }
    if let Some(model) = owner_of {
        let found = metadata(model)?;
        if found.uid() != effective_uid() {
            std::os::unix::fs::fchown(&file, Some(found.uid()), Some(found.gid())).map_err(
                Error::io(format!(
                    "giving {} to uid {} like {} (run this as that user)",
                    temporary.display(),
                    found.uid(),
                    model.display()
                )),
            )?;
        }
    }
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(Error::io(context))?;
    std::fs::rename(&temporary, path)
        .map_err(Error::io(format!("replacing {}", path.display())))?;
    sync_parent(path)
}

/// Syncs the directory holding `path`, so that a rename or unlink of `path` survives a crash.
pub fn sync_parent(path: &Path) -> Result<()> {
    sync_dir(
        path.parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
}

/// Syncs the directory `dir` itself, so that what was made, renamed or removed in it survives
/// a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(format!("syncing {}", dir.display())))
}

/// Creates `dir` (and parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(Error::io(format!("restricting {}", dir.display())))
}

/// Creates `dir` (and parents) with mode 0700 when it is missing; one that exists keeps its
/// mode, which whoever made it (systemd-tmpfiles, an operator) chose.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => create_private_dir(dir),
        Err(error) => Err(Error::io(format!("reading {}", dir.display()))(error)),
    }
}

/// The bytes of a small file that a less privileged user may have written, as a root command
/// reads it: see [`open_untrusted`]; at most `max` bytes. The caller still validates every byte
/// it uses, and never repeats what it refused: the file might hold anything.
pub fn read_untrusted(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = open_untrusted(path, Some(max))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, max), &mut bytes)
        .map_err(Error::io(format!("reading {}", path.display())))?;
    Ok(bytes)
}

/// Opens for reading a file that a less privileged user may have written, as a root command
/// does: never through a symbolic link, never a FIFO or a device (which could block or feed
/// without end), never a file with another name (a hard link to a file that user may not
/// read), and at most `max` bytes when given.
pub fn open_untrusted(path: &Path, max: Option<u64>) -> Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    let context = format!("reading {}", path.display());
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let descriptor = rustix::fs::open(path, flags, Mode::empty())
        .map_err(|e| Error::io(context.clone())(e.into()))?;
    let file = std::fs::File::from(descriptor);
    let found = file.metadata().map_err(Error::io(context.clone()))?;
    let refused = |problem: &str| {
        Error::io(context.clone())(std::io::Error::other(format!(
            "{problem}: it is not what the less privileged side writes there; remove it and run that side again"
        )))
    };
    if !found.is_file() {
        return Err(refused("not a regular file"));
    }
    if found.nlink() != 1 {
        return Err(refused("it has more than one name (a hard link)"));
    }
    if let Some(max) = max.filter(|max| found.len() > *max) {
        return Err(refused(&format!("it is larger than {max} bytes")));
    }
    Ok(file)
}

/// `len` random bytes from the OS, hex-encoded (for generated PINs and secrets).
pub fn random_hex(len: usize) -> Result<zeroize::Zeroizing<String>> {
    let mut bytes = zeroize::Zeroizing::new(vec![0u8; len]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| Error::Ca("the OS random number generator failed".into()))?;
    Ok(zeroize::Zeroizing::new(crate::ca::x509::hex(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn secrets_must_be_ours_private_and_below_safe_directories() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        create_private_dir(&dir).unwrap();
        let secret = dir.join("secret");
        write_private(&secret, b"x").unwrap();
        assert!(check_private(&secret).is_ok());
        set_mode(&secret, 0o640);
        assert!(
            check_private(&secret)
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
        set_mode(&secret, 0o600);
        set_mode(&dir, 0o777);
        let error = check_private(&secret).unwrap_err().to_string();
        assert!(
            error.contains("chmod go-w") && error.contains("state"),
            "{error}"
        );
        set_mode(&dir, 0o1777);
        assert!(check_private(&secret).is_ok(), "a sticky directory is safe");
        set_mode(&dir, 0o700);
        if is_root() {
            std::os::unix::fs::chown(&secret, Some(65534), None).unwrap();
            let error = check_private(&secret).unwrap_err().to_string();
            assert!(error.contains("owned by uid 65534"), "{error}");
        }
    }

    #[test]
    fn replace_if_changed_writes_a_change_only() {
        let base = tempfile::tempdir().unwrap();
        let file = base.path().join("10-lemur.network");
        assert!(replace_if_changed(&file, b"one", 0o644).unwrap());
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(!replace_if_changed(&file, b"one", 0o644).unwrap());
        assert!(replace_if_changed(&file, b"one", 0o600).unwrap());
        assert!(replace_if_changed(&file, b"two", 0o600).unwrap());
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
    }

    #[test]
    fn a_missing_private_dir_is_made_and_an_existing_one_kept() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        set_mode(&dir, 0o755);
        ensure_private_dir(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[test]
    fn untrusted_files_are_read_only_when_plain_small_and_alone() {
        let base = tempfile::tempdir().unwrap();
        let file = base.path().join("facts");
        std::fs::write(&file, b"url=x\n").unwrap();
        assert_eq!(read_untrusted(&file, 64).unwrap(), b"url=x\n");
        let refused = |path: &Path, why: &str| {
            let error = read_untrusted(path, 64).unwrap_err().to_string();
            assert!(error.contains(why), "{error}");
        };
        std::fs::write(&file, [b'x'; 65]).unwrap();
        refused(&file, "larger than 64 bytes");
        std::fs::write(&file, b"url=x\n").unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        // O_NOFOLLOW: the kernel refuses a symbolic link (ELOOP).
        assert!(read_untrusted(&link, 64).is_err());
        let second_name = base.path().join("second");
        std::fs::hard_link(&file, &second_name).unwrap();
        refused(&file, "more than one name");
        refused(base.path(), "not a regular file");
    }

    #[test]
    fn credentials_are_root_or_ours_and_closed_to_others() {
        let base = tempfile::tempdir().unwrap();
        let credential = base.path().join("hsm-pin");
        std::fs::write(&credential, b"x").unwrap();
        // As systemd writes it on a noswap tmpfs: group-readable, for the unit's user's ACL.
        set_mode(&credential, 0o440);
        assert!(check_credential(&credential).is_ok());
        set_mode(&credential, 0o444);
        let error = check_credential(&credential).unwrap_err().to_string();
        assert!(error.contains("readable by others"), "{error}");
        set_mode(&credential, 0o400);
        if is_root() {
            std::os::unix::fs::chown(&credential, Some(65534), None).unwrap();
            let error = check_credential(&credential).unwrap_err().to_string();
            assert!(error.contains("owned by uid 65534"), "{error}");
        }
    }

    #[test]
    fn loaded_code_must_not_be_writable_by_others() {
        let base = tempfile::tempdir().unwrap();
        let module = base.path().join("module.so");
        std::fs::write(&module, b"\x7fELF").unwrap();
        set_mode(&module, 0o644);
        assert!(check_not_writable_by_others(&module).is_ok());
        set_mode(&module, 0o666);
        assert!(
            check_not_writable_by_others(&module)
                .unwrap_err()
                .to_string()
                .contains("go-w")
        );
    }
}
