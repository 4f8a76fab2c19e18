//! Running power sums of a sliding window's values (mean, variance, skewness in O(1) per value).

/// Shifted power sums of a window's values: sums of `(x - k)`, `(x - k)^2`, `(x - k)^3`. The
/// shift `k` is the window mean at the last exact recompute, so a (nearly) constant window has
/// (nearly) zero sums and no cancellation; the sums are recomputed from the window every
/// window length of updates, which bounds the rounding a long run could accumulate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moments {
    n: usize,
    k: f64,
    s1: f64,
    s2: f64,
    s3: f64,
}

impl Moments {
    #[inline]
    pub fn add(&mut self, x: f64) {
        if self.n == 0 {
            // Anchor the shift on the first value: a constant window then sums exact zeros.
            *self = Moments { k: x, ..Moments::default() };
        }
        let d = x - self.k;
        self.n += 1;
        self.s1 += d;
        self.s2 += d * d;
        self.s3 += d * d * d;
    }

    #[inline]
    pub fn remove(&mut self, x: f64) {
        let d = x - self.k;
        self.n -= 1;
        self.s1 -= d;
        self.s2 -= d * d;
        self.s3 -= d * d * d;
        if self.n == 0 {
            self.s1 = 0.0;
            self.s2 = 0.0;
            self.s3 = 0.0;
        }
    }

    pub fn rebuild(&mut self, xs: impl Iterator<Item = f64> + Clone) {
        let (n, sum) = xs.clone().fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
        *self = Moments { k: if n > 0 { sum / n as f64 } else { 0.0 }, ..Moments::default() };
        for x in xs {
            self.add(x);
        }
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.k + self.s1 / self.n as f64)
    }

    /// Population variance, never negative.
    pub fn var(&self) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let n = self.n as f64;
        let m1 = self.s1 / n;
        Some((self.s2 / n - m1 * m1).max(0.0))
    }

    pub fn std(&self) -> Option<f64> {
        if self.n < 2 {
            None
        } else {
            self.var().map(f64::sqrt)
        }
    }

    pub fn skew(&self) -> Option<f64> {
        if self.n < 3 {
            return None;
        }
        let n = self.n as f64;
        let (m1, m2, m3) = (self.s1 / n, self.s2 / n, self.s3 / n);
        let var = m2 - m1 * m1;
        if var <= 0.0 {
            return None;
        }
        let central3 = m3 - 3.0 * m1 * m2 + 2.0 * m1 * m1 * m1;
        Some(central3 / var.powf(1.5))
    }
}
