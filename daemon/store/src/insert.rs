//! Writing certificates, many per statement: their rows, domains, replacements and audit rows.
//! A batch of certificates costs the same handful of statements as one, which is what lets the
//! [`writer`](crate::writer) commit a whole queue of issuances in one transaction.

use crate::chains::Chains;
use crate::engine::{Arg, Statements, args};
use crate::rows::{
    CERTIFICATE_COLUMNS as VIEW_COLUMNS, CERTIFICATE_JOINS, CertificateRow, DomainRow,
};
use lemur_core::model::{CertificateDetails, LogEntry, NewCertificate};
use lemur_core::{Error, Result};
use std::collections::{HashMap, HashSet};

mod skipped;

pub(crate) use skipped::existing_bodies;
use skipped::why_skipped;

/// The most parameters one statement binds: well under SQLite's limit (32,766) and
/// PostgreSQL's (65,535).
pub(crate) const MAX_PARAMS: usize = 30_000;

/// Columns of a certificate row, in the order [`row_args`] binds them.
pub(crate) const CERTIFICATE_COLUMNS: &str = "name, owner, description, notify, rotation, body, body_der,
    body_sha256, chain_id, csr, sealed_private_key, issuer, serial, serial_hex, cn, distinguished_name, san, bits,
    key_type, signing_algorithm, not_before, not_after, is_ca, authority_id, root_authority_id,
    user_id, rotation_policy_id, date_created, subject_organization, subject_organizational_unit,
    subject_country, subject_state, subject_location, path_length, server_auth, client_auth,
    alt_names, idempotency_key, idempotency_fingerprint, duplicate_of";
pub(crate) const CERTIFICATE_ARITY: usize = 40;

/// `($1, $2, ...), (...)`: `rows` tuples of `arity` placeholders, bound in order. SQLite gets
/// anonymous `?`s: sqlx looks each named parameter up by walking SQLite's list of names, which
/// makes binding a statement of thousands of `$n`s quadratic (most of a bulk insert's time).
fn placeholders(postgres: bool, rows: usize, arity: usize) -> String {
    placeholders_after(postgres, 0, rows, arity)
}

/// [`placeholders`] for parameters bound after the first `after`.
pub(crate) fn placeholders_after(
    postgres: bool,
    after: usize,
    rows: usize,
    arity: usize,
) -> String {
    (0..rows)
        .map(|row| format!("({})", in_list(postgres, after + row * arity, arity)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$n+1, ..., $n+count` (or as many `?`s on SQLite): parameters bound in order after the
/// first `after`.
fn in_list(postgres: bool, after: usize, count: usize) -> String {
    (after + 1..=after + count)
        .map(|n| {
            if postgres {
                format!("${n}")
            } else {
                "?".to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many rows of `arity` parameters fit in one statement.
fn rows_per_statement(arity: usize) -> usize {
    (MAX_PARAMS / arity).max(1)
}

/// The arguments of one certificate row as `attempt` stores it, in [`CERTIFICATE_COLUMNS`]
/// order: the body as DER (the PEM column left empty), the chain by its id in `chains`.
pub(crate) fn row_args<'a>(
    new: &'a NewCertificate<'a>,
    attempt: Attempt,
    alt_names: &'a str,
    chain_id: Option<i64>,
    now: i64,
) -> [Arg<'a>; CERTIFICATE_ARITY] {
    let parsed = new.parsed;
    *args![
        new.names[attempt.name],
        new.owner,
        new.description,
        new.notify,
        new.rotation,
        "",
        Some(parsed.der.as_slice()),
        &parsed.sha256,
        chain_id,
        new.csr,
        new.sealed_private_key,
        &parsed.issuer,
        &parsed.serial,
        &parsed.serial_hex,
        &parsed.cn,
        &parsed.subject,
        parsed.alt_names.len() > 1,
        parsed.bits,
        &parsed.key_type,
        &parsed.signing_algorithm,
        parsed.not_before,
        parsed.not_after,
        parsed.is_ca,
        new.authority_id,
        new.root_authority_id,
        new.user_id,
        new.rotation_policy_id,
        now,
        &parsed.organization,
        &parsed.organizational_unit,
        &parsed.country,
        &parsed.state,
        &parsed.location,
        parsed.path_len.map(i64::from),
        parsed.server_auth,
        parsed.client_auth,
        alt_names,
        new.idempotency.map(|key| key.key.as_str()),
        new.idempotency.map(|key| key.fingerprint.as_str()),
        attempt.duplicate_of,
    ]
}

/// What became of one certificate of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stored, with this id.
    Stored(i64),
    /// Not stored: the same request, by its idempotency key, made this certificate before.
    Replayed(i64),
    /// Not stored: its idempotency key was used before for another request.
    KeyReused,
    /// Not stored: both its names are taken.
    NameTaken,
    /// Not stored: its body must be new to the inventory, and this live certificate has it.
    Duplicate(i64),
}

/// A certificate to store, and whether its body must be new to the inventory (an import,
/// refused as a [`Outcome::Duplicate`] if not). Otherwise a body a live certificate has already
/// is stored as that one's twin (`duplicate_of`), as for an authority made from a certificate
/// imported before.
#[derive(Clone, Copy)]
pub(crate) struct ToStore<'b, 'a> {
    pub(crate) new: &'b NewCertificate<'a>,
    pub(crate) unique_body: bool,
}

/// How a row is inserted: under which of its names, and as whose twin if any.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Attempt {
    /// The index of the name in [`NewCertificate::names`].
    name: usize,
    duplicate_of: Option<i64>,
}

/// Stores each certificate of `batch` under the first of its names that is free, with its
/// domains and replacements, in the caller's transaction, unless its idempotency key names a
/// certificate already; one whose body a live certificate has is stored as that one's twin.
/// Returns what became of each, in order.
pub(crate) async fn certificates(
    tx: &mut impl Statements,
    batch: &[&NewCertificate<'_>],
    now: i64,
    chains: &mut Chains<'_>,
) -> Result<Vec<Outcome>> {
    let batch: Vec<ToStore<'_, '_>> = batch
        .iter()
        .map(|&new| ToStore {
            new,
            unique_body: false,
        })
        .collect();
    let (outcomes, stored, _) = rows(tx, &batch, now, chains, Views::NotWanted).await?;
    link_domains(tx, &stored).await?;
    record_all_replacements(tx, &stored).await?;
    Ok(outcomes)
}

/// What [`certificates_with_logs`] did.
pub(crate) struct Inserted {
    /// What became of each certificate, in order.
    pub(crate) outcomes: Vec<Outcome>,
    /// On PostgreSQL, the ids of the certificates stored and their domains, as linked (see
    /// [`link_and_log`]); `None` when the domains must be read back.
    pub(crate) linked: Option<(Vec<i64>, Vec<DomainRow>)>,
    /// On PostgreSQL, when asked for, each certificate stored as its view reads it, returned by
    /// the `INSERT` itself (one round trip fewer than reading it back).
    pub(crate) views: HashMap<i64, CertificateRow>,
}

/// Whether the `INSERT` of a batch returns each certificate's view where it can (PostgreSQL):
/// what a writer answers requests with, and a bulk import never reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Views {
    /// Returned with the ids.
    Returned,
    /// Only the ids.
    NotWanted,
}

/// Stores certificates as [`certificates`] does, and the audit row of each one stored (its
/// `certificate_id` filled in), in the caller's transaction.
pub(crate) async fn certificates_with_logs(
    tx: &mut impl Statements,
    batch: &[(ToStore<'_, '_>, &LogEntry<'_>)],
    now: i64,
    chains: &mut Chains<'_>,
    views: Views,
) -> Result<Inserted> {
    let certificates: Vec<ToStore<'_, '_>> = batch.iter().map(|(to_store, _)| *to_store).collect();
    let (outcomes, stored, views) = rows(tx, &certificates, now, chains, views).await?;
    let logs: Vec<LogEntry<'_>> = batch
        .iter()
        .zip(&outcomes)
        .filter_map(|((_, log), outcome)| match outcome {
            Outcome::Stored(id) => Some(LogEntry {
                certificate_id: Some(*id),
                ..**log
            }),
            _ => None,
        })
        .collect();
    let linked = if tx.is_postgres() {
        link_and_log(tx, &stored, &logs, now)
            .await?
            .map(|domains| (stored.iter().map(|(id, _)| *id).collect(), domains))
    } else {
        link_domains(tx, &stored).await?;
        self::logs(tx, &logs, now).await?;
        None
    };
    record_all_replacements(tx, &stored).await?;
    Ok(Inserted {
        outcomes,
        linked,
        views,
    })
}

/// The certificates a batch stored, with their ids.
type StoredRows<'b, 'a> = Vec<(i64, &'b NewCertificate<'a>)>;

/// Inserts the rows of `batch` (see [`certificates`]): what became of each, the ones stored
/// with their ids, and their views if asked for and returned.
///
/// `ON CONFLICT DO NOTHING` makes a writer that races another for a name, a body or an
/// idempotency key wait for it and then skip the row, where a look-up before the INSERT would
/// see nothing and fail on the unique index. The few rows skipped are then looked at: a retry by
/// its key, a body stored already, or a name taken (the second name is tried).
async fn rows<'b, 'a>(
    tx: &mut impl Statements,
    batch: &[ToStore<'b, 'a>],
    now: i64,
    chains: &mut Chains<'_>,
    views: Views,
) -> Result<(
    Vec<Outcome>,
    StoredRows<'b, 'a>,
    HashMap<i64, CertificateRow>,
)> {
    let news: Vec<&'b NewCertificate<'a>> = batch.iter().map(|to_store| to_store.new).collect();
    let chains = chain_ids(tx, &news, chains).await?;
    let mut ids = vec![None; batch.len()];
    let mut read = HashMap::new();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
    let mut attempts = vec![Attempt::default(); batch.len()];
    let rows = Rows {
        batch: &news,
        chains: &chains,
        now,
        views,
    };
    // Each row skipped either ends with an outcome or moves on (to its twin's row, to its second
    // name); a row held back for another with its name and body goes in a later round (the two
    // could not be told apart in what the INSERT returns). So this ends.
    loop {
        let mut round = HashSet::new();
        let waiting: Vec<usize> = (0..batch.len())
            .filter(|&i| ids[i].is_none() && outcomes[i].is_none())
            .filter(|&i| {
                let new = batch[i].new;
                round.insert((new.names[attempts[i].name], new.parsed.sha256.as_str()))
            })
            .collect();
        if waiting.is_empty() {
            break;
        }
        insert_rows(tx, &rows, &waiting, &attempts, &mut ids, &mut read).await?;
        let skipped: Vec<usize> = waiting.into_iter().filter(|&i| ids[i].is_none()).collect();
        why_skipped(tx, batch, &skipped, &mut attempts, &mut outcomes).await?;
    }
    let stored = ids
        .iter()
        .zip(news)
        .filter_map(|(id, new)| id.map(|id| (id, new)))
        .collect();
    let outcomes = ids
        .into_iter()
        .zip(outcomes)
        .map(|(id, outcome)| match (id, outcome) {
            (Some(id), _) => Outcome::Stored(id),
            (None, Some(outcome)) => outcome,
            (None, None) => Outcome::NameTaken,
        })
        .collect();
    Ok((outcomes, stored, read))
}

/// [`record_replacements`] of each certificate stored.
async fn record_all_replacements(
    tx: &mut impl Statements,
    stored: &[(i64, &NewCertificate<'_>)],
) -> Result<()> {
    for (id, new) in stored {
        record_replacements(tx, *id, new.replaces).await?;
    }
    Ok(())
}

/// A batch of certificates with what their rows need besides.
struct Rows<'b, 'a> {
    batch: &'b [&'b NewCertificate<'a>],
    /// Chain ids by chain PEM.
    chains: &'b HashMap<&'b str, i64>,
    now: i64,
    views: Views,
}

/// The id of each distinct chain of `batch` (by PEM): from `chains` when known to be
/// committed, else stored if missing and read, in two statements however many.
async fn chain_ids<'b>(
    tx: &mut impl Statements,
    batch: &[&'b NewCertificate<'_>],
    chains: &mut Chains<'_>,
) -> Result<HashMap<&'b str, i64>> {
    let mut ids = HashMap::new();
    let mut unknown: Vec<(&str, String)> = Vec::new();
    for pem in batch.iter().filter_map(|new| new.chain) {
        if ids.contains_key(pem) {
            continue;
        }
        let sha256 = lemur_core::ca::x509::sha256_hex(pem.as_bytes());
        match chains.known(&sha256) {
            Some(id) => {
                ids.insert(pem, id);
            }
            None if !unknown.iter().any(|(_, known)| *known == sha256) => {
                unknown.push((pem, sha256));
            }
            None => {}
        }
    }
    if unknown.is_empty() {
        return Ok(ids);
    }
    unknown.sort_unstable_by(|a, b| a.1.cmp(&b.1));
    let args: Vec<Arg<'_>> = unknown
        .iter()
        .flat_map(|(pem, sha256)| [Arg::Text(sha256), Arg::Text(pem)])
        .collect();
    tx.execute(
        &format!(
            "INSERT INTO chains (sha256, pem) VALUES {} ON CONFLICT (sha256) DO NOTHING",
            placeholders(tx.is_postgres(), unknown.len(), 2)
        ),
        &args,
        "storing chains",
    )
    .await?;
    let hashes: Vec<Arg<'_>> = unknown
        .iter()
        .map(|(_, sha256)| Arg::Text(sha256))
        .collect();
    let list = in_list(tx.is_postgres(), 0, hashes.len());
    let stored: HashMap<String, i64> = tx
        .all::<(String, i64)>(
            &format!("SELECT sha256, id FROM chains WHERE sha256 IN ({list})"),
            &hashes,
            "reading chains",
        )
        .await?
        .into_iter()
        .collect();
    for (pem, sha256) in unknown {
        if let Some(&id) = stored.get(&sha256) {
            ids.insert(pem, id);
            chains.learned(sha256, id);
        }
    }
    Ok(ids)
}

/// Inserts the rows `waiting` (indexes into the batch) as their `attempts` say, and records the
/// id of each that was stored (and, when the statement returns them, its view in `views`).
async fn insert_rows(
    tx: &mut impl Statements,
    rows: &Rows<'_, '_>,
    waiting: &[usize],
    attempts: &[Attempt],
    ids: &mut [Option<i64>],
    views: &mut HashMap<i64, CertificateRow>,
) -> Result<()> {
    let batch = rows.batch;
    let alt_names: Vec<String> = waiting
        .iter()
        .map(|&i| CertificateDetails::encode_alt_names(&batch[i].parsed.alt_names))
        .collect();
    // PostgreSQL returns the views from the statement itself; SQLite has no `INSERT` in `WITH`
    // (and reads back in process, without a round trip).
    let returning_views = rows.views == Views::Returned && tx.is_postgres();
    let per_statement = rows_per_statement(CERTIFICATE_ARITY);
    for (chunk, chunk_alt_names) in waiting
        .chunks(per_statement)
        .zip(alt_names.chunks(per_statement))
    {
        let args: Vec<Arg<'_>> = chunk
            .iter()
            .zip(chunk_alt_names)
            .flat_map(|(&i, alt)| {
                let chain_id = batch[i].chain.and_then(|pem| rows.chains.get(pem).copied());
                row_args(batch[i], attempts[i], alt, chain_id, rows.now)
            })
            .collect();
        let insert = format!(
            "INSERT INTO certificates ({CERTIFICATE_COLUMNS}) VALUES {} ON CONFLICT DO NOTHING",
            placeholders(tx.is_postgres(), chunk.len(), CERTIFICATE_ARITY)
        );
        // RETURNING promises no order: each row goes to the waiting certificate with its name
        // and body (a round has one of each).
        let mut take = |id: i64, name: &str, same_body: &dyn Fn(&NewCertificate<'_>) -> bool| {
            let found = chunk.iter().copied().find(|&i| {
                ids[i].is_none() && batch[i].names[attempts[i].name] == name && same_body(batch[i])
            });
            if let Some(i) = found {
                ids[i] = Some(id);
            }
            found.is_some()
        };
        if returning_views {
            let sql = format!(
                "WITH c AS ({insert} RETURNING *)
                 SELECT {VIEW_COLUMNS} FROM c {CERTIFICATE_JOINS}"
            );
            let inserted: Vec<CertificateRow> = tx.all(&sql, &args, "storing certificates").await?;
            for view in inserted {
                let der = view.body_der.as_deref();
                if take(view.id, &view.name, &|new| {
                    Some(new.parsed.der.as_slice()) == der
                }) {
                    views.insert(view.id, view);
                }
            }
        } else {
            let sql = format!("{insert} RETURNING id, name, body_sha256");
            let inserted: Vec<(i64, String, String)> =
                tx.all(&sql, &args, "storing certificates").await?;
            for (id, name, sha256) in inserted {
                take(id, &name, &|new| new.parsed.sha256 == sha256);
            }
        }
    }
    Ok(())
}

/// Records each distinct domain once and links each certificate to its own: two statements
/// however many certificates and names (more only past the parameter limit). Domains are
/// written in sorted order, so concurrent writers lock their rows in one order.
async fn link_domains(
    tx: &mut impl Statements,
    stored: &[(i64, &NewCertificate<'_>)],
) -> Result<()> {
    let mut names: Vec<&str> = stored
        .iter()
        .flat_map(|(_, new)| new.domains.iter().map(String::as_str))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort_unstable();
    names.dedup();
    for chunk in names.chunks(rows_per_statement(1)) {
        let args: Vec<Arg<'_>> = chunk.iter().map(|&name| Arg::Text(name)).collect();
        tx.execute(
            &format!(
                "INSERT INTO domains (name) VALUES {} ON CONFLICT (name) DO NOTHING",
                placeholders(tx.is_postgres(), chunk.len(), 1)
            ),
            &args,
            "storing domains",
        )
        .await?;
    }
    let links: Vec<(i64, &str)> = stored
        .iter()
        .flat_map(|(id, new)| new.domains.iter().map(move |name| (*id, name.as_str())))
        .collect();
    for chunk in links.chunks(rows_per_statement(2)) {
        let args: Vec<Arg<'_>> = chunk
            .iter()
            .flat_map(|&(id, name)| [Arg::Int(id), Arg::Text(name)])
            .collect();
        // `WHERE TRUE`: SQLite needs a WHERE before an upsert clause after a SELECT.
        tx.execute(
            &format!(
                "WITH link (certificate_id, name) AS (VALUES {})
                 INSERT INTO certificate_domains (certificate_id, domain_id)
                 SELECT link.certificate_id, d.id FROM link JOIN domains d ON d.name = link.name
                 WHERE TRUE ON CONFLICT DO NOTHING",
                placeholders(tx.is_postgres(), chunk.len(), 2)
            ),
            &args,
            "linking domains",
        )
        .await?;
    }
    Ok(())
}

/// PostgreSQL's [`link_domains`] and [`logs`] (`logs[i]` being `stored[i]`'s) in one statement
/// per chunk (round trips are most of what a batch waits for), returning the domain rows of the
/// certificates linked, so none has to be read back; `None` when a certificate had more names
/// than a statement holds and its domains must be read back.
///
/// Each name is upserted (`DO UPDATE`, to itself) so that the row comes back whether it is new,
/// stored before, or added by another transaction while this one waited for it; nothing reads
/// the domains table. A read there would be planned once for the prepared statement, while the
/// table was small: as a scan of the whole table, each batch, however large it grew.
async fn link_and_log(
    tx: &mut impl Statements,
    stored: &[(i64, &NewCertificate<'_>)],
    logs: &[LogEntry<'_>],
    now: i64,
) -> Result<Option<Vec<DomainRow>>> {
    debug_assert_eq!(
        stored.len(),
        logs.len(),
        "an audit row per certificate stored"
    );
    let mut all = Vec::new();
    let mut complete = true;
    let mut start = 0;
    while start < stored.len() {
        // As many certificates as fit in one statement, and at least one.
        let mut end = start;
        let mut params = 0;
        while end < stored.len() {
            let more = 2 * stored[end].1.domains.len() + LOG_ARITY;
            if end > start && params + more > MAX_PARAMS {
                break;
            }
            params += more;
            end += 1;
        }
        let chunk = &stored[start..end];
        let chunk_logs = &logs[start..end];
        let mut links: Vec<(i64, &str)> = chunk
            .iter()
            .flat_map(|(id, new)| new.domains.iter().map(move |name| (*id, name.as_str())))
            .collect();
        links.sort_unstable();
        links.dedup();
        start = end;
        if links.is_empty() || params > MAX_PARAMS {
            // No names, or one certificate with more than a statement holds: the usual way.
            link_domains(tx, chunk).await?;
            self::logs(tx, chunk_logs, now).await?;
            complete &= links.is_empty();
            continue;
        }
        let mut args: Vec<Arg<'_>> = links
            .iter()
            .flat_map(|&(id, name)| [Arg::Int(id), Arg::Text(name)])
            .collect();
        args.extend(chunk_logs.iter().flat_map(|entry| log_args(entry, now)));
        let log_values = placeholders_after(true, 2 * links.len(), chunk_logs.len(), LOG_ARITY);
        // Names are added in sorted order, so concurrent writers lock them in one order.
        let rows: Vec<DomainRow> = tx
            .all(
                &format!(
                    "WITH link (certificate_id, name) AS (VALUES {}),
                     named AS (INSERT INTO domains (name)
                         SELECT DISTINCT name FROM link ORDER BY name
                         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
                         RETURNING id, name, sensitive),
                     linked AS (INSERT INTO certificate_domains (certificate_id, domain_id)
                         SELECT link.certificate_id, named.id FROM link
                         JOIN named ON named.name = link.name
                         ON CONFLICT DO NOTHING RETURNING certificate_id, domain_id),
                     logged AS (INSERT INTO logs ({LOG_COLUMNS}) VALUES {log_values})
                     SELECT linked.certificate_id, named.id, named.name, named.sensitive
                     FROM linked JOIN named ON named.id = linked.domain_id
                     ORDER BY named.name",
                    placeholders(true, links.len(), 2)
                ),
                &args,
                "linking domains and writing the audit log",
            )
            .await?;
        all.extend(rows);
    }
    Ok(complete.then_some(all))
}

/// Records that `id` replaces each of `replaces`, and turns the replaced ones' notifications
/// off (the replacement carries them on).
async fn record_replacements(tx: &mut impl Statements, id: i64, replaces: &[i64]) -> Result<()> {
    for &replaced in replaces {
        tx.execute(
            "INSERT INTO certificate_replacements (certificate_id, replaced_certificate_id) VALUES ($1, $2)",
            args![id, replaced],
            "recording a replacement",
        )
        .await?;
        tx.execute(
            "UPDATE certificates SET notify = FALSE WHERE id = $1",
            args![replaced],
            "silencing a replaced certificate",
        )
        .await?;
    }
    Ok(())
}

/// Stores one certificate (with no idempotency key) in the caller's transaction; a conflict
/// when both its names are taken. Returns its id.
pub(crate) async fn certificate(
    tx: &mut impl Statements,
    new: &NewCertificate<'_>,
    now: i64,
    chains: &mut Chains<'_>,
) -> Result<i64> {
    match certificates(tx, &[new], now, chains).await?.first() {
        Some(Outcome::Stored(id)) => Ok(*id),
        _ => Err(name_taken(new)),
    }
}

/// The conflict of a certificate whose names are both taken.
pub(crate) fn name_taken(new: &NewCertificate<'_>) -> Error {
    Error::Conflict(format!("a certificate named {:?} exists", new.names[1]))
}

/// Columns of an audit row, in the order [`log_args`] binds them.
pub(crate) const LOG_COLUMNS: &str =
    "certificate_id, log_type, logged_at, user_id, source_address, details";
const LOG_ARITY: usize = 6;

/// The arguments of one audit row, in [`LOG_COLUMNS`] order.
fn log_args<'a>(entry: &'a LogEntry<'a>, now: i64) -> [Arg<'a>; LOG_ARITY] {
    *args![
        entry.certificate_id,
        entry.log_type,
        now,
        entry.user_id,
        entry.source_address,
        entry.details,
    ]
}

/// Writes audit rows in the caller's transaction, in one statement.
pub(crate) async fn logs(
    tx: &mut impl Statements,
    entries: &[LogEntry<'_>],
    now: i64,
) -> Result<()> {
    for chunk in entries.chunks(rows_per_statement(LOG_ARITY)) {
        let args: Vec<Arg<'_>> = chunk
            .iter()
            .flat_map(|entry| log_args(entry, now))
            .collect();
        tx.execute(
            &format!(
                "INSERT INTO logs ({LOG_COLUMNS}) VALUES {}",
                placeholders(tx.is_postgres(), chunk.len(), LOG_ARITY)
            ),
            &args,
            "writing the audit log",
        )
        .await?;
    }
    Ok(())
}

/// Writes one audit row in the caller's transaction.
pub(crate) async fn log(tx: &mut impl Statements, entry: &LogEntry<'_>, now: i64) -> Result<()> {
    logs(tx, std::slice::from_ref(entry), now).await
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_number_rows_one_after_another() {
        assert_eq!(placeholders(true, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(true, 1, 1), "($1)");
        assert_eq!(placeholders(false, 2, 2), "(?, ?), (?, ?)");
    }
}
