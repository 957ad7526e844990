//! One small sort for the whole module. The standard library's sorts are
//! instantiated once per element type (ipnsort and driftsort: ~4 KB of
//! wasm each); the filter sorts a few short lists (hit spans, candidate
//! offsets, word ids, model names), so a heapsort — in place, O(n log n)
//! in the worst case, a few hundred bytes per type — serves them all.

/// Sorts `v` ascending (not stable: callers sort keys that are unique or
/// whose equal elements are indistinguishable).
pub fn sort<T: Ord>(v: &mut [T]) {
    let n = v.len();
    for root in (0..n / 2).rev() {
        sift_down(v, root, n);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end);
    }
}

/// Restores the max-heap below `root` within `v[..end]`.
fn sift_down<T: Ord>(v: &mut [T], mut root: usize, end: usize) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && v[child] < v[child + 1] {
            child += 1;
        }
        if v[root] >= v[child] {
            return;
        }
        v.swap(root, child);
        root = child;
    }
}

#[cfg(test)]
mod tests {
    use super::sort;

    #[test]
    fn sorts_as_the_standard_sort_does() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            for round in 0..20 {
                let v: Vec<(u64, u8)> = (0..len)
                    .map(|_| {
                        crate::testing::xorshift(&mut seed);
                        // Few distinct values in some rounds: many ties.
                        (
                            seed % if round % 2 == 0 { 5 } else { u64::MAX },
                            (seed >> 60) as u8,
                        )
                    })
                    .collect();
                let mut want = v.clone();
                want.sort_unstable();
                let mut got = v;
                sort(&mut got);
                assert_eq!(got, want);
            }
        }
        let mut sorted: Vec<u32> = (0..1000).collect();
        sort(&mut sorted);
        assert!(sorted.windows(2).all(|w| w[0] < w[1]));
        let mut reversed: Vec<u32> = (0..1000).rev().collect();
        sort(&mut reversed);
        assert_eq!(reversed, sorted);
    }
}
