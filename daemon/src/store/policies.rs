//! Rotation policies: how many days before expiry a certificate is reissued.

use super::Store;
use crate::error::{Error, Result};

impl Store {
    /// The rotation policy with this name, created with `days` if missing.
    pub async fn ensure_rotation_policy(&self, name: &str, days: i64) -> Result<i64> {
        // Several daemons may start on a fresh database at once: insert if missing, then read.
        sqlx::query(
            "INSERT INTO rotation_policies (name, days) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(days)
        .execute(&self.writer)
        .await
        .map_err(Error::database("creating a rotation policy"))?;
        sqlx::query_scalar("SELECT id FROM rotation_policies WHERE name = $1")
            .bind(name)
            .fetch_one(&self.writer)
            .await
            .map_err(Error::database("reading rotation policies"))
    }
}
