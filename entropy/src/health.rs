//! The health monitor: runs the tests on every source, keeps the verdict, gates key generation.

use crate::cutoff;
use crate::{
    AdaptiveProportionTest, EntropySource, Error, Failure, OsRng, RepetitionCountTest,
    SystemReport, system_report,
};
use serde::Serialize;
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Parameters of a health check. See [`crate::cutoff`] for what the defaults mean.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckConfig {
    /// Claimed min-entropy per byte sample, in bits.
    pub min_entropy_bits: f64,
    /// False-positive rate of each test, as the exponent `e` of `α = 2^−e`.
    pub alpha_exp: u32,
    /// Adaptive Proportion Test window, in samples.
    pub apt_window: u32,
    /// Samples drawn from each source per check (the start-up test needs at least 1024).
    pub samples_per_source: usize,
    /// Treat an uninitialised kernel CRNG as a failure.
    pub require_crng_ready: bool,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            min_entropy_bits: 7.0,
            alpha_exp: 40,
            apt_window: 512,
            samples_per_source: 16 * 1024,
            require_crng_ready: true,
        }
    }
}

impl CheckConfig {
    fn rct_cutoff(&self) -> u32 {
        cutoff::repetition_count(self.min_entropy_bits, self.alpha_exp)
    }

    fn apt_cutoff(&self) -> u32 {
        cutoff::adaptive_proportion(self.apt_window, self.min_entropy_bits, self.alpha_exp)
    }
}

/// The outcome for one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceReport {
    /// The source's name.
    pub source: String,
    /// Samples tested before the verdict.
    pub samples_tested: usize,
    /// The test that tripped, if any.
    pub failure: Option<Failure>,
    /// Why the source could not be read, if it could not.
    pub error: Option<String>,
}

impl SourceReport {
    /// The source delivered every sample and no test tripped.
    pub fn passed(&self) -> bool {
        self.failure.is_none() && self.error.is_none()
    }
}

/// The outcome of one health check over all sources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// Every source passed and the system checks are satisfied.
    pub healthy: bool,
    /// The first problem found, in words, when unhealthy.
    pub reason: Option<String>,
    /// Parameters the check ran with.
    pub config: CheckConfig,
    /// Repetition Count Test cutoff derived from the parameters.
    pub rct_cutoff: u32,
    /// Adaptive Proportion Test cutoff derived from the parameters.
    pub apt_cutoff: u32,
    /// The kernel's RNG state.
    pub system: SystemReport,
    /// One entry per source, in registration order.
    pub sources: Vec<SourceReport>,
    /// How many checks this monitor has run, this one included.
    pub check_number: u64,
}

/// The report as an operator reads it on a terminal: the kernel's RNG, the test parameters, a
/// line per source, and the verdict.
impl std::fmt::Display for HealthReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let system = &self.system;
        writeln!(f, "kernel CRNG initialised: {}", system.crng_ready)?;
        writeln!(
            f,
            "hardware RNG:            {}",
            system.hw_rng.as_deref().unwrap_or("none")
        )?;
        match system.entropy_avail {
            Some(bits) => writeln!(f, "entropy_avail:           {bits} bits")?,
            None => writeln!(f, "entropy_avail:           unknown")?,
        }
        writeln!(
            f,
            "SP 800-90B: H = {} bits/sample, alpha = 2^-{}, RCT cutoff {}, APT cutoff {} of {}",
            self.config.min_entropy_bits,
            self.config.alpha_exp,
            self.rct_cutoff,
            self.apt_cutoff,
            self.config.apt_window
        )?;
        for source in &self.sources {
            let detail = match (&source.failure, &source.error) {
                (Some(failure), _) => failure.to_string(),
                (None, Some(error)) => error.clone(),
                (None, None) => "repetition count and adaptive proportion tests passed".to_owned(),
            };
            let mark = if source.passed() { "ok  " } else { "FAIL" };
            writeln!(
                f,
                "[{mark}] {:<4} {} samples: {detail}",
                source.source, source.samples_tested
            )?;
        }
        match &self.reason {
            None => write!(f, "healthy"),
            Some(reason) => write!(f, "UNHEALTHY: {reason}"),
        }
    }
}

/// Where the monitor stands, as the daemon's health endpoint shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthState {
    /// No check has completed yet.
    NotChecked,
    /// The latest check (inside) passed.
    Healthy(HealthReport),
    /// The latest check (inside) failed.
    Unhealthy(HealthReport),
}

/// Runs health checks over a set of sources and keeps the latest verdict.
pub struct HealthMonitor {
    config: CheckConfig,
    sources: RwLock<Vec<Arc<dyn EntropySource>>>,
    latest: RwLock<Option<HealthReport>>,
    checks_run: Mutex<u64>,
}

impl HealthMonitor {
    /// A monitor over the given sources. No check runs until [`HealthMonitor::check`] is called.
    pub fn new(config: CheckConfig, sources: Vec<Arc<dyn EntropySource>>) -> Self {
        Self {
            config,
            sources: RwLock::new(sources),
            latest: RwLock::new(None),
            checks_run: Mutex::new(0),
        }
    }

    /// A monitor over the kernel CRNG with the default parameters; add the HSM with
    /// [`HealthMonitor::add_source`] once the key store is open.
    pub fn with_os_source() -> Self {
        Self::new(CheckConfig::default(), vec![Arc::new(OsRng)])
    }

    /// Adds a source to every later check.
    pub fn add_source(&self, source: Arc<dyn EntropySource>) {
        self.sources
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(source);
    }

    /// Runs the tests on every source now, records and returns the verdict.
    pub fn check(&self) -> HealthReport {
        let sources = self
            .sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let system = system_report();
        let source_reports: Vec<SourceReport> = sources
            .iter()
            .map(|source| test_source(source.as_ref(), &self.config))
            .collect();
        let reason = self.first_problem(&system, &source_reports);
        let check_number = {
            let mut runs = self
                .checks_run
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *runs += 1;
            *runs
        };
        let report = HealthReport {
            healthy: reason.is_none(),
            reason,
            config: self.config.clone(),
            rct_cutoff: self.config.rct_cutoff(),
            apt_cutoff: self.config.apt_cutoff(),
            system,
            sources: source_reports,
            check_number,
        };
        *self.latest.write().unwrap_or_else(PoisonError::into_inner) = Some(report.clone());
        report
    }

    fn first_problem(&self, system: &SystemReport, sources: &[SourceReport]) -> Option<String> {
        if self.config.require_crng_ready && !system.crng_ready {
            return Some("the kernel CRNG is not initialised yet".to_owned());
        }
        sources.iter().find_map(|report| {
            report
                .error
                .as_ref()
                .map(|error| format!("{}: {error}", report.source))
                .or_else(|| {
                    report
                        .failure
                        .as_ref()
                        .map(|failure| format!("{}: {failure}", report.source))
                })
        })
    }

    /// The latest verdict.
    pub fn state(&self) -> HealthState {
        match self
            .latest
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            None => HealthState::NotChecked,
            Some(report) if report.healthy => HealthState::Healthy(report),
            Some(report) => HealthState::Unhealthy(report),
        }
    }

    /// The gate in front of every key generation: `Ok` only when the latest check passed.
    pub fn ensure_healthy(&self) -> Result<(), Error> {
        match self.state() {
            HealthState::Healthy(_) => Ok(()),
            HealthState::NotChecked => Err(Error::NotChecked),
            HealthState::Unhealthy(report) => Err(Error::Unhealthy {
                reason: report
                    .reason
                    .unwrap_or_else(|| "unknown failure".to_owned()),
            }),
        }
    }

    /// Re-runs the check every `interval` on a background thread until the handle is dropped.
    pub fn start_periodic(self: &Arc<Self>, interval: Duration) -> PeriodicCheck {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let monitor = Arc::clone(self);
        let thread_stop = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let (stopped, wake) = &*thread_stop;
            let mut guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                let (next, _) = wake
                    .wait_timeout_while(guard, interval, |stopped| !*stopped)
                    .unwrap_or_else(PoisonError::into_inner);
                guard = next;
                if *guard {
                    return;
                }
                drop(guard);
                monitor.check();
                guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
            }
        });
        PeriodicCheck {
            stop,
            handle: Some(handle),
        }
    }
}

/// Stops the periodic re-check when dropped.
pub struct PeriodicCheck {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for PeriodicCheck {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(handle) = self.handle.take() {
            // A panicked checker thread has nothing left to clean up.
            let _ = handle.join();
        }
    }
}

/// Draws samples from one source in chunks and runs both tests over them.
fn test_source(source: &dyn EntropySource, config: &CheckConfig) -> SourceReport {
    const CHUNK: usize = 4096;
    let mut rct = RepetitionCountTest::new(config.rct_cutoff());
    let mut apt = AdaptiveProportionTest::new(config.apt_window, config.apt_cutoff());
    let mut buf = [0u8; CHUNK];
    let mut tested = 0;
    let mut report = SourceReport {
        source: source.name().to_owned(),
        samples_tested: 0,
        failure: None,
        error: None,
    };
    while tested < config.samples_per_source {
        let want = CHUNK.min(config.samples_per_source - tested);
        let chunk = &mut buf[..want];
        if let Err(error) = source.fill(chunk) {
            report.error = Some(error.detail);
            break;
        }
        for &sample in chunk.iter() {
            tested += 1;
            if let Err(failure) = rct.feed(sample).and_then(|()| apt.feed(sample)) {
                report.failure = Some(failure);
                report.samples_tested = tested;
                return report;
            }
        }
    }
    report.samples_tested = tested;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceError;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// Always the same byte: a disconnected or stuck noise source.
    struct Stuck;
    impl EntropySource for Stuck {
        fn name(&self) -> &str {
            "stuck"
        }
        fn fill(&self, buf: &mut [u8]) -> Result<(), SourceError> {
            buf.fill(0);
            Ok(())
        }
    }

    /// Good randomness except that every 4th byte is 0x00: no long runs, so only the APT sees it.
    struct Biased;
    impl EntropySource for Biased {
        fn name(&self) -> &str {
            "biased"
        }
        fn fill(&self, buf: &mut [u8]) -> Result<(), SourceError> {
            OsRng.fill(buf)?;
            for (i, byte) in buf.iter_mut().enumerate() {
                if i % 4 == 0 {
                    *byte = 0;
                } else if *byte == 0 {
                    *byte = 1;
                }
            }
            Ok(())
        }
    }

    /// Cycles through every byte value: balanced and never repeating, yet obviously not random.
    /// Health tests are not a statistical test suite: this one must pass them, which documents
    /// what they do and do not catch.
    struct Counter(AtomicU64);
    impl EntropySource for Counter {
        fn name(&self) -> &str {
            "counter"
        }
        fn fill(&self, buf: &mut [u8]) -> Result<(), SourceError> {
            for byte in buf.iter_mut() {
                *byte = self.0.fetch_add(1, Ordering::Relaxed) as u8;
            }
            Ok(())
        }
    }

    /// A source that can be switched between healthy and stuck.
    struct Switchable(AtomicBool);
    impl EntropySource for Switchable {
        fn name(&self) -> &str {
            "switchable"
        }
        fn fill(&self, buf: &mut [u8]) -> Result<(), SourceError> {
            if self.0.load(Ordering::SeqCst) {
                OsRng.fill(buf)
            } else {
                Stuck.fill(buf)
            }
        }
    }

    struct Broken;
    impl EntropySource for Broken {
        fn name(&self) -> &str {
            "hsm"
        }
        fn fill(&self, _: &mut [u8]) -> Result<(), SourceError> {
            Err(SourceError::new("C_GenerateRandom: CKR_DEVICE_REMOVED"))
        }
    }

    fn monitor(source: Arc<dyn EntropySource>) -> HealthMonitor {
        HealthMonitor::new(CheckConfig::default(), vec![source])
    }

    #[test]
    fn the_os_rng_passes() {
        let monitor = HealthMonitor::with_os_source();
        let report = monitor.check();
        assert!(report.healthy, "{report:?}");
        assert_eq!(report.sources[0].samples_tested, 16 * 1024);
        assert_eq!(monitor.ensure_healthy(), Ok(()));
    }

    #[test]
    fn a_stuck_source_fails_the_repetition_count_test() {
        let monitor = monitor(Arc::new(Stuck));
        let report = monitor.check();
        assert!(!report.healthy);
        assert!(matches!(
            report.sources[0].failure,
            Some(Failure::RepetitionCount {
                value: 0,
                count: 7,
                ..
            })
        ));
        assert_eq!(report.sources[0].samples_tested, 7);
        let Err(Error::Unhealthy { reason }) = monitor.ensure_healthy() else {
            panic!("a stuck source must close the gate");
        };
        assert!(
            reason.starts_with("stuck: repetition count test"),
            "{reason}"
        );
    }

    #[test]
    fn a_biased_source_fails_the_adaptive_proportion_test() {
        let report = monitor(Arc::new(Biased)).check();
        assert!(!report.healthy);
        assert!(
            matches!(
                report.sources[0].failure,
                Some(Failure::AdaptiveProportion { value: 0, .. })
            ),
            "{report:?}"
        );
    }

    #[test]
    fn a_balanced_counter_passes_as_the_tests_only_catch_gross_failures() {
        assert!(
            monitor(Arc::new(Counter(AtomicU64::new(0))))
                .check()
                .healthy
        );
    }

    #[test]
    fn an_unreadable_source_is_unhealthy_with_its_error() {
        let report = monitor(Arc::new(Broken)).check();
        assert_eq!(
            report.reason.as_deref(),
            Some("hsm: C_GenerateRandom: CKR_DEVICE_REMOVED")
        );
    }

    #[test]
    fn the_gate_is_closed_before_the_first_check() {
        assert_eq!(
            HealthMonitor::with_os_source().ensure_healthy(),
            Err(Error::NotChecked)
        );
    }

    #[test]
    fn every_source_is_tested_and_added_sources_join_later_checks() {
        let monitor = HealthMonitor::with_os_source();
        assert_eq!(monitor.check().sources.len(), 1);
        monitor.add_source(Arc::new(Stuck));
        let report = monitor.check();
        assert_eq!(report.sources.len(), 2);
        assert!(report.sources[0].passed());
        assert!(!report.healthy);
        assert_eq!(report.check_number, 2);
    }

    #[test]
    fn periodic_checks_close_and_reopen_the_gate() {
        let source = Arc::new(Switchable(AtomicBool::new(true)));
        let monitor = Arc::new(monitor(source.clone()));
        monitor.check();
        assert!(monitor.ensure_healthy().is_ok());
        let _periodic = monitor.start_periodic(Duration::from_millis(10));
        source.0.store(false, Ordering::SeqCst);
        wait_until(|| monitor.ensure_healthy().is_err());
        source.0.store(true, Ordering::SeqCst);
        wait_until(|| monitor.ensure_healthy().is_ok());
    }

    /// Polls a condition the periodic thread will make true, giving up after 10 s.
    fn wait_until(condition: impl Fn() -> bool) {
        let (lock, wake) = (Mutex::new(()), Condvar::new());
        let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..1000 {
            if condition() {
                return;
            }
            guard = wake
                .wait_timeout(guard, Duration::from_millis(10))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        panic!("condition not reached within 10 s");
    }
}
