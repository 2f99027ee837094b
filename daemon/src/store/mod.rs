//! The inventory store: SQLite by default, PostgreSQL for scale-out, through one code path.
//!
//! Queries are written once in the SQL both engines share (`$1` parameters, `RETURNING`,
//! `lower()`) and run on sqlx's `Any` driver; only the schema migrations differ per dialect. Times
//! are stored as Unix seconds so ordering and range queries use plain integer indexes.

mod authorities;
mod certificates;
mod migrations;
mod policies;
mod users;

pub use authorities::{AuthorityRecord, NewAuthority};
pub use certificates::{
    AuthorityBrief, CertificateFilter, CertificateRecord, LogEntry, NewCertificate,
};

pub use users::{RoleRecord, UserRecord, UserSession};

use crate::clock::Clock;
use crate::config::DatabaseConfig;
use crate::error::{Error, Result};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::sync::Arc;
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
pub struct Store {
    pool: AnyPool,
    /// Where writes go. On SQLite a single connection: SQLite has one writer at a time, and
    /// writers queued here wait in order without polling, where several connections contending
    /// for the write lock would sleep in SQLite's busy handler. On PostgreSQL the same pool.
    writer: AnyPool,
    backend: Backend,
    clock: Arc<dyn Clock>,
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

impl Store {
    /// Connects to the configured database (creating a SQLite file if needed).
    pub async fn connect(config: &DatabaseConfig, clock: Arc<dyn Clock>) -> Result<Self> {
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
                let writer = open_pool(&url, backend, 1).await?;
                writer
                    .execute("PRAGMA journal_mode = WAL")
                    .await
                    .map_err(Error::database("enabling the write-ahead log"))?;
                (
                    open_pool(&url, backend, config.max_connections.min(4)).await?,
                    writer,
                )
            }
            Backend::Postgres => {
                let pool = open_pool(&url, backend, config.max_connections).await?;
                (pool.clone(), pool)
            }
        };
        Ok(Self {
            pool,
            writer,
            backend,
            clock,
        })
    }

    /// The engine in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails with
    /// `SQLITE_BUSY` when another writer committed in between, which `busy_timeout` cannot cure.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer.begin().await,
        }
        .map_err(Error::database("starting a transaction"))
    }

    /// Brings the schema up to date (safe to run concurrently from several daemons).
    pub async fn migrate(&self) -> Result<()> {
        migrations::run(self).await
    }

    /// One round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        self.pool
            .execute("SELECT 1")
            .await
            .map(|_| ())
            .map_err(Error::database("checking the connection"))
    }

    /// Closes every connection (on shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// A pool of up to `size` connections to `url`.
async fn open_pool(url: &str, backend: Backend, size: u32) -> Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
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
        .map_err(Error::database("connecting"))
}
