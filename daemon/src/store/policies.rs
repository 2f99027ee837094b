//! Rotation policies: how many days before expiry a certificate is reissued.

use super::Store;
use crate::error::{Error, Result};

impl Store {
    /// The rotation policy with this name, created with `days` if missing.
    pub async fn ensure_rotation_policy(&self, name: &str, days: i64) -> Result<i64> {
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM rotation_policies WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(Error::database("reading rotation policies"))?;
        if let Some(id) = existing {
            return Ok(id);
        }
        sqlx::query_scalar(
            "INSERT INTO rotation_policies (name, days) VALUES ($1, $2) RETURNING id",
        )
        .bind(name)
        .bind(days)
        .fetch_one(&self.writer)
        .await
        .map_err(Error::database("creating a rotation policy"))
    }
}
