//! Users and sessions: logging in, turning a token into a [`Subject`], and the operator
//! commands that manage users and roles (as a [`Subject::System`] job, through the same policy).

use crate::App;
use crate::app::DEFAULT_ADMIN;
use crate::auth::password;
use crate::error::{Error, Result};
use crate::model::{LogEntry, NewUser, RoleRecord, UserRecord};
use crate::policy::{Action, Subject, authorize};
use lemur_api::Login;
use zeroize::Zeroizing;

/// Username (or email) and password in, a token out. The same message for every failure, and
/// the same time: an unknown user is checked against a decoy hash. Failures are throttled by
/// account name and client address, and each is audited (without the password).
pub async fn login(app: &App, body: Login, source: &str) -> Result<String> {
    let now = app.clock.unix();
    app.login_throttle.check(&body.username, source, now)?;
    let _place = app.login_queue.enter()?;
    let found = app.store.user_by_login(&body.username).await?;
    // Counted by the user's name, so typing the email instead gets no fresh allowance.
    let account = found
        .as_ref()
        .map_or(body.username.as_str(), |record| {
            record.user.username.as_str()
        })
        .to_owned();
    app.login_throttle.check(&account, source, now)?;
    let _checking = app.login_throttle.begin(&account)?;
    let (user, hash) = match found {
        Some(record) => {
            let hash = record
                .password_hash
                .clone()
                .unwrap_or_else(|| password::decoy_hash().to_owned());
            (Some(record), hash)
        }
        None => (None, password::decoy_hash().to_owned()),
    };
    let secret = body.password.clone();
    let _permit = app
        .password_checks
        .acquire()
        .await
        .map_err(|_| Error::Unauthorized("the daemon is shutting down".into()))?;
    let matches = tokio::task::spawn_blocking(move || password::verify(&secret, &hash))
        .await
        .unwrap_or(false);
    match user {
        Some(record) if matches && record.user.active => {
            app.login_throttle.succeeded(&account);
            app.tokens.issue(record.user.id, record.token_generation)
        }
        user => {
            app.login_throttle
                .failed(&body.username, source, app.clock.unix());
            let details = format!("failed login as {:?}", truncated(&body.username));
            let entry = LogEntry {
                certificate_id: None,
                log_type: "login_failed",
                user_id: user.map(|record| record.user.id),
                source_address: Some(source),
                details: &details,
            };
            app.store.log(&entry, app.clock.unix()).await?;
            Err(Error::Unauthorized("invalid username or password".into()))
        }
    }
}

/// At most 64 characters of what a client typed, for the audit log.
fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

/// The subject a bearer token stands for, asking from `source`.
pub async fn authenticate(app: &App, token: &str, source: String) -> Result<Subject> {
    let claims = app.tokens.verify(token)?;
    // A user gone since the token was issued is an invalid token; a database failure stays a
    // database failure (503), not a reason to log everyone out.
    let session = app
        .store
        .user_session(claims.sub, &claims.jti)
        .await?
        .ok_or_else(|| Error::Unauthorized("invalid token".into()))?;
    if !session.user.active {
        return Err(Error::Unauthorized("this user is deactivated".into()));
    }
    if claims.generation != session.token_generation {
        return Err(Error::Unauthorized(
            "this token was issued before the password was reset; log in again".into(),
        ));
    }
    if session.token_revoked {
        return Err(Error::Unauthorized(
            "this token was logged out; log in again".into(),
        ));
    }
    Ok(Subject::user(
        session.user,
        session.roles,
        source,
        Some((claims.jti, claims.exp)),
    ))
}

/// Logs out the token the subject presented: it is refused from now on.
pub async fn logout(app: &App, subject: &Subject) -> Result<()> {
    let Subject::User(user) = subject else {
        return Err(Error::Unauthorized("only users log out".into()));
    };
    let Some((jti, expires_at)) = &user.token else {
        return Err(Error::Unauthorized("no token to log out".into()));
    };
    app.store
        .revoke_token(jti, user.user.id, *expires_at, app.clock.unix())
        .await
}

/// Creates the admin user `lemur` with `password`, unless it exists; whether it was created.
pub async fn ensure_admin(
    app: &App,
    password: impl FnOnce() -> Result<zeroize::Zeroizing<String>>,
) -> Result<bool> {
    app.ensure_builtin_roles().await?;
    if app.store.user_by_login(DEFAULT_ADMIN).await?.is_some() {
        return Ok(false);
    }
    let admin = app
        .store
        .role_by_name("admin")
        .await?
        .ok_or_else(|| Error::Ca("the admin role is missing".into()))?;
    let hash = password::hash(&password()?)?;
    let email = app.config.defaults.security_team_email.clone();
    app.store
        .create_user(
            &NewUser {
                username: DEFAULT_ADMIN,
                email: &email,
                password_hash: &hash,
                active: true,
                role_ids: &[admin.id],
            },
            app.clock.unix(),
        )
        .await?;
    Ok(true)
}

/// The roles named `names`, each of which must exist.
async fn roles_named(app: &App, names: &[String]) -> Result<Vec<RoleRecord>> {
    let mut roles = Vec::with_capacity(names.len());
    for name in names {
        roles.push(
            app.store
                .role_by_name(name)
                .await?
                .ok_or_else(|| Error::NotFound {
                    what: "role",
                    id: name.clone(),
                })?,
        );
    }
    Ok(roles)
}

/// A user to create.
pub struct CreateUser<'a> {
    /// Login name.
    pub username: &'a str,
    /// Email address.
    pub email: &'a str,
    /// Names of the roles to grant.
    pub roles: &'a [String],
    /// May log in.
    pub active: bool,
}

/// Creates a user with their roles, in one unit of work.
pub async fn create_user(
    app: &App,
    subject: &Subject,
    request: CreateUser<'_>,
    password: impl FnOnce() -> Result<Zeroizing<String>>,
) -> Result<UserRecord> {
    authorize(subject, Action::ManageUsers)?;
    let role_ids: Vec<i64> = roles_named(app, request.roles)
        .await?
        .iter()
        .map(|role| role.id)
        .collect();
    let hash = password::hash(&password()?)?;
    app.store
        .create_user(
            &NewUser {
                username: request.username,
                email: request.email,
                password_hash: &hash,
                active: request.active,
                role_ids: &role_ids,
            },
            app.clock.unix(),
        )
        .await
}

/// Creates a role held by `usernames`, in one unit of work.
pub async fn create_role(
    app: &App,
    subject: &Subject,
    name: &str,
    description: &str,
    usernames: &[String],
) -> Result<RoleRecord> {
    authorize(subject, Action::ManageUsers)?;
    let mut user_ids = Vec::with_capacity(usernames.len());
    for username in usernames {
        user_ids.push(user_named(app, username).await?.id);
    }
    app.store.create_role(name, description, &user_ids).await
}

async fn user_named(app: &App, username: &str) -> Result<UserRecord> {
    app.store
        .user_by_login(username)
        .await?
        .map(|record| record.user)
        .ok_or_else(|| Error::NotFound {
            what: "user",
            id: username.to_owned(),
        })
}

/// Sets a user's password and revokes the tokens issued before.
pub async fn reset_password(
    app: &App,
    subject: &Subject,
    username: &str,
    password: impl FnOnce() -> Result<Zeroizing<String>>,
) -> Result<()> {
    authorize(subject, Action::ManageUsers)?;
    let user = user_named(app, username).await?;
    let hash = password::hash(&password()?)?;
    app.store.set_password(user.id, &hash).await
}
