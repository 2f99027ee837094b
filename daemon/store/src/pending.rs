//! Pending certificates: orders an authority answers later, and their delivery.

use crate::SqlStore;
use crate::chains::Chains;
use crate::engine::{Tx, args};
use crate::insert;
use crate::query::{Conditions, Param, contains};
use crate::rows::{PENDING_COLUMNS, PENDING_FROM, PendingRow};
use async_trait::async_trait;
use lemur_core::model::{
    CertificateFilter, LogEntry, NewCertificate, NewPending, PendingChanges, PendingListQuery,
    PendingRecord, SortKey, Visibility,
};
use lemur_core::store::PendingRepository;
use lemur_core::{Error, Result};

/// The order a user's idempotency key placed, and its request's fingerprint.
const BY_IDEMPOTENCY_KEY: &str = "SELECT id, idempotency_fingerprint FROM pending_certificates
    WHERE user_id = $1 AND idempotency_key = $2";

/// One pending certificate by id.
fn by_id() -> String {
    format!("SELECT {PENDING_COLUMNS} FROM {PENDING_FROM} WHERE p.id = $1")
}

/// The pending certificate `id`, in the caller's transaction.
async fn read(tx: &mut Tx<'_>, id: i64) -> Result<Option<PendingRecord>> {
    let row: Option<PendingRow> = tx
        .optional(&by_id(), args![id], "reading a pending certificate")
        .await?;
    Ok(row.map(Into::into))
}

/// The pending certificate an earlier request of the same user with `new`'s key placed, when
/// that request was the same; a reused key otherwise.
async fn earlier(tx: &mut Tx<'_>, new: &NewPending<'_>) -> Result<Option<PendingRecord>> {
    let (Some(key), Some(user_id)) = (new.idempotency, new.user_id) else {
        return Ok(None);
    };
    let found: Option<(i64, Option<String>)> = tx
        .optional(
            BY_IDEMPOTENCY_KEY,
            args![user_id, key.key.as_str()],
            "looking up an idempotency key",
        )
        .await?;
    match key.replayed(found)? {
        Some(id) => read(tx, id).await,
        None => Ok(None),
    }
}

#[async_trait]
impl PendingRepository for SqlStore {
    async fn create_pending(
        &self,
        new: &NewPending<'_>,
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<PendingRecord> {
        let dns_names = new.dns_names.join("\n");
        let replaces = new
            .replaces
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut tx = self.engine.begin().await?;
        // A retry racing the first attempt waits on the unique index, then finds its order.
        let id: Option<(i64,)> = tx
            .optional(
                "INSERT INTO pending_certificates (name, external_id, owner, description, notify,
                    rotation, cn, csr, key_type, dns_names, sealed_private_key, authority_id,
                    user_id, replaces, rotation_policy_id, idempotency_key,
                    idempotency_fingerprint, last_updated, date_created)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                    $17, $18, $18)
                 ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL
                 DO NOTHING RETURNING id",
                args![
                    new.name,
                    new.external_id,
                    new.owner,
                    new.description,
                    new.notify,
                    new.rotation,
                    new.common_name,
                    new.csr,
                    new.key_type,
                    dns_names.as_str(),
                    new.sealed_private_key,
                    new.authority_id,
                    new.user_id,
                    replaces.as_str(),
                    new.rotation_policy_id,
                    new.idempotency.map(|key| key.key.as_str()),
                    new.idempotency.map(|key| key.fingerprint.as_str()),
                    now,
                ],
                "storing a pending certificate",
            )
            .await?;
        let Some((id,)) = id else {
            return earlier(&mut tx, new).await?.ok_or_else(|| {
                Error::Conflict("the pending certificate could not be stored".into())
            });
        };
        insert::log(&mut tx, log, now).await?;
        let stored = read(&mut tx, id).await?;
        tx.commit("committing a pending certificate").await?;
        stored.ok_or_else(|| Error::Database {
            context: "reading a stored pending certificate",
            source: format!("pending certificate {id} was not read back").into(),
        })
    }

    async fn pending(&self, id: i64) -> Result<Option<PendingRecord>> {
        let row: Option<PendingRow> = self
            .engine
            .optional(&by_id(), args![id], "reading a pending certificate")
            .await?;
        Ok(row.map(Into::into))
    }

    async fn idempotent_pending(
        &self,
        user_id: i64,
        key: &str,
    ) -> Result<Option<(i64, Option<String>)>> {
        self.engine
            .optional(
                BY_IDEMPOTENCY_KEY,
                args![user_id, key],
                "looking up an idempotency key",
            )
            .await
    }

    async fn pendings(
        &self,
        visible: &Visibility,
        query: &PendingListQuery,
    ) -> Result<(Vec<PendingRecord>, i64)> {
        let mut conditions = Conditions::default();
        match &query.filter {
            CertificateFilter::Cn(value) => {
                let pattern = conditions.param(contains(value));
                conditions.and(&format!("lower(p.cn) LIKE {pattern} ESCAPE '\\'"));
            }
            CertificateFilter::Name(value) => {
                let pattern = conditions.param(contains(value));
                conditions.and(&format!("lower(p.name) LIKE {pattern} ESCAPE '\\'"));
            }
            CertificateFilter::Owner(value) => {
                let owner = conditions.param(Param::Text(value.clone()));
                conditions.and(&format!("p.owner = {owner}"));
            }
            CertificateFilter::Authority(id) => {
                let authority = conditions.param(Param::Int(*id));
                conditions.and(&format!("p.authority_id = {authority}"));
            }
            // The domain refuses the others for orders.
            CertificateFilter::All | CertificateFilter::San(_) | CertificateFilter::Serial(_) => {}
        }
        if let Visibility::Owned { owners, user_id } = visible {
            let list = conditions.list(owners.iter().cloned().map(Param::Text));
            let user = conditions.param(Param::Int(*user_id));
            conditions.and(&format!(
                "(p.owner IN ({list}) OR p.user_id = {user} OR p.authority_id IN (
                    SELECT ar.authority_id FROM authority_roles ar JOIN roles r ON r.id = ar.role_id
                    WHERE r.name IN ({list})))"
            ));
        }
        let (total,): (i64,) = self
            .engine
            .optional(
                &format!(
                    "SELECT COUNT(*) FROM pending_certificates p WHERE p.resolved = FALSE{}",
                    conditions.sql()
                ),
                &conditions.args(),
                "counting pending certificates",
            )
            .await?
            .unwrap_or((0,));
        let column = match query.sort {
            SortKey::Cn => "p.cn",
            SortKey::Name => "p.name",
            SortKey::Owner => "p.owner",
            SortKey::Id | SortKey::NotAfter => "p.id",
        };
        let direction = if query.descending { "DESC" } else { "ASC" };
        let limit = conditions.param(Param::Int(query.page.count));
        let offset = conditions.param(Param::Int(query.page.offset()));
        let rows: Vec<PendingRow> = self
            .engine
            .all(
                &format!(
                    "SELECT {PENDING_COLUMNS} FROM {PENDING_FROM} WHERE p.resolved = FALSE{}
                     ORDER BY {column} {direction}, p.id {direction} LIMIT {limit} OFFSET {offset}",
                    conditions.sql()
                ),
                &conditions.args(),
                "listing pending certificates",
            )
            .await?;
        Ok((rows.into_iter().map(Into::into).collect(), total))
    }

    async fn update_pending(
        &self,
        id: i64,
        changes: &PendingChanges,
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<Option<PendingRecord>> {
        let mut tx = self.engine.begin().await?;
        let changed = tx
            .execute(
                "UPDATE pending_certificates
                 SET owner = $2, description = $3, notify = $4, rotation = $5, last_updated = $6
                 WHERE id = $1 AND resolved = FALSE",
                args![
                    id,
                    changes.owner.as_str(),
                    changes.description.as_str(),
                    changes.notify,
                    changes.rotation,
                    now
                ],
                "changing a pending certificate",
            )
            .await?;
        if changed == 0 {
            return Ok(None);
        }
        insert::log(&mut tx, log, now).await?;
        let changed = read(&mut tx, id).await?;
        tx.commit("committing a pending certificate").await?;
        Ok(changed)
    }

    async fn delete_pending(&self, id: i64, log: &LogEntry<'_>, now: i64) -> Result<bool> {
        let mut tx = self.engine.begin().await?;
        let deleted = tx
            .execute(
                "DELETE FROM pending_certificates WHERE id = $1 AND resolved = FALSE",
                args![id],
                "deleting a pending certificate",
            )
            .await?;
        if deleted == 0 {
            return Ok(false);
        }
        insert::log(&mut tx, log, now).await?;
        tx.commit("committing a cancellation").await?;
        Ok(true)
    }

    async fn pending_private_key(&self, id: i64) -> Result<Option<Option<Vec<u8>>>> {
        let row: Option<(Option<Vec<u8>>,)> = self
            .engine
            .optional(
                "SELECT sealed_private_key FROM pending_certificates WHERE id = $1",
                args![id],
                "reading a sealed key",
            )
            .await?;
        Ok(row.map(|(sealed,)| sealed))
    }

    async fn resolve_pending(
        &self,
        id: i64,
        as_read: &PendingChanges,
        certificate: &NewCertificate<'_>,
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<Option<i64>> {
        let mut tx = self.engine.begin().await?;
        // Taken first, so a second delivery racing this one waits here and then finds it
        // resolved; the key's only copy moves to the certificate.
        let taken = tx
            .execute(
                "UPDATE pending_certificates
                 SET resolved = TRUE, sealed_private_key = NULL, last_updated = $2
                 WHERE id = $1 AND resolved = FALSE
                    AND owner = $3 AND description = $4 AND notify = $5 AND rotation = $6",
                args![
                    id,
                    now,
                    as_read.owner.as_str(),
                    as_read.description.as_str(),
                    as_read.notify,
                    as_read.rotation
                ],
                "resolving a pending certificate",
            )
            .await?;
        if taken == 0 {
            return Ok(None);
        }
        let mut chains = Chains::unremembered();
        let certificate_id = insert::certificate(&mut tx, certificate, now, &mut chains).await?;
        tx.execute(
            "UPDATE pending_certificates SET resolved_cert_id = $2 WHERE id = $1",
            args![id, certificate_id],
            "linking a delivered certificate",
        )
        .await?;
        let log = LogEntry {
            certificate_id: Some(certificate_id),
            ..*log
        };
        insert::log(&mut tx, &log, now).await?;
        tx.commit("committing a delivered certificate").await?;
        Ok(Some(certificate_id))
    }
}
