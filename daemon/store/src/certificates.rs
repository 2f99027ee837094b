//! Certificates, their domains (one row per distinct name), replacements and the audit rows of
//! certificate events.

use crate::SqlStore;
use crate::engine::{Tx, args};
use crate::query::{Conditions, Param, ids};
use crate::rows::{
    CERTIFICATE_COLUMNS, CERTIFICATE_FROM, CertificateRow, DomainRow, ReplacementRow,
};
use async_trait::async_trait;
use lemur_core::model::{
    CertificateDetails, CertificateFilter, CertificateLinks, CertificateRecord, LogEntry,
    NewCertificate, Page, Revocation, Visibility,
};
use lemur_core::store::CertificateRepository;
use lemur_core::{Error, Result};
use std::collections::HashMap;

/// Stores `new` under the first of its names that is free, with its domains and replacements,
/// in the caller's transaction. Returns the new id.
pub(crate) async fn insert(tx: &mut Tx, new: &NewCertificate<'_>, now: i64) -> Result<i64> {
    // `ON CONFLICT DO NOTHING` makes a writer that races another for the same name wait for it
    // and take the next name, where a look-up before the INSERT would see nothing and fail on
    // the unique index.
    let mut id = None;
    for name in new.names {
        id = insert_row(tx, new, name, now).await?;
        if id.is_some() {
            break;
        }
    }
    let id = id
        .ok_or_else(|| Error::Conflict(format!("a certificate named {:?} exists", new.names[1])))?;
    link_domains(tx, id, new.domains).await?;
    for &replaced in new.replaces {
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
    Ok(id)
}

/// Inserts the certificate row named `name`; `None` when the name is taken.
async fn insert_row(
    tx: &mut Tx,
    new: &NewCertificate<'_>,
    name: &str,
    now: i64,
) -> Result<Option<i64>> {
    let parsed = new.parsed;
    let alt_names = CertificateDetails::encode_alt_names(&parsed.alt_names);
    let id: Option<(i64,)> = tx
        .optional(
            "INSERT INTO certificates (name, owner, description, notify, rotation, body, body_sha256, chain, csr,
                sealed_private_key, issuer, serial, serial_hex, cn, distinguished_name, san, bits, key_type,
                signing_algorithm, not_before, not_after, is_ca, authority_id, root_authority_id, user_id,
                rotation_policy_id, date_created, subject_organization, subject_organizational_unit,
                subject_country, subject_state, subject_location, path_length, server_auth, client_auth,
                alt_names)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36)
             ON CONFLICT (name) DO NOTHING
             RETURNING id",
            args![
                name,
                new.owner,
                new.description,
                new.notify,
                new.rotation,
                &parsed.pem,
                &parsed.sha256,
                new.chain,
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
                &alt_names,
            ],
            "storing a certificate",
        )
        .await?;
    Ok(id.map(|(id,)| id))
}

/// Records each distinct domain once and links the certificate to them: two statements however
/// many names it has.
async fn link_domains(tx: &mut Tx, certificate_id: i64, domains: &[String]) -> Result<()> {
    if domains.is_empty() {
        return Ok(());
    }
    let mut names = Conditions::default();
    let values = domains
        .iter()
        .map(|domain| format!("({})", names.param(Param::Text(domain.clone()))))
        .collect::<Vec<_>>()
        .join(", ");
    tx.execute(
        &format!("INSERT INTO domains (name) VALUES {values} ON CONFLICT (name) DO NOTHING"),
        &names.args(),
        "storing domains",
    )
    .await?;
    let mut link = Conditions::default();
    let certificate = link.param(Param::Int(certificate_id));
    let list = link.list(domains.iter().cloned().map(Param::Text));
    tx.execute(
        &format!(
            "INSERT INTO certificate_domains (certificate_id, domain_id)
             SELECT {certificate}, id FROM domains WHERE name IN ({list}) ON CONFLICT DO NOTHING"
        ),
        &link.args(),
        "linking domains",
    )
    .await
    .map(drop)
}

/// Writes an audit row in the caller's transaction.
pub(crate) async fn insert_log(tx: &mut Tx, entry: &LogEntry<'_>, now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO logs (certificate_id, log_type, logged_at, user_id, source_address, details)
         VALUES ($1, $2, $3, $4, $5, $6)",
        args![
            entry.certificate_id,
            entry.log_type,
            now,
            entry.user_id,
            entry.source_address,
            entry.details,
        ],
        "writing the audit log",
    )
    .await
    .map(drop)
}

/// Fails with a conflict when a live certificate has this SHA-256, inside the caller's write
/// transaction. SQLite's single writer serialises the check; on PostgreSQL a transaction lock on
/// the hash makes two imports of the same certificate take turns.
async fn refuse_duplicate(tx: &mut Tx, sha256: &str) -> Result<()> {
    if tx.is_postgres() {
        let key = u64::from_str_radix(sha256.get(..16).unwrap_or_default(), 16).unwrap_or(0);
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            args![key.cast_signed()],
            "locking duplicate detection",
        )
        .await?;
    }
    let existing: Option<(i64,)> = tx
        .optional(
            "SELECT id FROM certificates WHERE body_sha256 = $1 AND deleted = FALSE",
            args![sha256],
            "looking for duplicates",
        )
        .await?;
    match existing {
        Some((id,)) => Err(Error::Conflict(format!(
            "this certificate is already in the inventory as certificate {id}"
        ))),
        None => Ok(()),
    }
}

/// Rows of a certificate list: the filter's condition and the caller's visibility.
fn list_conditions(filter: &CertificateFilter, visible: &Visibility) -> Conditions {
    let mut conditions = Conditions::default();
    let mut add = |template: &str, param: Param| {
        let placeholder = conditions.param(param);
        conditions.and(&template.replace('?', &placeholder));
    };
    match filter {
        CertificateFilter::All => {}
        CertificateFilter::Cn(value) => add(
            "lower(c.cn) LIKE ?",
            Param::Text(format!("%{}%", value.to_lowercase())),
        ),
        CertificateFilter::Name(value) => add(
            "lower(c.name) LIKE ?",
            Param::Text(format!("%{}%", value.to_lowercase())),
        ),
        CertificateFilter::Owner(value) => add("c.owner = ?", Param::Text(value.clone())),
        CertificateFilter::Serial(value) => add("c.serial = ?", Param::Text(value.clone())),
        CertificateFilter::Authority(id) => add("c.authority_id = ?", Param::Int(*id)),
    }
    if let Visibility::Owned { owners, user_id } = visible {
        let list = conditions.list(owners.iter().cloned().map(Param::Text));
        let user = conditions.param(Param::Int(*user_id));
        conditions.and(&format!("(c.owner IN ({list}) OR c.user_id = {user})"));
    }
    conditions
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
        let mut tx = self.engine.begin().await?;
        if unique_body {
            refuse_duplicate(&mut tx, &new.parsed.sha256).await?;
        }
        let id = insert(&mut tx, new, now).await?;
        let log = LogEntry {
            certificate_id: Some(id),
            ..*log
        };
        insert_log(&mut tx, &log, now).await?;
        tx.commit("committing a certificate").await?;
        Ok(id)
    }

    async fn certificate(&self, id: i64) -> Result<Option<CertificateRecord>> {
        let row: Option<CertificateRow> = self
            .engine
            .optional(
                &format!("SELECT {CERTIFICATE_COLUMNS} FROM {CERTIFICATE_FROM} WHERE c.id = $1"),
                args![id],
                "reading a certificate",
            )
            .await?;
        Ok(row.map(Into::into))
    }

    async fn certificates(
        &self,
        filter: &CertificateFilter,
        visible: &Visibility,
        page: Page,
    ) -> Result<(Vec<CertificateRecord>, i64)> {
        let mut conditions = list_conditions(filter, visible);
        let count_sql = format!(
            "SELECT COUNT(*) FROM certificates c WHERE c.deleted = FALSE{}",
            conditions.sql()
        );
        let (total,): (i64,) = self
            .engine
            .optional(&count_sql, &conditions.args(), "counting certificates")
            .await?
            .unwrap_or((0,));
        let limit = conditions.param(Param::Int(page.count));
        let offset = conditions.param(Param::Int(page.offset()));
        let list_sql = format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM {CERTIFICATE_FROM} WHERE c.deleted = FALSE{}
             ORDER BY c.id DESC LIMIT {limit} OFFSET {offset}",
            conditions.sql()
        );
        let rows: Vec<CertificateRow> = self
            .engine
            .all(&list_sql, &conditions.args(), "listing certificates")
            .await?;
        Ok((rows.into_iter().map(Into::into).collect(), total))
    }

    async fn certificate_links(&self, certificate_ids: &[i64]) -> Result<Vec<CertificateLinks>> {
        if certificate_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut links: HashMap<i64, CertificateLinks> = certificate_ids
            .iter()
            .map(|&id| (id, CertificateLinks::default()))
            .collect();
        let mut params = Conditions::default();
        let list = params.list(ids(certificate_ids));
        let args = params.args();
        let domains_sql = format!(
            "SELECT cd.certificate_id, d.id, d.name, d.sensitive FROM domains d
             JOIN certificate_domains cd ON cd.domain_id = d.id
             WHERE cd.certificate_id IN ({list}) ORDER BY d.name"
        );
        let replacements_sql = format!(
            "SELECT {CERTIFICATE_COLUMNS}, r.certificate_id AS replacer, r.replaced_certificate_id AS replaced
             FROM {CERTIFICATE_FROM}
             JOIN certificate_replacements r
                ON (r.replaced_certificate_id = c.id AND r.certificate_id IN ({list}))
                OR (r.certificate_id = c.id AND r.replaced_certificate_id IN ({list}))
             ORDER BY c.id"
        );
        // Independent reads: side by side on the pool.
        let (domains, replacements): (Vec<DomainRow>, Vec<ReplacementRow>) = tokio::try_join!(
            self.engine.all(&domains_sql, &args, "reading domains"),
            self.engine
                .all(&replacements_sql, &args, "reading replacements"),
        )?;
        for row in domains {
            if let Some(entry) = links.get_mut(&row.certificate_id) {
                entry.domains.push(row.into());
            }
        }
        for row in replacements {
            let (replacer, replaced) = (row.replacer, row.replaced);
            let linked: CertificateRecord = row.certificate.into();
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
        let row: Option<(Option<Vec<u8>>,)> = self
            .engine
            .optional(
                "SELECT sealed_private_key FROM certificates WHERE id = $1",
                args![id],
                "reading a sealed key",
            )
            .await?;
        Ok(row.map(|(sealed,)| sealed))
    }

    async fn revoke_certificate(
        &self,
        revocation: &Revocation<'_>,
        log: &LogEntry<'_>,
    ) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let changed = tx
            .execute(
                "UPDATE certificates SET status = 'revoked', revoked_at = $2, revocation_reason = $3,
                    notify = FALSE, rotation = FALSE
                 WHERE id = $1 AND (status IS NULL OR status <> 'revoked')",
                args![revocation.certificate_id, revocation.at, revocation.reason],
                "revoking a certificate",
            )
            .await?;
        if changed == 0 {
            return Ok(false);
        }
        insert_log(&mut tx, log, revocation.at).await?;
        tx.commit("committing a revocation").await?;
        Ok(true)
    }

    async fn log(&self, entry: &LogEntry<'_>, now: i64) -> Result<()> {
        let mut tx = self.engine.begin().await?;
        insert_log(&mut tx, entry, now).await?;
        tx.commit("writing the audit log").await
    }
}
