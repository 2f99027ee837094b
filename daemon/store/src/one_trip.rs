//! PostgreSQL's certificate writer in one round trip per batch: the certificates, their domains
//! and their audit rows in one statement, outside a transaction (a statement is atomic by
//! itself, and commits as it ends). The usual way, a transaction, takes four round trips
//! (`BEGIN`, the certificates, their links and audit rows, `COMMIT`), and a batch waits on the
//! writer's connection for each. What the statement does not store goes the usual way after it:
//! rows it skipped for a name, a body or an idempotency key held already, and certificates it
//! does not take (see [`store`]). What the answers' views join in (creator, rotation policy,
//! authority) comes from the writer's copy of it, read with one more round trip when it is
//! missing or older than [`FRESH_FOR`](crate::cache::FRESH_FOR).

use crate::cache::{JoinKey, Recent, join_key};
use crate::engine::{Arg, Statements};
use crate::insert::{self, Attempt};
use crate::rows::{
    CERTIFICATE_OWN_COLUMNS, CertificateRow, DomainRow, JOINED_COLUMNS, JOINS_OF_KEYS, Joined,
    JoinedColumns,
};
use lemur_core::model::{
    CertificateDetails, CertificateLinks, CertificateRecord, LogEntry, NewCertificate,
};
use lemur_core::{Error, Result};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{FromRow, Row};
use std::collections::{HashMap, HashSet};

/// A certificate as stored, with its links.
pub(crate) type Stored = (CertificateRecord, CertificateLinks);

/// A certificate to store, with its audit row and its chain's id (known to be committed).
pub(crate) struct Candidate<'b, 'a> {
    pub(crate) new: &'b NewCertificate<'a>,
    pub(crate) log: &'b LogEntry<'a>,
    pub(crate) chain_id: Option<i64>,
}

/// The context of an error found in the statement's answer, after it committed: what it
/// stored is read again, as after a lost connection.
pub(crate) const AFTER_COMMIT: &str = "reading the answer of a statement that stored certificates";

/// Parameters of one audit row in the statement: the certificate's name and body, then
/// `log_type, user_id, source_address, details`.
const ENTRY_ARITY: usize = 6;

/// Parameters of the links: three arrays, of the certificates' names and bodies and of the
/// domains' names, one element per link.
const LINK_ARRAYS: usize = 3;

/// A row the statement returns: a certificate's own columns (as [`CERTIFICATE_OWN_COLUMNS`]
/// reads them: what a view joins in left out), its body's SHA-256 (with its name, what tells it
/// from the others), and its domains as linked, sorted by name.
struct StoredRow {
    view: CertificateRow,
    body_sha256: String,
    domain_ids: Option<Vec<i64>>,
    domain_names: Option<Vec<String>>,
    domain_sensitive: Option<Vec<bool>>,
}

impl<'r> FromRow<'r, PgRow> for StoredRow {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            view: CertificateRow::from_row(row)?,
            body_sha256: row.try_get("body_sha256")?,
            domain_ids: row.try_get("domain_ids")?,
            domain_names: row.try_get("domain_names")?,
            domain_sensitive: row.try_get("domain_sensitive")?,
        })
    }
}

/// [`JoinedColumns`] with the ids they were joined for.
#[derive(sqlx::FromRow)]
struct KeyedJoined {
    user_id: Option<i64>,
    rotation_policy_id: Option<i64>,
    authority_id: Option<i64>,
    #[sqlx(flatten)]
    columns: JoinedColumns,
}

impl StoredRow {
    /// The certificate `new` and its domains, as the writer answers with them: the row as
    /// stored, with what its view joins in (`joined`) and its chain, in hand.
    fn stored(self, new: &NewCertificate<'_>, joined: Joined) -> Stored {
        let id = self.view.id;
        let domains = self
            .domain_ids
            .unwrap_or_default()
            .into_iter()
            .zip(self.domain_names.unwrap_or_default())
            .zip(self.domain_sensitive.unwrap_or_default())
            .map(|((domain, name), sensitive)| {
                DomainRow {
                    certificate_id: id,
                    id: domain,
                    name,
                    sensitive,
                }
                .into()
            })
            .collect();
        let links = CertificateLinks {
            domains,
            ..CertificateLinks::default()
        };
        let mut record: CertificateRecord = self.view.into();
        record.creator = joined.creator;
        record.rotation_policy = joined.rotation_policy;
        record.authority = joined.authority;
        // The statement takes only certificates whose chain is stored apart already, by its
        // PEM: the view shows that PEM.
        record.chain = new.chain.map(str::to_owned);
        (record, links)
    }
}

/// What the views of the candidates `taken` join in, by [`JoinKey`]: from `recent` while fresh,
/// else read in one statement (and kept there). Issuance uses a few authorities and users, so
/// this is read about once per [`FRESH_FOR`](crate::cache::FRESH_FOR) rather than joined to
/// every row stored.
async fn joined(
    connection: &mut PgConnection,
    candidates: &[Candidate<'_, '_>],
    taken: &[usize],
    recent: &Recent<JoinKey, Joined>,
) -> Result<HashMap<JoinKey, Joined>> {
    let mut found = HashMap::new();
    let mut missing = HashMap::new();
    for &i in taken {
        let key = join_key(candidates[i].new);
        if found.contains_key(&key) || missing.contains_key(&key) {
            continue;
        }
        match recent.get(&key) {
            Ok(joined) => {
                found.insert(key, joined);
            }
            Err(started) => {
                missing.insert(key, started);
            }
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let keys: Vec<JoinKey> = missing.keys().copied().collect();
    let sql = format!(
        "SELECT k.user_id, k.rotation_policy_id, k.authority_id, {JOINED_COLUMNS}
         FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[])
             AS k (user_id, rotation_policy_id, authority_id)
         {JOINS_OF_KEYS}"
    );
    let rows: Vec<KeyedJoined> = sqlx::query_as(&sql)
        .bind(keys.iter().map(|key| key.0).collect::<Vec<_>>())
        .bind(keys.iter().map(|key| key.1).collect::<Vec<_>>())
        .bind(keys.iter().map(|key| key.2).collect::<Vec<_>>())
        .fetch_all(&mut *connection)
        .await
        .map_err(crate::db("reading what certificates' views join in"))?;
    for row in rows {
        let key = (row.user_id, row.rotation_policy_id, row.authority_id);
        let joined = row.columns.joined(key.0, key.1, key.2);
        if let Some(&started) = missing.get(&key) {
            recent.put(started, key, joined.clone());
        }
        found.insert(key, joined);
    }
    Ok(found)
}

/// The statement for `rows` certificates, its parameters bound as [`store`] binds them. The
/// links come as arrays, so the statement's text depends on the number of rows alone and the
/// connection prepares and plans it once per batch size; a text that also varied with the
/// count of names (certificates with 1 to 5, say) was prepared again, a round trip more, and
/// planned anew for one batch in twenty. Domain names are upserted (`DO UPDATE`, to
/// themselves) so each row comes back whether it is new, stored before, or being added by
/// another transaction (which this one then waits for): nothing reads the domains table, which
/// a plan made while it was small would scan whole. Names are added in sorted order, so
/// concurrent writers lock them in one order.
fn statement(rows: usize) -> String {
    let columns = insert::CERTIFICATE_COLUMNS;
    let log_columns = insert::LOG_COLUMNS;
    let values = insert::placeholders_after(true, 0, rows, insert::CERTIFICATE_ARITY);
    let after_rows = rows * insert::CERTIFICATE_ARITY;
    let after_arrays = after_rows + LINK_ARRAYS;
    let entries = insert::placeholders_after(true, after_arrays, rows, ENTRY_ARITY);
    let now = after_arrays + rows * ENTRY_ARITY + 1;
    // Which certificate a link or an audit row is for: the row stored with its name and body.
    let of = |table: &str| format!("c.name = {table}.certificate AND c.body_sha256 = {table}.body");
    let of_link = of("link");
    let (names, bodies, domain_names) = (after_rows + 1, after_rows + 2, after_rows + 3);
    let domains = format!(
        "link (certificate, body, name) AS (
             SELECT * FROM unnest(${names}::TEXT[], ${bodies}::TEXT[], ${domain_names}::TEXT[])),
         named AS (INSERT INTO domains (name)
             SELECT DISTINCT link.name FROM link JOIN c ON {of_link} ORDER BY 1
             ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
             RETURNING id, name, sensitive),
         linked AS (INSERT INTO certificate_domains (certificate_id, domain_id)
             SELECT c.id, named.id FROM link JOIN c ON {of_link}
             JOIN named ON named.name = link.name
             ON CONFLICT DO NOTHING RETURNING certificate_id, domain_id),
         d AS (SELECT linked.certificate_id,
                 array_agg(named.id ORDER BY named.name) AS ids,
                 array_agg(named.name ORDER BY named.name) AS names,
                 array_agg(named.sensitive ORDER BY named.name) AS sensitive
             FROM linked JOIN named ON named.id = linked.domain_id
             GROUP BY linked.certificate_id),"
    );
    let of_entry = of("entry");
    format!(
        "WITH c AS (INSERT INTO certificates ({columns}) VALUES {values}
             ON CONFLICT DO NOTHING RETURNING *),
         {domains}
         entry (certificate, body, log_type, user_id, source_address, details)
             AS (VALUES {entries}),
         logged AS (INSERT INTO logs ({log_columns})
             SELECT c.id, entry.log_type, ${now}, entry.user_id, entry.source_address,
                 entry.details
             FROM entry JOIN c ON {of_entry} ORDER BY c.id)
         SELECT {CERTIFICATE_OWN_COLUMNS}, c.body_sha256, d.ids AS domain_ids,
             d.names AS domain_names, d.sensitive AS domain_sensitive
         FROM c LEFT JOIN d ON d.certificate_id = c.id"
    )
}

/// The indexes of the candidates one statement takes, in order: each whose first name and
/// body no earlier one has (two such rows could not be told apart in what it returns), while
/// the parameters fit.
pub(crate) fn taken(candidates: &[Candidate<'_, '_>]) -> Vec<usize> {
    let mut seen = HashSet::new();
    let mut params = 1 + LINK_ARRAYS;
    let mut taken = Vec::with_capacity(candidates.len());
    for (index, candidate) in candidates.iter().enumerate() {
        let new = candidate.new;
        let more = insert::CERTIFICATE_ARITY + ENTRY_ARITY;
        if params + more > insert::MAX_PARAMS {
            break;
        }
        if seen.insert((new.names[0], new.parsed.sha256.as_str())) {
            params += more;
            taken.push(index);
        }
    }
    taken
}

/// Stores the candidates `taken` (see [`taken`]) in one statement on `connection`, outside any
/// transaction, each under its first name; returns each one stored, by its index in
/// `candidates`. A certificate's row, links and audit row are stored together or not at all.
///
/// An error stores nothing, unless the connection failed ([`crate::writer::unreachable`]) or
/// its context is [`AFTER_COMMIT`]: then the statement may have committed, and [`recover`]
/// tells.
pub(crate) async fn store(
    connection: &mut PgConnection,
    candidates: &[Candidate<'_, '_>],
    taken: &[usize],
    now: i64,
    recent: &Recent<JoinKey, Joined>,
) -> Result<HashMap<usize, Stored>> {
    let joined = joined(connection, candidates, taken, recent).await?;
    let alt_names: Vec<String> = taken
        .iter()
        .map(|&i| CertificateDetails::encode_alt_names(&candidates[i].new.parsed.alt_names))
        .collect();
    let mut args: Vec<Arg<'_>> = Vec::with_capacity(taken.len() * insert::CERTIFICATE_ARITY);
    for (&i, alt) in taken.iter().zip(&alt_names) {
        let candidate = &candidates[i];
        let attempt = Attempt::default();
        args.extend(insert::row_args(
            candidate.new,
            attempt,
            alt,
            candidate.chain_id,
            now,
        ));
    }
    let (mut names, mut bodies, mut domain_names) = (Vec::new(), Vec::new(), Vec::new());
    for &i in taken {
        let new = candidates[i].new;
        for name in new.domains {
            names.push(new.names[0]);
            bodies.push(new.parsed.sha256.as_str());
            domain_names.push(name.as_str());
        }
    }
    let mut entry_args = Vec::with_capacity(taken.len() * ENTRY_ARITY + 1);
    for &i in taken {
        let (new, log) = (candidates[i].new, candidates[i].log);
        entry_args.extend([
            Arg::Text(new.names[0]),
            Arg::Text(&new.parsed.sha256),
            Arg::Text(log.log_type),
            Arg::OptInt(log.user_id),
            Arg::OptText(log.source_address),
            Arg::Text(log.details),
        ]);
    }
    entry_args.push(Arg::Int(now));
    let sql = statement(taken.len());
    let query = crate::engine::bind_all!(sqlx::query_as(&sql), &args)
        .bind(names)
        .bind(bodies)
        .bind(domain_names);
    let rows: Vec<StoredRow> = crate::engine::bind_all!(query, &entry_args)
        .fetch_all(connection)
        .await
        .map_err(crate::db("storing certificates"))?;
    let by_key: HashMap<(&str, &str), usize> = taken
        .iter()
        .map(|&i| {
            let new = candidates[i].new;
            ((new.names[0], new.parsed.sha256.as_str()), i)
        })
        .collect();
    let mut stored = HashMap::with_capacity(rows.len());
    for row in rows {
        let index = by_key
            .get(&(row.view.name.as_str(), row.body_sha256.as_str()))
            .copied()
            .ok_or_else(|| Error::Database {
                context: AFTER_COMMIT,
                source: format!("certificate {} came back unasked for", row.view.id).into(),
            })?;
        let new = candidates[index].new;
        let found = joined
            .get(&join_key(new))
            .cloned()
            .ok_or_else(|| Error::Database {
                context: AFTER_COMMIT,
                source: format!(
                    "what the view of certificate {} joins in was not read",
                    row.view.id
                )
                .into(),
            })?;
        stored.insert(index, row.stored(new, found));
    }
    Ok(stored)
}

/// After [`store`] was lost (its session ended since: see
/// [`Link::end_lost_session`](crate::link::Link::end_lost_session)), which of the candidates
/// `taken` it stored, as [`store`] returns them: read in `tx`, on a new connection. A live
/// certificate with a candidate's body and first name, created at the batch's `now` by the
/// candidate's user and owner, is the one the statement stored (it stores each row it does not
/// skip, or none). The others go the usual way. A certificate stored before with that body is
/// refused there as a duplicate, unless another request stored the same certificate, under
/// the same name and owner, in the same second: then this one is answered with it.
pub(crate) async fn recover(
    tx: &mut impl Statements,
    candidates: &[Candidate<'_, '_>],
    taken: &[usize],
    now: i64,
) -> Result<HashMap<usize, Stored>> {
    let hashes: Vec<&str> = taken
        .iter()
        .map(|&i| candidates[i].new.parsed.sha256.as_str())
        .collect();
    let held = insert::existing_bodies(tx, &hashes).await?;
    let ids: Vec<i64> = held.values().copied().collect();
    let mut read = crate::certificates::read_back(tx, &ids, None, HashMap::new()).await?;
    let mut stored = HashMap::new();
    for &i in taken {
        let new = candidates[i].new;
        let Some(id) = held.get(&new.parsed.sha256) else {
            continue;
        };
        let ours = read.get(id).is_some_and(|(record, _)| {
            record.name == new.names[0]
                && record.date_created == now
                && record.user_id == new.user_id
                && record.owner == new.owner
        });
        if ours && let Some(certificate) = read.remove(id) {
            stored.insert(i, certificate);
        }
    }
    Ok(stored)
}
