//! Root's side of a restore asked through the API (`lemur restore --served DIR`, run by
//! `lemur-restore@.service` with the daemon's connection as standard input and output; the
//! daemon's side and the exchange are in `lemur_core::backup::api_restore`).
//!
//! The archive is kept in DIR (root's, on the data partition) rather than restored as it comes:
//! a restore stops the daemon that sends it, so the whole archive is here and checked, every
//! chunk opened with the passphrase, before the daemon hears it is accepted and before anything
//! is stopped. The restore itself is the one `lemur restore` runs, from that file.

use super::backup::{RestoreOptions, check_manifest, restore_archive};
use lemur_core::backup::api_restore::{MAX_LINE, Requester, RestoreState, RestoreStatus, Verdict};
use lemur_core::backup::{self, Kind, Manifest, Restore};
use lemur_core::{Error, Result, clock};
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

/// The archive's name in the spool.
const ARCHIVE: &str = "archive.lemur";
/// The status's name in the spool (`[backups] restore_status`).
const STATUS: &str = "status.json";
/// How long the daemon has to answer its client and hang up once it has the verdict.
const HANGUP: Duration = Duration::from_secs(30);

/// Serves one restore on standard input and output, keeping the archive in `spool`.
pub fn serve(
    config_path: &Path,
    options: &RestoreOptions,
    spool: &Path,
    services: &[&str],
) -> Result<()> {
    let mut input = std::io::BufReader::new(std::io::stdin().lock());
    let mut output = std::io::stdout().lock();
    let archive = spool.join(ARCHIVE);
    let checked = receive(&mut input, spool, &archive).and_then(|(requester, passphrase, lock)| {
        let manifest = check(options, &archive, &passphrase)?;
        Ok((requester, passphrase, lock, manifest))
    });
    let verdict = match &checked {
        Ok((.., manifest)) => Verdict::Accepted {
            version: manifest.version.clone(),
            created: manifest.created,
        },
        Err(error) => Verdict::of_error(error),
    };
    // The daemon may have gone (its client gave up): the restore still needs its answer heard,
    // so it goes on only if the verdict was delivered.
    let told = output
        .write_all(verdict.line().as_bytes())
        .and_then(|()| output.flush());
    let (requester, passphrase, _lock, manifest) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            let _ = std::fs::remove_file(&archive);
            return Err(error);
        }
    };
    if let Err(error) = told {
        let _ = std::fs::remove_file(&archive);
        return Err(Error::io("telling the daemon the archive was accepted")(
            error,
        ));
    }
    wait_for_hangup(&mut input);
    eprintln!(
        "restoring the backup of Lemur-HSM {} made at Unix time {}, asked by {} from {}",
        manifest.version, manifest.created, requester.user, requester.source
    );
    let mut status = RestoreStatus {
        state: RestoreState::Restoring,
        requested_by: requester,
        requested_at: clock::system().unix(),
        finished_at: None,
        backup_version: manifest.version,
        backup_created: manifest.created,
        error: None,
    };
    let status_path = spool.join(STATUS);
    lemur_core::status_file::write(&status_path, &status)?;
    let restored = std::fs::File::open(&archive)
        .map_err(Error::io(format!("opening {}", archive.display())))
        .and_then(|file| {
            restore_archive(config_path, options, services, Box::new(file), &passphrase)
        });
    let _ = std::fs::remove_file(&archive);
    status.finished_at = Some(clock::system().unix());
    status.state = match &restored {
        Ok(_) => RestoreState::Restored,
        Err(_) => RestoreState::Failed,
    };
    status.error = restored.as_ref().err().map(ToString::to_string);
    lemur_core::status_file::write(&status_path, &status)?;
    restored.map(|_| ())
}

/// Reads the requester, the passphrase and the archive (into `archive`, under the spool's lock,
/// which is held until the restore ends).
fn receive(
    input: &mut impl BufRead,
    spool: &Path,
    archive: &Path,
) -> Result<(Requester, Zeroizing<String>, std::fs::File)> {
    let line = read_line(input, "the requester")?;
    let requester: Requester = serde_json::from_str(&line).map_err(|e| {
        Error::io("reading the request")(std::io::Error::other(format!(
            "the requester line is not this release's: {e}"
        )))
    })?;
    let passphrase = read_line(input, "the passphrase")?;
    let lock = lock(spool)?;
    let _ = std::fs::remove_file(archive);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(archive)
        .map_err(Error::io(format!("creating {}", archive.display())))?;
    let full = |error: std::io::Error| {
        if error.kind() == std::io::ErrorKind::StorageFull {
            Error::InsufficientStorage(format!(
                "{} has no room for the archive: free space on the appliance's data partition, or give the appliance a larger disk (it grows into it at the next boot)",
                spool.display()
            ))
        } else {
            Error::io(format!("writing {}", archive.display()))(error)
        }
    };
    std::io::copy(input, &mut file).map_err(&full)?;
    file.sync_all().map_err(full)?;
    Ok((requester, passphrase, lock))
}

/// One line of at most [`MAX_LINE`] bytes, without its end, in zeroizing memory.
fn read_line(input: &mut impl BufRead, what: &str) -> Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(Vec::new());
    input
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(Error::io(format!("reading {what}")))?;
    if line.pop() != Some(b'\n') {
        return Err(Error::io(format!("reading {what}"))(std::io::Error::other(
            "it is not one line of at most 1024 bytes",
        )));
    }
    let text =
        std::str::from_utf8(&line).map_err(|_| Error::invalid("passphrase", "is not UTF-8"))?;
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

/// Opens every chunk of the archive with the passphrase and reads every member, writing
/// nothing: what the restore would refuse, it refuses now.
fn check(options: &RestoreOptions, archive: &Path, passphrase: &str) -> Result<Manifest> {
    struct Check<'a>(&'a RestoreOptions, usize);
    impl Restore for Check<'_> {
        fn manifest(&mut self, manifest: &Manifest) -> Result<()> {
            check_manifest(self.0, manifest).map(|_| ())
        }
        fn secret(&mut self, _: &str, _: Zeroizing<Vec<u8>>) -> Result<()> {
            Ok(())
        }
        fn state(&mut self, _: &Path, _: &Kind, content: &mut dyn Read) -> Result<()> {
            self.1 += 1;
            std::io::copy(content, &mut std::io::sink())
                .map(|_| ())
                .map_err(|e| Error::invalid("backup", format!("reading it: {e}")))
        }
    }
    let file = std::fs::File::open(archive)
        .map_err(Error::io(format!("opening {}", archive.display())))?;
    let mut checking = Check(options, 0);
    let manifest = backup::read(std::io::BufReader::new(file), passphrase, &mut checking)?;
    if checking.1 == 0 {
        return Err(Error::invalid("backup", "it holds no state directory"));
    }
    Ok(manifest)
}

/// Waits until the daemon hangs up (it has answered its client), for [`HANGUP`] at most: the
/// restore stops it next.
fn wait_for_hangup(input: &mut impl Read) {
    let deadline = std::time::Instant::now() + HANGUP;
    let stdin = std::io::stdin();
    let _ = rustix::net::sockopt::set_socket_timeout(
        &stdin,
        rustix::net::sockopt::Timeout::Recv,
        Some(HANGUP),
    );
    let mut buffer = [0u8; 512];
    while std::time::Instant::now() < deadline {
        match input.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
