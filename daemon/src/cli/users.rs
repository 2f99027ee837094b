//! `lemur init`, `create_user`, `create_role`, `reset_password`.

use crate::app::{App, DEFAULT_ADMIN};
use crate::auth::password;
use crate::clock;
use crate::config::Config;
use crate::error::{Error, Result};
use std::io::IsTerminal;
use std::path::Path;
use zeroize::Zeroizing;

/// A password from `file` (first line), or typed twice without echo.
pub fn read_password(file: Option<&Path>, what: &str) -> Result<Zeroizing<String>> {
    if let Some(file) = file {
        let content = Zeroizing::new(
            std::fs::read_to_string(file)
                .map_err(Error::io(format!("reading {}", file.display())))?,
        );
        return Ok(Zeroizing::new(
            content.lines().next().unwrap_or_default().to_owned(),
        ));
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::invalid(
            "password",
            format!(
                "no password file given and no terminal to ask for the {what}: pass --password-file"
            ),
        ));
    }
    let prompt = |text: String| {
        rpassword::prompt_password(text)
            .map(Zeroizing::new)
            .map_err(Error::io("reading a password from the terminal"))
    };
    let first = prompt(format!("{what}: "))?;
    let second = prompt(format!("{what} (again): "))?;
    if *first != *second {
        return Err(Error::invalid("password", "the two passwords differ"));
    }
    Ok(first)
}

async fn open(config_path: &Path) -> Result<App> {
    let config = Config::load(config_path)?;
    App::open(config, clock::system()).await
}

/// `lemur init`: database, baseline objects, and the admin user if missing. Safe to run twice.
pub async fn init(config_path: &Path, password_file: Option<&Path>) -> Result<()> {
    let app = open(config_path).await?;
    init_app(&app, password_file).await?;
    app.store.close().await;
    Ok(())
}

/// The part of `init` that `dev` shares.
pub async fn init_app(app: &App, password_file: Option<&Path>) -> Result<()> {
    app.ensure_baseline().await?;
    if app.store.user_by_login(DEFAULT_ADMIN).await?.is_none() {
        let secret = read_password(password_file, "password for the admin user `lemur`")?;
        let email = app.config.defaults.security_team_email.clone();
        let user = app
            .store
            .create_user(DEFAULT_ADMIN, &email, &password::hash(&secret)?, true)
            .await?;
        let admin = app
            .store
            .ensure_role("admin", "Full administrative access")
            .await?;
        app.store.grant_role(user.id, admin.id).await?;
        println!("created the admin user `{DEFAULT_ADMIN}`");
    }
    let report = app.entropy.state();
    println!(
        "database ready ({:?}); HSM token {:?} ready; entropy: {}",
        app.store.backend(),
        app.keys.token_label(),
        match report {
            lemur_entropy::HealthState::Healthy(_) => "healthy".to_owned(),
            lemur_entropy::HealthState::Unhealthy(r) =>
                format!("UNHEALTHY: {}", r.reason.unwrap_or_default()),
            lemur_entropy::HealthState::NotChecked => "not checked".to_owned(),
        }
    );
    Ok(())
}

/// `lemur create_user`.
pub async fn create_user(
    config_path: &Path,
    username: &str,
    email: &str,
    roles: &[String],
    active: bool,
    password_file: Option<&Path>,
) -> Result<()> {
    let app = open(config_path).await?;
    let mut role_ids = Vec::new();
    for name in roles {
        let role = app
            .store
            .role_by_name(name)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "role",
                id: name.clone(),
            })?;
        role_ids.push(role.id);
    }
    let secret = read_password(password_file, &format!("password for {username}"))?;
    let user = app
        .store
        .create_user(username, email, &password::hash(&secret)?, active)
        .await?;
    for role_id in role_ids {
        app.store.grant_role(user.id, role_id).await?;
    }
    println!("created user {username} (id {})", user.id);
    Ok(())
}

/// `lemur create_role`.
pub async fn create_role(
    config_path: &Path,
    name: &str,
    users: &[String],
    description: &str,
) -> Result<()> {
    let app = open(config_path).await?;
    if app.store.role_by_name(name).await?.is_some() {
        return Err(Error::Conflict(format!("role {name:?} exists")));
    }
    let role = app.store.ensure_role(name, description).await?;
    for username in users {
        let (user, _) =
            app.store
                .user_by_login(username)
                .await?
                .ok_or_else(|| Error::NotFound {
                    what: "user",
                    id: username.clone(),
                })?;
        app.store.grant_role(user.id, role.id).await?;
    }
    println!("created role {name} (id {})", role.id);
    Ok(())
}

/// `lemur reset_password`.
pub async fn reset_password(
    config_path: &Path,
    username: &str,
    password_file: Option<&Path>,
) -> Result<()> {
    let app = open(config_path).await?;
    let (user, _) = app
        .store
        .user_by_login(username)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "user",
            id: username.to_owned(),
        })?;
    let secret = read_password(password_file, &format!("new password for {username}"))?;
    app.store
        .set_password(user.id, &password::hash(&secret)?)
        .await?;
    println!("password of {username} changed");
    Ok(())
}
