//! The compiled core of the Bybit trading bot.
//!
//! Pure Rust, with no knowledge of Python: order books keyed by fixed-point integer prices,
//! exchange codecs that apply one raw message per call, exchange checksums, and token buckets.
//! The PyO3 bindings live in `python/` behind the `python` feature, so `cargo test` and the
//! Criterion benches build without a Python toolchain.

pub mod analytics;
pub mod book;
pub mod bucket;
pub mod checksum;
pub mod decimal;
pub mod error;

#[cfg(feature = "python")]
mod python;

pub use book::{BookEngine, Exchange, Outcome};
pub use bucket::RateLimiter;
pub use error::{BookError, BucketError};
