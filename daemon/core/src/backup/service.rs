//! Backups through the API (`POST /api/1/appliance/backup`) on the appliance. The daemon holds
//! neither the credentials a backup carries (the HSM's SO PIN, the admin's first password) nor
//! the right to read them: root's backup service does (`lemur-backup.socket`, one
//! `lemur appliance backup --framed` per connection). The daemon sends it the passphrase over
//! the socket and passes on the archive it streams back, as frames that end with the service's
//! verdict, so a backup that fails part way is never handed out as whole: the response is cut
//! off instead, and the client sees a broken download. Only failures before the archive's
//! first bytes (the credentials, the passphrase's key) become an error answer; the rest (the
//! state, the database's snapshot) come after the answer has begun.
//!
//! Whoever runs as the daemon's user can ask for a backup under a passphrase of their own: the
//! service trusts the socket's group. SECURITY.md says what that gives such a process.
//!
//! A frame is a 4-byte big-endian length and that many bytes of the archive; a length of 0 ends
//! the stream and is followed by the verdict as text, `ok` or `error: <why>`, until the end.

use crate::App;
use crate::error::{Error, Result};
use crate::model::LogEntry;
use crate::policy::{Action, Subject, authorize};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The largest frame: what one write of the backup hands over, well above its chunk size.
const MAX_FRAME: usize = 1 << 20;
/// The longest verdict read.
const MAX_VERDICT: u64 = 4 << 10;

/// Writes everything written to it as data frames to `out`, each flushed at once.
pub struct FrameWriter<W: Write> {
    out: W,
}

impl<W: Write> FrameWriter<W> {
    /// Frames onto `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Ends the stream with `verdict`: `Ok` for a whole archive, else why not.
    pub fn end(mut self, verdict: &std::result::Result<(), String>) -> std::io::Result<()> {
        let text = match verdict {
            Ok(()) => "ok".to_owned(),
            Err(why) => format!("error: {why}"),
        };
        self.out.write_all(&0u32.to_be_bytes())?;
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}

impl<W: Write> Write for FrameWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let length = buf.len().min(MAX_FRAME);
        if length == 0 {
            return Ok(0);
        }
        let header = u32::try_from(length).map_err(std::io::Error::other)?;
        self.out.write_all(&header.to_be_bytes())?;
        self.out.write_all(&buf[..length])?;
        self.out.flush()?;
        Ok(length)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// An archive coming from the backup service, chunk by chunk.
pub struct Download {
    stream: UnixStream,
    /// The first chunk, read before the request was answered.
    first: Option<Vec<u8>>,
    /// Held until the download ends or is dropped.
    _busy: OneAtATime,
}

/// One backup at a time from this daemon (the service takes one connection at a time, and
/// turns a second away without a word).
static BACKING_UP: AtomicBool = AtomicBool::new(false);

/// A claim on one of the flags that keep a root service to one request at a time from this
/// daemon, given back when dropped.
pub(super) struct OneAtATime(&'static AtomicBool);

impl OneAtATime {
    /// Claims `flag`; a conflict (409) saying `busy` when it is taken.
    pub(super) fn take(flag: &'static AtomicBool, busy: &str) -> Result<Self> {
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| OneAtATime(flag))
            .map_err(|_| Error::Conflict(busy.into()))
    }
}

impl Drop for OneAtATime {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Asks root's backup service for an archive sealed under `passphrase`, as `subject` (an
/// administrator), one at a time, and reads its first chunk, so a backup refused at once is an
/// error answer rather than a broken download.
pub async fn start(app: &App, subject: &Subject, passphrase: &str) -> Result<Download> {
    authorize(subject, Action::BackupAppliance)?;
    let config = app.config.backups.clone().ok_or_else(|| {
        Error::Conflict(
            "this daemon's configuration has no [backups]: back up with lemur backup (on the appliance, lemur appliance backup over ssh)".into(),
        )
    })?;
    if passphrase.chars().count() < super::MIN_PASSPHRASE {
        return Err(Error::invalid(
            "passphrase",
            format!(
                "is shorter than {} characters: it is all that guards the keys in the archive",
                super::MIN_PASSPHRASE
            ),
        ));
    }
    if passphrase.contains(['\n', '\r']) {
        return Err(Error::invalid("passphrase", "must be one line"));
    }
    let busy = OneAtATime::take(&BACKING_UP, "a backup is being made; wait for it to finish")?;
    let mut stream = UnixStream::connect(&config.socket).await.map_err(|e| {
        Error::ServiceUnavailable(format!(
            "the backup service ({}) does not answer: {e}",
            config.socket.display()
        ))
    })?;
    let mut line = zeroize::Zeroizing::new(Vec::with_capacity(passphrase.len() + 1));
    line.extend_from_slice(passphrase.as_bytes());
    line.push(b'\n');
    stream
        .write_all(&line)
        .await
        .map_err(service_broke("sending the passphrase"))?;
    stream
        .shutdown()
        .await
        .map_err(service_broke("sending the passphrase"))?;
    let log = LogEntry {
        certificate_id: None,
        log_type: "appliance_backup",
        user_id: subject.user_id(),
        source_address: subject.source(),
        details: "backup of the appliance requested through the API",
    };
    app.store.log(&log, app.clock.unix()).await?;
    let mut download = Download {
        stream,
        first: None,
        _busy: busy,
    };
    download.first = download.next_chunk().await?;
    Ok(download)
}

impl Download {
    /// The next chunk of the archive; `None` once the service said it is whole. An error when
    /// the service failed or broke off: the archive is then incomplete.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        let mut header = [0u8; 4];
        self.stream
            .read_exact(&mut header)
            .await
            .map_err(service_broke("reading the archive"))?;
        let length = u32::from_be_bytes(header) as usize;
        if length == 0 {
            return self.verdict().await.map(|()| None);
        }
        if length > MAX_FRAME {
            return Err(Error::ServiceUnavailable(format!(
                "the backup service sent a frame of {length} bytes; it is not this release's"
            )));
        }
        let mut chunk = vec![0; length];
        self.stream
            .read_exact(&mut chunk)
            .await
            .map_err(service_broke("reading the archive"))?;
        Ok(Some(chunk))
    }

    async fn verdict(&mut self) -> Result<()> {
        let mut text = String::new();
        (&mut self.stream)
            .take(MAX_VERDICT)
            .read_to_string(&mut text)
            .await
            .map_err(service_broke("reading the backup's outcome"))?;
        match text.trim() {
            "ok" => Ok(()),
            other => Err(Error::ServiceUnavailable(format!(
                "the backup failed: {}; see journalctl -u 'lemur-backup@*'",
                other.strip_prefix("error: ").unwrap_or(other)
            ))),
        }
    }
}

fn service_broke(doing: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::ServiceUnavailable(format!("the backup service broke off while {doing}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_bytes_and_end_with_the_verdict() {
        let mut bytes = Vec::new();
        let mut framed = FrameWriter::new(&mut bytes);
        framed.write_all(b"archive").unwrap();
        framed.write_all(b"").unwrap();
        framed.end(&Err("no room".into())).unwrap();
        assert_eq!(&bytes[..4], &7u32.to_be_bytes());
        assert_eq!(&bytes[4..11], b"archive");
        assert_eq!(&bytes[11..15], &0u32.to_be_bytes());
        assert_eq!(&bytes[15..], b"error: no room");
    }
}
