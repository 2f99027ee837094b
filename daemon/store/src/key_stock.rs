//! The stock of keys generated ahead of demand, sealed (`[keys] stock`).

use crate::SqlStore;
use crate::engine::args;
use async_trait::async_trait;
use lemur_core::KeyAlgorithm;
use lemur_core::Result;
use lemur_core::model::StockedKey;
use lemur_core::store::KeyStockRepository;

/// The oldest keys of a type, deleted as they are read. On PostgreSQL, rows another daemon is
/// taking are skipped rather than waited for; SQLite has one writer, whose transaction holds
/// the write lock from its start.
fn take_sql(postgres: bool) -> String {
    let lock = if postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    format!(
        "DELETE FROM stocked_keys WHERE id IN (
             SELECT id FROM stocked_keys WHERE key_type = $1 ORDER BY id LIMIT $2{lock})
         RETURNING key_type, token, public_key, sealed_private_key"
    )
}

/// A row as read: the key type by Lemur's name.
type Row = (String, String, Vec<u8>, Vec<u8>);

fn stocked(row: Row) -> Result<StockedKey> {
    let (key_type, token, public_key, sealed) = row;
    Ok(StockedKey {
        algorithm: key_type.parse()?,
        token,
        public_key,
        sealed,
    })
}

#[async_trait]
impl KeyStockRepository for SqlStore {
    async fn stock_keys(&self, keys: &[StockedKey], now: i64) -> Result<()> {
        let mut tx = self.engine.begin().await?;
        for key in keys {
            tx.execute(
                "INSERT INTO stocked_keys (key_type, token, public_key, sealed_private_key, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
                args![
                    key.algorithm.lemur_name(),
                    key.token.as_str(),
                    Some(key.public_key.as_slice()),
                    Some(key.sealed.as_slice()),
                    now
                ],
                "stocking a key",
            )
            .await?;
        }
        tx.commit("committing stocked keys").await
    }

    async fn take_stocked_keys(
        &self,
        algorithm: KeyAlgorithm,
        limit: i64,
    ) -> Result<Vec<StockedKey>> {
        let mut tx = self.engine.begin().await?;
        let sql = take_sql(tx.is_postgres());
        let rows: Vec<Row> = tx
            .all(
                &sql,
                args![algorithm.lemur_name(), limit],
                "taking stocked keys",
            )
            .await?;
        tx.commit("committing stocked keys taken").await?;
        rows.into_iter().map(stocked).collect()
    }

    async fn stocked_key_counts(&self) -> Result<Vec<(KeyAlgorithm, usize)>> {
        let rows: Vec<(String, i64)> = self
            .engine
            .all(
                "SELECT key_type, count(*) FROM stocked_keys GROUP BY key_type ORDER BY key_type",
                args![],
                "counting stocked keys",
            )
            .await?;
        rows.into_iter()
            .map(|(key_type, count)| Ok((key_type.parse()?, usize::try_from(count).unwrap_or(0))))
            .collect()
    }
}
