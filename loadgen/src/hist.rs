//! A log-bucket latency histogram in the spirit of HdrHistogram: every power of two is split
//! into 128 equal sub-buckets, so any recorded value is known to within 1/128 (0.8%) of
//! itself, over the whole u64 range, in a fixed 7,424-bucket table (58 KiB). Recording is an
//! index computation and an increment.

const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS; // 128 sub-buckets per octave
/// Values below this are stored exactly, one bucket each.
const LINEAR: u64 = 2 * SUB;
const BUCKETS: usize = (65 - SUB_BITS as usize) * SUB as usize; // index(u64::MAX) + 1

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket of `v`. Values below 256 map to themselves; above, the top 8 significant bits
/// (the leading 1 and 7 more) and the octave pick the bucket.
fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // >= 8
    let shift = msb - SUB_BITS; // >= 1
    let top = v >> shift; // in [128, 256)
    (shift as u64 * SUB + top) as usize
}

/// The smallest value of bucket `i`.
fn lowest(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let shift = i / SUB - 1;
    let top = i % SUB + SUB;
    top << shift
}

/// The largest value of bucket `i`.
fn highest(i: usize) -> u64 {
    let i64_ = i as u64;
    if i64_ < LINEAR {
        return i64_;
    }
    let shift = i64_ / SUB - 1;
    lowest(i) + ((1u64 << shift) - 1)
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v as u128;
    }

    #[allow(dead_code)] // used by tests; part of the type's obvious API
    pub fn count(&self) -> u64 {
        self.total
    }
    /// Exact largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }
    /// Exact smallest value recorded (0 when empty).
    #[allow(dead_code)] // used by tests; part of the type's obvious API
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0.0..=1.0): the middle of the bucket holding the
    /// ceil(q·n)-th smallest value, clamped to the exact min and max. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = (lowest(i), highest(i));
                let mid = lo + (hi - lo) / 2;
                return mid.clamp(self.min, self.max);
            }
        }
        self.max
    }

    #[allow(dead_code)] // used by tests; part of the type's obvious API
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    #[allow(dead_code)] // used by tests; part of the type's obvious API
    pub fn reset(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
        self.min = u64::MAX;
        self.max = 0;
        self.sum = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::XorShift64;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(highest(BUCKETS - 1), u64::MAX);
        for i in 0..BUCKETS - 1 {
            assert!(lowest(i) <= highest(i));
            assert_eq!(highest(i) + 1, lowest(i + 1), "gap after bucket {i}");
            assert_eq!(index(lowest(i)), i);
            assert_eq!(index(highest(i)), i);
        }
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 0..256 {
            h.record(v);
        }
        assert_eq!(h.count(), 256);
        assert_eq!(h.quantile(0.0), 0);
        assert_eq!(h.quantile(0.5), 127);
        assert_eq!(h.quantile(1.0), 255);
        assert_eq!(h.min(), 0);
        assert_eq!(h.max(), 255);
    }

    #[test]
    fn relative_error_is_below_one_percent() {
        let mut r = XorShift64::new(3);
        for _ in 0..100_000 {
            // Log-uniform over 1 .. 2^50.
            let v = r.next_u64() >> (14 + r.below(50));
            let i = index(v);
            assert!(lowest(i) <= v && v <= highest(i));
            let width = highest(i) - lowest(i);
            assert!(width as f64 <= v as f64 / 127.0, "v {v} width {width}");
        }
    }

    #[test]
    fn quantiles_of_uniform_values() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [
            (0.5, 50_000.0),
            (0.9, 90_000.0),
            (0.99, 99_000.0),
            (0.999, 99_900.0),
        ] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.01, "q {q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(1.0), 100_000);
        assert_eq!(h.max(), 100_000);
        assert!((h.mean() - 50_000.5).abs() < 1e-6);
    }

    #[test]
    fn tail_quantile_sees_rare_outliers() {
        let mut h = Histogram::new();
        for _ in 0..9_990 {
            h.record(1_000);
        }
        for _ in 0..10 {
            h.record(5_000_000);
        }
        let p99 = h.quantile(0.99);
        assert!((990..=1010).contains(&p99), "{p99}");
        let p999 = h.quantile(0.999);
        assert!((990..=1010).contains(&p999), "{p999}");
        let p9999 = h.quantile(0.9999) as f64;
        assert!((p9999 - 5e6).abs() / 5e6 < 0.01, "{p9999}");
    }

    #[test]
    fn empty_merge_and_reset() {
        let mut a = Histogram::new();
        assert_eq!(a.quantile(0.99), 0);
        assert_eq!(a.min(), 0);
        assert_eq!(a.max(), 0);
        let mut b = Histogram::new();
        b.record(10);
        b.record(20);
        a.record(30);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.min(), 10);
        assert_eq!(a.max(), 30);
        assert_eq!(a.quantile(0.5), 20);
        a.reset();
        assert_eq!(a.count(), 0);
        assert_eq!(a.quantile(0.5), 0);
    }
}
