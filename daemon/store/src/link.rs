//! The certificate writer's own PostgreSQL connection, kept between batches.
//!
//! A pool would cost each batch two round trips that carry nothing: sqlx pings a connection
//! before handing it out and again when it comes back, and the writer's next batch waits for
//! both. A connection kept by the writer is used as it is while in steady use. In a transaction,
//! one that died while idle (a server restart, which tells idle clients so) fails at the batch's
//! `BEGIN`, and nothing of a batch is written before its commit, so a fresh connection is made
//! and the batch begun on it instead. A statement sent outside a transaction
//! ([`Link::outside_transaction`]) is not sent again: it may have run, and the writer reads what
//! it stored, once the session it was sent on has ended ([`Link::end_lost_session`]). One idle
//! for long is pinged first, within the patience a new connection gets, so a connection a
//! firewall dropped in silence does not hold the writer for the kernel's retransmission
//! timeout. Each session reads committed data whatever the server's default, so a statement
//! that waited for another transaction sees what that one stored.

use crate::db;
use crate::engine::Tx;
use lemur_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use std::borrow::Cow;
use std::time::{Duration, Instant};

/// How long the connection may sit unused before a batch checks it first.
const IDLE_CHECK_AFTER: Duration = Duration::from_secs(60);

/// What the writer connects with, and its connection once made.
pub(crate) struct Link {
    options: PgConnectOptions,
    /// How long a batch waits for a connection to be made or checked (the engine's
    /// `acquire_timeout`).
    patience: Duration,
    /// The connection, when a batch last ended on it, and its server session.
    connection: Option<(PgConnection, Instant, Session)>,
    /// The session a statement outside a transaction was lost on, until it is known to have
    /// ended.
    lost: Option<Session>,
}

/// A server session, as `pg_stat_activity` names it: its process, and when it started (a
/// process id alone may be reused after a restart).
#[derive(Debug, sqlx::FromRow)]
struct Session {
    pid: i32,
    started: String,
}

/// How often [`Link::end_lost_session`] looks whether the session has ended.
const ENDED_CHECK_EVERY: Duration = Duration::from_millis(10);

impl Link {
    /// A link that connects when its first batch begins.
    pub(crate) fn new(options: PgConnectOptions, patience: Duration) -> Self {
        Self {
            // A space in a startup option is escaped with a backslash.
            options: options.options([("default_transaction_isolation", "read\\ committed")]),
            patience,
            connection: None,
            lost: None,
        }
    }

    /// Runs `work` in a transaction on the writer's connection, made first if there is none or
    /// the one kept is gone; commits when `work` succeeds. `begin` starts the transaction: a
    /// `BEGIN`, perhaps followed by statements that go in the same round trip (as a simple
    /// query: no parameters). A failure after `BEGIN` drops the transaction (its
    /// rollback goes out before the next statement); a failed `BEGIN` (which may leave the
    /// session in an aborted transaction sqlx does not roll back) or a connection that is gone
    /// drops the connection, and the next batch makes a new one.
    pub(crate) async fn transaction<T>(
        &mut self,
        begin: Cow<'static, str>,
        commit_context: &'static str,
        work: impl AsyncFnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        let reused = self.connection.is_some();
        let start = Start {
            begin: &begin,
            commit_context,
        };
        let outcome = match attempt(self.connected().await?, start, work).await {
            Attempt::Done(outcome) => outcome,
            Attempt::NotBegun(error, work) if reused && gone(&error) => {
                log::info!(
                    "the certificate writer's database connection was gone ({error}); connecting again"
                );
                self.connection = None;
                match attempt(self.connected().await?, start, work).await {
                    Attempt::Done(outcome) => outcome,
                    Attempt::NotBegun(error, _) => return Err(self.not_begun(error)),
                }
            }
            Attempt::NotBegun(error, _) => return Err(self.not_begun(error)),
        };
        match (&outcome, &mut self.connection) {
            (Err(error), _) if unreachable(error) => self.connection = None,
            (_, Some((_, last_used, _))) => *last_used = Instant::now(),
            _ => {}
        }
        outcome
    }

    /// Runs `work` on the connection outside a transaction: the kept one (checked first if it
    /// sat idle long), or a new one. `Err` when there is none to be had, and nothing was sent.
    /// A statement sent on a connection that died unnoticed may or may not have run, so unlike
    /// [`Link::transaction`] this does not try again: the caller finds out what was stored.
    pub(crate) async fn outside_transaction<T>(
        &mut self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<Result<T>> {
        let outcome = work(self.connected().await?).await;
        match (&outcome, &mut self.connection) {
            (Err(error), _) if unreachable(error) => {
                self.lost = self.connection.take().map(|(_, _, session)| session);
            }
            (_, Some((_, last_used, _))) => *last_used = Instant::now(),
            _ => {}
        }
        Ok(outcome)
    }

    /// Ends the session a statement outside a transaction was lost on, and waits until the
    /// server says it has ended, within the patience a connection gets: a client can see its
    /// connection fail while the server still runs the statement (waiting for a lock, say),
    /// and what the statement stored is only settled once its session is gone. Nothing to do
    /// when no statement was lost. Error if the session outlasts the patience (it is not looked
    /// for again: its batch is answered as perhaps stored).
    pub(crate) async fn end_lost_session(&mut self) -> Result<()> {
        let Some(lost) = self.lost.take() else {
            return Ok(());
        };
        let patience = self.patience;
        let connection = self.connected().await?;
        let deadline = Instant::now() + patience;
        let context = "ending the session of a lost statement";
        // Each check is a statement of its own: a transaction sees one picture of the sessions.
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE pid = $1 AND backend_start::TEXT = $2",
        )
        .bind(lost.pid)
        .bind(&lost.started)
        .execute(&mut *connection)
        .await
        .map_err(db(context))?;
        loop {
            let (left,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND backend_start::TEXT = $2",
            )
            .bind(lost.pid)
            .bind(&lost.started)
            .fetch_one(&mut *connection)
            .await
            .map_err(db(context))?;
            if left == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Database {
                    context,
                    source: format!(
                        "session {} was still running after {} s",
                        lost.pid,
                        patience.as_secs_f64()
                    )
                    .into(),
                });
            }
            tokio::time::sleep(ENDED_CHECK_EVERY).await;
        }
    }

    /// A failed `BEGIN`, reported; its connection is dropped, as the session may be left in
    /// an aborted transaction.
    fn not_begun(&mut self, error: sqlx::Error) -> Error {
        self.connection = None;
        db("starting a transaction")(error)
    }

    /// Closes the connection, if there is one.
    pub(crate) async fn close(&mut self) {
        if let Some((connection, _, _)) = self.connection.take() {
            let _ = connection.close().await;
        }
    }

    /// The kept connection, or a new one.
    async fn connected(&mut self) -> Result<&mut PgConnection> {
        if let Some((mut connection, last_used, session)) = self.connection.take() {
            let alive = last_used.elapsed() < IDLE_CHECK_AFTER
                || tokio::time::timeout(self.patience, connection.ping())
                    .await
                    .is_ok_and(|pinged| pinged.is_ok());
            if alive {
                return Ok(&mut self.connection.insert((connection, last_used, session)).0);
            }
            log::info!(
                "the certificate writer's idle database connection did not answer; connecting again"
            );
        }
        let connection = tokio::time::timeout(self.patience, self.options.connect())
            .await
            .map_err(|_| Error::Database {
                context: "connecting to the database",
                source: format!("no connection within {} s", self.patience.as_secs_f64()).into(),
            })?
            .map_err(db("connecting to the database"))?;
        let mut connection = connection;
        let session: Session = sqlx::query_as(
            "SELECT pid, backend_start::TEXT AS started FROM pg_stat_activity
             WHERE pid = pg_backend_pid()",
        )
        .fetch_one(&mut connection)
        .await
        .map_err(db("connecting to the database"))?;
        Ok(&mut self
            .connection
            .insert((connection, Instant::now(), session))
            .0)
    }
}

/// What became of one try at a batch's transaction.
enum Attempt<T, W> {
    /// `BEGIN` failed: nothing was sent, and the work is still to do.
    NotBegun(sqlx::Error, W),
    /// The work ran (and committed, if it succeeded).
    Done(Result<T>),
}

/// How a batch's transaction starts, and what its commit's failure is reported as.
#[derive(Clone, Copy)]
struct Start<'s> {
    begin: &'s Cow<'static, str>,
    commit_context: &'static str,
}

/// Begins a transaction on `connection` and, once begun, runs `work` there.
async fn attempt<T, W: AsyncFnOnce(&mut Tx<'_>) -> Result<T>>(
    connection: &mut PgConnection,
    start: Start<'_>,
    work: W,
) -> Attempt<T, W> {
    let transaction = match connection.begin_with(start.begin.clone()).await {
        Ok(transaction) => transaction,
        Err(error) => return Attempt::NotBegun(error, work),
    };
    let mut tx = Tx::Postgres(transaction);
    Attempt::Done(match work(&mut tx).await {
        Ok(value) => tx.commit(start.commit_context).await.map(|()| value),
        Err(error) => Err(error),
    })
}

/// Whether `error` means the connection no longer works (rather than a statement refused).
fn gone(error: &sqlx::Error) -> bool {
    crate::writer::unreachable(error)
}

/// Whether a batch's error came from a connection that no longer works.
fn unreachable(error: &Error) -> bool {
    matches!(error, Error::Database { source, .. } if crate::writer::unreachable(source.as_ref()))
}
