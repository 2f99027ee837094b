//! Certificate authorities and their roles.

use crate::SqlStore;
use crate::cache::AuthorityName;
use crate::engine::{Arg, args};
use crate::insert;
use crate::query::{Conditions, ids};
use crate::rows::{
    AUTHORITY_COLUMNS, AuthorityRoleRow, AuthorityRow, AuthorityWithRoleRow, CERTIFICATE_COLUMNS,
    CERTIFICATE_FROM, CertificateRow, UserRow,
};
use async_trait::async_trait;
use lemur_core::model::{
    AuthorityDetail, AuthorityKey, AuthorityRecord, CertificateRecord, LogEntry, NewAuthority,
    NewCertificate, Page, RoleRecord, UserRecord,
};
use lemur_core::store::AuthorityRepository;
use lemur_core::{Error, Result};
use std::collections::HashMap;

impl SqlStore {
    /// The roles, CA certificates and creators of `records`, in three queries.
    async fn details(&self, records: Vec<AuthorityRecord>) -> Result<Vec<AuthorityDetail>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let authority_ids: Vec<i64> = records.iter().map(|r| r.id).collect();
        let mut params = Conditions::default();
        let list = params.list(ids(&authority_ids));
        let role_rows: Vec<AuthorityRoleRow> = self
            .engine
            .all(
                &format!(
                    "SELECT ar.authority_id, r.id, r.name, r.description FROM roles r
                     JOIN authority_roles ar ON ar.role_id = r.id
                     WHERE ar.authority_id IN ({list}) ORDER BY r.id"
                ),
                &params.args(),
                "reading authority roles",
            )
            .await?;
        let mut roles: HashMap<i64, Vec<RoleRecord>> = HashMap::new();
        for row in role_rows {
            roles
                .entry(row.authority_id)
                .or_default()
                .push(row.role.into());
        }
        let certificate_ids: Vec<i64> = records
            .iter()
            .filter_map(|r| r.authority_certificate_id)
            .collect();
        let certificates: HashMap<i64, CertificateRecord> = self
            .by_ids::<CertificateRow>(
                &format!("SELECT {CERTIFICATE_COLUMNS} FROM {CERTIFICATE_FROM} WHERE c.id IN"),
                &certificate_ids,
                "reading authority certificates",
            )
            .await?
            .into_iter()
            .map(|row| {
                let certificate = CertificateRecord::from(row);
                (certificate.id, certificate)
            })
            .collect();
        let creator_ids: Vec<i64> = records.iter().filter_map(|r| r.user_id).collect();
        let creators: HashMap<i64, UserRecord> = self
            .by_ids::<UserRow>(
                "SELECT id, username, email, active FROM users WHERE id IN",
                &creator_ids,
                "reading users",
            )
            .await?
            .into_iter()
            .map(|row| (row.id, row.into()))
            .collect();
        Ok(records
            .into_iter()
            .map(|record| AuthorityDetail {
                roles: roles.remove(&record.id).unwrap_or_default(),
                certificate: record
                    .authority_certificate_id
                    .and_then(|id| certificates.get(&id).cloned()),
                creator: record.user_id.and_then(|id| creators.get(&id).cloned()),
                record,
            })
            .collect())
    }

    /// The rows of `select ... IN (<ids>)`; none for no ids.
    async fn by_ids<T: crate::engine::Record>(
        &self,
        select: &str,
        wanted: &[i64],
        context: &'static str,
    ) -> Result<Vec<T>> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut params = Conditions::default();
        let list = params.list(ids(wanted));
        self.engine
            .all(&format!("{select} ({list})"), &params.args(), context)
            .await
    }
}

#[async_trait]
impl AuthorityRepository for SqlStore {
    async fn create_authority(
        &self,
        new: &NewAuthority<'_>,
        certificate: &NewCertificate<'_>,
        log: &LogEntry<'_>,
        now: i64,
    ) -> Result<i64> {
        let permitted = new
            .permitted_domains
            .map(|domains| serde_json::to_string(domains).unwrap_or_else(|_| "[]".to_owned()));
        let mut tx = self.engine.begin().await?;
        let id: Option<(i64,)> = tx
            .optional(
                "INSERT INTO authorities (name, owner, description, plugin_name, key_uri, parent_id, cab_compliant,
                    max_issuance_days, default_validity_days, crl_url, issuer_url, user_id, date_created,
                    permitted_domains)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                args![
                    new.name,
                    new.owner,
                    new.description,
                    new.plugin_name,
                    new.key_uri,
                    new.parent_id,
                    new.cab_compliant,
                    new.max_issuance_days,
                    new.default_validity_days,
                    new.crl_url,
                    new.issuer_url,
                    new.user_id,
                    now,
                    permitted.as_deref(),
                ],
                "storing an authority",
            )
            .await?;
        let (id,) = id.ok_or_else(|| Error::Ca("a new authority was not returned".into()))?;
        let issued_by = NewCertificate {
            authority_id: Some(new.parent_id.unwrap_or(id)),
            ..*certificate
        };
        let mut chains = crate::chains::Chains::unremembered();
        let certificate_id = insert::certificate(&mut tx, &issued_by, now, &mut chains).await?;
        tx.execute(
            "UPDATE authorities SET authority_certificate_id = $1 WHERE id = $2",
            args![certificate_id, id],
            "linking the CA certificate",
        )
        .await?;
        let own = new
            .own_roles
            .iter()
            .map(|(role, description)| (role.as_str(), description.as_str(), false));
        let owner = std::iter::once((new.owner_role.0, new.owner_role.1, true));
        for (role, description, shared) in own.chain(owner) {
            let insert = if shared {
                "INSERT INTO roles (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
            } else {
                "INSERT INTO roles (name, description) VALUES ($1, $2)"
            };
            tx.execute(insert, args![role, description], "creating authority roles")
                .await?;
            tx.execute(
                "INSERT INTO authority_roles (authority_id, role_id) SELECT $1, id FROM roles WHERE name = $2
                 ON CONFLICT DO NOTHING",
                args![id, role],
                "linking authority roles",
            )
            .await?;
        }
        let log = LogEntry {
            certificate_id: Some(certificate_id),
            ..*log
        };
        insert::log(&mut tx, &log, now).await?;
        tx.commit("committing an authority").await?;
        self.caches.authorities.clear();
        self.caches.joined.clear();
        Ok(id)
    }

    async fn authority(&self, id: i64) -> Result<Option<AuthorityRecord>> {
        let row: Option<AuthorityRow> = self
            .engine
            .optional(
                &format!("SELECT {AUTHORITY_COLUMNS} FROM authorities a WHERE a.id = $1"),
                args![id],
                "reading an authority",
            )
            .await?;
        Ok(row.map(Into::into))
    }

    async fn authority_by_name(&self, name: &str) -> Result<Option<AuthorityRecord>> {
        let row: Option<AuthorityRow> = self
            .engine
            .optional(
                &format!("SELECT {AUTHORITY_COLUMNS} FROM authorities a WHERE a.name = $1"),
                args![name],
                "reading an authority",
            )
            .await?;
        Ok(row.map(Into::into))
    }

    async fn authority_with_roles(
        &self,
        key: AuthorityKey<'_>,
    ) -> Result<Option<(AuthorityRecord, Vec<RoleRecord>)>> {
        let name = match key {
            AuthorityKey::Id(id) => AuthorityName::Id(id),
            AuthorityKey::Name(name) => AuthorityName::Name(name.to_owned()),
        };
        let started = match self.caches.authorities.get(&name) {
            Ok(found) => return Ok(Some(found)),
            Err(started) => started,
        };
        let found = self.read_authority_with_roles(key).await?;
        if let Some(found) = &found {
            self.caches.authorities.put(started, name, found.clone());
        }
        Ok(found)
    }

    async fn authorities(&self, page: Page) -> Result<(Vec<AuthorityDetail>, i64)> {
        let rows: Vec<AuthorityRow> = self
            .engine
            .all(
                &format!(
                    "SELECT {AUTHORITY_COLUMNS} FROM authorities a ORDER BY a.id LIMIT $1 OFFSET $2"
                ),
                args![page.count, page.offset()],
                "listing authorities",
            )
            .await?;
        let (total,): (i64,) = self
            .engine
            .optional(
                "SELECT COUNT(*) FROM authorities",
                &[],
                "counting authorities",
            )
            .await?
            .unwrap_or((0,));
        let records = rows.into_iter().map(Into::into).collect();
        Ok((self.details(records).await?, total))
    }

    async fn authority_detail(&self, id: i64) -> Result<Option<AuthorityDetail>> {
        let Some(record) = self.authority(id).await? else {
            return Ok(None);
        };
        Ok(self.details(vec![record]).await?.pop())
    }
}

impl SqlStore {
    /// An authority and its roles, from the database.
    async fn read_authority_with_roles(
        &self,
        key: AuthorityKey<'_>,
    ) -> Result<Option<(AuthorityRecord, Vec<RoleRecord>)>> {
        let (condition, value) = match key {
            AuthorityKey::Id(id) => ("a.id = $1", Arg::Int(id)),
            AuthorityKey::Name(name) => ("a.name = $1", Arg::Text(name)),
        };
        let rows: Vec<AuthorityWithRoleRow> = self
            .engine
            .all(
                &format!(
                    "SELECT {AUTHORITY_COLUMNS}, r.id AS role_id, r.name AS role_name,
                        r.description AS role_description
                     FROM authorities a LEFT JOIN authority_roles ar ON ar.authority_id = a.id
                        LEFT JOIN roles r ON r.id = ar.role_id
                     WHERE {condition} ORDER BY r.id"
                ),
                &[value],
                "reading an authority",
            )
            .await?;
        let mut roles = Vec::with_capacity(rows.len());
        let mut authority = None;
        for row in rows {
            if let (Some(id), Some(name), Some(description)) =
                (row.role_id, row.role_name, row.role_description)
            {
                roles.push(RoleRecord {
                    id,
                    name,
                    description,
                });
            }
            authority.get_or_insert(row.authority);
        }
        Ok(authority.map(|authority| (authority.into(), roles)))
    }
}
