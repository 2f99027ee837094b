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
    /// Creator.
    pub user_id: Option<i64>,
    /// External id.
    pub external_id: Option<String>,
    /// Created.
    pub date_created: i64,
    /// Who created it.
    pub creator: Option<super::UserRecord>,
    /// Its rotation policy: id, name, days.
    pub rotation_policy: Option<(i64, String, i64)>,
    /// The issuing authority, briefly.
    pub authority: Option<AuthorityBrief>,
}

/// What a certificate view shows of its issuing authority.
#[derive(Debug, Clone)]
pub struct AuthorityBrief {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Description.
    pub description: String,
    /// Issues certificates.
    pub active: bool,
    /// Default validity in days.
    pub default_validity_days: i64,
    /// Longest validity in days.
    pub max_issuance_days: Option<i64>,
    /// CA/Browser Forum rules apply.
    pub cab_compliant: bool,
    /// Issuer plugin slug.
    pub plugin_name: String,
    /// The CA certificate's validity start.
    pub not_before: Option<i64>,
    /// The CA certificate's validity end.
    pub not_after: Option<i64>,
}

/// Columns of [`CertificateRecord`], in `certificates` aliased `c`.
pub(super) const COLUMNS: &str =
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
pub(super) const FROM: &str = "certificates c
    LEFT JOIN users u ON u.id = c.user_id
    LEFT JOIN rotation_policies rp ON rp.id = c.rotation_policy_id
    LEFT JOIN authorities a ON a.id = c.authority_id
    LEFT JOIN certificates ac ON ac.id = a.authority_certificate_id";

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
        user_id: row.try_get("user_id")?,
        external_id: row.try_get("external_id")?,
        date_created: row.try_get("date_created")?,
        creator: match row.try_get::<Option<String>, _>("u_username")? {
            Some(username) => Some(super::UserRecord {
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

/// A domain.
#[derive(Debug, Clone)]
pub struct DomainRecord {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Lemur's sensitive-domain flag (issuing for such domains will need a privileged role once
    /// domain management exists; nothing sets or enforces it yet).
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
    // Rows are locked in one global order (sorted, no repeats) so two writers sharing names or
    // replacements cannot deadlock on PostgreSQL.
    let mut dns: Vec<String> = parsed
        .alt_names
        .iter()
        .filter(|n| n.kind == "DNSName")
        .map(|n| n.value.to_ascii_lowercase())
        .collect();
    dns.sort_unstable();
    dns.dedup();
    let mut replaces = new.replaces.to_vec();
    replaces.sort_unstable();
    replaces.dedup();
    let base = crate::ca::names::certificate_name(
        &parsed.cn,
        &parsed.issuer,
        parsed.not_before,
        parsed.not_after,
        parsed.alt_names.len(),
    );
    // Lemur suffixes a taken name. A suffix from the certificate's hash is unique without
    // counting (Lemur counts certificates one by one). `ON CONFLICT DO NOTHING` makes a writer
    // that races another for the same base name wait for it and take the suffix, where a
    // look-up before the INSERT would see nothing and fail on the unique index.
    let id = match insert_row(conn, new, &base, now).await? {
        Some(id) => id,
        None => {
            let suffixed = format!("{base}-{}", &parsed.sha256[..12]);
            insert_row(conn, new, &suffixed, now)
                .await?
                .ok_or_else(|| {
                    Error::Conflict(format!("a certificate named {suffixed:?} exists"))
                })?
        }
    };
    link_domains(conn, id, &dns).await?;
    for replaced in &replaces {
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
    .map_err(Error::database("storing a certificate"))
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
        .map_err(Error::database("storing domains"))?;
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
        .map_err(Error::database("linking domains"))?;
    Ok(())
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
        self.store_certificate(new, log, false).await
    }

    /// Stores an imported certificate and its audit row, unless the same certificate is in the
    /// inventory already (409).
    pub async fn import_certificate(
        &self,
        new: &NewCertificate<'_>,
        log: &LogEntry<'_>,
    ) -> Result<i64> {
        self.store_certificate(new, log, true).await
    }

    async fn store_certificate(
        &self,
        new: &NewCertificate<'_>,
        log: &LogEntry<'_>,
        refuse_duplicate: bool,
    ) -> Result<i64> {
        let now = self.clock.unix();
        let mut tx = self.begin_write().await?;
        if refuse_duplicate {
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
        tx.commit()
            .await
            .map_err(Error::database("committing a certificate"))?;
        Ok(id)
    }

    /// Fails with a conflict when a live certificate has this SHA-256, inside the caller's write
    /// transaction. SQLite's single writer serialises the check; on PostgreSQL a transaction lock
    /// on the hash makes two imports of the same certificate take turns.
    async fn refuse_duplicate(&self, conn: &mut AnyConnection, sha256: &str) -> Result<()> {
        if self.backend == super::Backend::Postgres {
            let key = u64::from_str_radix(sha256.get(..16).unwrap_or_default(), 16).unwrap_or(0);
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(key.cast_signed())
                .execute(&mut *conn)
                .await
                .map_err(Error::database("locking duplicate detection"))?;
        }
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM certificates WHERE body_sha256 = $1 AND deleted = 0",
        )
        .bind(sha256)
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::database("looking for duplicates"))?;
        match existing {
            Some(id) => Err(Error::Conflict(format!(
                "this certificate is already in the inventory as certificate {id}"
            ))),
            None => Ok(()),
        }
    }

    /// Writes an audit row on its own.
    pub async fn log(&self, entry: &LogEntry<'_>) -> Result<()> {
        let mut conn = self
            .writer
            .acquire()
            .await
            .map_err(Error::database("acquiring a connection"))?;
        insert_log(&mut conn, entry, self.clock.unix()).await
    }

    /// The certificate with this id (deleted ones included).
    pub async fn certificate(&self, id: i64) -> Result<CertificateRecord> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM {FROM} WHERE c.id = $1"))
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
            "SELECT {COLUMNS} FROM {FROM} WHERE c.deleted = 0 {condition} ORDER BY c.id DESC LIMIT ${limit} OFFSET ${offset}"
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

    /// The certificates `id` replaces and those that replace it, in one round trip.
    pub async fn replacements(
        &self,
        id: i64,
    ) -> Result<(Vec<CertificateRecord>, Vec<CertificateRecord>)> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, r.certificate_id AS replacer FROM {FROM}
             JOIN certificate_replacements r ON (r.replaced_certificate_id = c.id AND r.certificate_id = $1)
                OR (r.certificate_id = c.id AND r.replaced_certificate_id = $1)
             ORDER BY c.id"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::database("reading replacements"))?;
        let (mut replaces, mut replaced_by) = (Vec::new(), Vec::new());
        for row in &rows {
            let certificate = record(row).map_err(Error::database("reading replacements"))?;
            let replacer: i64 = row
                .try_get("replacer")
                .map_err(Error::database("reading replacements"))?;
            if replacer == id {
                replaces.push(certificate);
            } else {
                replaced_by.push(certificate);
            }
        }
        Ok((replaces, replaced_by))
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
