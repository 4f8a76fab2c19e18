//! Fixed-capacity windows over the last N updates.
//!
//! Window statistics are recomputed from the window's values (two passes) rather than kept as
//! running sums: with at most 100 values that costs a few hundred floating-point operations, and
//! the result is what a from-scratch computation gives, with no drift after millions of updates
//! and no cancellation when a window's spread is tiny next to its values.

/// The last `cap` values, oldest first when iterated.
#[derive(Debug, Clone)]
pub struct Ring<T: Copy> {
    buf: Vec<T>,
    cap: usize,
    head: usize,
}

impl<T: Copy> Ring<T> {
    pub fn new(cap: usize) -> Self {
        Ring { buf: Vec::with_capacity(cap), cap, head: 0 }
    }

    #[inline]
    pub fn push(&mut self, v: T) {
        if self.buf.len() < self.cap {
            self.buf.push(v);
        } else {
            self.buf[self.head] = v;
            self.head = (self.head + 1) % self.cap;
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Oldest to newest.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        let (a, b) = self.buf.split_at(self.head);
        b.iter().chain(a.iter())
    }
}

/// Sum with four independent accumulators: float adds are latency-bound, so one chain of 100
/// dependent adds is several times slower than four interleaved ones.
#[inline]
pub fn sum4(xs: &[f64]) -> f64 {
    let mut a = [0.0f64; 4];
    let chunks = xs.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        a[0] += c[0];
        a[1] += c[1];
        a[2] += c[2];
        a[3] += c[3];
    }
    let mut t = (a[0] + a[1]) + (a[2] + a[3]);
    for x in rest {
        t += x;
    }
    t
}

/// Sum of squared deviations from `m`, four accumulators.
#[inline]
pub fn sq_dev4(xs: &[f64], m: f64) -> f64 {
    let mut a = [0.0f64; 4];
    let chunks = xs.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..4 {
            let d = c[k] - m;
            a[k] += d * d;
        }
    }
    let mut t = (a[0] + a[1]) + (a[2] + a[3]);
    for x in rest {
        t += (x - m) * (x - m);
    }
    t
}

/// Population mean and standard deviation (two-pass, as a from-scratch computation does).
pub fn mean_std(xs: &[f64]) -> (Option<f64>, Option<f64>) {
    if xs.is_empty() {
        return (None, None);
    }
    let n = xs.len() as f64;
    let m = sum4(xs) / n;
    if xs.len() < 2 {
        return (Some(m), None);
    }
    let v = sq_dev4(xs, m) / n;
    (Some(m), Some(v.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_values_in_order() {
        let mut r = Ring::new(3);
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
    }

    #[test]
    fn stats() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, Some(2.5));
        assert!((s.unwrap() - 1.118033988749895).abs() < 1e-12);
    }
}
