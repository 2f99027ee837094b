//! A consistent copy of a live SQLite database, for backups.

use crate::{bad_url, db};
use lemur_core::{Error, Result};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The database file a `sqlite://` URL names, or `None` for another engine.
pub fn sqlite_file(url: &str) -> Result<Option<PathBuf>> {
    if !url.starts_with("sqlite://") {
        return Ok(None);
    }
    let options = SqliteConnectOptions::from_str(url).map_err(|e| bad_url(e.to_string()))?;
    Ok(Some(options.get_filename().to_owned()))
}

/// Writes a snapshot of the SQLite database `url` to the new file `to` (`VACUUM INTO`): one
/// read transaction, so it is consistent while the daemon writes, and compact. The daemon's
/// writes wait at most for the copy; its reads do not wait.
///
/// The snapshot holds no stocked keys: a snapshot put back later (a restore, a failed trial's
/// roll-back) would otherwise bring back keys given to certificates since, and give them again.
pub async fn snapshot_sqlite(url: &str, to: &Path) -> Result<()> {
    let to = to
        .to_str()
        .ok_or_else(|| Error::invalid("state_dir", "the snapshot's path is not UTF-8"))?;
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| bad_url(e.to_string()))?
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30))
        .disable_statement_logging();
    let mut connection = options
        .connect()
        .await
        .map_err(db("opening the database for a snapshot"))?;
    sqlx::query("VACUUM INTO ?")
        .bind(to)
        .execute(&mut connection)
        .await
        .map_err(db("taking a snapshot of the database"))?;
    connection
        .close()
        .await
        .map_err(db("closing the database after its snapshot"))?;
    without_stocked_keys(to).await
}

/// Empties the stock of keys in the snapshot `path` (a database from before the stock has none).
async fn without_stocked_keys(path: &str) -> Result<()> {
    let mut snapshot = SqliteConnectOptions::new()
        .filename(path)
        .disable_statement_logging()
        .connect()
        .await
        .map_err(db("opening the snapshot"))?;
    let (stock,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'stocked_keys'",
    )
    .fetch_one(&mut snapshot)
    .await
    .map_err(db("looking for the key stock in the snapshot"))?;
    if stock > 0 {
        sqlx::query("DELETE FROM stocked_keys")
            .execute(&mut snapshot)
            .await
            .map_err(db("emptying the key stock in the snapshot"))?;
    }
    snapshot.close().await.map_err(db("closing the snapshot"))
}
