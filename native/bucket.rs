//! Named token buckets for the exchange client's rate limiter.
//!
//! Non-blocking by design: `try_acquire` answers at once and `time_until` says how long to wait,
//! so the asyncio caller sleeps on the event loop instead of a thread blocking inside the core.
//! Tokens are fixed-point integers (micro-tokens) and refill carries its remainder, so no amount of
//! calls makes the bucket drift from `capacity` and `rate`.

use std::collections::HashMap;
use std::time::Instant;

use crate::error::BucketError;

const MICRO: u128 = 1_000_000;
const NANOS: u128 = 1_000_000_000;

#[derive(Debug, Clone)]
pub struct Bucket {
    /// Micro-tokens.
    capacity: u64,
    tokens: u64,
    /// Micro-tokens per second.
    rate: u64,
    /// Clock reading (ns) of the last refill.
    last_ns: u64,
    /// Refill remainder, in micro-token-nanoseconds, carried so refills never lose time.
    carry: u128,
}

impl Bucket {
    fn refill(&mut self, now_ns: u64) {
        if now_ns <= self.last_ns {
            return;
        }
        let elapsed = (now_ns - self.last_ns) as u128;
        self.last_ns = now_ns;
        if self.tokens >= self.capacity {
            self.carry = 0;
            return;
        }
        let total = elapsed * self.rate as u128 + self.carry;
        let add = total / NANOS;
        self.carry = total % NANOS;
        let room = (self.capacity - self.tokens) as u128;
        if add >= room {
            self.tokens = self.capacity;
            self.carry = 0;
        } else {
            self.tokens += add as u64;
        }
    }
}

fn to_micro(v: f64, what: &str) -> Result<u64, BucketError> {
    if !v.is_finite() || !(0.0..=1e12).contains(&v) {
        return Err(BucketError::Invalid(format!("{what} must be a finite number in [0, 1e12], got {v}")));
    }
    Ok((v * MICRO as f64).round() as u64)
}

/// Many named buckets on one monotonic clock.
#[derive(Debug)]
pub struct RateLimiter {
    origin: Instant,
    buckets: HashMap<String, Bucket>,
    order: Vec<String>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimiter {
    pub fn new() -> Self {
        RateLimiter { origin: Instant::now(), buckets: HashMap::new(), order: Vec::new() }
    }

    /// Nanoseconds on this limiter's monotonic clock.
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    pub fn add_bucket(&mut self, name: &str, capacity: f64, refill_per_second: f64) -> Result<(), BucketError> {
        self.add_bucket_at(name, capacity, refill_per_second, self.now_ns())
    }

    pub fn add_bucket_at(&mut self, name: &str, capacity: f64, refill_per_second: f64, now_ns: u64) -> Result<(), BucketError> {
        let cap = to_micro(capacity, "capacity")?;
        let rate = to_micro(refill_per_second, "refill_per_second")?;
        if cap == 0 || rate == 0 {
            return Err(BucketError::Invalid("capacity and refill_per_second must be positive".into()));
        }
        if !self.buckets.contains_key(name) {
            self.order.push(name.to_owned());
        }
        self.buckets.insert(
            name.to_owned(),
            Bucket { capacity: cap, tokens: cap, rate, last_ns: now_ns, carry: 0 },
        );
        Ok(())
    }

    fn bucket(&mut self, name: &str) -> Result<&mut Bucket, BucketError> {
        self.buckets.get_mut(name).ok_or_else(|| BucketError::Unknown(name.to_owned()))
    }

    fn cost(b: &Bucket, cost: f64) -> Result<u64, BucketError> {
        let c = to_micro(cost, "cost")?;
        if c == 0 {
            return Err(BucketError::Invalid("cost must be positive".into()));
        }
        if c > b.capacity {
            return Err(BucketError::Invalid(format!(
                "cost {cost} exceeds the bucket capacity {} and could never be granted",
                b.capacity as f64 / MICRO as f64
            )));
        }
        Ok(c)
    }

    pub fn try_acquire(&mut self, name: &str, cost: f64) -> Result<bool, BucketError> {
        let now = self.now_ns();
        self.try_acquire_at(name, cost, now)
    }

    pub fn try_acquire_at(&mut self, name: &str, cost: f64, now_ns: u64) -> Result<bool, BucketError> {
        let b = self.bucket(name)?;
        let c = Self::cost(b, cost)?;
        b.refill(now_ns);
        if b.tokens >= c {
            b.tokens -= c;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    pub fn time_until(&mut self, name: &str, cost: f64) -> Result<f64, BucketError> {
        let now = self.now_ns();
        self.time_until_at(name, cost, now)
    }

    /// Seconds until `cost` tokens are available (0 when they are now).
    pub fn time_until_at(&mut self, name: &str, cost: f64, now_ns: u64) -> Result<f64, BucketError> {
        let b = self.bucket(name)?;
        let c = Self::cost(b, cost)?;
        b.refill(now_ns);
        if b.tokens >= c {
            return Ok(0.0);
        }
        let missing = (c - b.tokens) as u128 * NANOS - b.carry.min((c - b.tokens) as u128 * NANOS);
        let ns = missing.div_ceil(b.rate as u128);
        Ok(ns as f64 / NANOS as f64)
    }

    pub fn available(&mut self, name: &str) -> Result<f64, BucketError> {
        let now = self.now_ns();
        self.available_at(name, now)
    }

    pub fn available_at(&mut self, name: &str, now_ns: u64) -> Result<f64, BucketError> {
        let b = self.bucket(name)?;
        b.refill(now_ns);
        Ok(b.tokens as f64 / MICRO as f64)
    }

    /// Overwrite the token count (e.g. from an exchange's remaining-quota header).
    pub fn set_available(&mut self, name: &str, tokens: f64) -> Result<(), BucketError> {
        let now = self.now_ns();
        let b = self.bucket(name)?;
        b.refill(now);
        let t = to_micro(tokens.max(0.0), "tokens")?;
        b.tokens = t.min(b.capacity);
        b.carry = 0;
        Ok(())
    }

    pub fn names(&self) -> &[String] {
        &self.order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn grants_capacity_then_refills_at_rate() {
        let mut r = RateLimiter::new();
        r.add_bucket_at("orders", 10.0, 10.0, 0).unwrap();
        for _ in 0..10 {
            assert!(r.try_acquire_at("orders", 1.0, 0).unwrap());
        }
        assert!(!r.try_acquire_at("orders", 1.0, 0).unwrap());
        assert!((r.time_until_at("orders", 1.0, 0).unwrap() - 0.1).abs() < 1e-9);
        assert!(r.try_acquire_at("orders", 1.0, S / 10).unwrap());
        assert!(!r.try_acquire_at("orders", 1.0, S / 10).unwrap());
        // a long idle period refills only to capacity
        assert_eq!(r.available_at("orders", 100 * S).unwrap(), 10.0);
    }

    #[test]
    fn no_drift_over_many_small_refills() {
        let mut r = RateLimiter::new();
        r.add_bucket_at("b", 1000.0, 3.0, 0).unwrap();
        r.set_available("b", 0.0).unwrap();
        let base = r.buckets["b"].last_ns;
        // 3 tokens/s checked every 7.001 us for 1 s must add exactly 3 tokens.
        let mut t = base;
        while t < base + S {
            t += 7_001;
            r.available_at("b", t.min(base + S)).unwrap();
        }
        assert_eq!(r.available_at("b", base + S).unwrap(), 3.0);
    }

    #[test]
    fn weighted_costs_and_errors() {
        let mut r = RateLimiter::new();
        r.add_bucket_at("ip", 600.0, 120.0, 0).unwrap();
        assert!(r.try_acquire_at("ip", 599.5, 0).unwrap());
        assert!(!r.try_acquire_at("ip", 1.0, 0).unwrap());
        assert!(r.try_acquire_at("ip", 601.0, 0).is_err());
        assert!(r.try_acquire_at("nope", 1.0, 0).is_err());
        assert!(r.add_bucket_at("bad", 0.0, 1.0, 0).is_err());
        assert!(r.add_bucket_at("bad", f64::NAN, 1.0, 0).is_err());
    }
}
