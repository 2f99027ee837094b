//! Time comes in through a [`Clock`] so tests can move it instead of sleeping.

use std::sync::Arc;
use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// Now, as Unix seconds.
    fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the system clock
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// The system clock as the shared trait object the daemon passes around.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}
