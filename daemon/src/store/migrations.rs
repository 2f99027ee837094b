//! Schema migrations embedded in the binary, one SQL file per engine and version.
//!
//! Applied in order, each in its own transaction, recorded in `schema_migrations`. On PostgreSQL an
//! advisory lock makes concurrent daemons wait for the first one instead of racing.

use super::{Backend, Store};
use crate::error::{Error, Result};
use sqlx::Executor;

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sqlite: include_str!("../../migrations/sqlite/0001_initial.sql"),
    postgres: include_str!("../../migrations/postgres/0001_initial.sql"),
}];

/// Arbitrary constant naming the migration lock.
const LOCK_ID: i64 = 0x6c_656d_7572;

pub(super) async fn run(store: &Store) -> Result<()> {
    let mut conn = store
        .pool
        .acquire()
        .await
        .map_err(Error::database("acquiring a connection for migrations"))?;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK_ID)
            .execute(&mut *conn)
            .await
            .map_err(Error::database("taking the migration lock"))?;
    }
    let result = apply_pending(store.backend, &mut conn, store.clock.unix()).await;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_ID)
            .execute(&mut *conn)
            .await
            .map_err(Error::database("releasing the migration lock"))?;
    }
    result
}

async fn apply_pending(backend: Backend, conn: &mut sqlx::AnyConnection, now: i64) -> Result<()> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await
    .map_err(Error::database("creating schema_migrations"))?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::database("reading schema_migrations"))?;
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let sql = match backend {
            Backend::Sqlite => migration.sqlite,
            Backend::Postgres => migration.postgres,
        };
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(Error::database("starting a migration"))?;
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(Error::database("applying a schema migration"))?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(migration.version)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(Error::database("recording a migration"))?;
        tx.commit()
            .await
            .map_err(Error::database("committing a migration"))?;
        log::info!("applied schema migration {}", migration.version);
    }
    Ok(())
}
