//! Cutoff values of the SP 800-90B continuous health tests, computed from their parameters.
//!
//! * Repetition Count Test (§4.4.1): `C = 1 + ⌈−log2(α) / H⌉`.
//! * Adaptive Proportion Test (§4.4.2): the window's first sample `A` is counted in `B`, so the other
//!   `W − 1` samples equal to `A` follow Binomial(`W − 1`, `2^−H`). The test fails when `B ≥ C`, with
//!   `C = 2 + qbinom(1 − α, W − 1, 2^−H)`: the corrected form used by jitterentropy, which gives 325
//!   for `W = 512, H = 1, α = 2^−30` and 355 for `α = 2^−60` (checked in this module's tests).
//!
//! Defaults used by the appliance ([`crate::CheckConfig::default`]): byte samples from conditioned
//! sources (kernel CRNG, HSM DRBG) claimed at `H = 7` bits per byte (conservative below the full 8),
//! `α = 2^−40` (the low end NIST recommends, so a fleet of appliances checking hourly practically never
//! raises a false alarm), `W = 512` (non-binary). That gives an RCT cutoff of 7 and an APT cutoff of 27
//! of 512. A stuck source fails the RCT after 7 equal bytes; a source that emits one value a few
//! percent of the time (expected 4 in a window, 27 trips) fails the APT.

/// The Repetition Count Test cutoff for min-entropy `h` bits per sample and false-positive rate
/// `2^−alpha_exp`.
pub fn repetition_count(h: f64, alpha_exp: u32) -> u32 {
    let runs = (f64::from(alpha_exp) / h).ceil();
    // Bounded by alpha_exp / h with h > 0, well inside u32 for any sane parameters.
    1 + runs as u32
}

/// The Adaptive Proportion Test cutoff for window `window`, min-entropy `h` bits per sample and
/// false-positive rate `2^−alpha_exp`. Capped at `window` so the test can always fail.
pub fn adaptive_proportion(window: u32, h: f64, alpha_exp: u32) -> u32 {
    let p = (-h).exp2();
    let alpha = (-f64::from(alpha_exp)).exp2();
    let quantile = binomial_upper_quantile(window - 1, p, alpha);
    (2 + quantile).min(window)
}

/// Smallest `k` with `P(X > k) ≤ alpha` for `X ~ Binomial(n, p)`, i.e. `qbinom(1 − alpha, n, p)`.
///
/// The upper tail is summed from `k = n` downwards in log space, which keeps full precision for the
/// tiny tail probabilities (2^−60) that a `1 − alpha` formulation would round to zero.
fn binomial_upper_quantile(n: u32, p: f64, alpha: f64) -> u32 {
    let ln_p = p.ln();
    let ln_q = (1.0 - p).ln();
    let ln_pmf: Vec<f64> = {
        let mut ln_choose = 0.0_f64;
        (0..=n)
            .map(|k| {
                if k > 0 {
                    ln_choose += f64::from(n - k + 1).ln() - f64::from(k).ln();
                }
                ln_choose + f64::from(k) * ln_p + f64::from(n - k) * ln_q
            })
            .collect()
    };
    let mut tail = 0.0_f64; // P(X > k) while scanning k downwards
    for k in (0..n).rev() {
        tail += ln_pmf[(k + 1) as usize].exp();
        if tail > alpha {
            return k + 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_matches_jitterentropy_published_cutoffs() {
        assert_eq!(adaptive_proportion(512, 1.0, 30), 325);
        assert_eq!(adaptive_proportion(512, 1.0, 60), 355);
    }

    #[test]
    fn rct_follows_the_sp800_90b_formula() {
        assert_eq!(repetition_count(1.0, 30), 31);
        assert_eq!(repetition_count(8.0, 40), 6);
        assert_eq!(repetition_count(7.0, 40), 7);
    }

    #[test]
    fn appliance_defaults_are_the_documented_numbers() {
        assert_eq!(repetition_count(7.0, 40), 7);
        assert_eq!(adaptive_proportion(512, 7.0, 40), 27);
    }

    #[test]
    fn apt_cutoff_never_exceeds_the_window() {
        assert_eq!(adaptive_proportion(16, 0.01, 60), 16);
    }
}
