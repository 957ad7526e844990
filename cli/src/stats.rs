//! Statistics for experiment reports: proportions with Wilson intervals,
//! the two-proportion z-test, the sample size for a given effect, and
//! percentiles from histogram buckets (the request-level live report);
//! ratio metrics and quantiles over randomization units by the delta
//! method, χ² sample-ratio tests, confidence sequences and Holm's
//! correction (the unit-level report of `--records` / `--aggregates`).

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

/// The paired outcomes of shadow traffic, in the filter's order (control's
/// success first): the `pair` label of `llm_ab_shadow_pairs`.
pub const SHADOW_PAIR_NAMES: [&str; 4] = llm_ab::stats::SHADOW_PAIRS;

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

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, 9 terms; relative error < 1e-14).
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let sum = G
        .iter()
        .enumerate()
        .skip(1)
        .fold(G[0], |acc, (i, g)| acc + g / (x + i as f64));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The regularized upper incomplete gamma function `Q(a, x)`: a series
/// below `x = a + 1`, a continued fraction (modified Lentz) above, each
/// where it converges fast; accurate in the far tail too.
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let log_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut n) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        (1.0 - sum * log_prefix.exp()).clamp(0.0, 1.0)
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (log_prefix.exp() * h).clamp(0.0, 1.0)
    }
}

/// Upper tail `P(X ≥ x)` of the χ² distribution with `df` degrees of freedom.
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    gamma_q(df / 2.0, x / 2.0)
}

/// Pearson's χ² goodness-of-fit of `observed` counts against `shares`
/// (summing to 1; categories with share 0 are left out): the statistic,
/// the degrees of freedom and the p-value.
pub fn chi2_goodness_of_fit(observed: &[f64], shares: &[f64]) -> Option<(f64, f64, f64)> {
    let total: f64 = observed.iter().sum();
    let cells: Vec<(f64, f64)> = observed
        .iter()
        .zip(shares)
        .filter(|(_, s)| **s > 0.0)
        .map(|(o, s)| (*o, total * s))
        .collect();
    if total <= 0.0 || cells.len() < 2 {
        return None;
    }
    let x: f64 = cells.iter().map(|(o, e)| (o - e) * (o - e) / e).sum();
    let df = (cells.len() - 1) as f64;
    Some((x, df, chi2_sf(x, df)))
}

/// A ratio of sums over randomization units, `Σ Y / Σ N`, with its
/// delta-method variance (Deng, Knoblich & Lu 2018, "Applying the Delta
/// Method in Metric Analytics"): `Σ (Y_b − R N_b)² · K / ((K − 1) (Σ N)²)`,
/// the textbook `(1/K)(σ²_Y/μ²_N − 2 μ_Y σ_YN/μ³_N + μ²_Y σ²_N/μ⁴_N)` with
/// sample (co)variances, written without its cancellation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// `Σ Y / Σ N`.
    pub value: f64,
    /// Its variance; `None` with fewer than two units.
    pub variance: Option<f64>,
    /// Units (`K`).
    pub units: usize,
}

/// [`Ratio`] of `(Y_b, N_b)` per unit; `None` when `Σ N = 0`.
pub fn ratio(units: &[(f64, f64)]) -> Option<Ratio> {
    let (sy, sn) = units
        .iter()
        .fold((0.0, 0.0), |(a, b), (y, n)| (a + y, b + n));
    if sn <= 0.0 {
        return None;
    }
    let r = sy / sn;
    let k = units.len();
    let variance = (k >= 2).then(|| {
        let ss: f64 = units.iter().map(|(y, n)| (y - r * n).powi(2)).sum();
        ss * k as f64 / ((k - 1) as f64 * sn * sn)
    });
    Some(Ratio {
        value: r,
        variance,
        units: k,
    })
}

/// A quantile of latencies pooled over units, from each unit's histogram
/// (`bins[i]` counts values below `edges[i]` and at or above the bound
/// before; the last bin has no upper bound), with its variance by the
/// delta method for quantiles of Deng, Knoblich & Lu (2018, section 4.3):
/// the share of values at or below the estimate is a ratio metric over
/// units; its interval at ±1.96 σ, mapped through the pooled quantile
/// function, gives the quantile's standard error.
pub fn quantile(units: &[&[u32]], edges: &[u64], q: f64) -> Option<Ratio> {
    let bins = edges.len() + 1;
    let mut pooled = vec![0u64; bins];
    for u in units {
        for (p, c) in pooled.iter_mut().zip(u.iter()) {
            *p += u64::from(*c);
        }
    }
    let cumulative = |counts: &[u64]| -> Vec<(f64, f64)> {
        let mut total = 0.0;
        counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                total += *c as f64;
                let le = edges.get(i).map_or(f64::INFINITY, |e| *e as f64);
                (le, total)
            })
            .collect()
    };
    let pooled_cum = cumulative(&pooled);
    let value = histogram_quantile(&pooled_cum, q)?;
    // Per unit: values at or below `value` (a bin's share by interpolation).
    let below = |counts: &[u32]| -> f64 {
        let mut lower = 0.0;
        let mut sum = 0.0;
        for (i, c) in counts.iter().enumerate() {
            let upper = edges.get(i).map_or(f64::INFINITY, |e| *e as f64);
            if upper <= value {
                sum += f64::from(*c);
            } else {
                if value > lower && upper.is_finite() {
                    sum += f64::from(*c) * (value - lower) / (upper - lower);
                }
                break;
            }
            lower = upper;
        }
        sum
    };
    let pairs: Vec<(f64, f64)> = units
        .iter()
        .map(|u| (below(u), u.iter().map(|c| f64::from(*c)).sum::<f64>()))
        .collect();
    let share = ratio(&pairs)?;
    let variance = share.variance.map(|v| {
        let sd = v.sqrt();
        let at = |p: f64| histogram_quantile(&pooled_cum, p.clamp(0.0, 1.0)).unwrap_or(value);
        let se = (at(q + Z95 * sd) - at(q - Z95 * sd)) / (2.0 * Z95);
        se * se
    });
    Some(Ratio {
        value,
        variance,
        units: share.units,
    })
}

/// The mixing parameter `ρ²` of the confidence sequence that is tightest
/// after `tuning` units, at level `alpha` (Waudby-Smith et al. 2023,
/// "Time-uniform central limit theory and asymptotic confidence
/// sequences", the optimal ρ for a given time):
/// `ρ² = (−2 ln α + ln(−2 ln α + 1)) / tuning`.
pub fn cs_rho2(alpha: f64, tuning: f64) -> f64 {
    let l = -2.0 * alpha.ln();
    (l + (l + 1.0).ln()) / tuning
}

/// The half-width of the two-sided normal-mixture confidence sequence
/// (Howard, Ramdas, McAuliffe & Sekhon 2021, eq. (14); as an asymptotic
/// sequence, Waudby-Smith et al. 2023, eq. (9)) for a mean of `n` units of
/// variance `sigma2`: `√(2 (nρ² + 1) / (n²ρ²) · ln(√(nρ² + 1) / α)) · σ`.
pub fn cs_half_width(sigma2: f64, n: f64, rho2: f64, alpha: f64) -> f64 {
    let a = n * rho2;
    (sigma2 * 2.0 * (a + 1.0) / (n * n * rho2) * ((a + 1.0).sqrt() / alpha).ln()).sqrt()
}

/// The always-valid p-value of an estimate `z` standard errors from 0
/// with `n` units: the smallest α whose sequence excludes 0,
/// `min(1, √(nρ² + 1) · exp(−z² nρ² / (2 (nρ² + 1))))`.
pub fn cs_p_value(z: f64, n: f64, rho2: f64) -> f64 {
    let a = n * rho2;
    ((a + 1.0).sqrt() * (-z * z * a / (2.0 * (a + 1.0))).exp()).min(1.0)
}

/// Holm's step-down adjustment of `p` (same order out as in).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    let mut out = vec![1.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
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

    #[test]
    fn ln_gamma_known_values() {
        // Python's math.lgamma.
        assert!(close(ln_gamma(0.5), 0.572_364_942_924_700_4, 1e-13));
        assert!(close(ln_gamma(10.0), 12.801_827_480_081_467, 1e-12));
        assert!(close(ln_gamma(100.5), 361.435_540_467_777_6, 1e-10));
        assert!(close(ln_gamma(1.0), 0.0, 1e-14));
    }

    #[test]
    fn chi2_tail_matches_the_published_table() {
        // Upper critical values of the χ² distribution (NIST/SEMATECH
        // e-Handbook of Statistical Methods, section 1.3.6.7.4).
        for (x, df, p) in [
            (3.841, 1.0, 0.05),
            (10.828, 1.0, 0.001),
            (5.991, 2.0, 0.05),
            (13.816, 2.0, 0.001),
            (7.815, 3.0, 0.05),
            (11.345, 3.0, 0.01),
            (9.488, 4.0, 0.05),
            (18.467, 4.0, 0.001),
            (31.410, 20.0, 0.05),
        ] {
            let got = chi2_sf(x, df);
            assert!(
                (got - p).abs() < p * 2e-3,
                "χ²({df}) ≥ {x}: {got}, table {p}"
            );
        }
        // Closed forms: df = 2 is exp(−x/2); df = 1 is erfc(√(x/2)),
        // Python's math.erfc(math.sqrt(15)) for x = 30 (the far tail).
        assert!(close(chi2_sf(40.0, 2.0), (-20.0f64).exp(), 1e-20));
        assert!((chi2_sf(30.0, 1.0) / 4.320_463_057_827_492e-8 - 1.0).abs() < 1e-9);
        assert_eq!(chi2_sf(0.0, 3.0), 1.0);
    }

    #[test]
    fn goodness_of_fit_by_hand() {
        // 1100 vs 900 against 50/50: (100² / 1000) · 2 = 20, df 1.
        let (x, df, p) = chi2_goodness_of_fit(&[1100.0, 900.0], &[0.5, 0.5]).unwrap_or_default();
        assert!(close(x, 20.0, 1e-9) && df == 1.0, "{x} {df}");
        assert!(close(p, 7.744e-6, 1e-8), "{p}");
        assert!(chi2_goodness_of_fit(&[10.0], &[1.0]).is_none());
    }

    #[test]
    fn delta_method_variance_against_the_textbook_moments() {
        let units = [(1.0, 2.0), (3.0, 4.0), (2.0, 2.0), (0.0, 3.0)];
        let r = ratio(&units).unwrap_or(Ratio {
            value: 0.0,
            variance: None,
            units: 0,
        });
        assert!(close(r.value, 6.0 / 11.0, 1e-15));
        // By hand: residuals Y − R·N are −1/11, 9/11, 10/11, −18/11; their
        // squares sum to 506/121; × K / ((K − 1)(ΣN)²) = 2024/43923.
        let v = r.variance.unwrap_or(0.0);
        assert!(close(v, 2024.0 / 43923.0, 1e-15), "{v}");
        // The textbook form, from sample means, variances and covariance.
        let k = units.len() as f64;
        let my = units.iter().map(|u| u.0).sum::<f64>() / k;
        let mn = units.iter().map(|u| u.1).sum::<f64>() / k;
        let var = |f: &dyn Fn(&(f64, f64)) -> f64| units.iter().map(f).sum::<f64>() / (k - 1.0);
        let sy = var(&|u| (u.0 - my).powi(2));
        let sn = var(&|u| (u.1 - mn).powi(2));
        let syn = var(&|u| (u.0 - my) * (u.1 - mn));
        let textbook =
            (sy / mn.powi(2) - 2.0 * my * syn / mn.powi(3) + my.powi(2) * sn / mn.powi(4)) / k;
        assert!(close(v, textbook, 1e-15), "{v} {textbook}");
        assert!(ratio(&[(1.0, 0.0)]).is_none());
        assert_eq!(ratio(&[(1.0, 2.0)]).map(|r| r.variance), Some(None));
    }

    #[test]
    fn confidence_sequence_radius_is_the_published_formula() {
        // σ² = 0.25 (a rate near 50 %), n = 1000 units, tuned for 5000,
        // α = 0.05. Python, from the formula of Waudby-Smith et al. (2023,
        // eq. 9) with ρ² of their eq. (161): ρ² = 0.001587230920347513,
        // half-width 0.053187735032787516.
        let rho2 = cs_rho2(0.05, 5000.0);
        assert!(close(rho2, 0.001_587_230_920_347_513, 1e-17));
        let hw = cs_half_width(0.25, 1000.0, rho2, 0.05);
        assert!(close(hw, 0.053_187_735_032_787_516, 1e-15), "{hw}");
        // Howard et al.'s parameterization of the same boundary (ρ_H =
        // σ²/ρ²): √((nσ² + ρ_H)/n² · ln((nσ² + ρ_H)/(ρ_H α²))).
        let (n, s2, a) = (1000.0, 0.25, 0.05);
        let rh = s2 / rho2;
        let howard = ((n * s2 + rh) / (n * n) * ((n * s2 + rh) / (rh * a * a)).ln()).sqrt();
        assert!(close(hw, howard, 1e-15));
        // In standard errors: wider than 1.96.
        let m = hw / (s2 / n).sqrt();
        assert!(m > Z95 && m < 4.0, "{m}");
        // The always-valid p-value is α exactly on the boundary.
        assert!(close(cs_p_value(m, n, rho2), 0.05, 1e-12));
        assert_eq!(cs_p_value(0.0, n, rho2), 1.0);
    }

    #[test]
    fn holm_matches_r_p_adjust() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") = 0.03 0.06 0.06 0.02
        let adj = holm(&[0.01, 0.04, 0.03, 0.005]);
        for (a, b) in adj.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            assert!(close(*a, b, 1e-12), "{adj:?}");
        }
        assert_eq!(holm(&[0.9, 0.8]), vec![1.0, 1.0]);
        assert!(holm(&[]).is_empty());
    }

    /// A xorshift generator for the synthetic tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn quantile_standard_error_against_a_cluster_bootstrap() {
        // 400 units, each with its own speed and 1 to 60 requests; the
        // bootstrap resamples units and takes exact p95s of raw values.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let edges = crate::aggregates::LATENCY_EDGES;
        let units: Vec<Vec<u64>> = (0..400)
            .map(|_| {
                let speed = 200.0 + 1800.0 * rng.next();
                let n = 1 + (60.0 * rng.next().powi(3)) as usize;
                (0..n)
                    .map(|_| (speed * (0.5 + rng.next())) as u64)
                    .collect()
            })
            .collect();
        let hist = |values: &[u64]| {
            let mut h = vec![0u32; edges.len() + 1];
            for v in values {
                h[crate::aggregates::latency_bin(*v)] += 1;
            }
            h
        };
        let hists: Vec<Vec<u32>> = units.iter().map(|u| hist(u)).collect();
        let refs: Vec<&[u32]> = hists.iter().map(Vec::as_slice).collect();
        let q = quantile(&refs, &edges, 0.95).unwrap_or(Ratio {
            value: 0.0,
            variance: None,
            units: 0,
        });
        let exact_p95 = |values: &mut Vec<u64>| {
            values.sort_unstable();
            values[((values.len() as f64 * 0.95).ceil() as usize).saturating_sub(1)] as f64
        };
        let mut all: Vec<u64> = units.concat();
        let point = exact_p95(&mut all);
        assert!(
            (q.value / point - 1.0).abs() < 0.03,
            "{} vs {point}",
            q.value
        );
        let boots: Vec<f64> = (0..300)
            .map(|_| {
                let mut sample = Vec::new();
                for _ in 0..units.len() {
                    sample.extend(&units[(rng.next() * units.len() as f64) as usize]);
                }
                exact_p95(&mut sample)
            })
            .collect();
        let mean = boots.iter().sum::<f64>() / boots.len() as f64;
        let sd = (boots.iter().map(|b| (b - mean).powi(2)).sum::<f64>() / (boots.len() - 1) as f64)
            .sqrt();
        let se = q.variance.unwrap_or(0.0).sqrt();
        assert!((se / sd - 1.0).abs() < 0.3, "delta {se} vs bootstrap {sd}");
    }
}
