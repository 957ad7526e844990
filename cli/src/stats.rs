//! Statistics for experiment reports: proportions with Wilson intervals,
//! the two-proportion z-test, the sample size for a given effect, and
//! percentiles from histogram buckets.

/// The standard normal CDF (Abramowitz–Stegun 7.1.26 erf, |error| < 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// z for a 95 % two-sided interval.
pub const Z95: f64 = 1.959_963_984_540_054;
/// z for 80 % power (one-sided 0.2).
pub const Z80: f64 = 0.841_621_233_572_914_3;

/// Wilson score interval of `successes` out of `n` at 95 %.
pub fn wilson(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = successes as f64 / n_f;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n_f;
    let center = (p + z2 / (2.0 * n_f)) / denom;
    let half = Z95 * ((p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt()) / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// Two-sided p-value of the pooled two-proportion z-test.
pub fn two_proportion_p(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1 + n2) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return if p1 == p2 { 1.0 } else { 0.0 };
    }
    let z = (p1 - p2) / se;
    2.0 * (1.0 - normal_cdf(z.abs()))
}

/// Requests per arm to detect a change of `effect` (absolute) from a base
/// rate `p` with a two-sided 5 % test at 80 % power.
pub fn sample_size(p: f64, effect: f64) -> u64 {
    let p2 = (p + effect).clamp(0.0, 1.0);
    let pbar = (p + p2) / 2.0;
    let num =
        Z95 * (2.0 * pbar * (1.0 - pbar)).sqrt() + Z80 * (p * (1.0 - p) + p2 * (1.0 - p2)).sqrt();
    let d = (p2 - p).abs();
    if d == 0.0 {
        return u64::MAX;
    }
    ((num / d).powi(2)).ceil() as u64
}

/// The `q` quantile (0..1) from cumulative histogram buckets
/// `(upper bound, cumulative count)`, interpolating linearly in a bucket.
pub fn histogram_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let in_bucket = count - prev.1;
            let frac = if in_bucket > 0.0 {
                (rank - prev.1) / in_bucket
            } else {
                0.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, count);
    }
    Some(prev.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn normal_cdf_known_values() {
        assert!(close(normal_cdf(0.0), 0.5, 1e-7));
        assert!(close(normal_cdf(1.96), 0.975_002, 1e-5));
        assert!(close(normal_cdf(-1.0), 0.158_655, 1e-5));
        assert!(close(normal_cdf(2.575_829), 0.995, 1e-5));
    }

    #[test]
    fn wilson_matches_the_textbook() {
        // Newcombe (1998), 81 of 263: 0.2553 to 0.3662.
        let (lo, hi) = wilson(81, 263);
        assert!(
            close(lo, 0.2553, 5e-4) && close(hi, 0.3662, 5e-4),
            "{lo} {hi}"
        );
        // 0 of 10: 0 to 0.2775.
        let (lo, hi) = wilson(0, 10);
        assert!(close(lo, 0.0, 1e-9) && close(hi, 0.2775, 5e-4), "{lo} {hi}");
    }

    #[test]
    fn two_proportion_test_matches_a_computed_example() {
        // 45/100 vs 30/100: pooled 0.375, se 0.068465, z 2.1909, p 0.02846.
        let p = two_proportion_p(45, 100, 30, 100);
        assert!(close(p, 0.028_46, 2e-4), "{p}");
        assert!(close(two_proportion_p(50, 100, 50, 100), 1.0, 1e-6));
    }

    #[test]
    fn sample_size_matches_the_usual_formula() {
        // Base 10 %, +5 points (to 15 %): about 686 per arm.
        let n = sample_size(0.10, 0.05);
        assert!((680..=690).contains(&n), "{n}");
    }

    #[test]
    fn histogram_quantiles_interpolate() {
        let buckets = [
            (10.0, 50.0),
            (20.0, 90.0),
            (40.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!(close(
            histogram_quantile(&buckets, 0.5).unwrap_or(0.0),
            10.0,
            1e-9
        ));
        assert!(close(
            histogram_quantile(&buckets, 0.7).unwrap_or(0.0),
            15.0,
            1e-9
        ));
        assert!(close(
            histogram_quantile(&buckets, 0.95).unwrap_or(0.0),
            30.0,
            1e-9
        ));
        assert_eq!(histogram_quantile(&[], 0.5), None);
    }
}
