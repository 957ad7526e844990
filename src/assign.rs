//! Deterministic, sticky variant assignment.
//!
//! `bucket = murmur3_x86_32(salt + ":" + key, seed 0) % 10000`.
//!
//! Bucket layout ("lanes"): with `n` treatments (every variant but control),
//! the bucket space is cut into `n` lanes of `10000 / n` buckets, one per
//! treatment in configuration order. Treatment `k` owns the first
//! `weight_k * 100` buckets of lane `k`; every other bucket belongs to control.
//! Raising a treatment's weight only takes buckets from control, lowering it
//! only gives buckets back to control, so a user never moves between two
//! treatments and keeps a treatment whose weight did not fall.

/// Number of buckets (0.01 % granularity).
pub const BUCKETS: u32 = 10_000;

/// MurmurHash3 x86 32-bit of `bytes` under `seed` (Appleby's
/// `MurmurHash3_x86_32`), over a slice: no reader, no copy.
pub fn murmur3_32(bytes: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h = seed;
    let mut blocks = bytes.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h = (h ^ mix(k))
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail
            .iter()
            .rev()
            .fold(0u32, |k, b| (k << 8) | u32::from(*b));
        h ^= mix(k);
    }
    // The length is mixed in modulo 2^32, as the reference does.
    h ^= bytes.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// MurmurHash3 x86 32-bit (seed 0) of `bytes`.
pub fn hash32(bytes: &[u8]) -> u32 {
    murmur3_32(bytes, 0)
}

/// The bucket of a sticky key under a salt.
pub fn bucket(salt: &str, key: &str) -> u16 {
    let mut input = Vec::with_capacity(salt.len() + 1 + key.len());
    input.extend_from_slice(salt.as_bytes());
    input.push(b':');
    input.extend_from_slice(key.as_bytes());
    (murmur3_32(&input, 0) % BUCKETS) as u16
}

/// Width in buckets of each treatment's lane.
pub fn lane_width(treatments: usize) -> u32 {
    match treatments {
        0 => BUCKETS,
        n => BUCKETS / n as u32,
    }
}

/// The compiled bucket layout of one experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    control: usize,
    lane: u32,
    /// `(variant index, buckets owned)` per treatment, in lane order.
    treatments: Vec<(usize, u32)>,
}

impl Layout {
    /// Builds a layout from per-variant bucket counts and the control index.
    ///
    /// Callers validate first: each treatment's count must fit its lane
    /// (`lane_width`); a count larger than the lane is clamped to it.
    pub fn new(buckets_per_variant: &[u32], control: usize) -> Layout {
        let treatments: Vec<(usize, u32)> = buckets_per_variant
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != control)
            .map(|(i, b)| (i, *b))
            .collect();
        let lane = lane_width(treatments.len());
        let treatments = treatments
            .into_iter()
            .map(|(i, b)| (i, b.min(lane)))
            .collect();
        Layout {
            control,
            lane,
            treatments,
        }
    }

    /// The variant index owning `bucket`.
    pub fn variant_of(&self, bucket: u16) -> usize {
        self.variant_at(bucket, None)
    }

    /// Buckets a treatment owns: its configured `count`, or with `step`
    /// (a canary step, every treatment alike) that, within its lane.
    fn owned(&self, count: u32, step: Option<u32>) -> u32 {
        step.map_or(count, |s| s.min(self.lane))
    }

    /// The variant owning `bucket`; with `step`, every treatment owns
    /// `step` buckets (a canary step) instead of its configured weight.
    pub fn variant_at(&self, bucket: u16, step: Option<u32>) -> usize {
        let b = u32::from(bucket);
        let lane_index = (b / self.lane) as usize;
        let offset = b % self.lane;
        match self.treatments.get(lane_index) {
            Some((variant, count)) if offset < self.owned(*count, step) => *variant,
            _ => self.control,
        }
    }

    /// Buckets each of `variants` variants owns under [`Layout::variant_at`]
    /// with `step`, by variant index: each treatment its own, control the
    /// rest of the [`BUCKETS`].
    pub fn shares(&self, variants: usize, step: Option<u32>) -> Vec<u32> {
        let mut shares = vec![0; variants];
        let mut treated = 0;
        for (variant, count) in &self.treatments {
            let owned = self.owned(*count, step);
            if let Some(s) = shares.get_mut(*variant) {
                *s = owned;
            }
            treated += owned;
        }
        if let Some(s) = shares.get_mut(self.control) {
            *s = BUCKETS.saturating_sub(treated);
        }
        shares
    }

    /// The control variant index.
    pub fn control(&self) -> usize {
        self.control
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(s: &str, seed: u32) -> u32 {
        murmur3_32(s.as_bytes(), seed)
    }

    #[test]
    fn murmur3_matches_the_murmur3_crate_on_every_length_and_seed() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..300usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    crate::testing::xorshift(&mut seed);
                    seed as u8
                })
                .collect();
            for s in [0, 1, 17, 71, 0x9e37_79b9, u32::MAX, seed as u32] {
                let reference = murmur3::murmur3_32(&mut std::io::Cursor::new(&bytes), s).unwrap();
                assert_eq!(murmur3_32(&bytes, s), reference, "len {len} seed {s}");
            }
        }
    }

    #[test]
    fn murmur3_known_vectors() {
        // Reference values of MurmurHash3_x86_32 (Appleby's SMHasher),
        // the same as Python's `mmh3.hash(s, seed, signed=False)`.
        assert_eq!(hash("", 0), 0);
        assert_eq!(hash("", 1), 0x514E_28B7);
        assert_eq!(hash("hello", 0), 0x248B_FA47);
        assert_eq!(hash("Hello, world!", 0), 0xC036_3E43);
        assert_eq!(
            hash("The quick brown fox jumps over the lazy dog", 0),
            0x2E4F_F723
        );
    }

    #[test]
    fn bucket_is_hash_of_salt_colon_key_mod_10000() {
        assert_eq!(
            u32::from(bucket("chat-q4", "user-42")),
            hash("chat-q4:user-42", 0) % 10_000
        );
        // Values computed with Python: mmh3.hash(s, signed=False) % 10000.
        assert_eq!(bucket("chat-q4", "user-42"), 3507);
        assert_eq!(bucket("chat-q4", "alice@example.com"), 5790);
        assert_eq!(bucket("exp", "日本"), 1648);
        assert!(u32::from(bucket("s", "k")) < BUCKETS);
    }

    #[test]
    fn one_treatment_owns_the_start_of_the_space() {
        let layout = Layout::new(&[9000, 1000], 0);
        assert_eq!(layout.variant_of(0), 1);
        assert_eq!(layout.variant_of(999), 1);
        assert_eq!(layout.variant_of(1000), 0);
        assert_eq!(layout.variant_of(9999), 0);
    }

    #[test]
    fn control_need_not_be_first() {
        let layout = Layout::new(&[1000, 9000], 1);
        assert_eq!(layout.control(), 1);
        assert_eq!(layout.variant_of(500), 0);
        assert_eq!(layout.variant_of(5000), 1);
    }

    #[test]
    fn two_treatments_get_one_lane_each() {
        let layout = Layout::new(&[5000, 2500, 2500], 0);
        let count = |v| {
            (0..10_000u16)
                .filter(|b| layout.variant_of(*b) == v)
                .count()
        };
        assert_eq!(count(0), 5000);
        assert_eq!(count(1), 2500);
        assert_eq!(count(2), 2500);
        assert_eq!(layout.variant_of(0), 1);
        assert_eq!(layout.variant_of(5000), 2);
        assert_eq!(layout.variant_of(7500), 0);
    }

    #[test]
    fn split_matches_weights_over_many_keys() {
        let layout = Layout::new(&[9000, 1000], 0);
        let n = 20_000;
        let treated = (0..n)
            .filter(|i| layout.variant_of(bucket("chat-q4", &format!("user-{i}"))) == 1)
            .count();
        let share = treated as f64 / n as f64;
        assert!((share - 0.10).abs() < 0.01, "treatment share {share}");
    }

    #[test]
    fn shares_are_the_buckets_variant_at_gives_each_variant() {
        for (weights, control) in [
            (vec![9000, 1000], 0),
            (vec![1000, 9000], 1),
            (vec![5000, 2500, 2500], 0),
            (vec![3000, 3333, 1000, 2667], 2),
        ] {
            let layout = Layout::new(&weights, control);
            for step in [None, Some(0), Some(1), Some(500), Some(3333), Some(10_000)] {
                let mut counted = vec![0u32; weights.len()];
                for b in 0..10_000u16 {
                    counted[layout.variant_at(b, step)] += 1;
                }
                assert_eq!(
                    layout.shares(weights.len(), step),
                    counted,
                    "{weights:?}, control {control}, step {step:?}"
                );
            }
            assert_eq!(layout.shares(weights.len(), None), weights);
        }
    }

    /// Every weight vector over `treatments` treatments that fits the lanes,
    /// in steps of `step` buckets.
    fn weight_grid(treatments: usize, step: u32) -> Vec<Vec<u32>> {
        let lane = lane_width(treatments);
        let mut out = vec![vec![]];
        for _ in 0..treatments {
            let mut next = Vec::new();
            for prefix in &out {
                let mut w = 0;
                while w <= lane {
                    let mut v = prefix.clone();
                    v.push(w);
                    next.push(v);
                    w += step;
                }
            }
            out = next;
        }
        out
    }

    #[test]
    fn ramping_never_moves_a_user_between_treatments() {
        for treatments in 1..=3usize {
            let grid = weight_grid(treatments, lane_width(treatments) / 4);
            let layout_of = |t: &Vec<u32>| {
                let mut all = vec![BUCKETS - t.iter().sum::<u32>()];
                all.extend(t);
                Layout::new(&all, 0)
            };
            for before in &grid {
                for after in &grid {
                    let (a, b) = (layout_of(before), layout_of(after));
                    for bucket in (0..10_000u16).step_by(7) {
                        let (va, vb) = (a.variant_of(bucket), b.variant_of(bucket));
                        if va != 0 {
                            assert!(vb == va || vb == 0, "moved {va}->{vb} at {bucket}");
                            if after[va - 1] >= before[va - 1] {
                                assert_eq!(vb, va, "lost treatment {va} at {bucket}");
                            }
                        }
                    }
                }
            }
        }
    }
}
