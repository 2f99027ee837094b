//! Root's side of a restore asked through the API (`lemur restore --served DIR`, run by
//! `lemur-restore@.service` with the daemon's connection as standard input and output; the
//! daemon's side and the exchange are in `lemur_core::backup::api_restore`).
//!
//! The archive is kept in DIR (root's, on the data partition) rather than restored as it comes:
//! a restore stops the daemon that sends it, so the whole archive is here and checked, every
//! chunk opened with the passphrase, before the daemon hears it is accepted and before anything
//! is stopped. The restore itself is the one `lemur restore` runs, from that file. The status
//! says `restoring` before the daemon hears yes, and an outcome after; a service that dies in
//! between leaves it to `--abandoned` (the unit's `ExecStopPost`).

use super::backup::{RestoreOptions, check_manifest, restore_archive, start};
use lemur_core::backup::api_restore::{
    Accepted, MAX_LINE, Requester, RestoreState, RestoreStatus, Verdict,
};
use lemur_core::backup::{self, Kind, Manifest, Restore};
use lemur_core::config::RESTORE_STATUS_NAME;
use lemur_core::{Error, Result, clock, status_file};
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// The archive's name in the spool.
const ARCHIVE: &str = "archive.lemur";
/// How long the daemon has to send its answer and hang up once it has the verdict.
const HANGUP: Duration = Duration::from_secs(30);
/// Room the spool leaves free on the data partition, for the database and the logs.
const RESERVE: u64 = 64 << 20;
/// How often, in bytes received, the spool's room is looked at.
const ROOM_EVERY: u64 = 8 << 20;

/// Serves one restore on standard input and output, keeping the archive in `spool`.
pub fn serve(
    config_path: &Path,
    options: &RestoreOptions,
    spool: &Path,
    services: &[&str],
) -> Result<()> {
    let mut input = std::io::BufReader::new(std::io::stdin().lock());
    let status_path = spool.join(RESTORE_STATUS_NAME);
    let received = refuse_while(&options.unless_exists).and_then(|()| receive(&mut input, spool));
    let checked = received.and_then(|received| {
        let manifest = check(options, &received.archive.0, &received.passphrase)?;
        Ok((received, manifest))
    });
    let (received, manifest) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            // The daemon may be gone already (its client gave up): the journal has it.
            let _ = tell(&Verdict::of_error(&error));
            return Err(error);
        }
    };
    let mut status = RestoreStatus {
        state: RestoreState::Restoring,
        requested_by: received.requester.clone(),
        requested_at: clock::system().unix(),
        finished_at: None,
        backup_version: manifest.version.clone(),
        backup_created: manifest.created,
        error: None,
    };
    // Before the daemon hears yes, so that what it reads next is this restore.
    status_file::write(&status_path, &status)?;
    let verdict = Verdict::Accepted(Accepted {
        version: manifest.version.clone(),
        created: manifest.created,
        requested_at: status.requested_at,
    });
    if let Err(error) = tell(&verdict) {
        let error = Error::io("telling the daemon the archive was accepted")(error);
        return record(&status_path, &mut status, Err(error), false);
    }
    eprintln!(
        "restoring the backup of Lemur-HSM {} made at Unix time {}, asked by {:?} from {:?}",
        manifest.version, manifest.created, status.requested_by.user, status.requested_by.source
    );
    wait_for_hangup();
    // Past the verdict, the socket is no one's to write to: what is printed goes to the journal.
    let _ = rustix::stdio::dup2_stdout(std::io::stderr());
    let restored = std::fs::File::open(&received.archive.0)
        .map_err(Error::io(format!(
            "opening {}",
            received.archive.0.display()
        )))
        .and_then(|file| {
            restore_archive(
                config_path,
                options,
                services,
                Box::new(file),
                &received.passphrase,
            )
        });
    // The archive goes; the spool's lock stays until the outcome is recorded, so that no other
    // restore's `--abandoned` takes this one's `restoring` for a dead one.
    drop(received.archive);
    if let Err(error) = restored {
        return record(&status_path, &mut status, Err(error), false);
    }
    // Recorded before the services start: the restored daemon reads at its start that it was
    // restored, and records it in the audit log it serves.
    record(&status_path, &mut status, Ok(()), true)?;
    match start(services) {
        Ok(()) => Ok(()),
        failed => record(&status_path, &mut status, failed, true),
    }
}

/// Records how the restore ended, and returns that: failed (what was there put back), or
/// restored, with an error when the services did not start on it.
fn record(
    path: &Path,
    status: &mut RestoreStatus,
    outcome: Result<()>,
    restored: bool,
) -> Result<()> {
    status.finished_at = Some(clock::system().unix());
    status.state = if restored {
        RestoreState::Restored
    } else {
        RestoreState::Failed
    };
    status.error = outcome.as_ref().err().map(|error| {
        if restored {
            format!("restored, but the services did not start again on it: {error}")
        } else {
            error.to_string()
        }
    });
    status_file::write(path, status)?;
    outcome
}

/// `--abandoned`: after the service stopped (`ExecStopPost`), a restore still `restoring` did
/// not record its end (the service was killed, ran out of memory or time): it is recorded as
/// failed, and its archive removed. Only under the spool's lock: a refused restore's service
/// stops while the next request's is already receiving, and the archive and status are then
/// that one's.
pub fn abandoned(spool: &Path) -> Result<()> {
    let _lock = match lock(spool) {
        Ok(lock) => lock,
        Err(Error::Conflict(_)) => {
            eprintln!("another restore holds the spool: its archive and status are its own");
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    let _ = std::fs::remove_file(spool.join(ARCHIVE));
    let path = spool.join(RESTORE_STATUS_NAME);
    let Some(mut status) = status_file::read::<RestoreStatus>(&path)? else {
        return Ok(());
    };
    if status.state != RestoreState::Restoring {
        return Ok(());
    }
    let result = std::env::var("SERVICE_RESULT").unwrap_or_else(|_| "unknown".into());
    status.state = RestoreState::Failed;
    status.finished_at = Some(clock::system().unix());
    status.error = Some(format!(
        "the restore service stopped ({result}) before it recorded how the restore ended: see journalctl -u 'lemur-restore@*', and lemur appliance restore over ssh"
    ));
    status_file::write(&path, &status)
}

/// A conflict while any of `files` exists (an upgrade staged or on trial).
fn refuse_while(files: &[PathBuf]) -> Result<()> {
    match files.iter().find(|file| file.exists()) {
        Some(file) => Err(Error::Conflict(format!(
            "an upgrade is under way ({} exists): restore once it has passed or fallen back (GET /api/1/appliance/upgrade)",
            file.display()
        ))),
        None => Ok(()),
    }
}

/// The verdict, on the connection.
fn tell(verdict: &Verdict) -> std::io::Result<()> {
    let mut output = std::io::stdout().lock();
    output.write_all(verdict.line().as_bytes())?;
    output.flush()
}

/// The request as received: who asked, the passphrase, and the archive (kept while this lives,
/// under the spool's lock).
struct Received {
    requester: Requester,
    passphrase: Zeroizing<String>,
    archive: SpooledArchive,
    _lock: std::fs::File,
}

/// The archive in the spool, removed when dropped.
struct SpooledArchive(PathBuf);

impl Drop for SpooledArchive {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Reads the requester, the passphrase and the archive into the spool.
fn receive(input: &mut impl BufRead, spool: &Path) -> Result<Received> {
    let line = read_line(input, "the requester")?;
    let requester: Requester = serde_json::from_str(&line).map_err(|e| {
        Error::io("reading the request")(std::io::Error::other(format!(
            "the requester line is not this release's: {e}"
        )))
    })?;
    let passphrase = read_line(input, "the passphrase")?;
    let lock = lock(spool)?;
    // Under the lock: what is there is a dead restore's.
    let path = spool.join(ARCHIVE);
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(Error::io(format!("creating {}", path.display())))?;
    let archive = SpooledArchive(path);
    spool_into(input, &mut file, spool, &archive.0)?;
    Ok(Received {
        requester,
        passphrase,
        archive,
        _lock: lock,
    })
}

/// Copies the archive into `file`, leaving [`RESERVE`] free on the spool's file system.
fn spool_into(
    input: &mut impl Read,
    file: &mut std::fs::File,
    spool: &Path,
    path: &Path,
) -> Result<()> {
    let no_room = || {
        Error::InsufficientStorage(format!(
            "{} has no room for the archive (it keeps {} MiB free for the database): free space on the appliance's data partition, or give the appliance a larger disk (it grows into it at the next boot)",
            spool.display(),
            RESERVE >> 20
        ))
    };
    let failed = |error: std::io::Error| {
        if error.kind() == std::io::ErrorKind::StorageFull {
            no_room()
        } else {
            Error::io(format!("writing {}", path.display()))(error)
        }
    };
    let mut buffer = vec![0u8; 1 << 16];
    let (mut copied, mut next_look) = (0u64, 0u64);
    loop {
        if copied >= next_look {
            let stats = rustix::fs::statvfs(spool).map_err(|e| failed(e.into()))?;
            if stats.f_bavail.saturating_mul(stats.f_frsize) < RESERVE + ROOM_EVERY {
                return Err(no_room());
            }
            next_look = copied + ROOM_EVERY;
        }
        let read = input
            .read(&mut buffer)
            .map_err(Error::io("reading the archive from the daemon"))?;
        if read == 0 {
            break;
        }
        file.write_all(&buffer[..read]).map_err(failed)?;
        copied += read as u64;
    }
    file.sync_all().map_err(failed)
}

/// One line of at most [`MAX_LINE`] bytes, without its end, in zeroizing memory.
fn read_line(input: &mut impl BufRead, what: &str) -> Result<Zeroizing<String>> {
    // Room for the longest at once: a buffer that grew would leave a copy behind.
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_LINE + 1));
    input
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(Error::io(format!("reading {what}")))?;
    if line.pop() != Some(b'\n') {
        return Err(Error::io(format!("reading {what}"))(std::io::Error::other(
            format!("it is not one line of at most {MAX_LINE} bytes"),
        )));
    }
    let text = std::str::from_utf8(&line).map_err(|_| {
        Error::io(format!("reading {what}"))(std::io::Error::other("it is not UTF-8"))
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// The spool's lock: one restore at a time, whoever asks.
fn lock(spool: &Path) -> Result<std::fs::File> {
    lemur_core::files::ensure_private_dir(spool)?;
    let path = spool.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(Error::io(format!("opening {}", path.display())))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| Error::Conflict("another restore is under way; wait for it to end".into()))?;
    Ok(file)
}

/// What a check of the archive saw: every member read, nothing written.
struct Check<'a> {
    options: &'a RestoreOptions,
    state_members: usize,
}

impl Restore for Check<'_> {
    fn manifest(&mut self, manifest: &Manifest) -> Result<()> {
        check_manifest(self.options, manifest).map(|_| ())
    }

    fn secret(&mut self, _: &str, _: Zeroizing<Vec<u8>>) -> Result<()> {
        Ok(())
    }

    fn state(&mut self, _: &Path, _: &Kind, content: &mut dyn Read) -> Result<()> {
        self.state_members += 1;
        std::io::copy(content, &mut std::io::sink())
            .map(|_| ())
            .map_err(|e| Error::invalid("backup", format!("reading it: {e}")))
    }
}

/// Opens every chunk of the archive with the passphrase and reads every member, writing
/// nothing: what the restore would refuse, it refuses now.
fn check(options: &RestoreOptions, archive: &Path, passphrase: &str) -> Result<Manifest> {
    let file = std::fs::File::open(archive)
        .map_err(Error::io(format!("opening {}", archive.display())))?;
    let mut checking = Check {
        options,
        state_members: 0,
    };
    let manifest = backup::read(std::io::BufReader::new(file), passphrase, &mut checking)?;
    if checking.state_members == 0 {
        return Err(Error::invalid("backup", "it holds no state directory"));
    }
    Ok(manifest)
}

/// Waits until the daemon hangs up (once its answer has gone out), for [`HANGUP`] at most: the
/// restore stops it next. Its side was shut for writing already, so this watches for the whole
/// connection to close.
fn wait_for_hangup() {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdin = std::io::stdin();
    // No event asked for: poll comes back on the hang-up (always reported) or the timeout.
    let mut watched = [PollFd::new(&stdin, PollFlags::empty())];
    let timeout = Timespec::try_from(HANGUP).ok();
    while let Err(rustix::io::Errno::INTR) = poll(&mut watched, timeout.as_ref()) {}
}
