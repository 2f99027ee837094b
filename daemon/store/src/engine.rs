//! The two engines behind one set of queries. Each query is written once, in the SQL SQLite and
//! PostgreSQL share (`$1` parameters, `RETURNING`, `ON CONFLICT`, `TRUE`/`FALSE`), and runs on
//! the engine's own sqlx driver with its own types: arguments are bound straight into the
//! driver's argument buffer and rows decoded by `FromRow` for that driver, with no conversion
//! layer between. What differs (schemas, locks) is written per engine where it is used. The
//! statements that store certificates run through [`Statements`], which SQLite's certificate
//! writer also implements on a rusqlite connection of its own ([`crate::direct`]).

use crate::db;
use lemur_core::Result;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{FromRow, Postgres, Sqlite, Transaction};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;

/// A value to bind, borrowed from the caller for the duration of the query.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// Text.
    Text(&'a str),
    /// Text or NULL.
    OptText(Option<&'a str>),
    /// An integer.
    Int(i64),
    /// An integer or NULL.
    OptInt(Option<i64>),
    /// A flag.
    Bool(bool),
    /// Bytes or NULL.
    OptBytes(Option<&'a [u8]>),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(value)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Arg::Text(value)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Arg::OptText(value)
    }
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(value)
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Arg::OptInt(value)
    }
}

impl From<bool> for Arg<'_> {
    fn from(value: bool) -> Self {
        Arg::Bool(value)
    }
}

impl<'a> From<Option<&'a [u8]>> for Arg<'a> {
    fn from(value: Option<&'a [u8]>) -> Self {
        Arg::OptBytes(value)
    }
}

/// `[a, b, ...]` as query arguments.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::engine::Arg::from($value)),*]
    };
}
pub(crate) use args;

/// Binds every argument, in order, to a query of either driver.
macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match *arg {
                Arg::Text(value) => query.bind(value),
                Arg::OptText(value) => query.bind(value),
                Arg::Int(value) => query.bind(value),
                Arg::OptInt(value) => query.bind(value),
                Arg::Bool(value) => query.bind(value),
                Arg::OptBytes(value) => query.bind(value),
            };
        }
        query
    }};
}
pub(crate) use bind_all;

/// A row type both drivers decode (`#[derive(FromRow)]` gives both).
pub trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Record for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// A row that every driver decodes: sqlx's two, and rusqlite's on SQLite's certificate writer
/// ([`crate::direct`]). Tuples here; the row structs the writer reads back in `rows.rs`.
pub(crate) trait Columns: Record {
    /// Decodes a row read on the writer's own connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

/// [`Columns`] for tuples of up to three values.
macro_rules! columns {
    ($($name:ident: $index:tt),+) => {
        impl<$($name),+> Columns for ($($name,)+)
        where
            ($($name,)+): Record,
            $($name: rusqlite::types::FromSql),+
        {
            fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok(($(row.get::<_, $name>($index)?,)+))
            }
        }
    };
}
columns!(A: 0);
columns!(A: 0, B: 1);
columns!(A: 0, B: 1, C: 2);

/// What the statements that store certificates run on: a transaction of either sqlx driver
/// ([`Tx`]), or the SQLite certificate writer's own connection ([`crate::direct`]), which runs
/// them on its thread with no hop to a driver's thread per statement. Rows are [`Columns`].
#[async_trait::async_trait]
pub(crate) trait Statements: Send {
    /// Whether this is PostgreSQL (for what is written per engine).
    fn is_postgres(&self) -> bool;

    /// Every row of a statement.
    async fn all<T: Columns>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        context: &'static str,
    ) -> Result<Vec<T>>;

    /// The first row of a statement, if any.
    async fn optional<T: Columns>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        context: &'static str,
    ) -> Result<Option<T>> {
        Ok(self.all(sql, args, context).await?.into_iter().next())
    }

    /// Runs a statement; the rows it changed.
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>], context: &'static str) -> Result<u64>;

    /// Every row of a statement without parameters (any values written into it by the caller,
    /// which answers for them), planned afresh each time it runs, for a look-up that must use
    /// its index from a table's first minutes. PostgreSQL keeps a prepared statement's generic
    /// plan once it settles on one (after five runs): one made while the table held a few rows
    /// scans the whole table, however large it grows, until autovacuum first analyses it (up to
    /// a minute later). On PostgreSQL it goes as a simple query: one round trip, where an
    /// unnamed prepared statement takes two (sqlx describes it before it binds it). SQLite
    /// plans by its indexes, not by table sizes.
    async fn all_unprepared<T: Columns>(
        &mut self,
        sql: &str,
        context: &'static str,
    ) -> Result<Vec<T>> {
        self.all(sql, &[], context).await
    }
}

#[async_trait::async_trait]
impl Statements for Tx<'_> {
    fn is_postgres(&self) -> bool {
        Tx::is_postgres(self)
    }

    async fn all<T: Columns>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        context: &'static str,
    ) -> Result<Vec<T>> {
        Tx::all(self, sql, args, context).await
    }

    async fn optional<T: Columns>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        context: &'static str,
    ) -> Result<Option<T>> {
        Tx::optional(self, sql, args, context).await
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>], context: &'static str) -> Result<u64> {
        Tx::execute(self, sql, args, context).await
    }

    async fn all_unprepared<T: Columns>(
        &mut self,
        sql: &str,
        context: &'static str,
    ) -> Result<Vec<T>> {
        match self {
            Tx::Postgres(tx) => {
                let connection: &mut sqlx::PgConnection = tx;
                sqlx::Executor::fetch_all(connection, sqlx::raw_sql(sql))
                    .await
                    .and_then(|rows| rows.iter().map(T::from_row).collect())
                    .map_err(db(context))
            }
            Tx::Sqlite(..) => Tx::all(self, sql, &[], context).await,
        }
    }
}

/// The connection pools of one engine.
#[derive(Clone)]
pub enum Engine {
    /// SQLite: readers share a pool; writes go through one connection, since SQLite has one
    /// writer at a time and writers queued on the pool wait in order without polling, where
    /// several connections contending for the write lock would sleep in SQLite's busy handler.
    /// The certificate writer has a connection of its own ([`crate::direct`]); it and this one
    /// take turns through `turn`, in order of arrival, for the same reason.
    Sqlite {
        /// Readers.
        read: SqlitePool,
        /// The writer.
        write: SqlitePool,
        /// Held by whichever of the process's two SQLite writers is writing.
        turn: WriteTurn,
    },
    /// PostgreSQL: one pool.
    Postgres(PgPool),
}

/// SQLite's write turn (see [`Engine::Sqlite`]): one holder at a time, in order of arrival.
#[derive(Clone)]
pub(crate) struct WriteTurn {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// How long a request waits for it: as long as for a connection.
    patience: Duration,
}

impl WriteTurn {
    pub(crate) fn new(patience: Duration) -> Self {
        Self {
            lock: Arc::default(),
            patience,
        }
    }

    /// The turn, for a request's write: an outage (503) when it does not come in time.
    pub(crate) async fn take(&self) -> Result<OwnedMutexGuard<()>> {
        tokio::time::timeout(self.patience, Arc::clone(&self.lock).lock_owned())
            .await
            .map_err(|_| lemur_core::Error::Database {
                context: "waiting for the database's write turn",
                source: format!(
                    "other writes held it for over {} s",
                    self.patience.as_secs()
                )
                .into(),
            })
    }

    /// The turn, for the certificate writer: whenever it comes (its requests wait with limits
    /// of their own).
    pub(crate) async fn wait(&self) -> OwnedMutexGuard<()> {
        Arc::clone(&self.lock).lock_owned().await
    }
}

/// A write transaction on either engine: on the engine's pools (`'static`), or on a
/// connection its holder keeps (the certificate writer's).
pub enum Tx<'c> {
    /// SQLite, holding the write lock from its start, and the process's write turn.
    Sqlite(
        Transaction<'c, Sqlite>,
        #[expect(
            dead_code,
            reason = "held, never read: the turn ends with the transaction"
        )]
        OwnedMutexGuard<()>,
    ),
    /// PostgreSQL.
    Postgres(Transaction<'c, Postgres>),
}

impl Engine {
    /// The engine's name, for operators' messages.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Sqlite { .. } => "sqlite",
            Engine::Postgres(_) => "postgresql",
        }
    }

    /// Whether this is PostgreSQL (for what the engines write differently).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Engine::Postgres(_))
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads and then writes fails with `SQLITE_BUSY`
    /// when another writer committed in between, which `busy_timeout` cannot cure.
    pub async fn begin(&self) -> Result<Tx<'static>> {
        match self {
            Engine::Sqlite { write, turn, .. } => {
                let turn = turn.take().await?;
                write
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map(|tx| Tx::Sqlite(tx, turn))
            }
            Engine::Postgres(pool) => pool.begin().await.map(Tx::Postgres),
        }
        .map_err(db("starting a transaction"))
    }

    /// Every row of a read.
    pub async fn all<T: Record>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        context: &'static str,
    ) -> Result<Vec<T>> {
        match self {
            Engine::Sqlite { read, .. } => {
                bind_all!(sqlx::query_as::<Sqlite, T>(sql), args)
                    .fetch_all(read)
                    .await
            }
            Engine::Postgres(pool) => {
                bind_all!(sqlx::query_as::<Postgres, T>(sql), args)
                    .fetch_all(pool)
                    .await
            }
        }
        .map_err(db(context))
    }

    /// The row of a read, if any.
    pub async fn optional<T: Record>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        context: &'static str,
    ) -> Result<Option<T>> {
        match self {
            Engine::Sqlite { read, .. } => {
                bind_all!(sqlx::query_as::<Sqlite, T>(sql), args)
                    .fetch_optional(read)
                    .await
            }
            Engine::Postgres(pool) => {
                bind_all!(sqlx::query_as::<Postgres, T>(sql), args)
                    .fetch_optional(pool)
                    .await
            }
        }
        .map_err(db(context))
    }

    /// Runs one write on its own (its own transaction).
    pub async fn execute(&self, sql: &str, args: &[Arg<'_>], context: &'static str) -> Result<u64> {
        match self {
            Engine::Sqlite { write, turn, .. } => {
                let _turn = turn.take().await?;
                bind_all!(sqlx::query(sql), args)
                    .execute(write)
                    .await
                    .map(|done| done.rows_affected())
            }
            Engine::Postgres(pool) => bind_all!(sqlx::query(sql), args)
                .execute(pool)
                .await
                .map(|done| done.rows_affected()),
        }
        .map_err(db(context))
    }

    /// SQLite's `PRAGMA optimize` (its advice for long-lived connections: now and then, and
    /// before closing): cheap, it analyses only the tables whose statistics are missing or far
    /// off. It may write them, so it runs as a write, in the write turn: run as each reader
    /// closed (sqlx's `optimize_on_close`), it waited in SQLite's busy handler beside the other
    /// writers, and held a stopping daemon for its 10 s. PostgreSQL's autovacuum does this.
    pub async fn tidy(&self) {
        let Engine::Sqlite { write, turn, .. } = self else {
            return;
        };
        let optimized = match turn.take().await {
            Ok(_turn) => sqlx::raw_sql("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;")
                .execute(write)
                .await
                .map(drop)
                .map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = optimized {
            log::warn!("the planner's statistics were not brought up to date: {error}");
        }
    }

    /// Closes every connection; on SQLite, first brings the planner's statistics up to date.
    pub async fn close(&self) {
        match self {
            Engine::Sqlite { read, write, .. } => {
                read.close().await;
                self.tidy().await;
                write.close().await;
            }
            Engine::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx<'_> {
    /// Every row of a statement in the transaction.
    pub async fn all<T: Record>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        context: &'static str,
    ) -> Result<Vec<T>> {
        match self {
            Tx::Sqlite(tx, _) => {
                bind_all!(sqlx::query_as::<Sqlite, T>(sql), args)
                    .fetch_all(&mut **tx)
                    .await
            }
            Tx::Postgres(tx) => {
                bind_all!(sqlx::query_as::<Postgres, T>(sql), args)
                    .fetch_all(&mut **tx)
                    .await
            }
        }
        .map_err(db(context))
    }

    /// The row of a statement in the transaction, if any.
    pub async fn optional<T: Record>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        context: &'static str,
    ) -> Result<Option<T>> {
        match self {
            Tx::Sqlite(tx, _) => {
                bind_all!(sqlx::query_as::<Sqlite, T>(sql), args)
                    .fetch_optional(&mut **tx)
                    .await
            }
            Tx::Postgres(tx) => {
                bind_all!(sqlx::query_as::<Postgres, T>(sql), args)
                    .fetch_optional(&mut **tx)
                    .await
            }
        }
        .map_err(db(context))
    }

    /// Runs a statement in the transaction; the rows it changed.
    pub async fn execute(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        context: &'static str,
    ) -> Result<u64> {
        match self {
            Tx::Sqlite(tx, _) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **tx)
                .await
                .map(|done| done.rows_affected()),
            Tx::Postgres(tx) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **tx)
                .await
                .map(|done| done.rows_affected()),
        }
        .map_err(db(context))
    }

    /// Runs a script of several statements (a migration) in the transaction, one prepared
    /// statement at a time: statements end with `;` at the end of a line, and the scripts hold no
    /// `;` inside a statement.
    pub async fn script(&mut self, sql: &str, context: &'static str) -> Result<()> {
        let statements = sql.split(";\n").map(str::trim).filter(|statement| {
            statement
                .lines()
                .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with("--"))
        });
        for statement in statements {
            self.execute(statement.trim_end_matches(';'), &[], context)
                .await?;
        }
        Ok(())
    }

    /// Whether this is a PostgreSQL transaction (for what is written per engine).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }

    /// Commits.
    pub async fn commit(self, context: &'static str) -> Result<()> {
        match self {
            Tx::Sqlite(tx, _) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
        .map_err(db(context))
    }
}
