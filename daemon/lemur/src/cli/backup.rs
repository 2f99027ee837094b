//! `lemur backup` and `lemur restore`: the whole installation in one archive encrypted under a
//! passphrase (`lemur_core::backup`), and back, onto the same machine or a fresh one.
//!
//! The state directory is read and written only as the daemon's user: as root (the appliance),
//! these commands run that part as a child process under that user (`--as-user`, through
//! setpriv) and handle its members as opaque bytes, while root alone reads and writes the
//! encrypted systemd credentials (`--credstore`). A database snapshot is taken before the token
//! directory is read, so every key the snapshot names is in the archive (keys are never
//! removed from the token; a key made meanwhile is in it unused).

use crate::cli::appliance::Credstore;
use crate::cli::users::read_password;
use lemur_core::backup::{self, Kind, Manifest, Restore, StateWriter, Unpacker, Writer};
use lemur_core::config::Config;
use lemur_core::files::{create_private_dir, is_root};
use lemur_core::{Error, Result, clock};
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use zeroize::Zeroizing;

/// What `lemur backup` is given.
#[derive(clap::Args)]
pub struct BackupOptions {
    /// The archive to write (a new file, 0600), or `-` for standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// The passphrase (first line of FILE, at least 12 characters); asked twice on the terminal
    /// when absent. Keep it apart from the archive: it is all that guards the keys in it.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Also back up the encrypted systemd credentials in DIR (decrypted with systemd-creds, as
    /// root): the HSM PINs, the login token secret, the admin's first password.
    #[arg(long, value_name = "DIR")]
    pub credstore: Option<PathBuf>,
    /// Read the state directory as USER (the daemon's), when run as root.
    #[arg(long, value_name = "USER")]
    pub as_user: Option<String>,
    /// The database is PostgreSQL, backed up apart (pg_dump): archive the rest.
    #[arg(long)]
    pub no_database: bool,
    /// Internal: write the state directory's members, unencrypted, to standard output (the
    /// daemon's user's side of a backup run as root).
    #[arg(long, hide = true)]
    pub state_only: bool,
}

/// What `lemur restore` is given.
#[derive(clap::Args)]
pub struct RestoreOptions {
    /// The archive `lemur backup` wrote, or `-` for standard input.
    #[arg(long, short = 'a', value_name = "FILE")]
    pub archive: PathBuf,
    /// The passphrase (first line of FILE); asked on the terminal when absent.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Where the state goes: the directory it was backed up from when absent. It must be empty
    /// or missing, unless --credstore is given (as root), which moves what is there aside.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Restore the archive's credentials into DIR, encrypted for this machine (as root); what
    /// was there is moved aside first.
    #[arg(long, value_name = "DIR")]
    pub credstore: Option<PathBuf>,
    /// Write the state directory as USER (the daemon's), when run as root.
    #[arg(long, value_name = "USER")]
    pub as_user: Option<String>,
    /// Internal: unpack state members, unencrypted, from standard input into --state-dir (the
    /// daemon's user's side of a restore run as root).
    #[arg(long, hide = true)]
    pub state_only: bool,
}

/// `lemur backup`.
pub async fn backup(config_path: &Path, options: &BackupOptions) -> Result<()> {
    let config = Config::load_unresolved(config_path)?;
    if options.state_only {
        let mut state = StateWriter::new(std::io::stdout().lock());
        write_state(&config, options.no_database, &mut state).await?;
        state
            .finish()?
            .flush()
            .map_err(Error::io("writing the state"))?;
        return Ok(());
    }
    let database = database_kind(&config, options.no_database)?;
    let passphrase = read_password(
        options.passphrase_file.as_deref(),
        "backup passphrase",
        "--passphrase-file",
        true,
    )?;
    let secrets = match &options.credstore {
        Some(dir) => Credstore::at(dir).decrypt_all()?,
        None => Vec::new(),
    };
    let names = secrets.iter().map(|(name, _)| name.clone()).collect();
    let manifest = Manifest::new(&config.state_dir, database, names, clock::system().unix());
    let output = Output::create(&options.output)?;
    let mut writer = Writer::new(output, &passphrase, &manifest, &secrets)?;
    match &options.as_user {
        Some(user) => {
            let mut child = as_user(user, config_path)?
                .args(["backup", "--state-only", "--output", "-"])
                .args(options.no_database.then_some("--no-database"))
                .stdout(Stdio::piped())
                .spawn()
                .map_err(Error::io(
                    "starting the state's side of the backup (setpriv)",
                ))?;
            let copied = match child.stdout.take() {
                Some(stdout) => backup::copy_state(stdout, writer.state()),
                None => Err(Error::io("reading the state")(std::io::Error::other(
                    "no pipe",
                ))),
            };
            finish_child(child, "the state's side of the backup")?;
            copied?;
        }
        None => write_state(&config, options.no_database, writer.state()).await?,
    }
    writer.finish()?.close()?;
    eprintln!(
        "backed up {} ({}; secrets: {}) to {}",
        config.state_dir.display(),
        manifest.database,
        if manifest.secrets.is_empty() {
            "none apart from the state".to_owned()
        } else {
            manifest.secrets.join(", ")
        },
        options.output.display()
    );
    Ok(())
}

/// `sqlite` or `external`, or why the database cannot be backed up as configured.
fn database_kind(config: &Config, no_database: bool) -> Result<&'static str> {
    match lemur_store::sqlite_file(&config.database.url)? {
        Some(_) if no_database => Err(Error::invalid(
            "--no-database",
            "the database is SQLite, in the state directory: it belongs in the backup",
        )),
        Some(file) if !file.starts_with(&config.state_dir) => Err(Error::invalid(
            "database.url",
            format!(
                "{} is outside the state directory {}: move it there (stop the daemon, move the file, change database.url)",
                file.display(),
                config.state_dir.display()
            ),
        )),
        Some(_) => Ok("sqlite"),
        None if no_database => Ok("external"),
        None => Err(Error::invalid(
            "database.url",
            "is PostgreSQL, which `lemur backup` does not copy: back it up with pg_dump (see README.md) and pass --no-database to archive the rest",
        )),
    }
}

/// The state directory's members: a snapshot of the database in place of its live file, then
/// everything else but what a restore must not bring back (the live database's journal, staged
/// upgrades, a backup's own temporary files).
async fn write_state(
    config: &Config,
    no_database: bool,
    state: &mut StateWriter<impl Write>,
) -> Result<()> {
    database_kind(config, no_database)?;
    let root = &config.state_dir;
    let database = lemur_store::sqlite_file(&config.database.url)?
        .map(|file| file.strip_prefix(root).map(Path::to_owned).unwrap_or(file));
    let scratch = Scratch::create(root)?;
    let snapshot = scratch.0.join("lemur.db");
    if database.is_some() {
        lemur_store::snapshot_sqlite(&config.database.url, &snapshot).await?;
    }
    let scratch_name = scratch
        .0
        .strip_prefix(root)
        .unwrap_or(&scratch.0)
        .to_owned();
    let skip = |path: &Path| {
        let live_journal = database.as_ref().is_some_and(|db| {
            ["-wal", "-shm", "-journal"].iter().any(|suffix| {
                let mut journal = db.as_os_str().to_owned();
                journal.push(suffix);
                path.as_os_str() == journal
            })
        });
        live_journal
            || path == scratch_name
            || path == Path::new("upgrade")
            || path
                .to_str()
                .is_some_and(|name| name.starts_with(".backup-"))
    };
    let replace = |path: &Path| (Some(path) == database.as_deref()).then(|| snapshot.clone());
    state.add_tree(root, root, &skip, &replace)
}

/// A private scratch directory in the state directory (the same file system as the database,
/// and as private), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn create(state_dir: &Path) -> Result<Self> {
        let dir = state_dir.join(format!(".backup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_private_dir(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where a backup goes: a new private file, removed unless the backup finishes, or stdout.
enum Output {
    File(std::fs::File, PathBuf, bool),
    Stdout(std::io::Stdout),
}

impl Output {
    fn create(path: &Path) -> Result<Self> {
        if path == Path::new("-") {
            if std::io::stdout().is_terminal() {
                return Err(Error::invalid(
                    "--output",
                    "is the terminal: redirect it to a file (> backup.lemur) or name one",
                ));
            }
            return Ok(Self::Stdout(std::io::stdout()));
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(Error::io(format!(
                "creating {} (a backup never overwrites a file)",
                path.display()
            )))?;
        Ok(Self::File(file, path.to_owned(), false))
    }

    /// Syncs a file to disk; from then on it is kept.
    fn close(mut self) -> Result<()> {
        match &mut self {
            Self::File(file, path, kept) => {
                file.sync_all()
                    .map_err(Error::io(format!("writing {}", path.display())))?;
                *kept = true;
                Ok(())
            }
            Self::Stdout(out) => out.flush().map_err(Error::io("writing the backup")),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::File(file, ..) => file.write(buf),
            Self::Stdout(out) => out.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::File(file, ..) => file.flush(),
            Self::Stdout(out) => out.flush(),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Self::File(_, path, false) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// This program, run as `user` (uid, gid and groups) with no new privileges, given the
/// configuration.
pub(crate) fn as_user(user: &str, config_path: &Path) -> Result<Command> {
    if !is_root() {
        return Err(Error::invalid(
            "--as-user",
            "switching users needs root: run as root, or without --as-user as the daemon's user",
        ));
    }
    let program = std::env::current_exe().map_err(Error::io("finding this program"))?;
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={user}"))
        .arg(format!("--regid={user}"))
        .args(["--init-groups", "--no-new-privs", "--"])
        .arg(program)
        .arg("--config")
        .arg(config_path)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    Ok(command)
}

/// Waits for a child and fails unless it succeeded.
fn finish_child(mut child: Child, what: &str) -> Result<()> {
    let status = child
        .wait()
        .map_err(Error::io(format!("waiting for {what}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::io(format!("running {what}"))(std::io::Error::other(
            format!("it failed ({status}; its complaint is above)"),
        )))
    }
}

/// `lemur restore`; `services` are stopped once the archive has opened and before anything is
/// replaced, and started when all is restored.
pub async fn restore(
    config_path: &Path,
    options: &RestoreOptions,
    services: &[&str],
) -> Result<()> {
    if options.state_only {
        let dir = options
            .state_dir
            .as_deref()
            .ok_or_else(|| Error::invalid("--state-dir", "is required with --state-only"))?;
        let mut unpacker = Unpacker::new(dir)?;
        unpacker.add_all(std::io::stdin().lock())?;
        return unpacker.finish();
    }
    if options.as_user.is_some() != options.credstore.is_some() {
        return Err(Error::invalid(
            "--credstore",
            "--credstore and --as-user go together (a restore as root); give both or neither",
        ));
    }
    let passphrase = read_password(
        options.passphrase_file.as_deref(),
        "backup passphrase",
        "--passphrase-file",
        false,
    )?;
    let input: Box<dyn Read> = if options.archive == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&options.archive)
                .map_err(Error::io(format!("opening {}", options.archive.display())))?,
        )
    };
    let mut target = Target {
        options,
        config_path,
        services,
        moved_aside: Vec::new(),
        state: None,
        secrets: Vec::new(),
    };
    let restored = backup::read(std::io::BufReader::new(input), &passphrase, &mut target)
        .and_then(|manifest| target.finish().map(|()| manifest));
    let manifest = match restored {
        Ok(manifest) => manifest,
        Err(error) => {
            for (from, to) in &target.moved_aside {
                eprintln!(
                    "lemur: the restore failed; what was in {} is in {}: to go back, remove the first and move the second there again",
                    from.display(),
                    to.display()
                );
            }
            return Err(error);
        }
    };
    eprintln!(
        "restored the backup of Lemur-HSM {} made at Unix time {} into {}{}",
        manifest.version,
        manifest.created,
        target.state_dir(&manifest).display(),
        if manifest.database == "external" {
            "; the database is PostgreSQL's: restore it with pg_restore before starting the daemon"
        } else {
            ""
        }
    );
    start(services)
}

/// Where a restore's state goes: unpacked here, or by a child under the daemon's user.
enum StateSink {
    Here(Unpacker),
    Child(Child, StateWriter<ChildStdin>),
}

/// A restore in progress.
struct Target<'a> {
    options: &'a RestoreOptions,
    config_path: &'a Path,
    services: &'a [&'a str],
    /// Directories moved aside: (where, to).
    moved_aside: Vec<(PathBuf, PathBuf)>,
    state: Option<StateSink>,
    secrets: Vec<(String, Zeroizing<Vec<u8>>)>,
}

impl Target<'_> {
    fn state_dir<'m>(&'m self, manifest: &'m Manifest) -> &'m Path {
        self.options
            .state_dir
            .as_deref()
            .unwrap_or(&manifest.state_dir)
    }

    /// Renames `dir` to `DIR.replaced-TIME`, if it exists.
    fn move_aside(&mut self, dir: &Path) -> Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        let mut aside = dir.as_os_str().to_owned();
        aside.push(format!(".replaced-{}", clock::system().unix()));
        let aside = PathBuf::from(aside);
        std::fs::rename(dir, &aside).map_err(Error::io(format!(
            "moving {} aside to {}",
            dir.display(),
            aside.display()
        )))?;
        eprintln!("moved {} aside to {}", dir.display(), aside.display());
        self.moved_aside.push((dir.to_owned(), aside));
        Ok(())
    }

    /// Once the secrets are in: the credentials, then the state's end.
    fn finish(&mut self) -> Result<()> {
        match self.state.take() {
            Some(StateSink::Here(unpacker)) => unpacker.finish()?,
            Some(StateSink::Child(child, writer)) => {
                // Closing its input ends the child's tar stream.
                drop(writer.finish()?);
                finish_child(child, "the state's side of the restore")?;
            }
            None => return Err(Error::invalid("backup", "it holds no state")),
        }
        if let Some(dir) = self.options.credstore.clone() {
            self.move_aside(&dir)?;
            Credstore::create(&dir)?.encrypt_all(&self.secrets)?;
        }
        Ok(())
    }
}

impl Restore for Target<'_> {
    fn manifest(&mut self, manifest: &Manifest) -> Result<()> {
        let dir = self.state_dir(manifest).to_owned();
        if !manifest.secrets.is_empty() && self.options.credstore.is_none() {
            return Err(Error::invalid(
                "--credstore",
                format!(
                    "the backup holds systemd credentials ({}): restore it as root with --credstore and --as-user (the appliance: lemur appliance restore)",
                    manifest.secrets.join(", ")
                ),
            ));
        }
        stop(self.services)?;
        self.state = Some(match &self.options.as_user {
            Some(user) => {
                self.move_aside(&dir)?;
                create_owned_dir(&dir, user)?;
                let mut child = as_user(user, self.config_path)?
                    .arg("restore")
                    .args(["--state-only", "--archive", "-", "--state-dir"])
                    .arg(&dir)
                    .stdin(Stdio::piped())
                    .spawn()
                    .map_err(Error::io(
                        "starting the state's side of the restore (setpriv)",
                    ))?;
                let Some(stdin) = child.stdin.take() else {
                    let _ = child.kill();
                    return Err(Error::io("writing the state")(std::io::Error::other(
                        "no pipe",
                    )));
                };
                StateSink::Child(child, StateWriter::new(stdin))
            }
            None => StateSink::Here(Unpacker::new(&dir)?),
        });
        Ok(())
    }

    fn secret(&mut self, name: &str, value: Zeroizing<Vec<u8>>) -> Result<()> {
        self.secrets.push((name.to_owned(), value));
        Ok(())
    }

    fn state(&mut self, path: &Path, kind: &Kind, content: &mut dyn Read) -> Result<()> {
        match &mut self.state {
            Some(StateSink::Here(unpacker)) => unpacker.add(path, kind, content),
            Some(StateSink::Child(_, writer)) => writer.add(path, kind, content),
            None => Err(Error::invalid("backup", "state before its manifest")),
        }
    }
}

/// Makes `dir` (0700) owned by `user`, for the child that unpacks into it.
fn create_owned_dir(dir: &Path, user: &str) -> Result<()> {
    create_private_dir(dir)?;
    let status = Command::new("chown")
        .arg(format!("{user}:{user}"))
        .arg(dir)
        .status()
        .map_err(Error::io(format!("giving {} to {user}", dir.display())))?;
    if !status.success() {
        return Err(Error::io(format!("giving {} to {user}", dir.display()))(
            std::io::Error::other(format!("chown failed ({status})")),
        ));
    }
    Ok(())
}

fn systemctl(verb: &str, services: &[&str]) -> Result<()> {
    if services.is_empty() {
        return Ok(());
    }
    let status = Command::new("systemctl")
        .arg(verb)
        .args(services)
        .status()
        .map_err(Error::io(format!("running systemctl {verb}")))?;
    if !status.success() {
        return Err(Error::io(format!(
            "systemctl {verb} {}",
            services.join(" ")
        ))(std::io::Error::other(format!(
            "it failed ({status})"
        ))));
    }
    Ok(())
}

fn stop(services: &[&str]) -> Result<()> {
    systemctl("stop", services)
}

/// Restarted rather than started: a service that was not stopped (nginx) reads the restored
/// files afresh.
fn start(services: &[&str]) -> Result<()> {
    systemctl("restart", services)
}
