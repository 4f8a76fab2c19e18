//! Errors of the pure core. The Python layer converts them in exactly one place
//! (`python/errors.rs`), so Python callers can catch specific exception classes.

use crate::decimal::DecimalError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// The bytes are not valid JSON, or not the shape the exchange documents.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A price or size that is not an exact decimal the core accepts.
    #[error("malformed number: {0}")]
    Number(#[from] DecimalError),
    /// A value that does not fit the fixed-point representation.
    #[error("value out of range: {0}")]
    Range(String),
    /// A topic or channel this exchange does not publish.
    #[error("unknown topic: {0}")]
    UnknownTopic(String),
    #[error("unknown exchange {0:?} (expected bybit, binance, okx or kraken)")]
    UnknownExchange(String),
    #[error("invalid engine setting: {0}")]
    Config(String),
    #[error("no book for symbol {0:?}")]
    UnknownSymbol(String),
}

impl From<serde_json::Error> for BookError {
    fn from(e: serde_json::Error) -> Self {
        BookError::Malformed(e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketError {
    #[error("no bucket named {0:?}")]
    Unknown(String),
    #[error("invalid bucket parameter: {0}")]
    Invalid(String),
}
