//! `lemur init`, `create_user`, `create_role`, `reset_password`: run on the appliance by someone
//! who can read its configuration, as the system subject `cli`, through the same domain calls
//! and policy as the API.

use lemur_core::app::DEFAULT_ADMIN;
use lemur_core::config::Config;
use lemur_core::policy::Subject;
use lemur_core::users::{self, CreateUser};
use lemur_core::{App, Error, Result, clock};
use lemur_hsm::Pkcs11KeyStore;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The subject operator commands act as.
pub(super) const CLI: Subject = Subject::System("cli");

/// A password from `file` (first line), or typed without echo: twice when `confirm`. `flag`
/// names the option that gives the file.
pub fn read_password(
    file: Option<&Path>,
    what: &str,
    flag: &str,
    confirm: bool,
) -> Result<Zeroizing<String>> {
    if let Some(file) = file {
        let content = Zeroizing::new(if file == Path::new("-") {
            first_line_of_stdin()?
        } else {
            std::fs::read_to_string(file)
                .map_err(Error::io(format!("reading {}", file.display())))?
        });
        return Ok(Zeroizing::new(
            content.lines().next().unwrap_or_default().to_owned(),
        ));
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::invalid(
            "password",
            format!("no password file given and no terminal to ask for the {what}: pass {flag}"),
        ));
    }
    let prompt = |text: String| {
        rpassword::prompt_password(text)
            .map(Zeroizing::new)
            .map_err(Error::io("reading a password from the terminal"))
    };
    let first = prompt(format!("{what}: "))?;
    if !confirm {
        return Ok(first);
    }
    let second = prompt(format!("{what} (again): "))?;
    if *first != *second {
        return Err(Error::invalid("password", "the two passwords differ"));
    }
    Ok(first)
}

/// The first line of the standard input, read unbuffered and at most 4 KiB (root's backup
/// service reads what a less trusted process sends), into memory that is wiped.
fn first_line_of_stdin() -> Result<String> {
    use std::io::Read;
    let mut bytes = Zeroizing::new(Vec::with_capacity(4096));
    // A file of its own on the descriptor: std's buffered stdin would keep a copy unwiped.
    let stdin = std::fs::File::from(
        std::os::fd::AsFd::as_fd(&std::io::stdin())
            .try_clone_to_owned()
            .map_err(Error::io("reading the standard input"))?,
    );
    stdin
        .take(4096)
        .read_to_end(&mut bytes)
        .map_err(Error::io("reading the standard input"))?;
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    std::str::from_utf8(line)
        .map(str::to_owned)
        .map_err(|_| Error::invalid("passphrase", "is not UTF-8 text"))
}

pub(super) async fn open(config_path: &Path) -> Result<(App, Arc<Pkcs11KeyStore>)> {
    let config = Config::load(config_path)?;
    crate::open::app(config, clock::system()).await
}

/// `lemur init`: database, baseline objects, and the admin user if missing. Safe to run twice.
pub async fn init(config_path: &Path, password_file: Option<&Path>) -> Result<()> {
    let (app, keys) = open(config_path).await?;
    init_app(&app, &keys, password_file).await?;
    app.store.close().await;
    Ok(())
}

/// The part of `init` that `dev` shares.
pub async fn init_app(
    app: &App,
    keys: &Arc<Pkcs11KeyStore>,
    password_file: Option<&Path>,
) -> Result<()> {
    crate::open::ensure_baseline(app, keys).await?;
    let created = users::ensure_admin(app, || {
        read_password(
            password_file,
            "password for the admin user `lemur`",
            "--password-file",
            true,
        )
    })
    .await?;
    if created {
        println!("created the admin user `{DEFAULT_ADMIN}`");
    }
    let report = app.entropy.state();
    println!(
        "database ready ({}); HSM token {:?} ready; entropy: {}",
        app.store.engine(),
        keys.token_label(),
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
    request: CreateUser<'_>,
    password_file: Option<&Path>,
) -> Result<()> {
    let (app, _) = open(config_path).await?;
    let username = request.username.to_owned();
    let user = users::create_user(&app, &CLI, request, || {
        read_password(
            password_file,
            &format!("password for {username}"),
            "--password-file",
            true,
        )
    })
    .await?;
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
    let (app, _) = open(config_path).await?;
    let role = users::create_role(&app, &CLI, name, description, users).await?;
    println!("created role {name} (id {})", role.id);
    Ok(())
}

/// `lemur reset_password`.
pub async fn reset_password(
    config_path: &Path,
    username: &str,
    password_file: Option<&Path>,
) -> Result<()> {
    let (app, _) = open(config_path).await?;
    users::reset_password(&app, &CLI, username, || {
        read_password(
            password_file,
            &format!("new password for {username}"),
            "--password-file",
            true,
        )
    })
    .await?;
    println!("password of {username} changed");
    Ok(())
}
