//! The inventory store: the domain core's repository traits on SQLite (the embedded default) or
//! PostgreSQL (scale-out), each through its own sqlx driver and its own migrations.
//!
//! Shared logic stays in one place by writing each query once in the SQL both engines accept and
//! running it through [`engine`], which binds and decodes with the engine's native driver (see
//! there for why). Times are stored as Unix seconds so ordering and range queries use plain
//! integer indexes.

mod authorities;
mod cache;
mod certificates;
mod chains;
mod direct;
mod domains;
mod engine;
mod insert;
mod key_stock;
mod link;
mod listing;
mod migrations;
mod one_trip;
mod pending;
mod query;
mod rows;
mod snapshot;
mod tls;
mod users;
mod writer;

use async_trait::async_trait;
use engine::{Engine, args};
use lemur_core::config::DatabaseConfig;
use lemur_core::model::{LogEntry, NewCertificate};
use lemur_core::{Error, Result};
pub use migrations::sqlite_is_from_a_later_release;
pub use snapshot::{snapshot_sqlite, sqlite_file};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

/// WAL pages after which a commit checkpoints, on the engine's SQLite connections and the
/// certificate writer's (a checkpoint runs in whichever connection's commit finds the WAL past
/// that connection's own mark, so one writer left at SQLite's 1,000 would do them all, in the
/// write turn the certificate writer waits for). 4,000 rather than 1,000:
/// pages written again and again (the ends of the indexes on ids and dates, the search index's)
/// are copied once per checkpoint, so the certificate writer spent half as long in checkpoints
/// (measured at 16 connections: 10% of its time before, 5% after). The WAL file keeps the size
/// it reached: about 32 MB with the 8 KiB pages new databases get (16 MB with 4 KiB pages),
/// more while a reader holds an old snapshot.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: u32 = 4_000;

/// The inventory database.
#[derive(Clone)]
pub struct SqlStore {
    engine: Engine,
    /// Group commit for certificates (see [`writer`]).
    writer: writer::Writer,
    /// What nearly every request reads (see [`cache`]).
    caches: std::sync::Arc<cache::Caches>,
    /// Totals of large lists (see [`listing`]).
    large_totals: std::sync::Arc<listing::LargeTotals>,
    /// Chain ids already committed (see [`chains`]).
    known_chains: std::sync::Arc<chains::KnownChains>,
}

/// Wraps a database error with what was being done. A unique-constraint violation (another
/// request created the same thing first) is a conflict, not a database failure.
pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| match &source {
        sqlx::Error::Database(e) if e.is_unique_violation() => {
            Error::Conflict(format!("{context}: it exists already"))
        }
        _ => Error::Database {
            context,
            source: Box::new(source),
        },
    }
}

/// A configuration error on `database.url`.
pub(crate) fn bad_url(reason: impl Into<String>) -> Error {
    Error::invalid("database.url", reason)
}

impl SqlStore {
    /// Connects to the configured database (creating a SQLite file if needed), with
    /// `password` (read from `database.password_file` by the caller, which may have to unseal
    /// it) for a server that asks for one.
    pub async fn connect(config: &DatabaseConfig, password: Option<&str>) -> Result<Self> {
        let timeout = Duration::from_secs(config.acquire_timeout_secs.max(1));
        let mut sqlite_file = None;
        let engine = if config.url.starts_with("sqlite://") {
            let options = SqliteConnectOptions::from_str(&config.url)
                .map_err(|e| bad_url(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                // Certificate rows are about 1 KB: a 4 KB page holds three and wastes a fifth;
                // 8 KB pages hold seven (larger pages waste less still, but every commit writes
                // each page it changes whole). Takes effect when a database is created.
                .page_size(8_192)
                .foreign_keys(true)
                .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
                .busy_timeout(Duration::from_secs(10));
            let pool = |size: u32, options: SqliteConnectOptions| {
                SqlitePoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(timeout)
                    .connect_with(options)
            };
            let write = pool(1, options.clone()).await.map_err(db("connecting"))?;
            sqlite_file = Some(options.get_filename().to_owned());
            // Each reader keeps 8 MiB of pages (SQLite's default is 2 MiB), so the pages a
            // list reads again and again stay in memory: at most 32 MiB over the four.
            let readers = config.max_connections.min(4);
            let read = pool(readers, options.pragma("cache_size", "-8192"))
                .await
                .map_err(db("connecting"))?;
            Engine::Sqlite {
                read,
                write,
                turn: engine::WriteTurn::new(timeout),
            }
        } else if config.url.starts_with("postgres://") || config.url.starts_with("postgresql://") {
            let mut options = tls::policy(
                PgConnectOptions::from_str(&config.url).map_err(|e| bad_url(e.to_string()))?,
                config,
            )?;
            if let Some(password) = password {
                options = options.password(password);
            }
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(timeout)
                .connect_with(options)
                .await
                .map_err(db("connecting"))?;
            Engine::Postgres(pool)
        } else {
            return Err(bad_url(
                "use sqlite:///path/lemur.db or postgres://user@host/database",
            ));
        };
        let known_chains = std::sync::Arc::new(chains::KnownChains::default());
        let caches = std::sync::Arc::new(cache::Caches::default());
        let writer = writer::Writer::start(
            &engine,
            sqlite_file.as_deref(),
            std::sync::Arc::clone(&known_chains),
            std::sync::Arc::clone(&caches),
        )
        .await?;
        Ok(Self {
            engine,
            writer,
            caches,
            large_totals: Default::default(),
            known_chains,
        })
    }
}

impl SqlStore {
    /// The bulk path: stores many certificates, each with its audit row, in one transaction
    /// (for imports of whole inventories, and the inventory benchmark). Returns each one's id,
    /// or `None` when both its names were taken.
    pub async fn store_certificates(
        &self,
        batch: &[(NewCertificate<'_>, LogEntry<'_>)],
        now: i64,
    ) -> Result<Vec<Option<i64>>> {
        let batch: Vec<(insert::ToStore<'_, '_>, &LogEntry<'_>)> = batch
            .iter()
            .map(|(new, log)| {
                let unique_body = false;
                (insert::ToStore { new, unique_body }, log)
            })
            .collect();
        let mut tx = self.engine.begin().await?;
        let mut chains = chains::Chains::remembered_in(&self.known_chains);
        let outcomes = insert::certificates_with_logs(
            &mut tx,
            &batch,
            now,
            &mut chains,
            insert::Views::NotWanted,
        )
        .await?
        .outcomes;
        tx.commit("committing certificates").await?;
        chains.committed();
        Ok(outcomes
            .into_iter()
            .map(|outcome| match outcome {
                insert::Outcome::Stored(id) => Some(id),
                _ => None,
            })
            .collect())
    }
}

#[async_trait]
impl lemur_core::store::Store for SqlStore {
    async fn migrate(&self, now: i64) -> Result<()> {
        migrations::run(&self.engine, now).await
    }

    async fn ensure_rotation_policy(&self, name: &str, days: i64) -> Result<i64> {
        // Several daemons may start on a fresh database at once: insert if missing, then read.
        self.engine
            .execute(
                "INSERT INTO rotation_policies (name, days) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                args![name, days],
                "creating a rotation policy",
            )
            .await?;
        let id: Option<(i64,)> = self
            .engine
            .optional(
                "SELECT id FROM rotation_policies WHERE name = $1",
                args![name],
                "reading rotation policies",
            )
            .await?;
        id.map(|(id,)| id)
            .ok_or_else(|| Error::Ca(format!("rotation policy {name:?} vanished")))
    }

    async fn ping(&self) -> Result<()> {
        self.writer.check()?;
        let _: Option<(i64,)> = self
            .engine
            .optional("SELECT CAST(1 AS BIGINT)", &[], "checking the connection")
            .await?;
        Ok(())
    }

    fn engine(&self) -> &'static str {
        self.engine.name()
    }

    async fn tidy(&self) {
        self.engine.tidy().await;
    }

    async fn close(&self) {
        self.writer.close().await;
        self.engine.close().await;
    }
}
