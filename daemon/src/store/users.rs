//! Users, roles and who holds which role.

use super::Store;
use crate::error::{Error, Result};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A user as the API shows it (never with its password hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserRecord {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// May log in.
    pub active: bool,
}

/// What authenticating a request needs to know of its user.
pub struct UserSession {
    /// The user.
    pub user: UserRecord,
    /// Their roles.
    pub roles: Vec<RoleRecord>,
    /// Tokens issued before this time (Unix seconds) are refused: the last password reset.
    pub tokens_valid_after: i64,
}

/// A role.
#[derive(Debug, Clone, Serialize)]
pub struct RoleRecord {
    /// Id.
    pub id: i64,
    /// Unique name (`admin`, an owner's email, `<authority>_admin`...).
    pub name: String,
    /// What it is for.
    pub description: String,
}

fn user(row: &AnyRow) -> std::result::Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        active: row.try_get::<i64, _>("active")? != 0,
    })
}

fn role(row: &AnyRow) -> std::result::Result<RoleRecord, sqlx::Error> {
    Ok(RoleRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
    })
}

impl Store {
    /// Creates a user; a taken username or email is a conflict.
    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        password_hash: &str,
        active: bool,
    ) -> Result<UserRecord> {
        if self.user_by_login(username).await?.is_some()
            || self.user_by_login(email).await?.is_some()
        {
            return Err(Error::Conflict(format!(
                "a user named {username:?} or with email {email:?} exists"
            )));
        }
        let row = sqlx::query(
            "INSERT INTO users (username, email, password_hash, active, created_at) VALUES ($1, $2, $3, $4, $5)
             RETURNING id, username, email, active",
        )
        .bind(username)
        .bind(email)
        .bind(password_hash)
        .bind(i64::from(active))
        .bind(self.clock.unix())
        .fetch_one(&self.writer)
        .await
        .map_err(Error::database("creating a user"))?;
        user(&row).map_err(Error::database("reading a new user"))
    }

    /// The user with this username or email, and their password hash.
    pub async fn user_by_login(&self, login: &str) -> Result<Option<(UserRecord, Option<String>)>> {
        let row = sqlx::query(
            "SELECT id, username, email, active, password_hash FROM users WHERE username = $1 OR email = $1",
        )
        .bind(login)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::database("looking up a user"))?;
        row.map(|row| Ok((user(&row)?, row.try_get("password_hash")?)))
            .transpose()
            .map_err(Error::database("reading a user"))
    }

    /// The user with this id.
    pub async fn user(&self, id: i64) -> Result<UserRecord> {
        let row = sqlx::query("SELECT id, username, email, active FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::database("reading a user"))?
            .ok_or_else(|| Error::NotFound {
                what: "user",
                id: id.to_string(),
            })?;
        user(&row).map_err(Error::database("reading a user"))
    }

    /// Replaces a user's password hash and revokes the tokens issued until now.
    pub async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1, tokens_valid_after = $3 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .bind(self.clock.unix())
            .execute(&self.writer)
            .await
            .map_err(Error::database("setting a password"))?;
        Ok(())
    }

    /// The role with this name, created if missing (safe when several daemons start at once).
    pub async fn ensure_role(&self, name: &str, description: &str) -> Result<RoleRecord> {
        sqlx::query(
            "INSERT INTO roles (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(description)
        .execute(&self.writer)
        .await
        .map_err(Error::database("creating a role"))?;
        self.role_by_name(name)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "role",
                id: name.to_owned(),
            })
    }

    /// The role with this name.
    pub async fn role_by_name(&self, name: &str) -> Result<Option<RoleRecord>> {
        sqlx::query("SELECT id, name, description FROM roles WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::database("looking up a role"))?
            .map(|row| role(&row))
            .transpose()
            .map_err(Error::database("reading a role"))
    }

    /// Gives `user_id` the role `role_id` (no-op if held).
    pub async fn grant_role(&self, user_id: i64, role_id: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO roles_users (role_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(role_id)
        .bind(user_id)
        .execute(&self.writer)
        .await
        .map_err(Error::database("granting a role"))?;
        Ok(())
    }

    /// The user with this id, their roles and token cut-off, in one round trip (every
    /// authenticated request).
    pub async fn user_session(&self, id: i64) -> Result<UserSession> {
        let rows = sqlx::query(
            "SELECT u.id, u.username, u.email, u.active, u.tokens_valid_after, r.id AS role_id, r.name AS role_name,
                    r.description AS role_description
             FROM users u LEFT JOIN roles_users ru ON ru.user_id = u.id LEFT JOIN roles r ON r.id = ru.role_id
             WHERE u.id = $1 ORDER BY r.id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::database("reading a user"))?;
        let first = rows.first().ok_or_else(|| Error::NotFound {
            what: "user",
            id: id.to_string(),
        })?;
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
        decode().map_err(Error::database("reading a user"))
    }
}
