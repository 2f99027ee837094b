//! Restores through the API (`POST /api/1/appliance/restore`) on the appliance. A restore
//! replaces the daemon that receives it, and needs root (the credentials, the state directory
//! moved aside), so the daemon only passes the archive on: to root's restore service
//! (`lemur-restore.socket`, one `lemur appliance restore --served` per connection), which keeps
//! it in a spool of its own, checks it whole with the passphrase, and answers with a
//! [`Verdict`]. Only a checked archive is accepted (`202`); the service then waits for the daemon
//! to hang up, which it does once its answer has gone out ([`Hangup`]), stops the daemon and
//! nginx, restores, starts them again and records the outcome in its [`RestoreStatus`] file,
//! which the restored (or, after a failure, the same) daemon serves at
//! `GET /api/1/appliance/restore`.
//!
//! On the socket the daemon sends one line of JSON (the [`Requester`], for the status and the
//! journal), the passphrase on one line, then the archive until it shuts its side down; the
//! service answers the [`Verdict`] as one line of JSON. An upload that breaks off is an archive
//! cut short, which the sealed format tells from a whole one: the check refuses it.
//!
//! Whoever runs as the daemon's user can ask for a restore of an archive of their own: the
//! service trusts the socket's group, as the backup service does. What that gives such a process
//! (nothing it does not already own: the state directory is theirs) is in SECURITY.md.

use super::service::OneAtATime;
use crate::App;
use crate::error::{Error, Result};
use crate::model::LogEntry;
use crate::policy::{Action, Subject, authorize};
use serde::{Deserialize, Serialize};
use std::sync::atomic::AtomicBool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The longest line the service reads before the archive (the requester, the passphrase): as
/// long a passphrase as `lemur backup` reads from a file.
pub const MAX_LINE: usize = 4096;
/// The longest user name or source address passed on (the rest is cut).
const MAX_REQUESTER_FIELD: usize = 256;
/// The longest verdict the daemon reads.
const MAX_VERDICT: u64 = 4 << 10;

/// Who asked, as the daemon saw them: for the status and the journal only (the service cannot
/// check it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Requester {
    /// The user's login name.
    pub user: String,
    /// Where the request came from.
    pub source: String,
}

/// The service's answer once it has the whole archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum Verdict {
    /// Checked whole: it will be restored once the daemon hangs up.
    Accepted(Accepted),
    /// The request's fault: `field` (`passphrase` or `archive`) and why.
    Refused {
        /// The request's field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The spool's file system has no room for the archive.
    NoRoom {
        /// What to do.
        reason: String,
    },
    /// Another restore is under way.
    Busy {
        /// Which.
        reason: String,
    },
    /// The service failed.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A restore the service accepted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The release that made the backup.
    pub version: String,
    /// When it was made (Unix seconds).
    pub created: i64,
    /// When the service accepted it (Unix seconds), as its status says.
    pub requested_at: i64,
}

impl Verdict {
    /// The verdict a check's error gives: a request's field is the client's to fix (the
    /// passphrase, or else the archive: of a newer release, another state directory, without
    /// the credentials an appliance's holds), a full file system the operator's, the rest the
    /// service's.
    pub fn of_error(error: &Error) -> Self {
        match error {
            Error::Validation { field, reason } => Verdict::Refused {
                field: if field == "passphrase" {
                    field.clone()
                } else {
                    "archive".into()
                },
                reason: reason.clone(),
            },
            Error::InsufficientStorage(reason) => Verdict::NoRoom {
                reason: reason.clone(),
            },
            Error::Conflict(reason) => Verdict::Busy {
                reason: reason.clone(),
            },
            other => Verdict::Failed {
                reason: other.to_string(),
            },
        }
    }

    /// The acceptance, or the error answer it stands for.
    pub fn accepted(self) -> Result<Accepted> {
        match self {
            Verdict::Accepted(accepted) => Ok(accepted),
            Verdict::Refused { field, reason } => Err(Error::Validation { field, reason }),
            Verdict::NoRoom { reason } => Err(Error::InsufficientStorage(reason)),
            Verdict::Busy { reason } => Err(Error::Conflict(reason)),
            Verdict::Failed { reason } => Err(Error::ServiceUnavailable(format!(
                "the restore service failed: {reason}; see journalctl -u 'lemur-restore@*'"
            ))),
        }
    }

    /// One line of JSON.
    pub fn line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"outcome":"failed","reason":"the verdict did not serialize"}"#.into()
        });
        line.push('\n');
        line
    }
}

/// What the status file says of the last restore asked through the API.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RestoreState {
    /// Checked and accepted; the services are being stopped and the archive restored.
    Restoring,
    /// Restored; the daemon and nginx started again on it (or, with an error, did not).
    Restored,
    /// Failed: what was there was put back (see `error`).
    Failed,
}

/// The status file root's restore service writes (`[backups] restore_status`), readable by the
/// daemon's group. Unknown fields are allowed: a restore may bring back an earlier release's
/// daemon, which reads what a later one's service wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RestoreStatus {
    /// Where it stands.
    pub state: RestoreState,
    /// Who asked, as the daemon said.
    pub requested_by: Requester,
    /// When it was accepted (Unix seconds).
    pub requested_at: i64,
    /// When it ended (Unix seconds), once it has.
    pub finished_at: Option<i64>,
    /// The release that made the backup.
    pub backup_version: String,
    /// When the backup was made (Unix seconds).
    pub backup_created: i64,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// The status of the last restore through the API, for an administrator; `None` when there was
/// none.
pub async fn status(app: &App, subject: &Subject) -> Result<Option<RestoreStatus>> {
    authorize(subject, Action::RestoreAppliance)?;
    let path = config(app)?.restore_status;
    tokio::task::spawn_blocking(move || crate::status_file::read(&path))
        .await
        .map_err(Error::task("reading the restore status"))?
}

/// The marker, in the state directory, of the last restore [`audit_restored`] recorded: its
/// acceptance time.
const RESTORE_AUDITED: &str = "restore-audited";

/// Records in the audit log of a restored appliance the restore that brought it back, once: the
/// request was audited (see [`start`]) in the database the restore then replaced, which root
/// keeps aside, so without this the log the appliance now serves would not show the change that
/// made it what it is. At the daemon's start; a restore that failed left the old database, which
/// holds its request, and needs nothing. Recorded before the marker is written: a daemon
/// stopped between the two records it twice rather than never.
pub async fn audit_restored(app: &App) -> Result<()> {
    let Some(backups) = app.config.backups.clone() else {
        return Ok(());
    };
    let marker = app.config.state_dir.join(RESTORE_AUDITED);
    let read_from = marker.clone();
    let (status, recorded) = tokio::task::spawn_blocking(move || {
        let status = crate::status_file::read::<RestoreStatus>(&backups.restore_status)?;
        let recorded = std::fs::read_to_string(&read_from).ok();
        Ok::<_, Error>((status, recorded))
    })
    .await
    .map_err(Error::task("reading the restore status"))??;
    let Some(status) = status.filter(|status| status.state == RestoreState::Restored) else {
        return Ok(());
    };
    let requested_at = status.requested_at.to_string();
    if recorded.as_deref().map(str::trim) == Some(requested_at.as_str()) {
        return Ok(());
    }
    let details = format!(
        "appliance restored from a backup of release {} made at {}, asked through the API by {} at {}{}",
        status.backup_version,
        timestamp(status.backup_created),
        status.requested_by.user,
        timestamp(status.requested_at),
        status
            .error
            .as_deref()
            .map(|error| format!("; then: {error}"))
            .unwrap_or_default(),
    );
    let log = LogEntry {
        certificate_id: None,
        log_type: "appliance_restored",
        // The account of that name in the restored database may be someone else's: the login
        // is in the details.
        user_id: None,
        source_address: Some(status.requested_by.source.as_str()),
        details: &details,
    };
    app.store
        .log(&log, status.finished_at.unwrap_or(status.requested_at))
        .await?;
    tokio::task::spawn_blocking(move || {
        crate::files::replace_private(&marker, requested_at.as_bytes(), None)
    })
    .await
    .map_err(Error::task("marking the restore audited"))??;
    log::info!("audited the restore that brought this appliance back");
    Ok(())
}

/// Unix seconds as RFC 3339 (the number itself when it is out of range).
fn timestamp(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// One restore upload at a time from this daemon, refused here before a second archive is sent
/// (the service's own lock answers a second one from anywhere, but only once it is sent).
static RESTORING: AtomicBool = AtomicBool::new(false);

/// An archive on its way to root's restore service.
pub struct Upload {
    stream: tokio::io::BufReader<UnixStream>,
    /// Held until the upload ends or is dropped.
    _busy: OneAtATime,
}

fn config(app: &App) -> Result<crate::config::BackupsConfig> {
    app.config.backups.clone().ok_or_else(|| {
        Error::Conflict(
            "this daemon's configuration has no [backups]: restore with lemur restore (on the appliance, lemur appliance restore over ssh)".into(),
        )
    })
}

/// Refuses, before its form is read, a restore `subject` may not ask for (administrators only)
/// or that this daemon cannot pass on (no `[backups]`: not an appliance).
pub fn check_allowed(app: &App, subject: &Subject) -> Result<()> {
    authorize(subject, Action::RestoreAppliance)?;
    config(app).map(|_| ())
}

/// Opens a restore for `subject` (an administrator) with `passphrase`: the archive follows
/// through [`Upload::write`]. Audited here, before the archive reaches the service.
pub async fn start(app: &App, subject: &Subject, passphrase: &str) -> Result<Upload> {
    authorize(subject, Action::RestoreAppliance)?;
    let config = config(app)?;
    // As `lemur backup` reads a passphrase file: its first line, without the line's end.
    let passphrase = passphrase
        .strip_suffix('\n')
        .map_or(passphrase, |line| line.strip_suffix('\r').unwrap_or(line));
    if passphrase.is_empty() || passphrase.len() > MAX_LINE || passphrase.contains(['\n', '\r']) {
        return Err(Error::invalid(
            "passphrase",
            format!(
                "must be the backup's passphrase: 1 to {MAX_LINE} bytes, without a line break inside"
            ),
        ));
    }
    let busy = OneAtATime::take(
        &RESTORING,
        "a restore is being uploaded; wait for it to finish",
    )?;
    let stream = UnixStream::connect(&config.restore_socket)
        .await
        .map_err(|e| {
            Error::ServiceUnavailable(format!(
                "the restore service ({}) does not answer: {e}",
                config.restore_socket.display()
            ))
        })?;
    let cut = |text: &str| text.chars().take(MAX_REQUESTER_FIELD).collect::<String>();
    let requester = Requester {
        user: cut(match subject {
            Subject::User(user) => &user.user.username,
            Subject::System(job) => job,
        }),
        source: cut(subject.source().unwrap_or_default()),
    };
    let requester = serde_json::to_vec(&requester)
        .map_err(|e| Error::io("sending the requester")(std::io::Error::other(e)))?;
    // Room for all of it at once: a buffer that grew would leave a copy of the passphrase.
    let mut lines =
        zeroize::Zeroizing::new(Vec::with_capacity(requester.len() + passphrase.len() + 2));
    lines.extend_from_slice(&requester);
    lines.push(b'\n');
    lines.extend_from_slice(passphrase.as_bytes());
    lines.push(b'\n');
    let mut upload = Upload {
        stream: tokio::io::BufReader::new(stream),
        _busy: busy,
    };
    upload.write(&lines).await?;
    let log = LogEntry {
        certificate_id: None,
        log_type: "appliance_restore",
        user_id: subject.user_id(),
        source_address: subject.source(),
        details: "restore of the appliance from a backup asked through the API",
    };
    app.store.log(&log, app.clock.unix()).await?;
    Ok(upload)
}

impl Upload {
    /// Passes the next part of the archive on. When the service stopped reading (it refused
    /// the archive part way, say for room), its verdict is the error.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        if let Err(error) = self.stream.get_mut().write_all(chunk).await {
            return match self.verdict().await {
                Ok(Verdict::Accepted(_)) | Err(_) => {
                    Err(service_broke("passing the archive on")(error))
                }
                Ok(refused) => refused.accepted().map(|_| ()),
            };
        }
        Ok(())
    }

    /// The archive is whole: the service checks it and answers. When it accepted, the
    /// restore's details, and the [`Hangup`] to drop once the answer has gone out: the service
    /// stops this daemon only then.
    pub async fn finish(mut self) -> Result<(Accepted, Hangup)> {
        self.stream
            .get_mut()
            .shutdown()
            .await
            .map_err(service_broke("ending the archive"))?;
        let accepted = self.verdict().await?.accepted()?;
        Ok((accepted, Hangup { _connection: self }))
    }

    async fn verdict(&mut self) -> Result<Verdict> {
        let mut line = String::new();
        tokio::io::AsyncReadExt::take(&mut self.stream, MAX_VERDICT)
            .read_line(&mut line)
            .await
            .map_err(service_broke("reading its verdict"))?;
        serde_json::from_str(&line).map_err(|_| {
            Error::ServiceUnavailable(format!(
                "the restore service broke off without a verdict{}; see journalctl -u 'lemur-restore@*'",
                if line.is_empty() { "" } else { " it could read" }
            ))
        })
    }
}

/// The connection to the restore service after it accepted: dropping it hangs up, and the
/// service goes on to stop this daemon. Held by the answer until it has been sent.
pub struct Hangup {
    _connection: Upload,
}

fn service_broke(doing: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::ServiceUnavailable(format!("the restore service broke off while {doing}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_one_line_and_read_back() {
        let verdicts = [
            Verdict::Accepted(Accepted {
                version: "1.2.3".into(),
                created: 1_700_000_000,
                requested_at: 1_700_000_100,
            }),
            Verdict::of_error(&Error::invalid("backup", "it is cut short")),
            Verdict::of_error(&Error::InsufficientStorage("no room".into())),
            Verdict::of_error(&Error::Conflict("busy".into())),
        ];
        for verdict in verdicts {
            let line = verdict.line();
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            assert_eq!(serde_json::from_str::<Verdict>(&line).unwrap(), verdict);
        }
        for (field, answered) in [
            ("backup", "archive"),
            ("--state-dir", "archive"),
            ("passphrase", "passphrase"),
        ] {
            assert!(matches!(
                Verdict::of_error(&Error::invalid(field, "refused")).accepted(),
                Err(Error::Validation { field, .. }) if field == answered
            ));
        }
    }
}
