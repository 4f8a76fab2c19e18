//! Microstructure analytics and the ML feature vector, kept current per symbol inside the engine.
//!
//! `schema` defines every feature; `features` owns a symbol's state and recomputes the vector
//! after each applied book update; `trades`, `walls` and `window` are its parts.

pub mod features;
pub mod moments;
pub mod schema;
pub mod temporal;
pub mod trades;
pub mod walls;
pub mod window;

pub use features::SymbolFeatures;
pub use schema::{FeatureSpec, CONVENTIONS, FEATURES, N_FEATURES, SCHEMA_VERSION};
pub use temporal::{TemporalSpec, TEMPORAL_DOC};
pub use trades::Trade;
pub use walls::Detection;
