//! Certificates, their domains (one row per distinct name), replacements and the audit rows of
//! certificate events.

use crate::SqlStore;
use crate::engine::{Statements, args};
use crate::insert;
use crate::query::{Conditions, ids};
use crate::rows::{
    CERTIFICATE_COLUMNS, CERTIFICATE_FROM, CertificateRow, DomainRow, ReplacementRow,
};
use async_trait::async_trait;
use lemur_core::Result;
use lemur_core::ca::{key_stock, x509};
use lemur_core::model::{
    CertificateLinks, CertificateRecord, ExpiringCertificate, Histogram, KeyHolder, ListQuery,
    LogEntry, NewCertificate, Resealed, Revocation, RevokedCertificate, SealedKey, StatsLabel,
    StatsMetric, Visibility,
};
use lemur_core::store::CertificateRepository;
use std::collections::{HashMap, HashSet};

/// The domain rows ([`DomainRow`]) of the certificates whose ids `list` binds, by name.
fn domains_of(list: &str) -> String {
    format!(
        "SELECT cd.certificate_id, d.id, d.name, d.sensitive FROM domains d
         JOIN certificate_domains cd ON cd.domain_id = d.id
         WHERE cd.certificate_id IN ({list}) ORDER BY d.name"
    )
}

/// The certificates `ids` as stored, with their domains, in the caller's transaction: what a
/// writer answers with, read once per batch rather than once per request. `linked` holds some
/// of them (by id) with their domains already, and `views` some rows as the `INSERT` returned
/// them (see [`insert::Inserted`]): those are not read again.
pub(crate) async fn read_back(
    tx: &mut impl Statements,
    ids: &[i64],
    linked: Option<(Vec<i64>, Vec<DomainRow>)>,
    mut views: HashMap<i64, CertificateRow>,
) -> Result<HashMap<i64, (CertificateRecord, CertificateLinks)>> {
    let mut stored = HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(stored);
    }
    let unread: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !views.contains_key(id))
        .collect();
    let mut rows: Vec<CertificateRow> = if unread.is_empty() {
        Vec::new()
    } else {
        let mut params = Conditions::default();
        let list = params.list(crate::query::ids(&unread));
        tx.all(
            &format!("SELECT {CERTIFICATE_COLUMNS} FROM {CERTIFICATE_FROM} WHERE c.id IN ({list})"),
            &params.args(),
            "reading stored certificates",
        )
        .await?
    };
    rows.extend(ids.iter().filter_map(|id| views.remove(id)));
    for row in rows {
        let record: CertificateRecord = row.into();
        stored.insert(record.id, (record, CertificateLinks::default()));
    }
    let (known, mut domains) = linked.unwrap_or_default();
    let known: HashSet<i64> = known.into_iter().collect();
    let unknown: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !known.contains(id))
        .collect();
    if !unknown.is_empty() {
        let mut params = Conditions::default();
        let list = params.list(crate::query::ids(&unknown));
        let read: Vec<DomainRow> = tx
            .all(&domains_of(&list), &params.args(), "reading stored domains")
            .await?;
        // Each certificate's rows come from one of the two, each in the database's order.
        domains.extend(read);
    }
    for row in domains {
        if let Some((_, links)) = stored.get_mut(&row.certificate_id) {
            links.domains.push(row.into());
        }
    }
    Ok(stored)
}

#[async_trait]
impl CertificateRepository for SqlStore {
    async fn create_certificate(
        &self,
        new: &NewCertificate<'_>,
        log: &LogEntry<'_>,
        unique_body: bool,
        now: i64,
    ) -> Result<(CertificateRecord, CertificateLinks)> {
        let (record, links) = self.writer.create(new, log, unique_body, now).await?;
        if new.replaces.is_empty() {
            return Ok((record, links));
        }
        // A replacement: its links name whole certificates, read apart (reissues are rare).
        let links = self.certificate_links(&[record.id]).await?;
        Ok((record, links.into_iter().next().unwrap_or_default()))
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

    async fn idempotent_request(
        &self,
        user_id: i64,
        key: &str,
    ) -> Result<Option<(i64, Option<String>)>> {
        self.engine
            .optional(
                "SELECT id, idempotency_fingerprint FROM certificates
                 WHERE user_id = $1 AND idempotency_key = $2",
                args![user_id, key],
                "looking up an idempotency key",
            )
            .await
    }

    async fn certificates(
        &self,
        query: &ListQuery,
        visible: &Visibility,
    ) -> Result<(Vec<CertificateRecord>, i64)> {
        self.list(query, visible).await
    }

    async fn certificate_stats(
        &self,
        metric: StatsMetric,
        visible: &Visibility,
        now: i64,
    ) -> Result<Vec<(StatsLabel, i64)>> {
        self.stats(metric, visible, now).await
    }

    async fn certificate_histogram(
        &self,
        histogram: Histogram,
        visible: &Visibility,
    ) -> Result<Vec<i64>> {
        self.histogram(histogram, visible).await
    }

    async fn expiring_certificates(
        &self,
        windows: &[(i64, i64)],
        after: Option<(&str, i64)>,
        limit: i64,
    ) -> Result<Vec<ExpiringCertificate>> {
        self.expiring(windows, after, limit).await
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
        let domains_sql = domains_of(&list);
        // Two joins, each through an index, rather than one on an OR, which PostgreSQL can
        // only answer by reading every certificate.
        let replacements_sql = format!(
            "SELECT {CERTIFICATE_COLUMNS}, r.certificate_id AS replacer, r.replaced_certificate_id AS replaced
             FROM {CERTIFICATE_FROM}
             JOIN certificate_replacements r ON r.replaced_certificate_id = c.id
             WHERE r.certificate_id IN ({list})
             UNION ALL
             SELECT {CERTIFICATE_COLUMNS}, r.certificate_id AS replacer, r.replaced_certificate_id AS replaced
             FROM {CERTIFICATE_FROM}
             JOIN certificate_replacements r ON r.certificate_id = c.id
             WHERE r.replaced_certificate_id IN ({list})
             ORDER BY 1"
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

    async fn revoked_certificates(
        &self,
        authority_id: i64,
        now: i64,
    ) -> Result<Vec<RevokedCertificate>> {
        let rows: Vec<(String, Option<i64>, Option<String>)> = self
            .engine
            .all(
                "SELECT serial_hex, COALESCE(revoked_at, not_before), revocation_reason FROM certificates
                 WHERE authority_id = $1 AND status = 'revoked' AND not_after > $2 ORDER BY id",
                args![authority_id, now],
                "reading revoked certificates",
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(serial_hex, revoked_at, reason)| RevokedCertificate {
                serial_hex,
                revoked_at: revoked_at.unwrap_or_default(),
                reason: reason.unwrap_or_else(|| "unspecified".to_owned()),
            })
            .collect())
    }

    async fn next_crl_number(&self, authority_id: i64) -> Result<u64> {
        let mut tx = self.engine.begin().await?;
        let number: Option<(i64,)> = tx
            .optional(
                "UPDATE authorities SET crl_number = crl_number + 1 WHERE id = $1
                 RETURNING crl_number",
                args![authority_id],
                "taking a CRL number",
            )
            .await?;
        tx.commit("taking a CRL number").await?;
        let (number,) = number.ok_or_else(|| lemur_core::Error::NotFound {
            what: "authority",
            id: authority_id.to_string(),
        })?;
        Ok(u64::try_from(number).unwrap_or(0))
    }

    async fn count_expiring(&self, from: i64, until: i64) -> Result<i64> {
        let (count,): (i64,) = self
            .engine
            .optional(
                "SELECT count(*) FROM certificates
                 WHERE deleted = FALSE AND not_after >= $1 AND not_after < $2
                   AND (status IS NULL OR status <> 'revoked')",
                args![from, until],
                "counting expiring certificates",
            )
            .await?
            .unwrap_or((0,));
        Ok(count)
    }

    async fn sealed_private_keys(
        &self,
        holder: KeyHolder,
        after: i64,
        limit: i64,
    ) -> Result<Vec<SealedKey>> {
        // The second and third columns are what the key is bound to: the body (PEM, or DER
        // beside it), the CSR, or the stocked key's label (`ca::key_stock::label`) and public key.
        let sql = match holder {
            KeyHolder::Certificate => {
                "SELECT id, body, body_der, sealed_private_key FROM certificates
                 WHERE id > $1 AND sealed_private_key IS NOT NULL ORDER BY id LIMIT $2"
            }
            KeyHolder::Pending => {
                "SELECT id, COALESCE(csr, '') AS csr, NULL AS body_der, sealed_private_key FROM pending_certificates
                 WHERE id > $1 AND sealed_private_key IS NOT NULL ORDER BY id LIMIT $2"
            }
            KeyHolder::Stock => {
                "SELECT id, key_type || ':' || token, public_key, sealed_private_key FROM stocked_keys
                 WHERE id > $1 ORDER BY id LIMIT $2"
            }
        };
        let rows: Vec<(i64, String, Option<Vec<u8>>, Vec<u8>)> = self
            .engine
            .all(sql, args![after, limit], "reading sealed keys")
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, text, bytes, sealed)| SealedKey {
                id,
                bound_to: match (holder, bytes) {
                    (KeyHolder::Stock, bytes) => {
                        key_stock::binding(&text, bytes.as_deref().unwrap_or_default())
                    }
                    (_, Some(der)) => x509::to_pem("CERTIFICATE", &der),
                    (_, None) => text,
                },
                sealed,
            })
            .collect())
    }

    async fn replace_sealed_private_keys(
        &self,
        holder: KeyHolder,
        changes: &[Resealed],
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<u64> {
        let sql = match holder {
            KeyHolder::Certificate => {
                "UPDATE certificates SET sealed_private_key = $2
                 WHERE id = $1 AND sealed_private_key = $3"
            }
            KeyHolder::Pending => {
                "UPDATE pending_certificates SET sealed_private_key = $2
                 WHERE id = $1 AND sealed_private_key = $3"
            }
            KeyHolder::Stock => {
                "UPDATE stocked_keys SET sealed_private_key = $2
                 WHERE id = $1 AND sealed_private_key = $3"
            }
        };
        let mut tx = self.engine.begin().await?;
        let mut changed = 0;
        for change in changes {
            changed += tx
                .execute(
                    sql,
                    args![
                        change.id,
                        Some(change.new.as_slice()),
                        Some(change.old.as_slice())
                    ],
                    "sealing a key again",
                )
                .await?;
        }
        insert::log(&mut tx, log, now).await?;
        tx.commit("committing keys sealed again").await?;
        Ok(changed)
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
        insert::log(&mut tx, log, revocation.at).await?;
        tx.commit("committing a revocation").await?;
        Ok(true)
    }

    async fn log(&self, entry: &LogEntry<'_>, now: i64) -> Result<()> {
        let mut tx = self.engine.begin().await?;
        insert::log(&mut tx, entry, now).await?;
        tx.commit("writing the audit log").await
    }
}
