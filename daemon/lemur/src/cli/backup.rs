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
use crate::cli::served_restore;
use crate::cli::users::read_password;
use lemur_core::backup::service::FrameWriter;
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
    /// The passphrase (first line of FILE, or of standard input with `-`, at least 12
    /// characters); asked twice on the terminal when absent. Keep it apart from the archive: it
    /// is all that guards the keys in it.
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
    /// The state directory, required with --as-user: root then reads no configuration (the
    /// daemon's user can change it), and the child checks this against the daemon's.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Internal: write the state directory's members, unencrypted, to standard output (the
    /// daemon's user's side of a backup run as root).
    #[arg(long, hide = true)]
    pub state_only: bool,
    /// Internal: write the archive to standard output in frames that end with the outcome,
    /// for the daemon to pass on (root's backup service, `lemur-backup@.service`).
    #[arg(long, hide = true)]
    pub framed: bool,
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
    /// Internal: root's restore service for the daemon (`lemur-restore@.service`): the request
    /// on standard input is spooled in DIR and checked, the verdict goes to standard output,
    /// then the restore runs and its outcome is kept in DIR/status.json.
    #[arg(long, hide = true, value_name = "DIR")]
    pub served: Option<PathBuf>,
    /// Internal, with --served: the service stopped (its `ExecStopPost`); a restore it left
    /// `restoring` is recorded as failed.
    #[arg(long, hide = true, requires = "served")]
    pub abandoned: bool,
    /// Internal, with --served: refuse (a conflict) while FILE exists: on the appliance, an
    /// upgrade staged or on trial, which a restore would cross.
    #[arg(long, hide = true, value_name = "FILE", requires = "served")]
    pub unless_exists: Vec<PathBuf>,
}

/// `lemur backup`.
pub async fn backup(config_path: &Path, options: &BackupOptions) -> Result<()> {
    let made = make(config_path, options).await;
    if options.framed {
        let verdict = made.as_ref().map(|_| ()).map_err(ToString::to_string);
        // The backup's own outcome comes first; a reader gone (an aborted download) only adds.
        if let Err(error) = FrameWriter::new(std::io::stdout()).end(&verdict) {
            eprintln!("lemur: the backup's outcome did not reach the daemon: {error}");
            made.as_ref()
                .map_err(|_| Error::io("ending the framed backup")(error))?;
        }
    }
    made
}

/// The backup itself, or the state's side of it.
async fn make(config_path: &Path, options: &BackupOptions) -> Result<()> {
    if options.state_only {
        let config = Config::load_unresolved(config_path)?;
        if let Some(expected) = options
            .state_dir
            .as_ref()
            .filter(|dir| **dir != config.state_dir)
        {
            return Err(Error::invalid(
                "--state-dir",
                format!(
                    "is {}, but the daemon's configuration says {}",
                    expected.display(),
                    config.state_dir.display()
                ),
            ));
        }
        let mut state = StateWriter::new(std::io::stdout().lock());
        write_state(&config, options.no_database, &mut state).await?;
        state
            .finish()?
            .flush()
            .map_err(Error::io("writing the state"))?;
        return Ok(());
    }
    // As root with --as-user, where the state is comes from the options alone: root reads
    // nothing the daemon's user can change, its configuration included.
    let (config, state_dir, database) = match &options.as_user {
        Some(_) => {
            let dir = options.state_dir.clone().ok_or_else(|| {
                Error::invalid(
                    "--state-dir",
                    "is required with --as-user (root reads no configuration the daemon's user can change)",
                )
            })?;
            let database = if options.no_database {
                "external"
            } else {
                "sqlite"
            };
            (None, dir, database)
        }
        None => {
            refuse_root_over_others(config_path)?;
            let config = Config::load_unresolved(config_path)?;
            refuse_root_over_others(&config.state_dir)?;
            let database = database_kind(&config, options.no_database)?;
            let dir = config.state_dir.clone();
            (Some(config), dir, database)
        }
    };
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
    let manifest = Manifest::new(&state_dir, database, names, clock::system().unix());
    let output = Output::create(&options.output, options.framed)?;
    let mut writer = Writer::new(output, &passphrase, &manifest, &secrets)?;
    match (&options.as_user, &config) {
        (None, Some(config)) => write_state(config, options.no_database, writer.state()).await?,
        (user, _) => {
            let user = user.as_deref().unwrap_or_default();
            let mut child = as_user(user, config_path)?
                .args(["backup", "--state-only", "--output", "-", "--state-dir"])
                .arg(&state_dir)
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
    }
    writer.finish()?.close()?;
    eprintln!(
        "backed up {} ({}; secrets: {}) to {}",
        state_dir.display(),
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

/// As root, refuses `path` (a configuration or a state directory) unless root alone can change
/// it, the link and what it leads to: root must not act on what a less privileged user
/// controls. Such a state is backed up and restored with --as-user.
fn refuse_root_over_others(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !is_root() {
        return Ok(());
    }
    for found in [std::fs::symlink_metadata(path), std::fs::metadata(path)] {
        match found {
            Ok(found) if found.uid() != 0 => {
                return Err(Error::invalid(
                    "--as-user",
                    format!(
                        "{} belongs to uid {}: as root, give --as-user (that user) and --state-dir, or run as that user",
                        path.display(),
                        found.uid()
                    ),
                ));
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(Error::io(format!("reading {}", path.display()))(error)),
        }
    }
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
    let spool = config
        .upgrades
        .as_ref()
        .and_then(|upgrades| upgrades.spool.strip_prefix(root).ok())
        .map_or_else(|| PathBuf::from("upgrade"), Path::to_owned);
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
            || path == spool
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

/// Where a backup goes: a new private file, removed unless the backup finishes, or stdout
/// (plain, or framed for the daemon).
enum Output {
    File(std::fs::File, PathBuf, bool),
    Stdout(std::io::Stdout),
    Framed(FrameWriter<std::io::Stdout>),
}

impl Output {
    fn create(path: &Path, framed: bool) -> Result<Self> {
        if framed {
            if path != Path::new("-") {
                return Err(Error::invalid("--framed", "goes with --output -"));
            }
            return Ok(Self::Framed(FrameWriter::new(std::io::stdout())));
        }
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
            Self::Framed(out) => out.flush().map_err(Error::io("writing the backup")),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::File(file, ..) => file.write(buf),
            Self::Stdout(out) => out.write(buf),
            Self::Framed(out) => out.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::File(file, ..) => file.flush(),
            Self::Stdout(out) => out.flush(),
            Self::Framed(out) => out.flush(),
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
    let account = Account::find(user)?;
    let program = std::env::current_exe().map_err(Error::io("finding this program"))?;
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={}", account.uid))
        .arg(format!("--regid={}", account.gid))
        .args(["--init-groups", "--no-new-privs", "--"])
        .arg(program)
        .arg("--config")
        .arg(config_path)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    Ok(command)
}

/// A user's uid and primary gid, as the system's user database has them.
struct Account {
    uid: u32,
    gid: u32,
}

impl Account {
    fn find(user: &str) -> Result<Self> {
        let context = || format!("looking up the user {user}");
        let output = Command::new("getent")
            .args(["passwd", user])
            .output()
            .map_err(Error::io(context()))?;
        let line = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<&str> = line.trim().split(':').collect();
        let number = |index: usize| fields.get(index).and_then(|field| field.parse().ok());
        match (output.status.success(), number(2), number(3)) {
            (true, Some(uid), Some(gid)) => Ok(Self { uid, gid }),
            _ => Err(Error::invalid(
                "--as-user",
                format!("{user} is no user of this system (getent passwd {user})"),
            )),
        }
    }
}

/// Waits for a child and fails unless it succeeded.
pub(crate) fn finish_child(mut child: Child, what: &str) -> Result<()> {
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

/// `lemur restore`; `services` are stopped once the archive has opened and been checked, before
/// anything is replaced, and started again when all is restored, or when the restore failed and
/// what was there has been put back.
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
    if options.as_user.is_some() && options.state_dir.is_none() {
        return Err(Error::invalid(
            "--state-dir",
            "is required with --as-user: root restores only where it is told, never where an archive says",
        ));
    }
    if let Some(spool) = &options.served {
        if options.abandoned {
            return served_restore::abandoned(spool);
        }
        return served_restore::serve(config_path, options, spool, services);
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
    let manifest = restore_archive(config_path, options, services, input, &passphrase)?;
    start(services)?;
    eprintln!(
        "restored the backup of Lemur-HSM {} made at Unix time {} into {}{}",
        manifest.version,
        manifest.created,
        manifest.state_dir.display(),
        if manifest.database == "external" {
            "; the database is PostgreSQL's: restore it with pg_restore before starting the daemon"
        } else {
            ""
        }
    );
    Ok(())
}

/// Restores the archive on `input`, opened with `passphrase`: `services` stopped once it has
/// opened and its manifest was checked; after a failure, started again once what was there
/// has been put back. After a restore the caller starts them, so that a restore that did not
/// start is told from one that failed.
pub(crate) fn restore_archive(
    config_path: &Path,
    options: &RestoreOptions,
    services: &[&str],
    input: Box<dyn Read>,
    passphrase: &str,
) -> Result<Manifest> {
    let mut target = Target {
        options,
        config_path,
        services,
        stopped: false,
        moved_aside: Vec::new(),
        state: None,
        state_members: 0,
        secrets: Vec::new(),
    };
    let restored = backup::read(std::io::BufReader::new(input), passphrase, &mut target)
        .and_then(|manifest| target.finish().map(|()| manifest));
    if restored.is_err() {
        target.abort();
    }
    restored
}

/// Refuses, before anything is touched, a backup that `options` cannot restore: one of another
/// state directory than the one named, or with credentials and nowhere to put them (or without
/// all of them). Returns the state directory.
pub(crate) fn check_manifest(options: &RestoreOptions, manifest: &Manifest) -> Result<PathBuf> {
    let dir = options
        .state_dir
        .clone()
        .unwrap_or_else(|| manifest.state_dir.clone());
    if dir != manifest.state_dir {
        return Err(Error::invalid(
            "--state-dir",
            format!(
                "the backup is of {}, and its configuration names that directory: restore it there",
                manifest.state_dir.display()
            ),
        ));
    }
    match &options.credstore {
        Some(_) => Credstore::check_complete(&manifest.secrets)?,
        None if !manifest.secrets.is_empty() => {
            return Err(Error::invalid(
                "--credstore",
                format!(
                    "the backup holds systemd credentials ({}): restore it as root with --credstore and --as-user (the appliance: lemur appliance restore)",
                    manifest.secrets.join(", ")
                ),
            ));
        }
        None => {}
    }
    Ok(dir)
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
    /// Whether `services` were stopped.
    stopped: bool,
    /// Directories moved aside: (where, to).
    moved_aside: Vec<(PathBuf, PathBuf)>,
    state: Option<StateSink>,
    state_members: usize,
    secrets: Vec<(String, Zeroizing<Vec<u8>>)>,
}

impl Target<'_> {
    /// Renames `dir` to `DIR.SUFFIX-TIME`, if it exists; returns where it went.
    fn rename_aside(dir: &Path, suffix: &str) -> Result<Option<PathBuf>> {
        if std::fs::symlink_metadata(dir).is_err() {
            return Ok(None);
        }
        let mut aside = dir.as_os_str().to_owned();
        aside.push(format!(".{suffix}-{}", clock::system().unix()));
        let aside = PathBuf::from(aside);
        std::fs::rename(dir, &aside).map_err(Error::io(format!(
            "moving {} aside to {}",
            dir.display(),
            aside.display()
        )))?;
        Ok(Some(aside))
    }

    /// Moves `dir` aside before it is replaced, to be put back if the restore fails.
    fn move_aside(&mut self, dir: &Path) -> Result<()> {
        if let Some(aside) = Self::rename_aside(dir, "replaced")? {
            eprintln!("moved {} aside to {}", dir.display(), aside.display());
            self.moved_aside.push((dir.to_owned(), aside));
        }
        Ok(())
    }

    /// After the secrets and the state: the state's end (the child's success), then the
    /// credentials, encrypted for this machine.
    fn finish(&mut self) -> Result<()> {
        match self.state.take() {
            Some(StateSink::Here(unpacker)) => unpacker.finish()?,
            Some(StateSink::Child(child, writer)) => {
                // Closing its input ends the child's tar stream.
                drop(writer.finish()?);
                finish_child(child, "the state's side of the restore")?;
            }
            None => {}
        }
        if self.state_members == 0 {
            return Err(Error::invalid("backup", "it holds no state directory"));
        }
        if let Some(dir) = self.options.credstore.clone() {
            self.move_aside(&dir)?;
            Credstore::create(&dir)?.encrypt_all(&self.secrets)?;
        }
        Ok(())
    }

    /// A restore that failed: the child stopped before it could take a cut-short stream for a
    /// whole one, what was restored moved aside, what was there put back, the services started
    /// again.
    fn abort(&mut self) {
        if let Some(StateSink::Child(mut child, writer)) = self.state.take() {
            let _ = child.kill();
            let _ = child.wait();
            drop(writer);
        }
        for (dir, aside) in self.moved_aside.drain(..).rev() {
            let put_back = Self::rename_aside(&dir, "failed-restore").and_then(|_| {
                std::fs::rename(&aside, &dir).map_err(Error::io(format!(
                    "moving {} back to {}",
                    aside.display(),
                    dir.display()
                )))
            });
            match put_back {
                Ok(()) => eprintln!(
                    "lemur: the restore failed: {} is back as it was",
                    dir.display()
                ),
                Err(error) => eprintln!(
                    "lemur: the restore failed, and {error}: what was in {} is in {}",
                    dir.display(),
                    aside.display()
                ),
            }
        }
        if let Err(error) = start(if self.stopped { self.services } else { &[] }) {
            eprintln!("lemur: {error}");
        }
    }
}

impl Restore for Target<'_> {
    fn manifest(&mut self, manifest: &Manifest) -> Result<()> {
        let dir = check_manifest(self.options, manifest)?;
        stop(self.services)?;
        self.stopped = !self.services.is_empty();
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
            None => {
                refuse_root_over_others(&dir)?;
                StateSink::Here(Unpacker::new(&dir)?)
            }
        });
        Ok(())
    }

    fn secret(&mut self, name: &str, value: Zeroizing<Vec<u8>>) -> Result<()> {
        self.secrets.push((name.to_owned(), value));
        Ok(())
    }

    fn state(&mut self, path: &Path, kind: &Kind, content: &mut dyn Read) -> Result<()> {
        self.state_members += 1;
        match &mut self.state {
            Some(StateSink::Here(unpacker)) => unpacker.add(path, kind, content),
            Some(StateSink::Child(_, writer)) => writer.add(path, kind, content),
            None => Err(Error::invalid("backup", "state before its manifest")),
        }
    }
}

/// Makes `dir` (0700) owned by `user`, for the child that unpacks into it.
fn create_owned_dir(dir: &Path, user: &str) -> Result<()> {
    let account = Account::find(user)?;
    create_private_dir(dir)?;
    std::os::unix::fs::chown(dir, Some(account.uid), Some(account.gid))
        .map_err(Error::io(format!("giving {} to {user}", dir.display())))
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
pub(crate) fn start(services: &[&str]) -> Result<()> {
    systemctl("restart", services)
}
