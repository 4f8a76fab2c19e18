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

/// One schema row as a Python dict.
fn schema_row<'py>(py: Python<'py>, fields: [(&str, &str); 6]) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let d = pyo3::types::PyDict::new(py);
    for (k, v) in fields {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// The schema rows of the base features followed by `temporal`.
pub(crate) fn schema_rows<'py>(
    py: Python<'py>,
    temporal: &[crate::analytics::TemporalSpec],
) -> PyResult<Bound<'py, pyo3::types::PyList>> {
    let out = pyo3::types::PyList::empty(py);
    for f in crate::analytics::FEATURES {
        out.append(schema_row(
            py,
            [("name", f.name), ("group", f.group), ("units", f.units), ("window", f.window), ("formula", f.formula), ("missing", f.missing)],
        )?)?;
    }
    for t in temporal {
        let (window, formula) = (t.window_text(), t.formula());
        out.append(schema_row(
            py,
            [
                ("name", &t.name),
                ("group", "temporal (configured)"),
                ("units", t.units()),
                ("window", &window),
                ("formula", &formula),
                ("missing", t.missing()),
            ],
        )?)?;
    }
    Ok(out)
}

/// Every base feature in vector order: ``name, group, units, window, formula, missing``.
#[pyfunction]
fn feature_schema(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyList>> {
    schema_rows(py, &[])
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
    m.add("FEATURE_TEMPORAL_DOC", crate::analytics::TEMPORAL_DOC)?;
    m.add_function(pyo3::wrap_pyfunction!(feature_schema, m)?)?;
    errors::register(m)?;
    m.add_class::<book::PyBookEngine>()?;
    m.add_class::<bucket::PyRateLimiter>()?;
    Ok(())
}
