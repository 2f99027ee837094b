//! Logging: to journald when started by systemd, else to stderr.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    /// Formats the line first and writes it whole: `eprintln!` writes each piece of the format
    /// as a system call of its own (stderr is unbuffered), a dozen for an access line.
    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("lemur[{}]: {}\n", record.level(), record.args());
            // Nowhere to report a failure to write the log.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

static STDERR: Stderr = Stderr;

/// Installs the logger once; `LEMUR_LOG` (error, warn, info, debug) sets the level.
pub fn init() {
    let level = std::env::var("LEMUR_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(LevelFilter::Info);
    let journal = systemd_journal_logger::connected_to_journal()
        .then(|| systemd_journal_logger::JournalLog::new().ok())
        .flatten();
    let installed = match journal {
        Some(journal) => journal.with_syslog_identifier("lemur".into()).install(),
        None => log::set_logger(&STDERR),
    };
    if installed.is_ok() {
        log::set_max_level(level);
    }
}
