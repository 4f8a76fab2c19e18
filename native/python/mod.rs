//! The only module that knows about Python: `pysrc._native`.
//!
//! Every exported method is a thin `py_*` function renamed with `#[pyo3(name = ...)]`, so the Rust
//! internals, the Python surface and `pysrc/_native.pyi` can change independently; the stub is
//! checked against this module by `mypy.stubtest` in the test suite.

mod book;
mod bucket;
mod errors;

use pyo3::prelude::*;

use crate::book::Outcome;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    for (name, o) in [
        ("APPLIED", Outcome::Applied),
        ("SKIPPED", Outcome::Skipped),
        ("STALE", Outcome::Stale),
        ("BUFFERED", Outcome::Buffered),
        ("WAITING", Outcome::Waiting),
        ("GAP", Outcome::Gap),
        ("CROSSED", Outcome::Crossed),
        ("CHECKSUM_MISMATCH", Outcome::ChecksumMismatch),
    ] {
        m.add(name, o as u8)?;
    }
    errors::register(m)?;
    m.add_class::<book::PyBookEngine>()?;
    m.add_class::<bucket::PyRateLimiter>()?;
    Ok(())
}
