//! The expiration scan: the certificates inside their expiration notification windows, owner by
//! owner, read page by page so a million-certificate inventory is scanned in bounded memory.
//! `lemur notify expirations` consumes it; notification plugins will deliver what it finds.

use crate::App;
use crate::error::Result;
use crate::model::ExpiringCertificate;
use crate::policy::{Action, Subject, authorize};

/// Lemur's default notification intervals: a certificate is announced 30, 15 and 2 days before
/// it expires (`LEMUR_DEFAULT_EXPIRATION_NOTIFICATION_INTERVALS`).
pub const DEFAULT_INTERVALS_DAYS: [i64; 3] = [30, 15, 2];

/// Certificates read per query.
const PAGE: i64 = 1_000;

const DAY: i64 = 86_400;

/// What a scan found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Owners with at least one certificate to announce.
    pub owners: usize,
    /// Certificates to announce.
    pub certificates: usize,
}

/// The windows of `intervals_days` from `now`: the day that starts `days` days from now, as
/// Lemur counts whole days to expiry.
pub fn windows(now: i64, intervals_days: &[i64]) -> Vec<(i64, i64)> {
    intervals_days
        .iter()
        .map(|days| (now + days * DAY, now + (days + 1) * DAY))
        .collect()
}

/// Calls `owner_done` with each owner and their certificates inside `windows`, owners in
/// order, skipping certificates whose CN contains any of `exclude_cn` (Lemur's
/// `EXCLUDE_CN_FROM_NOTIFICATION`). Holds one owner's certificates and one page at a time.
pub async fn scan(
    app: &App,
    subject: &Subject,
    windows: &[(i64, i64)],
    exclude_cn: &[String],
    mut owner_done: impl FnMut(&str, &[ExpiringCertificate]),
) -> Result<ScanSummary> {
    authorize(subject, Action::ScanExpirations)?;
    let mut summary = ScanSummary::default();
    let mut current: Vec<ExpiringCertificate> = Vec::new();
    let mut after: Option<(String, i64)> = None;
    loop {
        let position = after.as_ref().map(|(owner, id)| (owner.as_str(), *id));
        let page = app
            .store
            .expiring_certificates(windows, position, PAGE)
            .await?;
        let full = i64::try_from(page.len()).ok() == Some(PAGE);
        after = page.last().map(|last| (last.owner.clone(), last.id));
        for certificate in page {
            if current
                .first()
                .is_some_and(|first| first.owner != certificate.owner)
            {
                finish(&mut current, &mut summary, &mut owner_done);
            }
            if !exclude_cn
                .iter()
                .any(|cn| certificate.cn.contains(cn.as_str()))
            {
                current.push(certificate);
            }
        }
        if !full {
            break;
        }
    }
    finish(&mut current, &mut summary, &mut owner_done);
    Ok(summary)
}

fn finish(
    current: &mut Vec<ExpiringCertificate>,
    summary: &mut ScanSummary,
    owner_done: &mut impl FnMut(&str, &[ExpiringCertificate]),
) {
    if let Some(first) = current.first() {
        summary.owners += 1;
        summary.certificates += current.len();
        owner_done(&first.owner.clone(), current);
    }
    current.clear();
}
