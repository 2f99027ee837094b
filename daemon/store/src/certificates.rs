//! Certificates, their domains (one row per distinct name), replacements and the audit rows of
//! certificate events.

use crate::query::{Arg, Conditions, ids};
use crate::{Backend, SqlStore, db};
use async_trait::async_trait;
use lemur_core::model::{
    AuthorityBrief, CertificateFilter, CertificateLinks, CertificateRecord, DomainRecord, LogEntry,
    NewCertificate, Page, UserRecord, Visibility,
};
use lemur_core::store::CertificateRepository;
use lemur_core::{Error, Result};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

/// Columns of [`CertificateRecord`], in `certificates` aliased `c`.
pub(crate) const COLUMNS: &str =
    "c.id, c.name, c.owner, c.description, c.notify, c.rotation, c.body, c.chain, c.csr,
    CASE WHEN c.sealed_private_key IS NULL THEN 0 ELSE 1 END AS has_private_key, c.issuer, c.serial,
    c.serial_hex, c.cn, c.distinguished_name, c.bits, c.key_type, c.signing_algorithm,
    c.not_before, c.not_after, c.status, c.deleted, c.is_ca, c.authority_id, c.user_id,
    c.rotation_policy_id, c.external_id, c.date_created,
    u.username AS u_username, u.email AS u_email, u.active AS u_active, rp.name AS rp_name, rp.days AS rp_days,
    a.name AS a_name, a.owner AS a_owner, a.description AS a_description, a.active AS a_active,
    a.default_validity_days AS a_default_validity_days, a.max_issuance_days AS a_max_issuance_days,
    a.cab_compliant AS a_cab_compliant, a.plugin_name AS a_plugin_name, ac.not_before AS ac_not_before,
    ac.not_after AS ac_not_after";

/// `certificates c` with what a view of it needs, in one round trip.
pub(crate) const FROM: &str = "certificates c
    LEFT JOIN users u ON u.id = c.user_id
    LEFT JOIN rotation_policies rp ON rp.id = c.rotation_policy_id
    LEFT JOIN authorities a ON a.id = c.authority_id
    LEFT JOIN certificates ac ON ac.id = a.authority_certificate_id";

pub(crate) fn flag(row: &AnyRow, column: &str) -> std::result::Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

pub(crate) fn record(row: &AnyRow) -> std::result::Result<CertificateRecord, sqlx::Error> {
    Ok(CertificateRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        description: row.try_get("description")?,
        notify: flag(row, "notify")?,
        rotation: flag(row, "rotation")?,
        body: row.try_get("body")?,
        chain: row.try_get("chain")?,
        csr: row.try_get("csr")?,
        has_private_key: flag(row, "has_private_key")?,
        issuer: row.try_get("issuer")?,
        serial: row.try_get("serial")?,
        serial_hex: row.try_get("serial_hex")?,
        cn: row.try_get("cn")?,
        distinguished_name: row.try_get("distinguished_name")?,
        bits: row.try_get("bits")?,
        key_type: row.try_get("key_type")?,
        signing_algorithm: row.try_get("signing_algorithm")?,
        not_before: row.try_get("not_before")?,
        not_after: row.try_get("not_after")?,
        status: row.try_get("status")?,
        deleted: flag(row, "deleted")?,
        is_ca: flag(row, "is_ca")?,
        user_id: row.try_get("user_id")?,
        external_id: row.try_get("external_id")?,
        date_created: row.try_get("date_created")?,
        creator: match row.try_get::<Option<String>, _>("u_username")? {
            Some(username) => Some(UserRecord {
                id: row.try_get("user_id")?,
                username,
                email: row.try_get("u_email")?,
                active: row.try_get::<i64, _>("u_active")? != 0,
            }),
            None => None,
        },
        rotation_policy: match row.try_get::<Option<String>, _>("rp_name")? {
            Some(name) => Some((
                row.try_get("rotation_policy_id")?,
                name,
                row.try_get("rp_days")?,
            )),
            None => None,
        },
        authority: match row.try_get::<Option<String>, _>("a_name")? {
            Some(name) => Some(AuthorityBrief {
                id: row.try_get("authority_id")?,
                name,
                owner: row.try_get("a_owner")?,
                description: row.try_get("a_description")?,
                active: row.try_get::<i64, _>("a_active")? != 0,
                default_validity_days: row.try_get("a_default_validity_days")?,
                max_issuance_days: row.try_get("a_max_issuance_days")?,
                cab_compliant: row.try_get::<i64, _>("a_cab_compliant")? != 0,
                plugin_name: row.try_get("a_plugin_name")?,
                not_before: row.try_get("ac_not_before")?,
                not_after: row.try_get("ac_not_after")?,
            }),
            None => None,
        },
    })
}

/// Stores `new` under the first of its names that is free, with its domains and replacements,
/// on `conn` (inside the caller's transaction). Returns the new id.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    new: &NewCertificate<'_>,
    now: i64,
) -> Result<i64> {
    // `ON CONFLICT DO NOTHING` makes a writer that races another for the same name wait for it
    // and take the next name, where a look-up before the INSERT would see nothing and fail on
    // the unique index.
    let mut id = None;
    for name in new.names {
        id = insert_row(conn, new, name, now).await?;
        if id.is_some() {
            break;
        }
    }
    let id = id
        .ok_or_else(|| Error::Conflict(format!("a certificate named {:?} exists", new.names[1])))?;
    link_domains(conn, id, new.domains).await?;
    for replaced in new.replaces {
        sqlx::query("INSERT INTO certificate_replacements (certificate_id, replaced_certificate_id) VALUES ($1, $2)")
            .bind(id)
            .bind(replaced)
            .execute(&mut *conn)
            .await
            .map_err(db("recording a replacement"))?;
        sqlx::query("UPDATE certificates SET notify = 0 WHERE id = $1")
            .bind(replaced)
            .execute(&mut *conn)
            .await
            .map_err(db("silencing a replaced certificate"))?;
    }
    Ok(id)
}

/// Inserts the certificate row named `name`; `None` when the name is taken.
async fn insert_row(
    conn: &mut AnyConnection,
    new: &NewCertificate<'_>,
    name: &str,
    now: i64,
) -> Result<Option<i64>> {
    let parsed = new.parsed;
    sqlx::query_scalar(
        "INSERT INTO certificates (name, owner, description, notify, rotation, body, body_sha256, chain, csr,
            sealed_private_key, issuer, serial, serial_hex, cn, distinguished_name, san, bits, key_type,
            signing_algorithm, not_before, not_after, is_ca, authority_id, root_authority_id, user_id,
            rotation_policy_id, date_created)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
            $21, $22, $23, $24, $25, $26, $27)
         ON CONFLICT (name) DO NOTHING
         RETURNING id",
    )
    .bind(name)
    .bind(new.owner)
    .bind(new.description)
    .bind(i64::from(new.notify))
    .bind(i64::from(new.rotation))
    .bind(&parsed.pem)
    .bind(&parsed.sha256)
    .bind(new.chain)
    .bind(new.csr)
    .bind(new.sealed_private_key)
    .bind(&parsed.issuer)
    .bind(&parsed.serial)
    .bind(&parsed.serial_hex)
    .bind(&parsed.cn)
    .bind(&parsed.subject)
    .bind(i64::from(parsed.alt_names.len() > 1))
    .bind(parsed.bits)
    .bind(&parsed.key_type)
    .bind(&parsed.signing_algorithm)
    .bind(parsed.not_before)
    .bind(parsed.not_after)
    .bind(i64::from(parsed.is_ca))
    .bind(new.authority_id)
    .bind(new.root_authority_id)
    .bind(new.user_id)
    .bind(new.rotation_policy_id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db("storing a certificate"))
}

/// Records each distinct domain once and links the certificate to them: two statements however
/// many names it has.
async fn link_domains(
    conn: &mut AnyConnection,
    certificate_id: i64,
    domains: &[String],
) -> Result<()> {
    if domains.is_empty() {
        return Ok(());
    }
    let placeholders = |first: usize| {
        (0..domains.len())
            .map(|i| format!("${}", first + i))
            .collect::<Vec<_>>()
    };
    let values = placeholders(1)
        .iter()
        .map(|p| format!("({p})"))
        .collect::<Vec<_>>()
        .join(", ");
    let insert_sql =
        format!("INSERT INTO domains (name) VALUES {values} ON CONFLICT (name) DO NOTHING");
    let mut insert = sqlx::query(&insert_sql);
    for domain in domains {
        insert = insert.bind(domain.as_str());
    }
    insert
        .execute(&mut *conn)
        .await
        .map_err(db("storing domains"))?;
    let names = placeholders(2).join(", ");
    let link_sql = format!(
        "INSERT INTO certificate_domains (certificate_id, domain_id)
         SELECT $1, id FROM domains WHERE name IN ({names}) ON CONFLICT DO NOTHING"
    );
    let mut link = sqlx::query(&link_sql).bind(certificate_id);
    for domain in domains {
        link = link.bind(domain.as_str());
    }
    link.execute(&mut *conn)
        .await
        .map_err(db("linking domains"))?;
    Ok(())
}

/// Writes an audit row on `conn`.
pub(crate) async fn insert_log(
    conn: &mut AnyConnection,
    entry: &LogEntry<'_>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO logs (certificate_id, log_type, logged_at, user_id, source_address, details)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(entry.certificate_id)
    .bind(entry.log_type)
    .bind(now)
    .bind(entry.user_id)
    .bind(entry.source_address)
    .bind(entry.details)
    .execute(&mut *conn)
    .await
    .map_err(db("writing the audit log"))?;
    Ok(())
}

impl SqlStore {
    /// Fails with a conflict when a live certificate has this SHA-256, inside the caller's write
    /// transaction. SQLite's single writer serialises the check; on PostgreSQL a transaction lock
    /// on the hash makes two imports of the same certificate take turns.
    async fn refuse_duplicate(&self, conn: &mut AnyConnection, sha256: &str) -> Result<()> {
        if self.backend == Backend::Postgres {
            let key = u64::from_str_radix(sha256.get(..16).unwrap_or_default(), 16).unwrap_or(0);
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(key.cast_signed())
                .execute(&mut *conn)
                .await
                .map_err(db("locking duplicate detection"))?;
        }
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM certificates WHERE body_sha256 = $1 AND deleted = 0",
        )
        .bind(sha256)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("looking for duplicates"))?;
        match existing {
            Some(id) => Err(Error::Conflict(format!(
                "this certificate is already in the inventory as certificate {id}"
            ))),
            None => Ok(()),
        }
    }
}

/// Rows of a certificate list: the filter's condition and the caller's visibility.
fn list_conditions(filter: &CertificateFilter, visible: &Visibility) -> Conditions {
    let mut conditions = Conditions::default();
    match filter {
        CertificateFilter::All => {}
        CertificateFilter::Cn(value) => {
            let p = conditions.param(Arg::Text(format!("%{}%", value.to_lowercase())));
            conditions.and(&format!("lower(c.cn) LIKE {p}"));
        }
        CertificateFilter::Name(value) => {
            let p = conditions.param(Arg::Text(format!("%{}%", value.to_lowercase())));
            conditions.and(&format!("lower(c.name) LIKE {p}"));
        }
        CertificateFilter::Owner(value) => {
            let p = conditions.param(Arg::Text(value.clone()));
            conditions.and(&format!("c.owner = {p}"));
        }
        CertificateFilter::Serial(value) => {
            let p = conditions.param(Arg::Text(value.clone()));
            conditions.and(&format!("c.serial = {p}"));
        }
        CertificateFilter::Authority(id) => {
            let p = conditions.param(Arg::Int(*id));
            conditions.and(&format!("c.authority_id = {p}"));
        }
    }
    if let Visibility::Owned { owners, user_id } = visible {
        let list = conditions.list(owners.iter().cloned().map(Arg::Text));
        let user = conditions.param(Arg::Int(*user_id));
        conditions.and(&format!("(c.owner IN ({list}) OR c.user_id = {user})"));
    }
    conditions
}

fn domain(row: &AnyRow) -> std::result::Result<DomainRecord, sqlx::Error> {
    Ok(DomainRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        sensitive: flag(row, "sensitive")?,
    })
}

#[async_trait]
impl CertificateRepository for SqlStore {
    async fn create_certificate(
        &self,
        new: &NewCertificate<'_>,
        log: &LogEntry<'_>,
        unique_body: bool,
        now: i64,
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        if unique_body {
            self.refuse_duplicate(&mut tx, &new.parsed.sha256).await?;
        }
        let id = insert(&mut tx, new, now).await?;
        insert_log(
            &mut tx,
            &LogEntry {
                certificate_id: Some(id),
                ..*log
            },
            now,
        )
        .await?;
        tx.commit().await.map_err(db("committing a certificate"))?;
        Ok(id)
    }

    async fn certificate(&self, id: i64) -> Result<Option<CertificateRecord>> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM {FROM} WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading a certificate"))?
            .map(|row| record(&row))
            .transpose()
            .map_err(db("reading a certificate"))
    }

    async fn certificates(
        &self,
        filter: &CertificateFilter,
        visible: &Visibility,
        page: Page,
    ) -> Result<(Vec<CertificateRecord>, i64)> {
        let mut conditions = list_conditions(filter, visible);
        let count_sql = format!(
            "SELECT COUNT(*) FROM certificates c WHERE c.deleted = 0{}",
            conditions.sql()
        );
        let total: i64 = conditions
            .bind(sqlx::query(&count_sql))
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db("counting certificates"))?;
        let limit = conditions.param(Arg::Int(page.count));
        let offset = conditions.param(Arg::Int(page.offset()));
        let list_sql = format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE c.deleted = 0{} ORDER BY c.id DESC LIMIT {limit} OFFSET {offset}",
            conditions.sql()
        );
        let rows = conditions
            .bind(sqlx::query(&list_sql))
            .fetch_all(&self.pool)
            .await
            .map_err(db("listing certificates"))?;
        let records = rows
            .iter()
            .map(record)
            .collect::<std::result::Result<_, _>>()
            .map_err(db("reading certificates"))?;
        Ok((records, total))
    }

    async fn certificate_links(&self, certificate_ids: &[i64]) -> Result<Vec<CertificateLinks>> {
        if certificate_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut links: HashMap<i64, CertificateLinks> = certificate_ids
            .iter()
            .map(|&id| (id, CertificateLinks::default()))
            .collect();
        let mut args = Conditions::default();
        let list = args.list(ids(certificate_ids));
        let domains_sql = format!(
            "SELECT cd.certificate_id, d.id, d.name, d.sensitive FROM domains d
             JOIN certificate_domains cd ON cd.domain_id = d.id
             WHERE cd.certificate_id IN ({list}) ORDER BY d.name"
        );
        let rows = args
            .bind(sqlx::query(&domains_sql))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading domains"))?;
        for row in &rows {
            let owner: i64 = row
                .try_get("certificate_id")
                .map_err(db("reading domains"))?;
            if let Some(entry) = links.get_mut(&owner) {
                entry
                    .domains
                    .push(domain(row).map_err(db("reading domains"))?);
            }
        }
        let replacements_sql = format!(
            "SELECT {COLUMNS}, r.certificate_id AS replacer, r.replaced_certificate_id AS replaced FROM {FROM}
             JOIN certificate_replacements r ON (r.replaced_certificate_id = c.id AND r.certificate_id IN ({list}))
                OR (r.certificate_id = c.id AND r.replaced_certificate_id IN ({list}))
             ORDER BY c.id"
        );
        let rows = args
            .bind(sqlx::query(&replacements_sql))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading replacements"))?;
        for row in &rows {
            let linked = record(row).map_err(db("reading replacements"))?;
            let replacer: i64 = row
                .try_get("replacer")
                .map_err(db("reading replacements"))?;
            let replaced: i64 = row
                .try_get("replaced")
                .map_err(db("reading replacements"))?;
            if linked.id == replaced
                && let Some(entry) = links.get_mut(&replacer)
            {
                entry.replaces.push(linked.clone());
            }
            if linked.id == replacer
                && let Some(entry) = links.get_mut(&replaced)
            {
                entry.replaced_by.push(linked);
            }
        }
        Ok(certificate_ids
            .iter()
            .map(|id| links.remove(id).unwrap_or_default())
            .collect())
    }

    async fn sealed_private_key(&self, id: i64) -> Result<Option<Option<Vec<u8>>>> {
        sqlx::query_scalar::<_, Option<Vec<u8>>>(
            "SELECT sealed_private_key FROM certificates WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("reading a sealed key"))
    }

    async fn log(&self, entry: &LogEntry<'_>, now: i64) -> Result<()> {
        let mut conn = self
            .writer
            .acquire()
            .await
            .map_err(db("acquiring a connection"))?;
        insert_log(&mut conn, entry, now).await
    }
}
