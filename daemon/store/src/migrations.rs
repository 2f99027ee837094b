//! Schema migrations embedded in the binary, one SQL file per version and engine
//! (`migrations/sqlite/`, `migrations/postgres/`): the same tables and columns, each engine with
//! its own types and indexes.
//!
//! Each pending version is applied and recorded in `schema_migrations` in its own transaction.
//! On PostgreSQL a transaction-level advisory lock makes daemons that start together take turns,
//! and each re-checks what is applied once it holds the lock; SQLite's single writer does the
//! same by itself.

use crate::engine::{Engine, Tx, args};
use lemur_core::Result;

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../migrations/sqlite/0002_token_revocation.sql"),
        postgres: include_str!("../migrations/postgres/0002_token_revocation.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("../migrations/sqlite/0003_revocation.sql"),
        postgres: include_str!("../migrations/postgres/0003_revocation.sql"),
    },
    Migration {
        version: 4,
        sqlite: include_str!("../migrations/sqlite/0004_certificate_details.sql"),
        postgres: include_str!("../migrations/postgres/0004_certificate_details.sql"),
    },
    Migration {
        version: 5,
        sqlite: include_str!("../migrations/sqlite/0005_token_sessions.sql"),
        postgres: include_str!("../migrations/postgres/0005_token_sessions.sql"),
    },
    Migration {
        version: 6,
        sqlite: include_str!("../migrations/sqlite/0006_permitted_domains.sql"),
        postgres: include_str!("../migrations/postgres/0006_permitted_domains.sql"),
    },
    Migration {
        version: 7,
        sqlite: include_str!("../migrations/sqlite/0007_sensitive_domains.sql"),
        postgres: include_str!("../migrations/postgres/0007_sensitive_domains.sql"),
    },
    Migration {
        version: 8,
        sqlite: include_str!("../migrations/sqlite/0008_idempotency_keys.sql"),
        postgres: include_str!("../migrations/postgres/0008_idempotency_keys.sql"),
    },
    Migration {
        version: 9,
        sqlite: include_str!("../migrations/sqlite/0009_substring_search.sql"),
        postgres: include_str!("../migrations/postgres/0009_substring_search.sql"),
    },
    Migration {
        version: 10,
        sqlite: include_str!("../migrations/sqlite/0010_compact_certificates.sql"),
        postgres: include_str!("../migrations/postgres/0010_compact_certificates.sql"),
    },
    Migration {
        version: 11,
        sqlite: include_str!("../migrations/sqlite/0011_statistics.sql"),
        postgres: include_str!("../migrations/postgres/0011_statistics.sql"),
    },
    Migration {
        version: 12,
        sqlite: include_str!("../migrations/sqlite/0012_revoked_index.sql"),
        postgres: include_str!("../migrations/postgres/0012_revoked_index.sql"),
    },
    Migration {
        version: 13,
        sqlite: include_str!("../migrations/sqlite/0013_created_index.sql"),
        postgres: include_str!("../migrations/postgres/0013_created_index.sql"),
    },
    Migration {
        version: 14,
        sqlite: include_str!("../migrations/sqlite/0014_pending_orders.sql"),
        postgres: include_str!("../migrations/postgres/0014_pending_orders.sql"),
    },
    Migration {
        version: 15,
        sqlite: include_str!("../migrations/sqlite/0015_key_stock.sql"),
        postgres: include_str!("../migrations/postgres/0015_key_stock.sql"),
    },
    Migration {
        version: 16,
        sqlite: include_str!("../migrations/sqlite/0016_unique_live_bodies.sql"),
        postgres: include_str!("../migrations/postgres/0016_unique_live_bodies.sql"),
    },
];

/// Arbitrary constant naming the migration lock.
const LOCK_ID: i64 = 0x6c_656d_7572;

/// Starts a transaction that holds the migration lock.
async fn locked(engine: &Engine) -> Result<Tx<'static>> {
    let mut tx = engine.begin().await?;
    if tx.is_postgres() {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            args![LOCK_ID],
            "taking the migration lock",
        )
        .await?;
    }
    Ok(tx)
}

pub(crate) async fn run(engine: &Engine, now: i64) -> Result<()> {
    let mut tx = locked(engine).await?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        &[],
        "creating schema_migrations",
    )
    .await?;
    let newest: Option<(Option<i64>,)> = tx
        .optional(
            "SELECT max(version) FROM schema_migrations",
            &[],
            "reading schema_migrations",
        )
        .await?;
    tx.commit("creating schema_migrations").await?;
    refuse_newer(newest.and_then(|(version,)| version))?;
    for migration in MIGRATIONS {
        let mut tx = locked(engine).await?;
        let applied: Option<(i64,)> = tx
            .optional(
                "SELECT version FROM schema_migrations WHERE version = $1",
                args![migration.version],
                "reading schema_migrations",
            )
            .await?;
        if applied.is_some() {
            continue;
        }
        let script = if tx.is_postgres() {
            migration.postgres
        } else {
            migration.sqlite
        };
        tx.script(script, "applying a schema migration").await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            args![migration.version, now],
            "recording a migration",
        )
        .await?;
        tx.commit("committing a migration").await?;
        log::info!("applied schema migration {}", migration.version);
    }
    Ok(())
}

/// Whether the SQLite database `url` has a migration applied that this release does not know
/// (a later release migrated it).
pub async fn sqlite_is_from_a_later_release(url: &str) -> Result<bool> {
    use sqlx::{ConnectOptions, Connection};
    use std::str::FromStr;
    let mut connection = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|e| crate::bad_url(e.to_string()))?
        .create_if_missing(false)
        .read_only(true)
        .connect()
        .await
        .map_err(crate::db("opening the database"))?;
    let applied: (Option<i64>,) = sqlx::query_as("SELECT max(version) FROM schema_migrations")
        .fetch_one(&mut connection)
        .await
        .map_err(crate::db("reading schema_migrations"))?;
    connection
        .close()
        .await
        .map_err(crate::db("closing the database"))?;
    Ok(refuse_newer(applied.0).is_err())
}

/// Refuses a database a later release migrated: this one does not know its schema, and would
/// misread or damage what that release wrote. (An appliance whose new release failed its trial
/// boots the old one on the database as it was before the trial: `lemur appliance trial`.)
fn refuse_newer(applied: Option<i64>) -> Result<()> {
    let known = MIGRATIONS.last().map_or(0, |migration| migration.version);
    match applied {
        Some(applied) if applied > known => Err(lemur_core::Error::Conflict(format!(
            "the database's schema is at version {applied}, which a later release of Lemur-HSM made; this release knows versions up to {known}. Run that release (or a later one) on it, or restore a backup taken before it"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_from_a_later_release_is_refused() {
        let known = MIGRATIONS.last().unwrap().version;
        assert!(refuse_newer(None).is_ok());
        assert!(refuse_newer(Some(known)).is_ok());
        let error = refuse_newer(Some(known + 1)).unwrap_err().to_string();
        assert!(error.contains("later release"), "{error}");
    }

    /// The engines' schemas differ in types, never in tables or columns.
    #[test]
    fn both_engines_create_the_same_tables_and_columns() {
        fn shape(sql: &str) -> Vec<String> {
            sql.lines()
                .map(str::trim)
                .filter(|line| !line.starts_with("--") && !line.is_empty())
                .filter_map(|line| {
                    let mut words = line.split_whitespace();
                    match (words.next(), words.next(), words.next()) {
                        // SQLite rebuilds a table to change how it is stored (WITHOUT ROWID);
                        // the result has the old name and columns.
                        (Some("CREATE"), Some("TABLE"), Some(table))
                            if !table.ends_with("_rebuilt") =>
                        {
                            Some(format!("table {table}"))
                        }
                        (Some("ALTER"), Some("TABLE"), Some(table)) => {
                            let column =
                                line.split("ADD COLUMN").nth(1)?.split_whitespace().next()?;
                            Some(format!("{table}.{column}"))
                        }
                        // Search indexes (SQLite's virtual tables, and the statements that
                        // fill them) are each engine's own.
                        (Some(column), Some(_type), _)
                            if !["CREATE", "PRIMARY", "INSERT", "DROP", ")", ");"]
                                .contains(&column) =>
                        {
                            Some(format!("column {column}"))
                        }
                        _ => None,
                    }
                })
                .collect()
        }
        for migration in MIGRATIONS {
            assert_eq!(
                shape(migration.sqlite),
                shape(migration.postgres),
                "migration {}",
                migration.version
            );
            for sqlite_only in ["AUTOINCREMENT", " INTEGER", " BLOB"] {
                assert!(
                    !migration.postgres.contains(sqlite_only),
                    "{sqlite_only} in PostgreSQL migration {}",
                    migration.version
                );
            }
        }
    }
}
