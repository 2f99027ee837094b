//! The small JSON files root's appliance services (restore, upgrade, trial) leave where the
//! daemon's group may read them, so that the API can tell how an operation the daemon cannot
//! see to its end went: it is stopped, or the appliance restarts, before the end.

use crate::error::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// The largest status file read.
const MAX_STATUS: u64 = 16 << 10;

/// The status in `path`; `None` when there is none yet. A file that does not read as `T` is
/// an error naming it (the daemon cannot tell its operator anything from it).
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match crate::files::read_untrusted(path, MAX_STATUS) {
        Ok(bytes) => bytes,
        Err(_) if !path.exists() => return Ok(None),
        Err(error) => return Err(error),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::ServiceUnavailable(format!(
            "the status file {} does not read: {e}",
            path.display()
        ))
    })
}

/// Writes `status` to `path` (0640: its directory, setgid to the daemon's group, gives the
/// group), replacing what was there at once.
pub fn write<T: Serialize>(path: &Path, status: &T) -> Result<()> {
    let json = serde_json::to_vec_pretty(status)
        .map_err(|e| Error::io(format!("writing {}", path.display()))(std::io::Error::other(e)))?;
    crate::files::replace_if_changed(path, &json, 0o640).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        assert_eq!(read::<Vec<u32>>(&path).unwrap(), None);
        write(&path, &vec![1u32, 2]).unwrap();
        assert_eq!(read::<Vec<u32>>(&path).unwrap(), Some(vec![1, 2]));
        std::fs::write(&path, "not json").unwrap();
        assert!(
            read::<Vec<u32>>(&path)
                .unwrap_err()
                .to_string()
                .contains("status.json")
        );
    }
}
