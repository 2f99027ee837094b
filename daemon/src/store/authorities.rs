//! Certificate authorities and their roles.

use super::certificates::{LogEntry, NewCertificate, flag, insert, insert_log};
use super::{RoleRecord, Store};
use crate::error::{Error, Result};
use sqlx::Row;
use sqlx::any::AnyRow;

/// An authority to create, with its CA certificate.
pub struct NewAuthority<'a> {
    /// Unique name.
    pub name: &'a str,
    /// Owner.
    pub owner: &'a str,
    /// Description.
    pub description: &'a str,
    /// Issuer plugin slug.
    pub plugin_name: &'a str,
    /// The CA key in the HSM.
    pub key_uri: &'a str,
    /// The parent authority of a sub-CA.
    pub parent_id: Option<i64>,
    /// Apply CA/Browser Forum rules.
    pub cab_compliant: bool,
    /// Longest validity it issues, in days.
    pub max_issuance_days: Option<i64>,
    /// Default validity, in days.
    pub default_validity_days: i64,
    /// CRL distribution point it writes into certificates.
    pub crl_url: Option<&'a str>,
    /// caIssuers URL it writes into certificates.
    pub issuer_url: Option<&'a str>,
    /// Creator.
    pub user_id: Option<i64>,
}

/// A stored authority.
#[derive(Debug, Clone)]
pub struct AuthorityRecord {
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
    /// Issuer plugin slug.
    pub plugin_name: String,
    /// The CA key in the HSM.
    pub key_uri: Option<String>,
    /// Parent authority.
    pub parent_id: Option<i64>,
    /// Apply CA/Browser Forum rules.
    pub cab_compliant: bool,
    /// Longest validity it issues, in days.
    pub max_issuance_days: Option<i64>,
    /// Default validity, in days.
    pub default_validity_days: i64,
    /// CRL URL.
    pub crl_url: Option<String>,
    /// caIssuers URL.
    pub issuer_url: Option<String>,
    /// The CA's own certificate.
    pub authority_certificate_id: Option<i64>,
    /// Creator.
    pub user_id: Option<i64>,
    /// Created.
    pub date_created: i64,
}

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

impl Store {
    /// Stores an authority, its CA certificate, its `<name>_admin` and `<name>_operator` roles and
    /// the owner's role, and the audit row, in one transaction.
    pub async fn create_authority(
        &self,
        new: &NewAuthority<'_>,
        certificate: &NewCertificate<'_>,
        log: &LogEntry<'_>,
    ) -> Result<i64> {
        let now = self.clock.unix();
        let mut tx = self.begin_write().await?;
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM authorities WHERE name = $1")
            .bind(new.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(Error::database("checking authority names"))?;
        if taken.is_some() {
            return Err(Error::invalid(
                "name",
                format!("an authority named {:?} exists", new.name),
            ));
        }
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
        .map_err(Error::database("storing an authority"))?;
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
            .map_err(Error::database("linking the CA certificate"))?;
        for (role, description) in [
            (
                format!("{}_admin", new.name),
                format!("Administers authority {}", new.name),
            ),
            (
                format!("{}_operator", new.name),
                format!("Issues from authority {}", new.name),
            ),
            (
                new.owner.to_owned(),
                format!("Owner role for {}", new.owner),
            ),
        ] {
            sqlx::query("INSERT INTO roles (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(&role)
                .bind(&description)
                .execute(&mut *tx)
                .await
                .map_err(Error::database("creating authority roles"))?;
            sqlx::query(
                "INSERT INTO authority_roles (authority_id, role_id) SELECT $1, id FROM roles WHERE name = $2
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(&role)
            .execute(&mut *tx)
            .await
            .map_err(Error::database("linking authority roles"))?;
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
        tx.commit()
            .await
            .map_err(Error::database("committing an authority"))?;
        Ok(id)
    }

    /// The authority with this id.
    pub async fn authority(&self, id: i64) -> Result<AuthorityRecord> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM authorities WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::database("reading an authority"))?
            .ok_or_else(|| Error::NotFound {
                what: "authority",
                id: id.to_string(),
            })?;
        record(&row).map_err(Error::database("reading an authority"))
    }

    /// The authority with this name.
    pub async fn authority_by_name(&self, name: &str) -> Result<AuthorityRecord> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM authorities WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::database("reading an authority"))?
        .ok_or_else(|| Error::invalid("authority", format!("no authority named {name:?}")))?;
        record(&row).map_err(Error::database("reading an authority"))
    }

    /// A page of authorities, oldest first, with the total.
    pub async fn authorities(&self, page: i64, count: i64) -> Result<(Vec<AuthorityRecord>, i64)> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM authorities ORDER BY id LIMIT $1 OFFSET $2"
        ))
        .bind(count)
        .bind((page - 1) * count)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::database("listing authorities"))?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM authorities")
            .fetch_one(&self.pool)
            .await
            .map_err(Error::database("counting authorities"))?;
        let records = rows
            .iter()
            .map(record)
            .collect::<std::result::Result<_, _>>()
            .map_err(Error::database("reading authorities"))?;
        Ok((records, total))
    }

    /// The roles attached to an authority.
    pub async fn authority_roles(&self, id: i64) -> Result<Vec<RoleRecord>> {
        let rows = sqlx::query(
            "SELECT r.id, r.name, r.description FROM roles r JOIN authority_roles ar ON ar.role_id = r.id
             WHERE ar.authority_id = $1 ORDER BY r.id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::database("reading authority roles"))?;
        rows.iter()
            .map(|row| {
                Ok(RoleRecord {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(Error::database("reading authority roles"))
    }
}
