//! Certificate authorities and their roles.

use crate::certificates::{self, flag, insert, insert_log, record as certificate_record};
use crate::query::{Arg, Conditions, ids};
use crate::users::{role, user};
use crate::{SqlStore, db};
use async_trait::async_trait;
use lemur_core::Result;
use lemur_core::model::{
    AuthorityDetail, AuthorityRecord, LogEntry, NewAuthority, NewCertificate, Page, RoleRecord,
};
use lemur_core::store::AuthorityRepository;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;

const COLUMNS: &str = "id, name, owner, description, active, plugin_name, key_uri, parent_id, cab_compliant,
    max_issuance_days, default_validity_days, crl_url, issuer_url, authority_certificate_id, user_id, date_created";

fn record(row: &AnyRow) -> std::result::Result<AuthorityRecord, sqlx::Error> {
    Ok(AuthorityRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        description: row.try_get("description")?,
        active: flag(row, "active")?,
        plugin_name: row.try_get("plugin_name")?,
        key_uri: row.try_get("key_uri")?,
        parent_id: row.try_get("parent_id")?,
        cab_compliant: flag(row, "cab_compliant")?,
        max_issuance_days: row.try_get("max_issuance_days")?,
        default_validity_days: row.try_get("default_validity_days")?,
        crl_url: row.try_get("crl_url")?,
        issuer_url: row.try_get("issuer_url")?,
        authority_certificate_id: row.try_get("authority_certificate_id")?,
        user_id: row.try_get("user_id")?,
        date_created: row.try_get("date_created")?,
    })
}

impl SqlStore {
    /// The roles, CA certificates and creators of `records`, in three queries.
    async fn details(&self, records: Vec<AuthorityRecord>) -> Result<Vec<AuthorityDetail>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let authority_ids: Vec<i64> = records.iter().map(|r| r.id).collect();
        let mut args = Conditions::default();
        let list = args.list(ids(&authority_ids));
        let sql = format!(
            "SELECT ar.authority_id, r.id, r.name, r.description FROM roles r
             JOIN authority_roles ar ON ar.role_id = r.id WHERE ar.authority_id IN ({list}) ORDER BY r.id"
        );
        let mut roles: HashMap<i64, Vec<RoleRecord>> = HashMap::new();
        for row in args
            .bind(sqlx::query(&sql))
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading authority roles"))?
        {
            let authority: i64 = row
                .try_get("authority_id")
                .map_err(db("reading authority roles"))?;
            roles
                .entry(authority)
                .or_default()
                .push(role(&row).map_err(db("reading authority roles"))?);
        }
        let certificate_ids: Vec<i64> = records
            .iter()
            .filter_map(|r| r.authority_certificate_id)
            .collect();
        let mut certificates = HashMap::new();
        if !certificate_ids.is_empty() {
            let mut args = Conditions::default();
            let list = args.list(ids(&certificate_ids));
            let sql = format!(
                "SELECT {} FROM {} WHERE c.id IN ({list})",
                certificates::COLUMNS,
                certificates::FROM
            );
            for row in args
                .bind(sqlx::query(&sql))
                .fetch_all(&self.pool)
                .await
                .map_err(db("reading authority certificates"))?
            {
                let certificate =
                    certificate_record(&row).map_err(db("reading authority certificates"))?;
                certificates.insert(certificate.id, certificate);
            }
        }
        let creator_ids: Vec<i64> = records.iter().filter_map(|r| r.user_id).collect();
        let mut creators = HashMap::new();
        if !creator_ids.is_empty() {
            let mut args = Conditions::default();
            let list = args.list(ids(&creator_ids));
            let sql = format!("SELECT id, username, email, active FROM users WHERE id IN ({list})");
            for row in args
                .bind(sqlx::query(&sql))
                .fetch_all(&self.pool)
                .await
                .map_err(db("reading users"))?
            {
                let creator = user(&row).map_err(db("reading users"))?;
                creators.insert(creator.id, creator);
            }
        }
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

    async fn authority_where(
        &self,
        condition: &str,
        value: Arg,
    ) -> Result<Option<AuthorityRecord>> {
        let mut args = Conditions::default();
        let p = args.param(value);
        let sql = format!("SELECT {COLUMNS} FROM authorities WHERE {condition} = {p}");
        args.bind(sqlx::query(&sql))
            .fetch_optional(&self.pool)
            .await
            .map_err(db("reading an authority"))?
            .map(|row| record(&row))
            .transpose()
            .map_err(db("reading an authority"))
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
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO authorities (name, owner, description, plugin_name, key_uri, parent_id, cab_compliant,
                max_issuance_days, default_validity_days, crl_url, issuer_url, user_id, date_created)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(new.name)
        .bind(new.owner)
        .bind(new.description)
        .bind(new.plugin_name)
        .bind(new.key_uri)
        .bind(new.parent_id)
        .bind(i64::from(new.cab_compliant))
        .bind(new.max_issuance_days)
        .bind(new.default_validity_days)
        .bind(new.crl_url)
        .bind(new.issuer_url)
        .bind(new.user_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("storing an authority"))?;
        let issuer = NewCertificate {
            authority_id: Some(new.parent_id.unwrap_or(id)),
            ..*certificate
        };
        let certificate_id = insert(&mut tx, &issuer, now).await?;
        sqlx::query("UPDATE authorities SET authority_certificate_id = $1 WHERE id = $2")
            .bind(certificate_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db("linking the CA certificate"))?;
        for (role, description) in new.roles {
            sqlx::query("INSERT INTO roles (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(role)
                .bind(description)
                .execute(&mut *tx)
                .await
                .map_err(db("creating authority roles"))?;
            sqlx::query(
                "INSERT INTO authority_roles (authority_id, role_id) SELECT $1, id FROM roles WHERE name = $2
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(role)
            .execute(&mut *tx)
            .await
            .map_err(db("linking authority roles"))?;
        }
        insert_log(
            &mut tx,
            &LogEntry {
                certificate_id: Some(certificate_id),
                ..*log
            },
            now,
        )
        .await?;
        tx.commit().await.map_err(db("committing an authority"))?;
        Ok(id)
    }

    async fn authority(&self, id: i64) -> Result<Option<AuthorityRecord>> {
        self.authority_where("id", Arg::Int(id)).await
    }

    async fn authority_by_name(&self, name: &str) -> Result<Option<AuthorityRecord>> {
        self.authority_where("name", Arg::Text(name.to_owned()))
            .await
    }

    async fn authority_roles(&self, id: i64) -> Result<Vec<RoleRecord>> {
        let rows = sqlx::query(
            "SELECT r.id, r.name, r.description FROM roles r JOIN authority_roles ar ON ar.role_id = r.id
             WHERE ar.authority_id = $1 ORDER BY r.id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading authority roles"))?;
        rows.iter()
            .map(role)
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db("reading authority roles"))
    }

    async fn authorities(&self, page: Page) -> Result<(Vec<AuthorityDetail>, i64)> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM authorities ORDER BY id LIMIT $1 OFFSET $2"
        ))
        .bind(page.count)
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing authorities"))?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM authorities")
            .fetch_one(&self.pool)
            .await
            .map_err(db("counting authorities"))?;
        let records = rows
            .iter()
            .map(record)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(db("reading authorities"))?;
        Ok((self.details(records).await?, total))
    }

    async fn authority_detail(&self, id: i64) -> Result<Option<AuthorityDetail>> {
        let Some(record) = self.authority(id).await? else {
            return Ok(None);
        };
        Ok(self.details(vec![record]).await?.pop())
    }
}
