//! The certificate list at inventory scale: each filter through an index (substrings of the CN
//! through a trigram index: FTS5 on SQLite, pg_trgm on PostgreSQL; a DNS name through the
//! domains), pages by offset or by keyset, and a total that never counts more than
//! [`EXACT_UP_TO`] rows per request.

use crate::SqlStore;
use crate::engine::Arg;
use crate::query::{Conditions, Param, contains, escaped};
use crate::rows::{CERTIFICATE_COLUMNS, CERTIFICATE_FROM, CertificateRow};
use lemur_core::Result;
use lemur_core::model::{
    CertificateFilter, CertificateRecord, ExpiringCertificate, Histogram, ListQuery, PageStart,
    SortKey, SortValue, StatsLabel, StatsMetric, TimeField, Visibility,
};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lemur's `not_after` statistic counts certificates expiring within this many weeks.
const EXPIRING_WEEKS: i64 = 32;

/// Totals up to this are counted exactly on every request.
const EXACT_UP_TO: i64 = 1_000;

/// How long a larger total is served before it is counted again (in the background, while the
/// previous count keeps being served).
const LARGE_TOTAL_FRESH_FOR: Duration = Duration::from_secs(60);

/// Large totals by the query that counts them: when each was counted, and the count.
#[derive(Default)]
pub(crate) struct LargeTotals {
    counts: Mutex<HashMap<String, (Instant, i64)>>,
}

/// Where a list's rows come from, and the expression of their id there.
#[derive(Debug, Clone, Copy)]
struct Source {
    from: &'static str,
    id: &'static str,
}

/// The certificates table.
const CERTIFICATES: Source = Source {
    from: "certificates c",
    id: "c.id",
};

/// SQLite's CN search index, joined to the certificates it finds: driven from the index in id
/// order, a page by id stops after its rows and a bounded count after its bound, where an
/// `IN (...)` over the index would first check every candidate. `CROSS JOIN` keeps that order
/// (SQLite never reorders one): on a small inventory the planner otherwise scanned the
/// certificates and asked the index about each (100 ms a page at 20,000 certificates, 5 s for
/// the web UI's filter change).
const CN_SEARCH: Source = Source {
    from: "certificates_cn_search s CROSS JOIN certificates c ON c.id = s.rowid",
    id: "s.rowid",
};

/// The conditions of a list (its filter and the caller's visibility) and where its rows come
/// from.
fn conditions(
    filter: &CertificateFilter,
    visible: &Visibility,
    postgres: bool,
) -> (Source, Conditions) {
    let mut conditions = Conditions::default();
    let mut source = CERTIFICATES;
    let (template, params) = match filter {
        CertificateFilter::All => ("", Vec::new()),
        // FTS5's trigram index answers LIKE on its own column (case-insensitively); a pattern
        // with an escaped wildcard takes the plain scan, which handles ESCAPE.
        CertificateFilter::Cn(value) if !postgres && escaped(value) == *value => {
            source = CN_SEARCH;
            ("s.cn LIKE ?", vec![contains(value)])
        }
        CertificateFilter::Cn(value) => ("lower(c.cn) LIKE ? ESCAPE '\\'", vec![contains(value)]),
        CertificateFilter::Name(value) => {
            ("lower(c.name) LIKE ? ESCAPE '\\'", vec![contains(value)])
        }
        // The certificates valid for a DNS name: naming it, or a wildcard covering it.
        CertificateFilter::San(name) => {
            let wildcard = name
                .split_once('.')
                .map_or_else(String::new, |(_, parent)| format!("*.{parent}"));
            (
                "c.id IN (SELECT cd.certificate_id FROM certificate_domains cd
                    JOIN domains d ON d.id = cd.domain_id WHERE d.name IN (?, ?))",
                vec![Param::Text(name.clone()), Param::Text(wildcard)],
            )
        }
        CertificateFilter::Owner(value) => ("c.owner = ?", vec![Param::Text(value.clone())]),
        CertificateFilter::Serial(hex) => ("c.serial_hex = ?", vec![Param::Text(hex.clone())]),
        CertificateFilter::Authority(id) => ("c.authority_id = ?", vec![Param::Int(*id)]),
    };
    if !template.is_empty() {
        let mut sql = String::new();
        let mut params = params.into_iter();
        for (index, part) in template.split('?').enumerate() {
            if index > 0 {
                sql.push_str(&conditions.param(params.next().unwrap_or(Param::Int(0))));
            }
            sql.push_str(part);
        }
        conditions.and(&sql);
    }
    if let Visibility::Owned { owners, user_id } = visible {
        let list = conditions.list(owners.iter().cloned().map(Param::Text));
        let user = conditions.param(Param::Int(*user_id));
        conditions.and(&format!("(c.owner IN ({list}) OR c.user_id = {user})"));
    }
    (source, conditions)
}

/// The SQL expression of a sort key in `source` (each has an index with the id after it).
fn sort_expression(sort: SortKey, source: Source) -> &'static str {
    match sort {
        SortKey::Id => source.id,
        SortKey::NotAfter => "c.not_after",
        SortKey::Cn => "c.cn",
        SortKey::Name => "c.name",
        SortKey::Owner => "c.owner",
    }
}

/// `ORDER BY` of a sort in `source`: the key, then the id (only once when the key is the id: a
/// repeated term keeps SQLite from reading an index in order, and it sorts every row instead).
fn order_by(sort: SortKey, source: Source, direction: &str) -> String {
    let key = sort_expression(sort, source);
    if sort == SortKey::Id {
        format!("{key} {direction}")
    } else {
        format!("{key} {direction}, {} {direction}", source.id)
    }
}

impl SqlStore {
    /// A page of the list and its total; see
    /// [`CertificateRepository::certificates`](lemur_core::store::CertificateRepository).
    pub(crate) async fn list(
        &self,
        query: &ListQuery,
        visible: &Visibility,
    ) -> Result<(Vec<CertificateRecord>, i64)> {
        let (source, matching) = conditions(&query.filter, visible, self.engine.is_postgres());
        // The page adds the keyset and its bounds to what the total counts.
        let mut page = matching.clone();
        let key = sort_expression(query.sort, source);
        let id_column = source.id;
        let direction = if query.descending { "DESC" } else { "ASC" };
        let (limit, offset) = match &query.start {
            PageStart::Page(page) => (page.count, page.offset()),
            PageStart::After { value, id, count } => {
                let after = if query.descending { "<" } else { ">" };
                let last = page.param(Param::Int(*id));
                let keyset = match value {
                    SortValue::Id => format!("{id_column} {after} {last}"),
                    SortValue::Int(value) => {
                        let value = page.param(Param::Int(*value));
                        format!("({key}, {id_column}) {after} ({value}, {last})")
                    }
                    SortValue::Text(value) => {
                        let value = page.param(Param::Text(value.clone()));
                        format!("({key}, {id_column}) {after} ({value}, {last})")
                    }
                };
                page.and(&keyset);
                (*count, 0)
            }
        };
        let limit = page.param(Param::Int(limit));
        let offset = page.param(Param::Int(offset));
        // The page's ids first, through the index alone; only its rows are then read and
        // joined (an offset would otherwise join every row it skips).
        let from = source.from;
        let inner_order = order_by(query.sort, source, direction);
        let outer_order = order_by(query.sort, CERTIFICATES, direction);
        let list_sql = format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM {CERTIFICATE_FROM}
             WHERE c.id IN (SELECT {id_column} FROM {from} WHERE c.deleted = FALSE{}
                ORDER BY {inner_order} LIMIT {limit} OFFSET {offset})
             ORDER BY {outer_order}",
            page.sql()
        );
        let page_args = page.args();
        let (rows, total): (Vec<CertificateRow>, i64) = tokio::try_join!(
            self.engine
                .all(&list_sql, &page_args, "listing certificates"),
            self.total(source, &matching),
        )?;
        Ok((rows.into_iter().map(Into::into).collect(), total))
    }

    /// How many live certificates match: exact up to [`EXACT_UP_TO`], else the last full
    /// count of this query (counted now if there is none, refreshed in the background once it
    /// is older than [`LARGE_TOTAL_FRESH_FOR`]).
    async fn total(&self, source: Source, matching: &Conditions) -> Result<i64> {
        let from = source.from;
        let where_ = format!("WHERE c.deleted = FALSE{}", matching.sql());
        let args = matching.args();
        let bounded: Option<(i64,)> = self
            .engine
            .optional(
                &format!(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM {from} {where_} LIMIT {}) AS bounded",
                    EXACT_UP_TO + 1
                ),
                &args,
                "counting certificates",
            )
            .await?;
        let bounded = bounded.map_or(0, |(count,)| count);
        if bounded <= EXACT_UP_TO {
            return Ok(bounded);
        }
        let sql = format!("SELECT COUNT(*) FROM {from} {where_}");
        let key = format!("{sql} {args:?}");
        let known = self
            .large_totals
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .copied();
        match known {
            Some((counted, total)) if counted.elapsed() < LARGE_TOTAL_FRESH_FOR => Ok(total),
            Some((_, total)) => {
                self.remember_total(&key, total);
                let (store, params) = (self.clone(), matching.params().to_vec());
                tokio::spawn(async move {
                    let args: Vec<Arg<'_>> = params.iter().map(Param::arg).collect();
                    match store.count(&sql, &args).await {
                        Ok(total) => store.remember_total(&key, total),
                        Err(error) => log::warn!("recounting certificates failed: {error}"),
                    }
                });
                Ok(total)
            }
            None => {
                let total = self.count(&sql, &args).await?;
                self.remember_total(&key, total);
                Ok(total)
            }
        }
    }

    /// Counts by `metric`; see
    /// [`CertificateRepository::certificate_stats`](lemur_core::store::CertificateRepository).
    pub(crate) async fn stats(
        &self,
        metric: StatsMetric,
        visible: &Visibility,
        now: i64,
    ) -> Result<Vec<(StatsLabel, i64)>> {
        let (_, mut matching) =
            conditions(&CertificateFilter::All, visible, self.engine.is_postgres());
        let column = match metric {
            StatsMetric::Bits => "bits",
            StatsMetric::Issuer | StatsMetric::NotAfter => "issuer",
            StatsMetric::SigningAlgorithm => "signing_algorithm",
        };
        if metric == StatsMetric::NotAfter {
            let from = matching.param(Param::Int(now));
            let to = matching.param(Param::Int(now + EXPIRING_WEEKS * 7 * 86_400));
            matching.and(&format!("c.not_after BETWEEN {from} AND {to}"));
        }
        let sql = format!(
            "SELECT CAST(c.{column} AS TEXT), COUNT(*) FROM certificates c
             WHERE c.deleted = FALSE{} GROUP BY c.{column} ORDER BY c.{column}",
            matching.sql()
        );
        let rows: Vec<(String, i64)> = self
            .engine
            .all(&sql, &matching.args(), "counting certificates")
            .await?;
        Ok(rows
            .into_iter()
            .map(|(label, count)| {
                let label = match metric {
                    StatsMetric::Bits => label
                        .parse()
                        .map_or(StatsLabel::Text(label), StatsLabel::Int),
                    _ => StatsLabel::Text(label),
                };
                (label, count)
            })
            .collect())
    }

    /// Counts by span of time; see
    /// [`CertificateRepository::certificate_histogram`](lemur_core::store::CertificateRepository).
    ///
    /// Revoked certificates are counted apart and taken away, rather than tested row by row:
    /// the spans are read from the time's index alone, and the revoked (few) from theirs.
    pub(crate) async fn histogram(
        &self,
        histogram: Histogram,
        visible: &Visibility,
    ) -> Result<Vec<i64>> {
        let mut counts = self.bucket_counts(histogram, visible, false).await?;
        if histogram.unrevoked_only {
            let revoked = self.bucket_counts(histogram, visible, true).await?;
            for (count, revoked) in counts.iter_mut().zip(revoked) {
                *count -= revoked;
            }
        }
        Ok(counts)
    }

    async fn bucket_counts(
        &self,
        histogram: Histogram,
        visible: &Visibility,
        revoked: bool,
    ) -> Result<Vec<i64>> {
        let (_, mut matching) =
            conditions(&CertificateFilter::All, visible, self.engine.is_postgres());
        let column = match histogram.field {
            TimeField::NotAfter => "c.not_after",
            TimeField::Created => "c.date_created",
        };
        let buckets = histogram.buckets.max(0);
        let width = histogram.width.max(1);
        let start = matching.param(Param::Int(histogram.start));
        let end = matching.param(Param::Int(histogram.start + buckets * width));
        // The revoked are found through their own index: `+` keeps the planners off the
        // time's, which would test every certificate of the range for its status.
        let ranged = if revoked {
            format!("+{column}")
        } else {
            column.to_owned()
        };
        matching.and(&format!("{ranged} >= {start} AND {ranged} < {end}"));
        if revoked {
            matching.and("c.status = 'revoked'");
        }
        let from = matching.param(Param::Int(histogram.start));
        let span = matching.param(Param::Int(width));
        let sql = format!(
            "SELECT ({column} - {from}) / {span} AS bucket, COUNT(*) FROM certificates c
             WHERE c.deleted = FALSE{} GROUP BY bucket",
            matching.sql()
        );
        let rows: Vec<(i64, i64)> = self
            .engine
            .all(&sql, &matching.args(), "counting certificates by time")
            .await?;
        let mut counts = vec![0; usize::try_from(buckets).unwrap_or(0)];
        for (bucket, count) in rows {
            if let Some(slot) = usize::try_from(bucket).ok().and_then(|b| counts.get_mut(b)) {
                *slot = count;
            }
        }
        Ok(counts)
    }

    /// A page of the expiration scan; see
    /// [`CertificateRepository::expiring_certificates`](lemur_core::store::CertificateRepository).
    pub(crate) async fn expiring(
        &self,
        windows: &[(i64, i64)],
        after: Option<(&str, i64)>,
        limit: i64,
    ) -> Result<Vec<ExpiringCertificate>> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let mut conditions = Conditions::default();
        let ranges = windows
            .iter()
            .map(|&(start, end)| {
                let start = conditions.param(Param::Int(start));
                let end = conditions.param(Param::Int(end));
                format!("(c.not_after >= {start} AND c.not_after < {end})")
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        conditions.and(&format!("({ranges})"));
        let after_sql = match after {
            Some((owner, id)) => {
                let owner = conditions.param(Param::Text(owner.to_owned()));
                let id = conditions.param(Param::Int(id));
                format!(" WHERE (owner, id) > ({owner}, {id})")
            }
            None => String::new(),
        };
        let limit = conditions.param(Param::Int(limit));
        // The windows are found through the expiry index first (a few thousand rows of a
        // million) and only those are sorted by owner; left to itself, a planner may walk the
        // owner index instead and test every certificate.
        let rows: Vec<(i64, String, String, String, i64)> = self
            .engine
            .all(
                &format!(
                    "WITH expiring AS MATERIALIZED (
                        SELECT c.id, c.name, c.cn, c.owner, c.not_after FROM certificates c
                        WHERE c.deleted = FALSE AND c.notify = TRUE
                            AND (c.status IS NULL OR c.status <> 'revoked'){})
                     SELECT id, name, cn, owner, not_after FROM expiring{}
                     ORDER BY owner, id LIMIT {limit}",
                    conditions.sql(),
                    after_sql
                ),
                &conditions.args(),
                "scanning for expiring certificates",
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, cn, owner, not_after)| ExpiringCertificate {
                id,
                name,
                cn,
                owner,
                not_after,
            })
            .collect())
    }

    async fn count(&self, sql: &str, args: &[Arg<'_>]) -> Result<i64> {
        let counted: Option<(i64,)> = self
            .engine
            .optional(sql, args, "counting certificates")
            .await?;
        Ok(counted.map_or(0, |(count,)| count))
    }

    /// Keeps `total` for `key`, counted now (or being counted again from now).
    fn remember_total(&self, key: &str, total: i64) {
        let mut counts = self
            .large_totals
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if counts.len() >= 1_000 {
            counts.clear();
        }
        counts.insert(key.to_owned(), (Instant::now(), total));
    }
}
