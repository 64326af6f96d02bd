//! A tiny seeded PRNG (xorshift64*), so a workload is the same sequence of choices for the
//! same `--seed` on every machine and every version of this tool.

/// xorshift64* (Marsaglia's xorshift with a multiplicative output scramble). Not for
/// cryptography; plenty for picking keys and read/write mixes.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// Any seed, 0 included: the seed is spread through splitmix64 first so that nearby seeds
    /// give unrelated streams and the state is never the all-zero fixed point.
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift64 {
            state: if z == 0 { 0x2545_F491_4F6C_DD1D } else { z },
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-32 for any n we use).
    /// `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `pct`/100.
    pub fn percent(&mut self, pct: u32) -> bool {
        self.below(100) < pct as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = XorShift64::new(1);
        let mut b = XorShift64::new(1);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn stream_is_pinned() {
        // Guards reproducibility across versions: a change here changes every workload.
        let mut r = XorShift64::new(1);
        let first: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(first, PINNED_SEED1);
    }
    // Checked against an independent Python rendition of splitmix64 + xorshift64*.
    const PINNED_SEED1: [u64; 3] = [
        5_424_204_624_148_110_235,
        15_555_979_849_632_202_484,
        6_851_360_858_507_811_590,
    ];

    #[test]
    fn different_seeds_differ_and_zero_works() {
        let mut a = XorShift64::new(0);
        let mut b = XorShift64::new(1);
        let va: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_ne!(va, vb);
        assert!(va.iter().any(|&v| v != 0));
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = XorShift64::new(42);
        let n = 10u64;
        let draws = 100_000;
        let mut counts = [0u64; 10];
        for _ in 0..draws {
            let v = r.below(n);
            assert!(v < n);
            counts[v as usize] += 1;
        }
        // Chi-squared with 9 degrees of freedom: 99.9th percentile is ~27.9.
        let expect = draws as f64 / n as f64;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expect).powi(2) / expect)
            .sum();
        assert!(chi2 < 27.9, "chi2 {chi2}, counts {counts:?}");
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn percent_matches_its_rate() {
        let mut r = XorShift64::new(7);
        let hits = (0..100_000).filter(|_| r.percent(90)).count();
        assert!((89_000..=91_000).contains(&hits), "{hits}");
        assert!((0..1000).all(|_| !r.percent(0)));
        assert!((0..1000).all(|_| r.percent(100)));
    }
}
