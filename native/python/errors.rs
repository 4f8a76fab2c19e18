//! The one place where core errors become Python exceptions.

use pyo3::exceptions::{PyException, PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::PyTypeInfo;

use crate::error::{BookError, BucketError};

pyo3::create_exception!(pysrc._native, NativeError, PyException, "Base class of every error raised by the compiled core.");

// Multiple inheritance (NativeError + ValueError / KeyError) is not expressible with
// create_exception!, so these classes are created at import time with `type(...)`.
static MALFORMED: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> = pyo3::sync::PyOnceLock::new();
static UNKNOWN_SYMBOL: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> = pyo3::sync::PyOnceLock::new();
static UNKNOWN_BUCKET: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> = pyo3::sync::PyOnceLock::new();

fn make_class(
    py: Python<'_>,
    name: &str,
    doc: &str,
    bases: (Bound<'_, pyo3::types::PyType>, Bound<'_, pyo3::types::PyType>),
) -> PyResult<Py<pyo3::types::PyType>> {
    let ns = pyo3::types::PyDict::new(py);
    ns.set_item("__module__", "pysrc._native")?;
    ns.set_item("__doc__", doc)?;
    let builtins = py.import("builtins")?;
    let cls = builtins.getattr("type")?.call1((name, bases, ns))?;
    Ok(cls.cast_into::<pyo3::types::PyType>()?.unbind())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("NativeError", py.get_type::<NativeError>())?;
    let malformed = MALFORMED.get_or_try_init(py, || {
        make_class(
            py,
            "MalformedMessage",
            "The message could not be parsed or violates the exchange schema; nothing was applied.",
            (py.get_type::<NativeError>(), PyValueError::type_object(py)),
        )
    })?;
    m.add("MalformedMessage", malformed.bind(py))?;
    let unknown = UNKNOWN_SYMBOL.get_or_try_init(py, || {
        make_class(
            py,
            "UnknownSymbol",
            "No book exists for the requested symbol.",
            (py.get_type::<NativeError>(), PyKeyError::type_object(py)),
        )
    })?;
    m.add("UnknownSymbol", unknown.bind(py))?;
    let bucket = UNKNOWN_BUCKET.get_or_try_init(py, || {
        make_class(
            py,
            "UnknownBucket",
            "No token bucket with that name.",
            (py.get_type::<NativeError>(), PyKeyError::type_object(py)),
        )
    })?;
    m.add("UnknownBucket", bucket.bind(py))?;
    Ok(())
}

fn raise(py: Python<'_>, cls: &pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>>, msg: String) -> PyErr {
    match cls.get(py) {
        Some(t) => PyErr::from_type(t.bind(py).clone(), msg),
        None => PyTypeError::new_err(msg),
    }
}

pub fn book_err(py: Python<'_>, e: BookError) -> PyErr {
    match e {
        BookError::UnknownSymbol(_) => raise(py, &UNKNOWN_SYMBOL, e.to_string()),
        BookError::UnknownExchange(_) | BookError::Config(_) => PyValueError::new_err(e.to_string()),
        _ => raise(py, &MALFORMED, e.to_string()),
    }
}

pub fn bucket_err(py: Python<'_>, e: BucketError) -> PyErr {
    match e {
        BucketError::Unknown(_) => raise(py, &UNKNOWN_BUCKET, e.to_string()),
        BucketError::Invalid(_) => PyValueError::new_err(e.to_string()),
    }
}
