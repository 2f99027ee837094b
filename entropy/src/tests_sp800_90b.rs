//! The two continuous health tests of NIST SP 800-90B §4.4, as streaming state machines.
//!
//! Both consume one sample at a time so they can run over any amount of output without buffering
//! it, and report the first sample that trips them.

use serde::Serialize;
use std::fmt;

/// A health test that tripped, with enough detail for an operator (never the random data itself
/// beyond the repeated value, which is already known to be broken).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "test", rename_all = "snake_case")]
pub enum Failure {
    /// The same value repeated `count` times in a row, reaching the cutoff.
    RepetitionCount {
        /// The repeated sample value.
        value: u8,
        /// Length of the run when the test tripped.
        count: u32,
        /// The cutoff that was reached.
        cutoff: u32,
    },
    /// One value occurred `count` times in a window of `window` samples, reaching the cutoff.
    AdaptiveProportion {
        /// The over-represented sample value.
        value: u8,
        /// Occurrences in the window when the test tripped.
        count: u32,
        /// Window size.
        window: u32,
        /// The cutoff that was reached.
        cutoff: u32,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::RepetitionCount {
                value,
                count,
                cutoff,
            } => write!(
                f,
                "repetition count test: value {value:#04x} repeated {count} times in a row (cutoff {cutoff})"
            ),
            Failure::AdaptiveProportion {
                value,
                count,
                window,
                cutoff,
            } => write!(
                f,
                "adaptive proportion test: value {value:#04x} seen {count} times in a window of {window} (cutoff {cutoff})"
            ),
        }
    }
}

/// SP 800-90B §4.4.1: trips when one value repeats `cutoff` times in a row.
#[derive(Debug, Clone)]
pub struct RepetitionCountTest {
    cutoff: u32,
    last: Option<u8>,
    run: u32,
}

impl RepetitionCountTest {
    /// A test that trips at a run of `cutoff` equal samples (see [`crate::cutoff::repetition_count`]).
    pub fn new(cutoff: u32) -> Self {
        Self {
            cutoff,
            last: None,
            run: 0,
        }
    }

    /// Feeds one sample.
    pub fn feed(&mut self, sample: u8) -> Result<(), Failure> {
        if self.last == Some(sample) {
            self.run += 1;
            if self.run >= self.cutoff {
                return Err(Failure::RepetitionCount {
                    value: sample,
                    count: self.run,
                    cutoff: self.cutoff,
                });
            }
        } else {
            self.last = Some(sample);
            self.run = 1;
        }
        Ok(())
    }
}

/// SP 800-90B §4.4.2: within each window, counts the occurrences of the window's first sample and
/// trips when the count reaches `cutoff`.
#[derive(Debug, Clone)]
pub struct AdaptiveProportionTest {
    window: u32,
    cutoff: u32,
    first: u8,
    count: u32,
    seen: u32,
}

impl AdaptiveProportionTest {
    /// A test over windows of `window` samples tripping at `cutoff` occurrences
    /// (see [`crate::cutoff::adaptive_proportion`]).
    pub fn new(window: u32, cutoff: u32) -> Self {
        Self {
            window,
            cutoff,
            first: 0,
            count: 0,
            seen: 0,
        }
    }

    /// Feeds one sample.
    pub fn feed(&mut self, sample: u8) -> Result<(), Failure> {
        if self.seen == 0 {
            self.first = sample;
            self.count = 1;
        } else if sample == self.first {
            self.count += 1;
            if self.count >= self.cutoff {
                let failure = Failure::AdaptiveProportion {
                    value: sample,
                    count: self.count,
                    window: self.window,
                    cutoff: self.cutoff,
                };
                self.seen = 0;
                return Err(failure);
            }
        }
        self.seen += 1;
        if self.seen == self.window {
            self.seen = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rct_trips_exactly_at_the_cutoff() {
        let mut rct = RepetitionCountTest::new(4);
        assert!(rct.feed(1).is_ok());
        assert!(rct.feed(7).is_ok());
        assert!(rct.feed(7).is_ok());
        assert!(rct.feed(7).is_ok());
        assert_eq!(
            rct.feed(7),
            Err(Failure::RepetitionCount {
                value: 7,
                count: 4,
                cutoff: 4
            })
        );
    }

    #[test]
    fn rct_resets_on_a_new_value() {
        let mut rct = RepetitionCountTest::new(3);
        for sample in [1, 1, 2, 2, 1, 1, 2] {
            assert!(rct.feed(sample).is_ok());
        }
    }

    #[test]
    fn apt_counts_only_the_first_value_of_each_window() {
        let mut apt = AdaptiveProportionTest::new(8, 4);
        // Window 1: first value 5 appears 3 times: below the cutoff.
        for sample in [5, 5, 1, 5, 2, 3, 4, 6] {
            assert!(apt.feed(sample).is_ok());
        }
        // Window 2: first value 9 appears a 4th time at the 5th sample.
        for sample in [9, 9, 1, 9] {
            assert!(apt.feed(sample).is_ok());
        }
        assert!(matches!(
            apt.feed(9),
            Err(Failure::AdaptiveProportion {
                value: 9,
                count: 4,
                ..
            })
        ));
    }

    #[test]
    fn apt_ignores_other_frequent_values_in_a_window() {
        let mut apt = AdaptiveProportionTest::new(8, 3);
        for sample in [1, 2, 2, 2, 2, 2, 2, 2] {
            assert!(apt.feed(sample).is_ok());
        }
    }
}
