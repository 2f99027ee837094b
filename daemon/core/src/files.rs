//! Local files holding secrets: created 0600, refused when others can read them.

use crate::error::{Error, Result};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Fails with the fix when `path` can be read (or, for a directory, entered) by group or others.
pub fn check_private(path: &Path) -> Result<()> {
    let metadata =
        std::fs::metadata(path).map_err(Error::io(format!("reading {}", path.display())))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Permissions {
            path: path.to_owned(),
            mode,
            fix: if metadata.is_dir() { "700" } else { "600" },
        });
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

/// Creates `dir` (and parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(Error::io(format!("restricting {}", dir.display())))
}

/// `len` random bytes from the OS, hex-encoded (for generated PINs and secrets).
pub fn random_hex(len: usize) -> Result<zeroize::Zeroizing<String>> {
    let mut bytes = zeroize::Zeroizing::new(vec![0u8; len]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| Error::Ca("the OS random number generator failed".into()))?;
    Ok(zeroize::Zeroizing::new(crate::ca::x509::hex(&bytes)))
}
