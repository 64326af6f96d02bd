//! Latency histograms: the `hdrhistogram` crate (HdrHistogram, 3 significant digits, so a
//! recorded value is known to within 0.1% of itself; the table grows to the largest value
//! seen), with the exact count, minimum, maximum and sum kept beside it.

#[derive(Clone)]
pub struct Histogram {
    h: hdrhistogram::Histogram<u64>,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            h: hdrhistogram::Histogram::new(3).expect("3 significant digits are supported"),
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        // The table grows to fit; only a value past what it can ever hold saturates.
        if self.h.record(v).is_err() {
            self.h.saturating_record(v);
        }
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v as u128;
    }

    #[allow(dead_code)] // used by tests; part of the type's obvious API
    pub fn count(&self) -> u64 {
        self.h.len()
    }
    /// Exact largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }
    /// Exact smallest value recorded (0 when empty).
    #[allow(dead_code)] // used by tests; part of the type's obvious API
    pub fn min(&self) -> u64 {
        if self.h.is_empty() {
            0
        } else {
            self.min
        }
    }
    pub fn mean(&self) -> f64 {
        if self.h.is_empty() {
            0.0
        } else {
            self.sum as f64 / self.h.len() as f64
        }
    }

    /// The value at quantile `q` (0.0..=1.0), clamped to the exact min and max. 0 when
    /// empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.h.is_empty() {
            return 0;
        }
        self.h
            .value_at_quantile(q.clamp(0.0, 1.0))
            .clamp(self.min, self.max)
    }

    #[allow(dead_code)] // used by tests; part of the type's obvious API
    pub fn merge(&mut self, other: &Histogram) {
        self.h
            .add(&other.h)
            .expect("auto-resizing histograms of the same precision add");
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    #[allow(dead_code)] // used by tests; part of the type's obvious API
    pub fn reset(&mut self) {
        self.h.reset();
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
    fn relative_error_is_below_a_tenth_of_a_percent() {
        let mut r = XorShift64::new(3);
        for _ in 0..10_000 {
            // Log-uniform over 1 .. 2^50.
            let v = r.next_u64() >> (14 + r.below(50));
            let mut h = Histogram::new();
            h.record(v);
            h.record(u64::MAX >> 2);
            let got = h.quantile(0.5);
            assert!(
                got.abs_diff(v) as f64 <= v as f64 / 1000.0,
                "v {v} read back as {got}"
            );
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
            assert!((got - want).abs() / want < 0.001, "q {q}: {got} vs {want}");
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
        assert!((p9999 - 5e6).abs() / 5e6 < 0.001, "{p9999}");
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
