//! The `lemur` command line: Lemur's operator commands plus `dev` for a one-command local
//! appliance, and `appliance` for the appliance image's boot.

mod appliance;
mod backup;
mod check;
mod dev;
mod notify;
mod root_ca;
mod secrets;
mod serve;
mod served_restore;
mod token;
mod users;

use clap::{Parser, Subcommand};
use lemur_core::{Error, Result};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "lemur",
    version,
    about = "Lemur-HSM: TLS certificate management with an HSM-backed CA"
)]
struct Cli {
    /// Configuration file (Lemur's LEMUR_CONF).
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "LEMUR_CONF",
        default_value = "/etc/lemur/lemur.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a complete, commented configuration with fresh secrets.
    #[command(name = "create_config", alias = "create-config")]
    CreateConfig {
        /// State directory (database, secrets).
        #[arg(long, default_value = "/var/lib/lemur")]
        state_dir: PathBuf,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: String,
        /// Database URL; SQLite in the state directory when absent.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Create or migrate the database, built-in roles and the admin user; check HSM and entropy.
    Init {
        /// File with the admin password; prompted when absent.
        #[arg(long, short = 'p')]
        password_file: Option<PathBuf>,
    },
    /// Run the daemon.
    Start,
    /// Development mode: a SoftHSM2 token, config, SQLite database and admin user in DIR, then run.
    Dev {
        /// Where everything is kept.
        #[arg(long)]
        state_dir: PathBuf,
        /// Listen address (127.0.0.1:0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: String,
        /// File with the admin password; generated into DIR when absent.
        #[arg(long)]
        admin_password_file: Option<PathBuf>,
        /// Database URL for a new configuration; SQLite in DIR when absent.
        #[arg(long)]
        database_url: Option<String>,
        /// Serve HTTPS with this PEM certificate chain, rather than one from the dev CA.
        #[arg(long, requires = "tls_private_key", conflicts_with = "http")]
        tls_certificate: Option<PathBuf>,
        /// The private key of --tls-certificate.
        #[arg(long, requires = "tls_certificate")]
        tls_private_key: Option<PathBuf>,
        /// Serve plain HTTP (scripts and tests on loopback); HTTPS with a certificate from the
        /// dev CA otherwise. A unix socket is always plain: nginx in front speaks TLS.
        #[arg(long)]
        http: bool,
        /// Serve the web UI's built files from DIR (web/dist) at `/`.
        #[arg(long, value_name = "DIR")]
        web_root: Option<PathBuf>,
    },
    /// Create a local user.
    #[command(name = "create_user", alias = "create-user")]
    CreateUser {
        /// User name.
        #[arg(long, short = 'u')]
        username: String,
        /// Email address.
        #[arg(long, short = 'e')]
        email: String,
        /// Roles to grant (repeatable).
        #[arg(long = "roles", short = 'r')]
        roles: Vec<String>,
        /// Create the user inactive.
        #[arg(long)]
        inactive: bool,
        /// File with the password; prompted when absent.
        #[arg(long, short = 'p')]
        password_file: Option<PathBuf>,
    },
    /// Create a role.
    #[command(name = "create_role", alias = "create-role")]
    CreateRole {
        /// Role name.
        #[arg(long, short = 'n')]
        name: String,
        /// Users to add (repeatable).
        #[arg(long = "users", short = 'u')]
        users: Vec<String>,
        /// Description.
        #[arg(long, short = 'd', default_value = "")]
        description: String,
    },
    /// Health checks run before the daemon starts.
    Check {
        #[command(subcommand)]
        command: CheckCommand,
    },
    /// Expiration notifications.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Seal the secret files (token secret, database password, TLS key, the keys directory)
    /// under the HSM's key-encryption key; the daemon reads them sealed.
    Lock,
    /// Turn locked secret files back into clear files (0600), to edit them.
    Unlock,
    /// Create a new key-encryption key version and seal every stored private key and locked
    /// file again under it, while the daemon runs.
    #[command(name = "rotate_kek", alias = "rotate-kek")]
    RotateKek {
        /// Create no new version: seal what is left under the newest one (after a rotation
        /// that reported keys left behind).
        #[arg(long)]
        reseal_only: bool,
    },
    /// Back everything up into one archive encrypted under a passphrase: a consistent snapshot
    /// of the SQLite database (taken while the daemon runs), the state directory (configuration,
    /// SoftHSM2 token, certificates) and, as root with --credstore, the systemd credentials. On
    /// the appliance: `lemur appliance backup`.
    Backup(backup::BackupOptions),
    /// Restore a backup into an empty state directory (and, as root with --credstore, the
    /// credentials), with the daemon stopped. On the appliance: `lemur appliance restore`.
    Restore(backup::RestoreOptions),
    /// The appliance image's boot: the seed file, the settings it asks for, first-boot
    /// provisioning.
    Appliance {
        #[command(subcommand)]
        command: appliance::ApplianceCommand,
    },
    /// Set a new password for a local user.
    #[command(name = "reset_password", alias = "reset-password")]
    ResetPassword {
        /// User name.
        #[arg(long, short = 'u')]
        username: String,
        /// File with the new password; prompted when absent.
        #[arg(long, short = 'p')]
        password_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Run the SP 800-90B health tests on the kernel's, the token's and the configured devices'
    /// random sources, as the daemon does at start-up; fails when any source fails.
    Entropy,
}

#[derive(Subcommand)]
enum NotifyCommand {
    /// Find the certificates inside their expiration notification windows (30, 15 and 2 days
    /// before expiry), owner by owner.
    Expirations {
        /// Leave out certificates whose CN contains this (repeatable; Lemur's
        /// EXCLUDE_CN_FROM_NOTIFICATION).
        #[arg(long = "exclude", short = 'e')]
        exclude: Vec<String>,
        /// List who would be told, and send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Parses the command line, runs the command, and turns failures into a message and exit code 1.
pub fn main() -> std::process::ExitCode {
    crate::logging::init();
    if let Err(error) = lemur_core::files::forbid_core_dumps() {
        eprintln!("lemur: error: {error}");
        return std::process::ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lemur: error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            if let Error::Database { source, .. } = &error {
                log::error!("database: {source}");
            }
            eprintln!("lemur: error: {error}");
            if let Some(manager) = crate::systemd::manager() {
                manager.failed(&error.to_string());
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::CreateConfig {
            state_dir,
            listen,
            database_url,
        } => dev::create_config(
            &cli.config,
            &state_dir,
            &listen,
            database_url.as_deref(),
            &[],
        ),
        Command::Init { password_file } => users::init(&cli.config, password_file.as_deref()).await,
        Command::Start => serve::start(&cli.config, serve::Mode::Production).await,
        Command::Dev {
            state_dir,
            listen,
            admin_password_file,
            database_url,
            tls_certificate,
            tls_private_key,
            http,
            web_root,
        } => {
            let transport = match tls_certificate.zip(tls_private_key) {
                Some(files) => dev::Transport::Https(files),
                None if http || listen.starts_with("unix:") => dev::Transport::Plain,
                None => dev::Transport::DevCa,
            };
            let options = dev::DevOptions {
                listen,
                admin_password_file,
                database_url,
                transport,
                web_root,
            };
            dev::run(&state_dir, options).await
        }
        Command::CreateUser {
            username,
            email,
            roles,
            inactive,
            password_file,
        } => {
            let request = lemur_core::users::CreateUser {
                username: &username,
                email: &email,
                roles: &roles,
                active: !inactive,
            };
            users::create_user(&cli.config, request, password_file.as_deref()).await
        }
        Command::CreateRole {
            name,
            users,
            description,
        } => users::create_role(&cli.config, &name, &users, &description).await,
        Command::ResetPassword {
            username,
            password_file,
        } => users::reset_password(&cli.config, &username, password_file.as_deref()).await,
        Command::Lock => secrets::lock(&cli.config, secrets::Direction::Lock).await,
        Command::Unlock => secrets::lock(&cli.config, secrets::Direction::Unlock).await,
        Command::RotateKek { reseal_only } => secrets::rotate_kek(&cli.config, reseal_only).await,
        Command::Check {
            command: CheckCommand::Entropy,
        } => check::entropy(&cli.config).await,
        Command::Notify {
            command: NotifyCommand::Expirations { exclude, dry_run },
        } => notify::expirations(&cli.config, &exclude, dry_run).await,
        Command::Backup(options) => backup::backup(&cli.config, &options).await,
        Command::Restore(options) => backup::restore(&cli.config, &options, &[]).await,
        Command::Appliance { command } => appliance::run(command, &cli.config).await,
    }
}
