//! The inventory store: the domain core's repository traits on SQLite (the embedded default) or
//! PostgreSQL (scale-out).
//!
//! Queries are written once in the SQL both engines share (`$1` parameters, `RETURNING`,
//! `lower()`) and run on sqlx's `Any` driver; only the schema migrations differ per dialect. Times
//! are stored as Unix seconds so ordering and range queries use plain integer indexes.

mod authorities;
mod certificates;
mod migrations;
mod query;
mod users;

use async_trait::async_trait;
use lemur_core::config::DatabaseConfig;
use lemur_core::{Error, Result};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::time::Duration;

/// Which database engine the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: the embedded default.
    Sqlite,
    /// PostgreSQL: several daemons share one database.
    Postgres,
}

/// Connection pools on the inventory database.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    /// Where writes go. On SQLite a single connection: SQLite has one writer at a time, and
    /// writers queued here wait in order without polling, where several connections contending
    /// for the write lock would sleep in SQLite's busy handler. On PostgreSQL the same pool.
    writer: AnyPool,
    backend: Backend,
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

/// Puts the password from `password_file` into a PostgreSQL URL that has none.
fn url_with_password(url: &str, password_file: Option<&std::path::Path>) -> Result<String> {
    let Some(file) = password_file else {
        return Ok(url.to_owned());
    };
    let password = zeroize::Zeroizing::new(
        std::fs::read_to_string(file).map_err(Error::io(format!("reading {}", file.display())))?,
    );
    let encoded: String = password
        .trim_end_matches(['\n', '\r'])
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::invalid("database.url", "expected postgres://user@host/database"))?;
    let (user, host) = rest.split_once('@').ok_or_else(|| {
        Error::invalid(
            "database.url",
            "name the user: postgres://user@host/database",
        )
    })?;
    Ok(format!("{scheme}://{user}:{encoded}@{host}"))
}

impl SqlStore {
    /// Connects to the configured database (creating a SQLite file if needed).
    pub async fn connect(config: &DatabaseConfig) -> Result<Self> {
        install_default_drivers();
        let (backend, url) = if let Some(path) = config.url.strip_prefix("sqlite://") {
            (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if config.url.starts_with("postgres://") || config.url.starts_with("postgresql://") {
            let url = url_with_password(&config.url, config.password_file.as_deref())?;
            (Backend::Postgres, url)
        } else {
            return Err(Error::invalid(
                "database.url",
                "use sqlite:///path/lemur.db or postgres://user@host/database",
            ));
        };
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                let writer = open_pool(&url, backend, 1, config).await?;
                writer
                    .execute("PRAGMA journal_mode = WAL")
                    .await
                    .map_err(db("enabling the write-ahead log"))?;
                (
                    open_pool(&url, backend, config.max_connections.min(4), config).await?,
                    writer,
                )
            }
            Backend::Postgres => {
                let pool = open_pool(&url, backend, config.max_connections, config).await?;
                (pool.clone(), pool)
            }
        };
        Ok(Self {
            pool,
            writer,
            backend,
        })
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails with
    /// `SQLITE_BUSY` when another writer committed in between, which `busy_timeout` cannot cure.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer.begin().await,
        }
        .map_err(db("starting a transaction"))
    }
}

#[async_trait]
impl lemur_core::store::Store for SqlStore {
    async fn migrate(&self, now: i64) -> Result<()> {
        migrations::run(self, now).await
    }

    async fn ensure_rotation_policy(&self, name: &str, days: i64) -> Result<i64> {
        // Several daemons may start on a fresh database at once: insert if missing, then read.
        sqlx::query(
            "INSERT INTO rotation_policies (name, days) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(days)
        .execute(&self.writer)
        .await
        .map_err(db("creating a rotation policy"))?;
        sqlx::query_scalar("SELECT id FROM rotation_policies WHERE name = $1")
            .bind(name)
            .fetch_one(&self.writer)
            .await
            .map_err(db("reading rotation policies"))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db("checking the connection"))
    }

    fn engine(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }

    async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// A pool of up to `size` connections to `url`.
async fn open_pool(
    url: &str,
    backend: Backend,
    size: u32,
    config: &DatabaseConfig,
) -> Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(config.acquire_timeout_secs.max(1)))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(db("connecting"))
}
