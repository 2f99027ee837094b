//! Certificates, their domains (one row per distinct name), replacements and the audit rows of
//! certificate events.

use super::Store;
use crate::ca::x509::ParsedCertificate;
use crate::error::{Error, Result};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// A certificate to store.
pub struct NewCertificate<'a> {
    /// The parsed certificate.
    pub parsed: &'a ParsedCertificate,
    /// Owner (email or team).
    pub owner: &'a str,
    /// Description.
    pub description: &'a str,
    /// Send expiry notifications.
    pub notify: bool,
    /// Rotate automatically.
    pub rotation: bool,
    /// PEM chain (issuer first).
    pub chain: Option<&'a str>,
    /// PEM CSR it was issued from.
    pub csr: Option<&'a str>,
    /// The private key, sealed by the HSM.
    pub sealed_private_key: Option<&'a [u8]>,
    /// The issuing authority.
    pub authority_id: Option<i64>,
    /// The root authority of its chain.
    pub root_authority_id: Option<i64>,
    /// Who created it.
    pub user_id: Option<i64>,
    /// Rotation policy.
    pub rotation_policy_id: Option<i64>,
    /// Certificates it replaces.
    pub replaces: &'a [i64],
}

/// A stored certificate (never with its private key).
#[derive(Debug, Clone)]
pub struct CertificateRecord {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Description.
    pub description: String,
    /// Notifications on.
    pub notify: bool,
    /// Rotation on.
    pub rotation: bool,
    /// PEM body.
    pub body: String,
    /// PEM chain.
    pub chain: Option<String>,
    /// PEM CSR.
    pub csr: Option<String>,
    /// A sealed private key is stored.
    pub has_private_key: bool,
    /// Issuer name.
    pub issuer: String,
    /// Serial, decimal.
    pub serial: String,
    /// Serial, hex.
    pub serial_hex: String,
    /// Common name.
    pub cn: String,
    /// Subject DN.
    pub distinguished_name: String,
    /// Key size.
    pub bits: i64,
    /// Key type.
    pub key_type: String,
    /// Signature algorithm.
    pub signing_algorithm: String,
    /// Validity start.
    pub not_before: i64,
    /// Validity end.
    pub not_after: i64,
    /// `valid`, `revoked`, `unknown` or none.
    pub status: Option<String>,
    /// Soft-deleted.
    pub deleted: bool,
    /// A CA certificate.
    pub is_ca: bool,
    /// Issuing authority.
    pub authority_id: Option<i64>,
    /// Creator.
    pub user_id: Option<i64>,
    /// Rotation policy.
    pub rotation_policy_id: Option<i64>,
    /// External id.
    pub external_id: Option<String>,
    /// Created.
    pub date_created: i64,
}

/// Columns of [`CertificateRecord`], in `certificates` aliased `c`.
pub(super) const COLUMNS: &str =
    "c.id, c.name, c.owner, c.description, c.notify, c.rotation, c.body, c.chain, c.csr,
    CASE WHEN c.sealed_private_key IS NULL THEN 0 ELSE 1 END AS has_private_key, c.issuer, c.serial,
    c.serial_hex, c.cn, c.distinguished_name, c.bits, c.key_type, c.signing_algorithm,
    c.not_before, c.not_after, c.status, c.deleted, c.is_ca, c.authority_id, c.user_id,
    c.rotation_policy_id, c.external_id, c.date_created";

pub(super) fn flag(row: &AnyRow, column: &str) -> std::result::Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

pub(super) fn record(row: &AnyRow) -> std::result::Result<CertificateRecord, sqlx::Error> {
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
        authority_id: row.try_get("authority_id")?,
        user_id: row.try_get("user_id")?,
        rotation_policy_id: row.try_get("rotation_policy_id")?,
        external_id: row.try_get("external_id")?,
        date_created: row.try_get("date_created")?,
    })
}

/// A domain.
#[derive(Debug, Clone)]
pub struct DomainRecord {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Only privileged roles may issue for it.
    pub sensitive: bool,
}

/// Stores `new` with a unique name, its domains and replacements, on `conn` (inside the caller's
/// transaction). Returns the new id.
pub(super) async fn insert(
    conn: &mut AnyConnection,
    new: &NewCertificate<'_>,
    now: i64,
) -> Result<i64> {
    let parsed = new.parsed;
    let dns: Vec<String> = parsed
        .alt_names
        .iter()
        .filter(|n| n.kind == "DNSName")
        .map(|n| n.value.to_ascii_lowercase())
        .collect();
    let base = crate::ca::names::certificate_name(
        &parsed.cn,
        &parsed.issuer,
        parsed.not_before,
        parsed.not_after,
        parsed.alt_names.len(),
    );
    let mut name = base.clone();
    for suffix in 1.. {
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM certificates WHERE name = $1")
            .bind(&name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(Error::database("checking certificate names"))?;
        if taken.is_none() {
            break;
        }
        name = format!("{base}-{suffix}");
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO certificates (name, owner, description, notify, rotation, body, body_sha256, chain, csr,
            sealed_private_key, issuer, serial, serial_hex, cn, distinguished_name, san, bits, key_type,
            signing_algorithm, not_before, not_after, is_ca, authority_id, root_authority_id, user_id,
            rotation_policy_id, date_created)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
            $21, $22, $23, $24, $25, $26, $27)
         RETURNING id",
    )
    .bind(&name)
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
    .fetch_one(&mut *conn)
    .await
    .map_err(Error::database("storing a certificate"))?;
    for domain in dns {
        sqlx::query("INSERT INTO domains (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind(&domain)
            .execute(&mut *conn)
            .await
            .map_err(Error::database("storing a domain"))?;
        sqlx::query(
            "INSERT INTO certificate_domains (certificate_id, domain_id)
             SELECT $1, id FROM domains WHERE name = $2 ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&domain)
        .execute(&mut *conn)
        .await
        .map_err(Error::database("linking a domain"))?;
    }
    for replaced in new.replaces {
        sqlx::query("INSERT INTO certificate_replacements (certificate_id, replaced_certificate_id) VALUES ($1, $2)")
            .bind(id)
            .bind(replaced)
            .execute(&mut *conn)
            .await
            .map_err(Error::database("recording a replacement"))?;
        sqlx::query("UPDATE certificates SET notify = 0 WHERE id = $1")
            .bind(replaced)
            .execute(&mut *conn)
            .await
            .map_err(Error::database("silencing a replaced certificate"))?;
    }
    Ok(id)
}

/// A row of the `logs` table.
pub struct LogEntry<'a> {
    /// The certificate concerned.
    pub certificate_id: Option<i64>,
    /// `create_cert`, `key_view`, `create_authority`...
    pub log_type: &'a str,
    /// Who.
    pub user_id: Option<i64>,
    /// From where.
    pub source_address: Option<&'a str>,
    /// What else.
    pub details: &'a str,
}

pub(super) async fn insert_log(
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
    .map_err(Error::database("writing the audit log"))?;
    Ok(())
}

impl Store {
    /// Stores a certificate and its audit row in one transaction.
    pub async fn create_certificate(
        &self,
        new: &NewCertificate<'_>,
        log: &LogEntry<'_>,
    ) -> Result<i64> {
        let now = self.clock.unix();
        let mut tx = self.begin_write().await?;
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
        tx.commit()
            .await
            .map_err(Error::database("committing a certificate"))?;
        Ok(id)
    }

    /// Writes an audit row on its own.
    pub async fn log(&self, entry: &LogEntry<'_>) -> Result<()> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(Error::database("acquiring a connection"))?;
        insert_log(&mut conn, entry, self.clock.unix()).await
    }

    /// The certificate with this id (deleted ones included).
    pub async fn certificate(&self, id: i64) -> Result<CertificateRecord> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM certificates c WHERE c.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::database("reading a certificate"))?
        .ok_or_else(|| Error::NotFound {
            what: "certificate",
            id: id.to_string(),
        })?;
        record(&row).map_err(Error::database("reading a certificate"))
    }

    /// A page of certificates, newest first, optionally filtered; with the total count.
    pub async fn certificates(
        &self,
        filter: &CertificateFilter,
        page: i64,
        count: i64,
    ) -> Result<(Vec<CertificateRecord>, i64)> {
        let condition = filter.condition();
        let (limit, offset) = (filter.next_parameter(), filter.next_parameter() + 1);
        let list_sql = format!(
            "SELECT {COLUMNS} FROM certificates c WHERE c.deleted = 0 {condition} ORDER BY c.id DESC LIMIT ${limit} OFFSET ${offset}"
        );
        let rows = filter
            .bind(sqlx::query(&list_sql))
            .bind(count)
            .bind((page - 1) * count)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::database("listing certificates"))?;
        let count_sql =
            format!("SELECT COUNT(*) FROM certificates c WHERE c.deleted = 0 {condition}");
        let total: i64 = filter
            .bind(sqlx::query(&count_sql))
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(Error::database("counting certificates"))?;
        let records = rows
            .iter()
            .map(record)
            .collect::<std::result::Result<_, _>>()
            .map_err(Error::database("reading certificates"))?;
        Ok((records, total))
    }

    /// The sealed private key of a certificate, if one is stored.
    pub async fn sealed_private_key(&self, id: i64) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar::<_, Option<Vec<u8>>>(
            "SELECT sealed_private_key FROM certificates WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::database("reading a sealed key"))?
        .ok_or_else(|| Error::NotFound {
            what: "certificate",
            id: id.to_string(),
        })
    }

    /// The id of a stored certificate with the same DER (duplicate detection).
    pub async fn certificate_by_sha256(&self, sha256: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT id FROM certificates WHERE body_sha256 = $1 AND deleted = 0")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::database("looking for duplicates"))
    }

    /// The domains a certificate names.
    pub async fn certificate_domains(&self, id: i64) -> Result<Vec<DomainRecord>> {
        let rows = sqlx::query(
            "SELECT d.id, d.name, d.sensitive FROM domains d JOIN certificate_domains cd ON cd.domain_id = d.id
             WHERE cd.certificate_id = $1 ORDER BY d.name",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::database("reading domains"))?;
        rows.iter()
            .map(|row| {
                Ok(DomainRecord {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    sensitive: flag(row, "sensitive")?,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(Error::database("reading domains"))
    }

    /// Certificates `id` replaces (`replaces`) or that replace it (`replaced_by`).
    pub async fn replacements(&self, id: i64, replaced_by: bool) -> Result<Vec<CertificateRecord>> {
        let (mine, theirs) = if replaced_by {
            ("replaced_certificate_id", "certificate_id")
        } else {
            ("certificate_id", "replaced_certificate_id")
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM certificates c JOIN certificate_replacements r ON r.{theirs} = c.id WHERE r.{mine} = $1 ORDER BY c.id"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::database("reading replacements"))?;
        rows.iter()
            .map(record)
            .collect::<std::result::Result<_, _>>()
            .map_err(Error::database("reading replacements"))
    }
}

/// Lemur's single `filter=field;value` on the certificate list.
#[derive(Debug, Clone, Default)]
pub enum CertificateFilter {
    /// No filter.
    #[default]
    All,
    /// Common name contains (case-insensitive).
    Cn(String),
    /// Name contains.
    Name(String),
    /// Owner is.
    Owner(String),
    /// Issued by authority.
    Authority(i64),
    /// Serial (decimal).
    Serial(String),
}

impl CertificateFilter {
    /// The SQL condition, using parameter `$1` when it has a value.
    fn condition(&self) -> &'static str {
        match self {
            CertificateFilter::All => "",
            CertificateFilter::Cn(_) => "AND lower(c.cn) LIKE $1",
            CertificateFilter::Name(_) => "AND lower(c.name) LIKE $1",
            CertificateFilter::Owner(_) => "AND c.owner = $1",
            CertificateFilter::Authority(_) => "AND c.authority_id = $1",
            CertificateFilter::Serial(_) => "AND c.serial = $1",
        }
    }

    /// Binds the filter's value, if it has one, as the query's first parameter.
    fn bind<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        match self {
            CertificateFilter::All => query,
            CertificateFilter::Cn(v) | CertificateFilter::Name(v) => {
                query.bind(format!("%{}%", v.to_lowercase()))
            }
            CertificateFilter::Owner(v) | CertificateFilter::Serial(v) => query.bind(v.clone()),
            CertificateFilter::Authority(id) => query.bind(*id),
        }
    }

    /// The parameter number after the filter's own.
    fn next_parameter(&self) -> usize {
        if matches!(self, CertificateFilter::All) {
            1
        } else {
            2
        }
    }
}
