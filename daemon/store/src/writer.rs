//! Group commit for certificates. Issuances and imports queue here, and one writer stores
//! whatever has queued up in one transaction: one durable commit (one fsync) and a handful of
//! statements per batch instead of per certificate. A request is answered only once its batch
//! has committed, so every 2xx is durable. Under light load a batch is one certificate and
//! nothing waits; under heavy load batches grow while the previous one commits.
//!
//! The writer is a thread with a connection of its own (on SQLite a [`crate::direct`] one), since
//! its statements are what every issuance waits for in turn: a task among the requests' would
//! wait behind them for the runtime at each of a batch's round trips.
//!
//! On PostgreSQL a batch goes first as one statement outside a transaction ([`one_trip`]): one
//! round trip where a transaction takes four (two when the copy of what its answers join in is
//! read again: see [`one_trip`]). What that statement leaves (a row skipped for a
//! name, body or key held already; a replacement; a chain not yet stored) is stored the usual
//! way after it, in a transaction.

use crate::cache::Caches;
use crate::chains::{Chains, KnownChains};
use crate::direct::Direct;
use crate::engine::{Engine, Statements, WriteTurn};
use crate::insert::{self, Outcome, ToStore};
use crate::link::Link;
use crate::one_trip;
use lemur_core::ca::x509::ParsedCertificate;
use lemur_core::model::{
    CertificateLinks, CertificateRecord, IdempotencyKey, LogEntry, NewCertificate,
};
use lemur_core::{Error, Result};
use sqlx::postgres::PgConnectOptions;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// A certificate as stored, with its links.
type Stored = (CertificateRecord, CertificateLinks);

/// The most certificates one transaction stores: enough to amortise the commit, few enough that
/// a batch's statements stay small and its wait short.
const MAX_BATCH: usize = 128;

/// Requests that may wait for the writer before senders wait too (back-pressure).
const QUEUE: usize = 1024;

/// The handle requests queue certificates through.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Message>,
}

/// What the writer is sent.
enum Message {
    /// A certificate to store.
    Store(Box<Job>),
    /// Stop once what came before is stored, closing the writer's connection; answered when
    /// done.
    Close(oneshot::Sender<()>),
}

/// What the writer works with.
struct Target {
    destination: Destination,
    known_chains: Arc<KnownChains>,
    caches: Arc<Caches>,
}

/// What the writer's thread connects to.
enum Plan {
    /// The SQLite file, and the engine's write turn.
    Sqlite(PathBuf, WriteTurn),
    /// The PostgreSQL server, and how long a batch waits for the connection.
    Postgres(Box<PgConnectOptions>, Duration),
}

impl Plan {
    /// The writer's runtime and connection, made on its thread: the connection's I/O belongs
    /// to that runtime.
    fn runtime_and_target(
        self,
        known_chains: Arc<KnownChains>,
        caches: Arc<Caches>,
    ) -> Result<(tokio::runtime::Runtime, Target)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::io("starting the certificate writer's runtime"))?;
        let destination = match self {
            Plan::Sqlite(file, turn) => Destination::Direct(Direct::open(&file)?, turn),
            Plan::Postgres(options, patience) => {
                Destination::Link(Box::new(Link::new(*options, patience)))
            }
        };
        let target = Target {
            destination,
            known_chains,
            caches,
        };
        Ok((runtime, target))
    }
}

/// Where batches are written.
enum Destination {
    /// PostgreSQL: a connection of the writer's own, made again after a fault.
    Link(Box<Link>),
    /// SQLite: the writer's own connection, taking turns with the engine's writes.
    Direct(Direct, WriteTurn),
}

/// A certificate with its audit row, owned while it waits in the queue.
struct Job {
    certificate: Certificate,
    log: Log,
    unique_body: bool,
    now: i64,
    reply: oneshot::Sender<Result<Stored>>,
}

/// [`NewCertificate`], owned.
struct Certificate {
    parsed: ParsedCertificate,
    names: [String; 2],
    owner: String,
    description: String,
    notify: bool,
    rotation: bool,
    chain: Option<String>,
    csr: Option<String>,
    sealed_private_key: Option<Vec<u8>>,
    authority_id: Option<i64>,
    root_authority_id: Option<i64>,
    user_id: Option<i64>,
    rotation_policy_id: Option<i64>,
    replaces: Vec<i64>,
    domains: Vec<String>,
    idempotency: Option<IdempotencyKey>,
}

impl Certificate {
    fn from_new(new: &NewCertificate<'_>) -> Self {
        Self {
            parsed: new.parsed.clone(),
            names: new.names.map(str::to_owned),
            owner: new.owner.to_owned(),
            description: new.description.to_owned(),
            notify: new.notify,
            rotation: new.rotation,
            chain: new.chain.map(str::to_owned),
            csr: new.csr.map(str::to_owned),
            sealed_private_key: new.sealed_private_key.map(<[u8]>::to_vec),
            authority_id: new.authority_id,
            root_authority_id: new.root_authority_id,
            user_id: new.user_id,
            rotation_policy_id: new.rotation_policy_id,
            replaces: new.replaces.to_vec(),
            domains: new.domains.to_vec(),
            idempotency: new.idempotency.cloned(),
        }
    }

    fn borrow(&self) -> NewCertificate<'_> {
        NewCertificate {
            parsed: &self.parsed,
            names: [&self.names[0], &self.names[1]],
            owner: &self.owner,
            description: &self.description,
            notify: self.notify,
            rotation: self.rotation,
            chain: self.chain.as_deref(),
            csr: self.csr.as_deref(),
            sealed_private_key: self.sealed_private_key.as_deref(),
            authority_id: self.authority_id,
            root_authority_id: self.root_authority_id,
            user_id: self.user_id,
            rotation_policy_id: self.rotation_policy_id,
            replaces: &self.replaces,
            domains: &self.domains,
            idempotency: self.idempotency.as_ref(),
        }
    }
}

/// [`LogEntry`], owned.
struct Log {
    log_type: String,
    user_id: Option<i64>,
    source_address: Option<String>,
    details: String,
}

impl Log {
    fn from_entry(entry: &LogEntry<'_>) -> Self {
        Self {
            log_type: entry.log_type.to_owned(),
            user_id: entry.user_id,
            source_address: entry.source_address.map(str::to_owned),
            details: entry.details.to_owned(),
        }
    }

    fn entry(&self) -> LogEntry<'_> {
        LogEntry {
            certificate_id: None,
            log_type: &self.log_type,
            user_id: self.user_id,
            source_address: self.source_address.as_deref(),
            details: &self.details,
        }
    }
}

impl Writer {
    /// Starts the writer on a thread of its own, with a connection of its own: for SQLite
    /// (`sqlite_file`, the database sqlx opened) a [`Direct`] one, else a [`Link`] to the
    /// engine's PostgreSQL server (one connection beyond the engine's pool). Everything the
    /// thread owns is made on the thread, so a failure to start drops nothing here.
    pub(crate) async fn start(
        engine: &Engine,
        sqlite_file: Option<&Path>,
        known_chains: Arc<KnownChains>,
        caches: Arc<Caches>,
    ) -> Result<Self> {
        let plan = match (engine, sqlite_file) {
            (Engine::Sqlite { turn, .. }, Some(file)) => {
                Plan::Sqlite(file.to_owned(), turn.clone())
            }
            (Engine::Sqlite { .. }, None) => {
                return Err(Error::Database {
                    context: "starting the certificate writer",
                    source: "SQLite's database file is unknown".into(),
                });
            }
            (Engine::Postgres(pool), _) => Plan::Postgres(
                Box::new((*pool.connect_options()).clone()),
                pool.options().get_acquire_timeout(),
            ),
        };
        let (queue, messages) = mpsc::channel(QUEUE);
        let (started, outcome) = oneshot::channel();
        std::thread::Builder::new()
            .name("lemur-cert-writer".to_owned())
            // Its statements wait on nothing but the database, so a batch blocks the thread
            // only while the database works (and on SQLite while the engine's writer holds
            // the write turn).
            .spawn(
                move || match plan.runtime_and_target(known_chains, caches) {
                    Ok((runtime, target)) => {
                        let _ = started.send(Ok(()));
                        runtime.block_on(run(target, messages));
                    }
                    Err(error) => {
                        let _ = started.send(Err(error));
                    }
                },
            )
            .map_err(Error::io("starting the certificate writer's thread"))?;
        outcome.await.map_err(|_| stopped())??;
        Ok(Self { queue })
    }

    /// Stores a certificate and its audit row; see
    /// [`CertificateRepository::create_certificate`](lemur_core::store::CertificateRepository).
    pub(crate) async fn create(
        &self,
        new: &NewCertificate<'_>,
        log: &LogEntry<'_>,
        unique_body: bool,
        now: i64,
    ) -> Result<Stored> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            certificate: Certificate::from_new(new),
            log: Log::from_entry(log),
            unique_body,
            now,
            reply,
        };
        self.queue
            .send(Message::Store(Box::new(job)))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Writer {
    /// An error once the writer has stopped (its thread ended, as after a panic): health checks
    /// report it, so the daemon reads as unhealthy rather than failing each issuance quietly.
    pub(crate) fn check(&self) -> Result<()> {
        if self.queue.is_closed() {
            Err(stopped())
        } else {
            Ok(())
        }
    }

    /// Stores what has queued by then, then stops the writer (a later certificate is refused as the
    /// daemon stopping) and closes its connection.
    pub(crate) async fn close(&self) {
        let (closed, done) = oneshot::channel();
        if self.queue.send(Message::Close(closed)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// The error of a request whose writer is gone (the daemon is stopping).
fn stopped() -> Error {
    Error::Database {
        context: "storing a certificate",
        source: "the certificate writer has stopped".into(),
    }
}

/// Takes whatever has queued, up to [`MAX_BATCH`], and commits it; until closed or every
/// handle is gone.
async fn run(mut target: Target, mut messages: mpsc::Receiver<Message>) {
    let mut received = Vec::with_capacity(MAX_BATCH);
    while messages.recv_many(&mut received, MAX_BATCH).await > 0 {
        let (batch, closing) = split(std::mem::take(&mut received));
        commit(&mut target, batch).await;
        if let Some(closed) = closing {
            // The writer closes its connection before it answers.
            if let Destination::Link(link) = &mut target.destination {
                link.close().await;
            }
            drop(target);
            let _ = closed.send(());
            return;
        }
    }
}

/// The certificates of `messages`, and the request to close if one came.
fn split(messages: Vec<Message>) -> (Vec<Job>, Option<oneshot::Sender<()>>) {
    let mut closing = None;
    let jobs = messages
        .into_iter()
        .filter_map(|message| match message {
            Message::Store(job) => Some(*job),
            Message::Close(closed) => {
                closing = Some(closed);
                None
            }
        })
        .collect();
    (jobs, closing)
}

/// What a failed commit reports: the batch may or may not be stored (the connection can fail
/// after the database committed), so no certificate of it is tried again; each request gets
/// 503 and its client retries, with its `Idempotency-Key` if it sent one.
const COMMITTING: &str = "committing certificates";

/// Commits a batch and answers each request. When the batch fails before its commit, each
/// certificate is tried alone so one bad row fails only its own request; once one fails
/// because the database is unreachable, the rest get that error without trying.
async fn commit(target: &mut Target, batch: Vec<Job>) {
    let batch = in_one_trip(target, batch).await;
    if batch.is_empty() {
        return;
    }
    let results = match write(target, &batch).await {
        Ok(results) => results,
        Err(error) if batch.len() == 1 => vec![Err(error)],
        Err(Error::Database {
            context: COMMITTING,
            source,
        }) => {
            log::warn!(
                "committing a batch of {} certificates failed ({source}); it may or may not be stored",
                batch.len()
            );
            refuse_all(batch, COMMITTING, &source.to_string());
            return;
        }
        Err(error) => {
            log::warn!(
                "storing a batch of {} certificates failed ({error}); storing them one by one",
                batch.len()
            );
            alone(target, &batch).await
        }
    };
    for (job, result) in batch.into_iter().zip(results) {
        // A request that gave up waiting is gone; its certificate is stored all the same.
        let _ = job.reply.send(result);
    }
}

/// On PostgreSQL, stores what it can of `batch` in one round trip ([`one_trip`]) and answers
/// those requests; returns the rest, to be stored the usual way. It takes the certificates that
/// replace none (a replacement's other rows go in the same transaction) and whose chain is
/// known to be stored. When the connection fails under the statement, a new one reads what it
/// stored: those are answered, the rest go the usual way; if that read fails too, every request
/// is told its certificate may or may not be stored.
async fn in_one_trip(target: &mut Target, batch: Vec<Job>) -> Vec<Job> {
    let Destination::Link(link) = &mut target.destination else {
        return batch;
    };
    let chains = Chains::remembered_in(&target.known_chains);
    let now = batch.iter().map(|job| job.now).max().unwrap_or_default();
    let news: Vec<NewCertificate<'_>> = batch.iter().map(|job| job.certificate.borrow()).collect();
    let logs: Vec<LogEntry<'_>> = batch.iter().map(|job| job.log.entry()).collect();
    let mut indexes = Vec::with_capacity(batch.len());
    let mut candidates = Vec::with_capacity(batch.len());
    for (index, (new, log)) in news.iter().zip(&logs).enumerate() {
        let chain_id = match new.chain {
            Some(pem) => match chains.known(&lemur_core::ca::x509::sha256_hex(pem.as_bytes())) {
                Some(id) => Some(id),
                None => continue,
            },
            None => None,
        };
        if new.replaces.is_empty() {
            indexes.push(index);
            candidates.push(one_trip::Candidate { new, log, chain_id });
        }
    }
    let taken = one_trip::taken(&candidates);
    if taken.is_empty() {
        return batch;
    }
    let joined = &target.caches.joined;
    let outcome = link
        .outside_transaction(async |connection| {
            one_trip::store(connection, &candidates, &taken, now, joined).await
        })
        .await;
    let stored = match outcome {
        Ok(Ok(stored)) => stored,
        Ok(Err(Error::Database { context, source }))
            if context == one_trip::AFTER_COMMIT || unreachable(source.as_ref()) =>
        {
            log::info!(
                "the certificate writer's statement was lost ({source}); connecting again to read what its batch stored"
            );
            let read = async {
                link.end_lost_session().await?;
                let begin = "BEGIN ISOLATION LEVEL READ COMMITTED".into();
                link.transaction(begin, "reading stored certificates", async |tx| {
                    one_trip::recover(tx, &candidates, &taken, now).await
                })
                .await
            };
            match read.await {
                Ok(stored) => stored,
                Err(error) => {
                    log::warn!(
                        "storing a batch of {} certificates failed ({source}), and what it stored could not be read ({error})",
                        batch.len()
                    );
                    refuse_all(batch, COMMITTING, &source.to_string());
                    return Vec::new();
                }
            }
        }
        Ok(Err(error)) => {
            log::warn!(
                "storing a batch of {} certificates in one statement failed ({error}); storing it the usual way",
                batch.len()
            );
            return batch;
        }
        // No connection to be had: nothing was sent, and the usual way would wait as long again.
        Err(Error::Database { context, source }) => {
            refuse_all(batch, context, &source.to_string());
            return Vec::new();
        }
        Err(error) => {
            log::warn!("the certificate writer could not connect ({error})");
            return batch;
        }
    };
    let mut stored: HashMap<usize, Stored> = stored
        .into_iter()
        .map(|(candidate, stored)| (indexes[candidate], stored))
        .collect();
    drop(candidates);
    drop((news, logs));
    let mut rest = Vec::with_capacity(batch.len() - stored.len());
    for (index, job) in batch.into_iter().enumerate() {
        match stored.remove(&index) {
            // A request that gave up waiting is gone; its certificate is stored all the same.
            Some(certificate) => {
                let _ = job.reply.send(Ok(certificate));
            }
            None => rest.push(job),
        }
    }
    rest
}

/// Answers every request of `batch` with the same database error.
fn refuse_all(batch: Vec<Job>, context: &'static str, detail: &str) {
    for job in batch {
        let _ = job.reply.send(Err(Error::Database {
            context,
            source: detail.to_owned().into(),
        }));
    }
}

async fn alone(target: &mut Target, batch: &[Job]) -> Vec<Result<Stored>> {
    let mut outage: Option<(&'static str, String)> = None;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let result = match &outage {
            Some((context, detail)) => Err(Error::Database {
                context,
                source: detail.clone().into(),
            }),
            None => write(target, std::slice::from_ref(job))
                .await
                .and_then(|mut results| results.pop().unwrap_or_else(|| Err(stopped()))),
        };
        if let Err(Error::Database { context, source }) = &result
            && unreachable(source.as_ref())
        {
            outage = Some((context, source.to_string()));
        }
        results.push(result);
    }
    results
}

/// Whether a database error means the database cannot be reached (every later statement would
/// fail too), rather than that one statement's data was refused.
pub(crate) fn unreachable(source: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    if let Some(error) = source.downcast_ref::<rusqlite::Error>() {
        return crate::direct::unreachable(error);
    }
    match source.downcast_ref::<sqlx::Error>() {
        // The server ending the session (a shutdown, a terminated backend: class 57P) or the
        // connection failing (class 08) says so as a database error.
        Some(sqlx::Error::Database(error)) => error
            .code()
            .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
        Some(_) => true,
        // Errors copied as text for the rest of a batch: already judged.
        None => true,
    }
}

/// Stores `batch` in one transaction: per certificate its id, or why it alone was refused (a
/// duplicate import, both names taken).
async fn write(target: &mut Target, batch: &[Job]) -> Result<Vec<Result<Stored>>> {
    let mut chains = Chains::remembered_in(&target.known_chains);
    let results = match &mut target.destination {
        Destination::Link(link) => {
            // Read committed whatever the server's default: an INSERT that waited for another
            // transaction storing the same body skips its row, and the look-up after it must see
            // that row. Under repeatable read the INSERT would fail instead, the other row being
            // newer than the transaction's snapshot.
            let begin = "BEGIN ISOLATION LEVEL READ COMMITTED".into();
            link.transaction(begin, COMMITTING, async |tx| {
                write_in(tx, batch, &mut chains).await
            })
            .await?
        }
        Destination::Direct(direct, turn) => {
            let _turn = turn.wait().await;
            let mut tx = direct.begin()?;
            let results = write_in(&mut tx, batch, &mut chains).await?;
            tx.commit(COMMITTING)?;
            results
        }
    };
    chains.committed();
    Ok(results)
}

/// [`write`]'s statements, in the caller's transaction.
async fn write_in(
    tx: &mut impl Statements,
    batch: &[Job],
    chains: &mut Chains<'_>,
) -> Result<Vec<Result<Stored>>> {
    let now = batch.iter().map(|job| job.now).max().unwrap_or_default();
    let news: Vec<NewCertificate<'_>> = batch.iter().map(|job| job.certificate.borrow()).collect();
    let logs: Vec<LogEntry<'_>> = batch.iter().map(|job| job.log.entry()).collect();
    let to_store: Vec<(ToStore<'_, '_>, &LogEntry<'_>)> = batch
        .iter()
        .zip(&news)
        .zip(&logs)
        .map(|((job, new), log)| {
            let unique_body = job.unique_body;
            (ToStore { new, unique_body }, log)
        })
        .collect();
    let inserted =
        insert::certificates_with_logs(tx, &to_store, now, chains, insert::Views::Returned).await?;
    let answered: Vec<i64> = inserted
        .outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Outcome::Stored(id) | Outcome::Replayed(id) => Some(*id),
            _ => None,
        })
        .collect();
    let stored =
        crate::certificates::read_back(tx, &answered, inserted.linked, inserted.views).await?;
    Ok(inserted
        .outcomes
        .iter()
        .zip(&news)
        .map(|(outcome, new)| match outcome {
            Outcome::Stored(id) | Outcome::Replayed(id) => {
                stored.get(id).cloned().ok_or_else(|| Error::Database {
                    context: "reading a stored certificate",
                    source: format!("certificate {id} was not read back").into(),
                })
            }
            Outcome::KeyReused => Err(Error::idempotency_key_reused()),
            Outcome::NameTaken => Err(insert::name_taken(new)),
            Outcome::Duplicate(holder) => Err(duplicate(*holder)),
        })
        .collect())
}

/// The conflict of an import whose certificate is in the inventory already, as `holder`.
fn duplicate(holder: i64) -> Error {
    Error::Conflict(format!(
        "this certificate is already in the inventory as certificate {holder}"
    ))
}
