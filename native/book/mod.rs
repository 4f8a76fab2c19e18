//! L2 order books: ladders, the per-symbol book with its integrity state, exchange codecs, and
//! the engine that routes raw messages to books.

pub mod codec;
pub mod engine;
pub mod l2;
pub mod ladder;

pub use engine::{Applied, BookEngine, Exchange, LinesReport, Outcome, Totals};
pub use l2::{BookState, BookStats, L2Book, WireLevel};
pub use ladder::{Ladder, Level, Side};
