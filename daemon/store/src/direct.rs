//! SQLite's certificate writer: a connection of its own, used on a thread of its own, where a
//! whole batch of certificates (its statements and its durable commit) runs without leaving
//! the thread. Through sqlx each statement is a hop to the driver's worker thread and back to
//! a runtime thread busy with requests; under load those hops, not SQLite's work, bounded how
//! many certificates a second the single writer stored (measured: about 530 µs of writer time
//! per certificate through sqlx, against about 200 µs for the same statements on one thread).
//!
//! The daemon's other SQLite writes still go through sqlx; the two take turns through the
//! engine's write turn ([`crate::engine::WriteTurn`]), in order of arrival, rather
//! than polling in SQLite's busy handler.

use crate::WAL_AUTOCHECKPOINT_PAGES;
use crate::engine::{Arg, Columns, Statements};
use lemur_core::{Error, Result};
use rusqlite::{CachedStatement, Connection, ErrorCode, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Statements kept prepared: the writer's handful for each batch size seen lately (each size
/// is a statement of its own). With half as many, batches of varying size prepared theirs
/// again, which measured slower at 16 connections.
const PREPARED: usize = 128;

/// The writer's connection.
pub(crate) struct Direct {
    connection: Connection,
}

impl Direct {
    /// Opens the database sqlx created, with the settings of the daemon's other connections:
    /// WAL, a durable commit (`synchronous = FULL`), foreign keys, and a busy timeout for the
    /// writers of other processes (the CLI, a backup). Its temporary files (the statement
    /// journal a multi-row insert keeps) stay in memory: on disk each was created and unlinked
    /// again for every batch. It keeps 8 MiB of pages, as the engine's readers do (SQLite's
    /// default 2 MiB had it reading index pages back from the file at each batch), and
    /// checkpoints at the daemon's [`WAL_AUTOCHECKPOINT_PAGES`].
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let opening = |source| Error::Database {
            context: "opening the certificate writer's connection",
            source: Box::new(source),
        };
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(opening)?;
        connection
            .busy_timeout(Duration::from_secs(10))
            .and_then(|()| {
                connection.execute_batch(
                    &format!(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
                         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8192;
                         PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};"
                    ),
                )
            })
            .map_err(opening)?;
        connection.set_prepared_statement_cache_capacity(PREPARED);
        Ok(Self { connection })
    }

    /// Starts a write transaction, taking the write lock at once (see [`Engine::begin`]).
    ///
    /// [`Engine::begin`]: crate::engine::Engine::begin
    pub(crate) fn begin(&mut self) -> Result<DirectTx<'_>> {
        if !self.connection.is_autocommit() {
            // Left open by a failure that neither committed nor rolled back.
            let _ = self.connection.execute_batch("ROLLBACK");
        }
        self.connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(failed("starting a transaction"))?;
        Ok(DirectTx {
            connection: &mut self.connection,
        })
    }
}

/// A transaction on the writer's connection; rolled back unless committed.
pub(crate) struct DirectTx<'c> {
    connection: &'c mut Connection,
}

impl DirectTx<'_> {
    /// Commits: durable when this returns. A commit that fails and leaves the transaction open
    /// (busy, a deferred constraint) is rolled back as the transaction is dropped.
    pub(crate) fn commit(self, context: &'static str) -> Result<()> {
        self.connection
            .execute_batch("COMMIT")
            .map_err(failed(context))
    }

    /// Runs `sql` with `args` and decodes each row it returns.
    fn rows<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        mut decode: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        let mut statement = self.connection.prepare_cached(sql)?;
        bind(&mut statement, args)?;
        let mut rows = statement.raw_query();
        let mut decoded = Vec::new();
        while let Some(row) = rows.next()? {
            decoded.push(decode(row)?);
        }
        Ok(decoded)
    }
}

impl Drop for DirectTx<'_> {
    fn drop(&mut self) {
        // Committed, or ended by SQLite itself on some failures: nothing is open. Otherwise
        // none is left open for the next batch.
        if !self.connection.is_autocommit() {
            let _ = self.connection.execute_batch("ROLLBACK");
        }
    }
}

#[async_trait::async_trait]
impl Statements for DirectTx<'_> {
    fn is_postgres(&self) -> bool {
        false
    }

    async fn all<T: Columns>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        context: &'static str,
    ) -> Result<Vec<T>> {
        self.rows(sql, args, T::from_direct)
            .map_err(failed(context))
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>], context: &'static str) -> Result<u64> {
        self.rows(sql, args, |_| Ok(()))
            .map(|_| self.connection.changes())
            .map_err(failed(context))
    }
}

/// Binds `args` to `statement`: in order for anonymous `?`s, by number for `$n` (the queries
/// written for both engines).
fn bind(statement: &mut CachedStatement<'_>, args: &[Arg<'_>]) -> rusqlite::Result<()> {
    let mut next = 0;
    for index in 1..=statement.parameter_count() {
        let position = match statement.parameter_name(index).and_then(numbered) {
            Some(number) => number - 1,
            None => {
                next += 1;
                next - 1
            }
        };
        let Some(arg) = args.get(position) else {
            return Err(rusqlite::Error::InvalidParameterCount(
                statement.parameter_count(),
                args.len(),
            ));
        };
        match *arg {
            Arg::Text(value) => statement.raw_bind_parameter(index, value),
            Arg::OptText(value) => statement.raw_bind_parameter(index, value),
            Arg::Int(value) => statement.raw_bind_parameter(index, value),
            Arg::OptInt(value) => statement.raw_bind_parameter(index, value),
            Arg::Bool(value) => statement.raw_bind_parameter(index, value),
            Arg::OptBytes(value) => statement.raw_bind_parameter(index, value),
        }?;
    }
    Ok(())
}

/// The number of a `$n` or `?n` parameter.
fn numbered(name: &str) -> Option<usize> {
    name.strip_prefix(['$', '?'])?
        .parse()
        .ok()
        .filter(|&n| n > 0)
}

/// Wraps an error of the writer's connection as [`crate::db`] does sqlx's: a unique-constraint
/// violation is a conflict, anything else a database failure.
fn failed(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |source| match source.sqlite_error() {
        Some(e)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Error::Conflict(format!("{context}: it exists already"))
        }
        _ => Error::Database {
            context,
            source: Box::new(source),
        },
    }
}

/// Whether an error of the writer's connection means the database cannot be written now (busy,
/// locked, full, unreadable, gone), rather than that one statement was refused.
pub(crate) fn unreachable(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code().is_some_and(|code| {
        matches!(
            code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen
                | ErrorCode::NotADatabase
                | ErrorCode::PermissionDenied
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::OutOfMemory
        )
    })
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn numbered_parameters_are_read_from_their_names() {
        assert_eq!(numbered("$1"), Some(1));
        assert_eq!(numbered("?12"), Some(12));
        assert_eq!(numbered("$0"), None);
        assert_eq!(numbered(":name"), None);
    }
}
