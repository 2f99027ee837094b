//! The certificate statistics by time that the web UI's dashboard plots, beside Lemur's four
//! (`GET /certificates/stats?metric=...`): how many expire soon, per week for the next year,
//! and how many entered the inventory per day.
//!
//! Each is one or two indexed range scans, counted by span in the database: a million
//! certificates are not read to draw a chart.

use crate::App;
use crate::error::Result;
use crate::model::{Histogram, StatsLabel, TimeField, Visibility};
use time::OffsetDateTime;

const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;

/// The horizons of `expiring`, in days.
pub const EXPIRING_WITHIN: [i64; 3] = [7, 30, 90];
/// Weeks in `expires_per_week`: a year, and the week it ends in.
pub const WEEKS: i64 = 53;
/// Days in `issued_per_day`, today the last.
pub const DAYS: i64 = 30;

/// The metrics this module answers, by their names in the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeMetric {
    /// How many unrevoked certificates expire within 7, 30 and 90 days (labels: the days).
    Expiring,
    /// How many unrevoked certificates expire in each week from now, for a year (labels: the
    /// weeks' first days).
    ExpiresPerWeek,
    /// How many certificates entered the inventory on each of the last 30 days, UTC (labels:
    /// the days).
    IssuedPerDay,
}

impl TimeMetric {
    /// The metric `name` names, if it is one of these.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "expiring" => Some(Self::Expiring),
            "expires_per_week" => Some(Self::ExpiresPerWeek),
            "issued_per_day" => Some(Self::IssuedPerDay),
            _ => None,
        }
    }
}

/// `metric` over the certificates `visible`, each label with its count, at `app`'s clock.
pub async fn count(
    app: &App,
    metric: TimeMetric,
    visible: &Visibility,
) -> Result<Vec<(StatsLabel, i64)>> {
    let now = app.clock.unix();
    match metric {
        TimeMetric::Expiring => {
            let longest = EXPIRING_WITHIN[EXPIRING_WITHIN.len() - 1];
            let days = app
                .store
                .certificate_histogram(expiring(now, DAY, longest), visible)
                .await?;
            Ok(EXPIRING_WITHIN
                .iter()
                .map(|&within| {
                    let take = usize::try_from(within).unwrap_or(0);
                    (StatsLabel::Int(within), days.iter().take(take).sum())
                })
                .collect())
        }
        TimeMetric::ExpiresPerWeek => {
            let weeks = app
                .store
                .certificate_histogram(expiring(now, WEEK, WEEKS), visible)
                .await?;
            Ok(dated(now, WEEK, weeks))
        }
        TimeMetric::IssuedPerDay => {
            let start = now - now.rem_euclid(DAY) - (DAYS - 1) * DAY;
            let histogram = Histogram {
                field: TimeField::Created,
                start,
                width: DAY,
                buckets: DAYS,
                unrevoked_only: false,
            };
            let days = app.store.certificate_histogram(histogram, visible).await?;
            Ok(dated(start, DAY, days))
        }
    }
}

/// Unrevoked certificates by end of validity, in `buckets` spans of `width` from `now`.
fn expiring(now: i64, width: i64, buckets: i64) -> Histogram {
    Histogram {
        field: TimeField::NotAfter,
        start: now,
        width,
        buckets,
        unrevoked_only: true,
    }
}

/// Each count labelled with its span's first day (`2026-12-01`, UTC).
fn dated(start: i64, width: i64, counts: Vec<i64>) -> Vec<(StatsLabel, i64)> {
    (0_i64..)
        .zip(counts)
        .map(|(index, count)| (StatsLabel::Text(day(start + index * width)), count))
        .collect()
}

fn day(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_first_days_of_their_spans() {
        // 2026-12-01T21:00:00Z.
        let now = 1_796_158_800;
        assert_eq!(
            dated(now, WEEK, vec![1, 0, 2]),
            vec![
                (StatsLabel::Text("2026-12-01".into()), 1),
                (StatsLabel::Text("2026-12-08".into()), 0),
                (StatsLabel::Text("2026-12-15".into()), 2),
            ]
        );
        assert_eq!(TimeMetric::named("expiring"), Some(TimeMetric::Expiring));
        assert_eq!(TimeMetric::named("bits"), None);
    }
}
