//! Exchange wire formats. Each codec parses a raw message with borrowed strings (no copies of
//! price text), validates it completely, then applies it to its book.

pub mod binance;
pub mod bybit;
pub mod kraken;
pub mod okx;
pub(crate) mod scan;
pub(crate) mod wire;
