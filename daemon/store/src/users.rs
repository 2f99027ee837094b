//! Users, roles and who holds which role.

use crate::{SqlStore, db};
use async_trait::async_trait;
use lemur_core::Result;
use lemur_core::model::{NewUser, RoleRecord, UserRecord, UserSession};
use lemur_core::store::UserRepository;
use sqlx::Row;
use sqlx::any::AnyRow;

pub(crate) fn user(row: &AnyRow) -> std::result::Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        active: row.try_get::<i64, _>("active")? != 0,
    })
}

pub(crate) fn role(row: &AnyRow) -> std::result::Result<RoleRecord, sqlx::Error> {
    Ok(RoleRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
    })
}

#[async_trait]
impl UserRepository for SqlStore {
    async fn create_user(&self, new: &NewUser<'_>, now: i64) -> Result<UserRecord> {
        let mut tx = self.begin_write().await?;
        // A login is a username or an email, so neither may be taken as either.
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM users WHERE username IN ($1, $2) OR email IN ($1, $2)",
        )
        .bind(new.username)
        .bind(new.email)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("looking up a user"))?;
        if taken.is_some() {
            return Err(lemur_core::Error::Conflict(format!(
                "a user named {:?} or with email {:?} exists",
                new.username, new.email
            )));
        }
        let row = sqlx::query(
            "INSERT INTO users (username, email, password_hash, active, created_at) VALUES ($1, $2, $3, $4, $5)
             RETURNING id, username, email, active",
        )
        .bind(new.username)
        .bind(new.email)
        .bind(new.password_hash)
        .bind(i64::from(new.active))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db("creating a user"))?;
        let created = user(&row).map_err(db("reading a new user"))?;
        for role_id in new.role_ids {
            sqlx::query(
                "INSERT INTO roles_users (role_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(role_id)
            .bind(created.id)
            .execute(&mut *tx)
            .await
            .map_err(db("granting a role"))?;
        }
        tx.commit().await.map_err(db("committing a user"))?;
        Ok(created)
    }

    async fn user_by_login(&self, login: &str) -> Result<Option<(UserRecord, Option<String>)>> {
        let row = sqlx::query(
            "SELECT id, username, email, active, password_hash FROM users WHERE username = $1 OR email = $1",
        )
        .bind(login)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("looking up a user"))?;
        row.map(|row| Ok((user(&row)?, row.try_get("password_hash")?)))
            .transpose()
            .map_err(db("reading a user"))
    }

    async fn set_password(&self, user_id: i64, password_hash: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1, tokens_valid_after = $3 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(db("setting a password"))?;
        Ok(())
    }

    async fn ensure_role(&self, name: &str, description: &str) -> Result<RoleRecord> {
        sqlx::query(
            "INSERT INTO roles (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(description)
        .execute(&self.writer)
        .await
        .map_err(db("creating a role"))?;
        self.role_by_name(name).await?.ok_or_else(|| {
            lemur_core::Error::Ca(format!("role {name:?} vanished after it was created"))
        })
    }

    async fn role_by_name(&self, name: &str) -> Result<Option<RoleRecord>> {
        sqlx::query("SELECT id, name, description FROM roles WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.writer)
            .await
            .map_err(db("looking up a role"))?
            .map(|row| role(&row))
            .transpose()
            .map_err(db("reading a role"))
    }

    async fn grant_role(&self, user_id: i64, role_id: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO roles_users (role_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(role_id)
        .bind(user_id)
        .execute(&self.writer)
        .await
        .map_err(db("granting a role"))?;
        Ok(())
    }

    async fn user_session(&self, id: i64) -> Result<Option<UserSession>> {
        let rows = sqlx::query(
            "SELECT u.id, u.username, u.email, u.active, u.tokens_valid_after, r.id AS role_id, r.name AS role_name,
                    r.description AS role_description
             FROM users u LEFT JOIN roles_users ru ON ru.user_id = u.id LEFT JOIN roles r ON r.id = ru.role_id
             WHERE u.id = $1 ORDER BY r.id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading a user"))?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let decode = || -> std::result::Result<_, sqlx::Error> {
            let mut roles = Vec::new();
            for row in &rows {
                if let Some(role_id) = row.try_get::<Option<i64>, _>("role_id")? {
                    roles.push(RoleRecord {
                        id: role_id,
                        name: row.try_get("role_name")?,
                        description: row.try_get("role_description")?,
                    });
                }
            }
            Ok(UserSession {
                user: user(first)?,
                roles,
                tokens_valid_after: first.try_get("tokens_valid_after")?,
            })
        };
        decode().map(Some).map_err(db("reading a user"))
    }
}
