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

/// Every feature in vector order: ``name, group, units, window, formula, missing``.
#[pyfunction]
fn feature_schema(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyList>> {
    let out = pyo3::types::PyList::empty(py);
    for f in crate::analytics::FEATURES {
        let d = pyo3::types::PyDict::new(py);
        d.set_item("name", f.name)?;
        d.set_item("group", f.group)?;
        d.set_item("units", f.units)?;
        d.set_item("window", f.window)?;
        d.set_item("formula", f.formula)?;
        d.set_item("missing", f.missing)?;
        out.append(d)?;
    }
    Ok(out)
}

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
        ("TRADES", Outcome::Trades),
    ] {
        m.add(name, o as u8)?;
    }
    m.add("FEATURE_SCHEMA_VERSION", crate::analytics::SCHEMA_VERSION)?;
    m.add("FEATURE_CONVENTIONS", crate::analytics::CONVENTIONS)?;
    m.add_function(pyo3::wrap_pyfunction!(feature_schema, m)?)?;
    errors::register(m)?;
    m.add_class::<book::PyBookEngine>()?;
    m.add_class::<bucket::PyRateLimiter>()?;
    Ok(())
}
