//! Decimal text to the nearest `f64` (ties to even), as core's parser
//! gives it, without core's parser: its 128-bit power-of-five table and the
//! code around it took 17 KB of the wasm module, for numbers the filter
//! reads rarely (configuration values, schema bounds, numbers in answers
//! of no fixed shape).
//!
//! A number of at most 19 significant digits whose power of ten is small
//! is one exact IEEE operation away (both operands exact). Any other is
//! converted exactly on a decimal digit array: shifted right or left by a
//! few bits at a time until it lies in [1/2, 1), then by the mantissa's
//! 53 bits, and rounded to even on the digits left over. Digits past the
//! array's 800 only matter as "something non-zero is left", which is kept.
//! `tests::parses_as_core_does` holds it to `str::parse::<f64>`.

/// Decimal digits kept exactly (more than the 767 that can decide a
/// rounding of an `f64`).
const DIGITS: usize = 800;

/// Powers of ten an `f64` holds exactly.
const EXACT: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A decimal `0.d₀d₁d₂… × 10^point`.
struct Decimal {
    d: [u8; DIGITS],
    n: usize,
    point: i32,
    /// Non-zero digits were dropped after the last one kept.
    truncated: bool,
}

impl Decimal {
    fn trim(&mut self) {
        while self.n > 0 && self.d[self.n - 1] == 0 {
            self.n -= 1;
        }
        if self.n == 0 {
            self.point = 0;
        }
    }

    /// Divides by `2^k` (`k` ≤ 60).
    fn shift_right(&mut self, k: u32) {
        let mut read = 0;
        let mut acc = 0u64;
        while acc >> k == 0 {
            if read < self.n {
                acc = acc * 10 + u64::from(self.d[read]);
            } else if acc == 0 {
                self.n = 0;
                return;
            } else {
                acc *= 10;
            }
            read += 1;
        }
        self.point -= read as i32 - 1;
        let mask = (1u64 << k) - 1;
        let mut write = 0;
        while read < self.n {
            let digit = acc >> k;
            acc = (acc & mask) * 10 + u64::from(self.d[read]);
            self.d[write] = digit as u8;
            write += 1;
            read += 1;
        }
        while acc > 0 {
            let digit = acc >> k;
            acc = (acc & mask) * 10;
            if write < DIGITS {
                self.d[write] = digit as u8;
                write += 1;
            } else if digit > 0 {
                self.truncated = true;
            }
        }
        self.n = write;
        self.trim();
    }

    /// Multiplies by `2^k` (`k` ≤ 60).
    fn shift_left(&mut self, k: u32) {
        // Digits from the last, into `rev` (least significant first).
        let mut rev = [0u8; DIGITS + 20];
        let mut len = 0;
        let mut acc = 0u64;
        for &digit in self.d[..self.n].iter().rev() {
            acc += u64::from(digit) << k;
            rev[len] = (acc % 10) as u8;
            acc /= 10;
            len += 1;
        }
        while acc > 0 {
            rev[len] = (acc % 10) as u8;
            acc /= 10;
            len += 1;
        }
        self.point += (len - self.n) as i32;
        let keep = len.min(DIGITS);
        if rev[..len - keep].iter().any(|&d| d != 0) {
            self.truncated = true;
        }
        for i in 0..keep {
            self.d[i] = rev[len - 1 - i];
        }
        self.n = keep;
        self.trim();
    }

    /// The integer part, rounded half to even by what follows.
    fn rounded(&self) -> u64 {
        if self.point > 20 {
            return u64::MAX;
        }
        if self.point < 0 {
            // Below a tenth: nothing to round up to.
            return 0;
        }
        let point = self.point as usize;
        let mut v = 0u64;
        for i in 0..point {
            v = v * 10 + u64::from(if i < self.n { self.d[i] } else { 0 });
        }
        let up = match self.d.get(point) {
            Some(&5) if point < self.n && point + 1 == self.n => self.truncated || v % 2 == 1,
            Some(&d) if point < self.n => d >= 5,
            _ => false,
        };
        v + u64::from(up)
    }
}

/// How far to shift to move the point by `p` places without overflowing
/// the shifts' accumulators.
fn bits_for(p: i32) -> u32 {
    const BITS: [u32; 9] = [1, 3, 6, 9, 13, 16, 19, 23, 26];
    BITS.get(p as usize).copied().unwrap_or(27)
}

/// The `f64` nearest to `text`, a number by JSON's grammar (sign,
/// digits, optional fraction and exponent); infinite past `f64::MAX`.
/// `None` when it is not one.
pub fn parse(text: &[u8]) -> Option<f64> {
    let (neg, rest) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let mut dec = Decimal {
        d: [0; DIGITS],
        n: 0,
        point: 0,
        truncated: false,
    };
    let mut i = 0;
    let mut seen_point = false;
    let mut any = false;
    // Significant digits (leading zeros dropped), and the point.
    while let Some(&b) = rest.get(i) {
        match b {
            b'0'..=b'9' => {
                any = true;
                if b == b'0' && dec.n == 0 {
                    if seen_point {
                        dec.point -= 1;
                    }
                } else {
                    if dec.n < DIGITS {
                        dec.d[dec.n] = b - b'0';
                        dec.n += 1;
                    } else if b != b'0' {
                        dec.truncated = true;
                    }
                    if !seen_point {
                        dec.point += 1;
                    }
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if !any {
        return None;
    }
    if let Some(b'e' | b'E') = rest.get(i) {
        i += 1;
        let sign = match rest.get(i) {
            Some(b'-') => {
                i += 1;
                -1
            }
            Some(b'+') => {
                i += 1;
                1
            }
            _ => 1,
        };
        let mut e = 0i64;
        let start = i;
        while let Some(&b @ b'0'..=b'9') = rest.get(i) {
            e = (e * 10 + i64::from(b - b'0')).min(1 << 40);
            i += 1;
        }
        if i == start {
            return None;
        }
        dec.point = (i64::from(dec.point) + sign * e).clamp(-100_000, 100_000) as i32;
    }
    if i != rest.len() {
        return None;
    }
    dec.trim();
    let magnitude = magnitude(&mut dec);
    Some(if neg { -magnitude } else { magnitude })
}

/// The nearest `f64` to `dec` (non-negative).
fn magnitude(dec: &mut Decimal) -> f64 {
    if dec.n == 0 || dec.point < -330 {
        return 0.0;
    }
    if dec.point > 310 {
        return f64::INFINITY;
    }
    // One exact operation: at most 19 digits, below 2^53, a small power.
    if dec.n <= 19 && !dec.truncated {
        let w = dec.d[..dec.n]
            .iter()
            .fold(0u64, |w, &d| w * 10 + u64::from(d));
        let e = dec.point - dec.n as i32;
        if w < 1 << 53 && (-22..=22).contains(&e) {
            let w = w as f64;
            let p = EXACT[e.unsigned_abs() as usize];
            return if e < 0 { w / p } else { w * p };
        }
    }
    // Into [1/2, 1), counting the powers of two.
    let mut exp = 0i32;
    while dec.point > 0 {
        let k = bits_for(dec.point);
        dec.shift_right(k);
        exp += k as i32;
    }
    while dec.point < 0 || (dec.point == 0 && dec.d[0] < 5) {
        let k = bits_for(-dec.point);
        dec.shift_left(k);
        exp -= k as i32;
    }
    // [1, 2) as the float's mantissa has it.
    exp -= 1;
    if exp < -1022 {
        // Subnormal: fewer mantissa bits.
        let k = (-1022 - exp) as u32;
        let mut left = k;
        while left > 0 {
            let step = left.min(60);
            dec.shift_right(step);
            left -= step;
        }
        exp = -1022;
    }
    if exp > 1023 {
        return f64::INFINITY;
    }
    dec.shift_left(53);
    let mut mantissa = dec.rounded();
    if mantissa == 1 << 53 {
        mantissa >>= 1;
        exp += 1;
        if exp > 1023 {
            return f64::INFINITY;
        }
    }
    let biased = if mantissa & (1 << 52) == 0 {
        0
    } else {
        (exp + 1023) as u64
    };
    f64::from_bits((mantissa & ((1 << 52) - 1)) | biased << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) {
        let want: f64 = text.parse().unwrap();
        let got = parse(text.as_bytes()).unwrap();
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "{text}: {got:e} want {want:e}"
        );
    }

    /// The exact decimal expansion of a finite non-negative `f64`.
    fn exact(x: f64) -> String {
        format!("{x:.1100}")
    }

    /// `(a + b) / 2` of two exact decimals of the same shape (`I.F`).
    fn midpoint(a: &str, b: &str) -> String {
        let digits = |s: &str| {
            s.bytes()
                .filter(u8::is_ascii_digit)
                .map(|d| d - b'0')
                .collect::<Vec<_>>()
        };
        let point = a.find('.').unwrap();
        let (x, y) = (digits(a), digits(b));
        let width = x.len().max(y.len());
        let pad = |v: &[u8]| {
            let mut p = vec![0; width - v.len()];
            p.extend_from_slice(v);
            p
        };
        let (x, y) = (pad(&x), pad(&y));
        let mut sum = vec![0u8; width + 1];
        let mut carry = 0;
        for i in (0..width).rev() {
            let s = x[i] + y[i] + carry;
            sum[i + 1] = s % 10;
            carry = s / 10;
        }
        sum[0] = carry;
        // Halve, with one more digit for the last odd one.
        sum.push(0);
        let mut half = Vec::with_capacity(sum.len());
        let mut rem = 0;
        for d in sum {
            let v = rem * 10 + d;
            half.push(v / 2);
            rem = v % 2;
        }
        let int_len = point + 1 + (width - x.len());
        let mut out: String = half[..int_len].iter().map(|d| (b'0' + d) as char).collect();
        out.push('.');
        out.extend(half[int_len..].iter().map(|d| (b'0' + d) as char));
        out
    }

    #[test]
    fn parses_as_core_does() {
        for t in [
            "0",
            "-0",
            "0.0",
            "1",
            "-1",
            "0.1",
            "0.5",
            "1.5",
            "2.5",
            "9007199254740993",
            "9007199254740992",
            "18446744073709551616",
            "1e22",
            "1e23",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "1e309",
            "2.2250738585072014e-308",
            "2.2250738585072011e-308",
            "4.9e-324",
            "2.4703282292062328e-324",
            "2.4703282292062327e-324",
            "5e-324",
            "1e-400",
            "0.30000000000000004",
            "123456789012345678901234567890",
            "0.000001",
            "1e-7",
            "100000000000000000000000000",
            "3.14159265358979323846264338327950288419716939937510",
        ] {
            check(t);
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || crate::testing::xorshift(&mut seed);
        for _ in 0..30_000 {
            let r = next();
            // A random float's shortest and longer decimal forms.
            let x = f64::from_bits(r >> 1);
            if !x.is_finite() {
                continue;
            }
            check(&format!("{x:e}"));
            check(&format!("{x:.25e}"));
            // Random digits at a random scale.
            let digits = 1 + (next() % 40) as usize;
            let mut s: String = (0..digits)
                .map(|_| (b'0' + (next() % 10) as u8) as char)
                .collect();
            let e = (next() % 700) as i64 - 350;
            if next() % 2 == 0 {
                let at = (next() as usize) % (s.len() + 1);
                s.insert(at, '.');
                if s.ends_with('.') {
                    s.push('0');
                }
                if s.starts_with('.') {
                    s.insert(0, '0');
                }
            }
            check(&format!("{s}e{e}"));
        }
        // Exactly halfway between two neighbours, and just off it: the
        // cases only an exact conversion rounds right.
        for _ in 0..600 {
            let r = next();
            let x = match r % 3 {
                0 => f64::from_bits(r >> 2),
                1 => f64::from_bits(r % (1 << 53)),
                _ => f64::from_bits((r >> 12) | 0x4330_0000_0000_0000),
            };
            let up = f64::from_bits(x.to_bits() + 1);
            if !x.is_finite() || !up.is_finite() {
                continue;
            }
            let mid = midpoint(&exact(x), &exact(up));
            check(&mid);
            check(&format!("{mid}1"));
            let trimmed = mid.trim_end_matches('0');
            let below = trimmed.strip_suffix('5').map(|s| format!("{s}49999"));
            if let Some(below) = below {
                check(&below);
            }
        }
        // Long inputs: beyond the digits kept.
        let long = format!("1.{}1e0", "0".repeat(900));
        check(&long);
        let mid = midpoint(&exact(1.0), &exact(f64::from_bits(1.0f64.to_bits() + 1)));
        check(&format!("{mid}{}1", "0".repeat(900)));
        check(&format!("{}e-1000", "9".repeat(1000)));
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        for t in ["", "-", ".", "e5", "1e", "1e+", "1.2.3", "1x"] {
            assert_eq!(parse(t.as_bytes()), None, "{t}");
        }
    }
}
