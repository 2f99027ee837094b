//! Users, roles and who holds which role.

use crate::SqlStore;
use crate::engine::args;
use crate::rows::{LoginRow, RoleRow, SessionRow, UserRow};
use async_trait::async_trait;
use lemur_core::model::{LoginRecord, NewUser, RoleRecord, UserRecord, UserSession};
use lemur_core::store::UserRepository;
use lemur_core::{Error, Result};

#[async_trait]
impl UserRepository for SqlStore {
    async fn create_user(&self, new: &NewUser<'_>, now: i64) -> Result<UserRecord> {
        let mut tx = self.engine.begin().await?;
        // A login is a username or an email, so neither may be taken as either.
        let taken: Option<(i64,)> = tx
            .optional(
                "SELECT id FROM users WHERE username IN ($1, $2) OR email IN ($1, $2)",
                args![new.username, new.email],
                "looking up a user",
            )
            .await?;
        if taken.is_some() {
            return Err(Error::Conflict(format!(
                "a user named {:?} or with email {:?} exists",
                new.username, new.email
            )));
        }
        let created: Option<UserRow> = tx
            .optional(
                "INSERT INTO users (username, email, password_hash, active, created_at) VALUES ($1, $2, $3, $4, $5)
                 RETURNING id, username, email, active",
                args![new.username, new.email, new.password_hash, new.active, now],
                "creating a user",
            )
            .await?;
        let created = created.ok_or_else(|| Error::Ca("a new user was not returned".into()))?;
        for &role_id in new.role_ids {
            tx.execute(
                "INSERT INTO roles_users (role_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                args![role_id, created.id],
                "granting a role",
            )
            .await?;
        }
        tx.commit("committing a user").await?;
        Ok(created.into())
    }

    async fn user_by_login(&self, login: &str) -> Result<Option<LoginRecord>> {
        let row: Option<LoginRow> = self
            .engine
            .optional(
                "SELECT id, username, email, active, password_hash, token_generation FROM users
                 WHERE username = $1 OR email = $1",
                args![login],
                "looking up a user",
            )
            .await?;
        Ok(row.map(|row| LoginRecord {
            user: row.user.into(),
            password_hash: row.password_hash,
            token_generation: row.token_generation,
        }))
    }

    async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<()> {
        self.engine
            .execute(
                "UPDATE users SET password_hash = $1, token_generation = token_generation + 1 WHERE id = $2",
                args![password_hash, user_id],
                "setting a password",
            )
            .await?;
        self.caches.sessions.clear();
        Ok(())
    }

    async fn revoke_token(&self, jti: &str, user_id: i64, expires_at: i64, now: i64) -> Result<()> {
        let mut tx = self.engine.begin().await?;
        tx.execute(
            "DELETE FROM revoked_tokens WHERE expires_at < $1",
            args![now],
            "forgetting expired tokens",
        )
        .await?;
        tx.execute(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (jti) DO NOTHING",
            args![jti, user_id, expires_at],
            "logging a token out",
        )
        .await?;
        tx.commit("logging a token out").await?;
        self.caches.sessions.clear();
        Ok(())
    }

    async fn ensure_role(&self, name: &str, description: &str) -> Result<RoleRecord> {
        self.engine
            .execute(
                "INSERT INTO roles (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                args![name, description],
                "creating a role",
            )
            .await?;
        self.role_by_name(name)
            .await?
            .ok_or_else(|| Error::Ca(format!("role {name:?} vanished after it was created")))
    }

    async fn role_by_name(&self, name: &str) -> Result<Option<RoleRecord>> {
        let row: Option<RoleRow> = self
            .engine
            .optional(
                "SELECT id, name, description FROM roles WHERE name = $1",
                args![name],
                "looking up a role",
            )
            .await?;
        Ok(row.map(Into::into))
    }

    async fn create_role(
        &self,
        name: &str,
        description: &str,
        user_ids: &[i64],
    ) -> Result<RoleRecord> {
        let mut tx = self.engine.begin().await?;
        let role: Option<RoleRow> = tx
            .optional(
                "INSERT INTO roles (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
                 RETURNING id, name, description",
                args![name, description],
                "creating a role",
            )
            .await?;
        let role = role.ok_or_else(|| Error::Conflict(format!("role {name:?} exists")))?;
        for &user_id in user_ids {
            tx.execute(
                "INSERT INTO roles_users (role_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                args![role.id, user_id],
                "granting a role",
            )
            .await?;
        }
        tx.commit("committing a role").await?;
        self.caches.sessions.clear();
        self.caches.authorities.clear();
        Ok(role.into())
    }

    async fn user_session(&self, id: i64, jti: &str) -> Result<Option<UserSession>> {
        let key = (id, jti.to_owned());
        let started = match self.caches.sessions.get(&key) {
            Ok(session) => return Ok(Some(session)),
            Err(started) => started,
        };
        let session = self.read_session(id, jti).await?;
        if let Some(session) = &session {
            self.caches.sessions.put(started, key, session.clone());
        }
        Ok(session)
    }
}

impl SqlStore {
    /// A user's session, from the database.
    async fn read_session(&self, id: i64, jti: &str) -> Result<Option<UserSession>> {
        let rows: Vec<SessionRow> = self
            .engine
            .all(
                "SELECT u.id, u.username, u.email, u.active, u.token_generation,
                        EXISTS (SELECT 1 FROM revoked_tokens t WHERE t.jti = $2) AS token_revoked,
                        r.id AS role_id, r.name AS role_name, r.description AS role_description
                 FROM users u LEFT JOIN roles_users ru ON ru.user_id = u.id LEFT JOIN roles r ON r.id = ru.role_id
                 WHERE u.id = $1 ORDER BY r.id",
                args![id, jti],
                "reading a user",
            )
            .await?;
        let mut rows = rows.into_iter();
        let Some(first) = rows.next() else {
            return Ok(None);
        };
        let mut roles = Vec::new();
        let (token_generation, token_revoked) = (first.token_generation, first.token_revoked);
        let mut add = |row: &SessionRow| {
            if let (Some(id), Some(name), Some(description)) =
                (row.role_id, &row.role_name, &row.role_description)
            {
                roles.push(RoleRecord {
                    id,
                    name: name.clone(),
                    description: description.clone(),
                });
            }
        };
        add(&first);
        rows.for_each(|row| add(&row));
        Ok(Some(UserSession {
            user: first.user.into(),
            roles,
            token_generation,
            token_revoked,
        }))
    }
}
