//! `lemur notify expirations`: the certificates inside their expiration notification windows,
//! owner by owner. Notification plugins (e-mail, Slack...) are not in this build yet, so the
//! command reports who would be told (`--dry-run`) and refuses to pretend it told anyone.

use super::users::{CLI, open};
use lemur_core::expirations::{self, DEFAULT_INTERVALS_DAYS};
use lemur_core::model::ExpiringCertificate;
use lemur_core::{Error, Result};
use std::path::Path;
use std::time::Instant;

/// Names listed per owner before "and N more".
const NAMES_SHOWN: usize = 5;

/// `lemur notify expirations [--exclude CN]... --dry-run`.
pub async fn expirations(config_path: &Path, exclude_cn: &[String], dry_run: bool) -> Result<()> {
    if !dry_run {
        return Err(Error::invalid(
            "--dry-run",
            "no notification plugin is installed in this build yet, so nothing can be sent; \
             run `lemur notify expirations --dry-run` to list who would be told",
        ));
    }
    let (app, _) = open(config_path).await?;
    let started = Instant::now();
    let windows = expirations::windows(app.clock.unix(), &DEFAULT_INTERVALS_DAYS);
    let summary = expirations::scan(&app, &CLI, &windows, exclude_cn, print_owner).await?;
    app.store.close().await;
    println!(
        "{} certificates of {} owners are inside their notification windows ({} days before expiry); scanned in {} ms",
        summary.certificates,
        summary.owners,
        DEFAULT_INTERVALS_DAYS
            .map(|days| days.to_string())
            .join(", "),
        started.elapsed().as_millis()
    );
    Ok(())
}

fn print_owner(owner: &str, certificates: &[ExpiringCertificate]) {
    let mut names: Vec<&str> = certificates
        .iter()
        .take(NAMES_SHOWN)
        .map(|certificate| certificate.name.as_str())
        .collect();
    let more = certificates.len().saturating_sub(NAMES_SHOWN);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    names.sort_unstable();
    println!(
        "{owner}: {} certificate(s): {}{more}",
        certificates.len(),
        names.join(", ")
    );
}
