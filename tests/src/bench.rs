//! What the benchmarks share: a timed multi-threaded loop, the time per figure, and the machine
//! description printed above every table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Operations per second of a timed run, how many failed, and the latency of the successful
/// ones.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Successful operations per second.
    pub per_second: f64,
    /// Failed operations.
    pub failed: u64,
    /// Median latency of a successful operation.
    pub p50: Duration,
    /// 99th percentile latency of a successful operation.
    pub p99: Duration,
}

/// Runs `op` on `threads` threads for `duration`; `op` returns whether it succeeded.
pub fn rate(threads: usize, duration: Duration, op: impl Fn() -> bool + Sync) -> Rate {
    run(threads, |started| started.elapsed() < duration, op)
}

/// Runs `op` `count` times over `threads` threads (or for at most `limit`), as fast as it goes:
/// the rate and latencies of a burst of a given size.
pub fn burst(threads: usize, count: u64, limit: Duration, op: impl Fn() -> bool + Sync) -> Rate {
    let begun = AtomicU64::new(0);
    run(
        threads,
        |started| started.elapsed() < limit && begun.fetch_add(1, Ordering::Relaxed) < count,
        op,
    )
}

/// Runs `op` on `threads` threads while `more` (given the start) says so.
fn run(
    threads: usize,
    more: impl Fn(Instant) -> bool + Sync,
    op: impl Fn() -> bool + Sync,
) -> Rate {
    let failed = AtomicU64::new(0);
    let latencies = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let (mut ok, mut bad) = (Vec::new(), 0);
                while more(started) {
                    let began = Instant::now();
                    if op() {
                        ok.push(began.elapsed());
                    } else {
                        bad += 1;
                    }
                }
                latencies
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(ok);
                failed.fetch_add(bad, Ordering::Relaxed);
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = latencies
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    latencies.sort_unstable();
    let percentile = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Rate {
        per_second: latencies.len() as f64 / elapsed,
        failed: failed.load(Ordering::Relaxed),
        p50: percentile(50),
        p99: percentile(99),
    }
}

/// The build the figures come from: only a release build's are figures; a debug build (the
/// test suite's smoke run) only shows that the benchmark works.
pub fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "DEBUG build, a smoke run: these are not figures"
    } else {
        "release build"
    }
}

/// The machine's CPUs: how many threads a CPU-bound limit is measured with.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The time per figure: `LEMUR_BENCH_SECONDS`, else `default` seconds.
pub fn seconds_per_figure(default: u64) -> Duration {
    Duration::from_secs(
        std::env::var("LEMUR_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
    )
}

/// `2 x Intel(R) Xeon(R) ...`: the CPUs the figures were measured on.
pub fn machine() -> String {
    let cpus = cpus();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} x {model}")
}
