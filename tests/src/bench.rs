//! What the benchmarks share: a timed multi-threaded loop, the time per figure, and the machine
//! description printed above every table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Operations per second of a timed run, and how many failed.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Successful operations per second.
    pub per_second: f64,
    /// Failed operations.
    pub failed: u64,
}

/// Runs `op` on `threads` threads for `duration`; `op` returns whether it succeeded.
pub fn rate(threads: usize, duration: Duration, op: impl Fn() -> bool + Sync) -> Rate {
    let done = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let (mut ok, mut bad) = (0, 0);
                while started.elapsed() < duration {
                    if op() {
                        ok += 1;
                    } else {
                        bad += 1;
                    }
                }
                done.fetch_add(ok, Ordering::Relaxed);
                failed.fetch_add(bad, Ordering::Relaxed);
            });
        }
    });
    Rate {
        per_second: done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
        failed: failed.load(Ordering::Relaxed),
    }
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
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
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
