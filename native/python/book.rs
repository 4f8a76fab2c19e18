//! `BookEngine` for Python: raw message in, a small tuple out; reads return a few numbers or the
//! requested top levels, never the whole book.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use super::errors::book_err;
use crate::analytics::TemporalSpec;
use crate::book::{Applied, BookEngine, L2Book, Outcome};

#[pyclass(name = "BookEngine", module = "pysrc._native")]
pub struct PyBookEngine {
    inner: BookEngine,
    /// Python `str` of each book's symbol, by book index, created once so `apply` returns the
    /// symbol without building a new string per message.
    names: Vec<Py<PyString>>,
    /// Scratch for `features_into`, so reading a vector allocates nothing.
    values: Vec<f64>,
    mask: Vec<u8>,
}

type Levels = Vec<(String, String)>;

impl PyBookEngine {
    fn book(&self, py: Python<'_>, symbol: &str) -> PyResult<&L2Book> {
        self.inner.book(symbol).map_err(|e| book_err(py, e))
    }

    /// Create the Python names of books added since the last call.
    fn sync_names(&mut self, py: Python<'_>) {
        while self.names.len() < self.inner.books().len() {
            let sym = &self.inner.books()[self.names.len()].symbol;
            self.names.push(PyString::new(py, sym).unbind());
        }
    }

    fn result(&mut self, py: Python<'_>, r: Result<Applied, crate::BookError>) -> PyResult<(u8, Option<Py<PyString>>)> {
        let (outcome, idx) = r.map_err(|e| book_err(py, e))?;
        if outcome == Outcome::Trades {
            // Trade-only symbols have no book; their name comes from the analytics.
            let name = idx.map(|i| PyString::new(py, self.inner.symbol_at(outcome, i)).unbind());
            return Ok((outcome as u8, name));
        }
        self.sync_names(py);
        Ok((outcome as u8, idx.map(|i| self.names[i].clone_ref(py))))
    }
}

/// The bytes of a `bytes` or `str` message, without copying.
fn message_bytes<'a>(message: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    if let Ok(b) = message.cast::<PyBytes>() {
        Ok(b.as_bytes())
    } else if let Ok(s) = message.cast::<PyString>() {
        Ok(s.to_str()?.as_bytes())
    } else {
        Err(PyTypeError::new_err("message must be bytes or str"))
    }
}

#[pymethods]
impl PyBookEngine {
    #[new]
    #[pyo3(signature = (exchange, depth = 0, buffer_limit = 10000, features = false, temporal = None))]
    fn py_new(
        py: Python<'_>,
        exchange: &str,
        depth: usize,
        buffer_limit: usize,
        features: bool,
        temporal: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let mut inner = BookEngine::new(exchange, depth, buffer_limit).map_err(|e| book_err(py, e))?;
        let temporal = temporal.unwrap_or_default();
        if !temporal.is_empty() && !features {
            return Err(PyValueError::new_err("temporal features need features=True"));
        }
        if features {
            let specs = TemporalSpec::parse_all(&temporal).map_err(|e| book_err(py, e))?;
            inner.enable_features_with(specs);
        }
        let n = inner.feature_count();
        Ok(PyBookEngine { inner, names: Vec::new(), values: vec![0.0; n], mask: vec![0; n] })
    }

    #[pyo3(name = "feature_names")]
    fn py_feature_names(&self) -> Vec<String> {
        let base = crate::analytics::FEATURES.iter().map(|f| f.name.to_owned());
        base.chain(self.inner.temporal_specs().iter().map(|t| t.name.clone())).collect()
    }

    #[pyo3(name = "feature_schema")]
    fn py_feature_schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        super::schema_rows(py, self.inner.temporal_specs())
    }

    #[getter(features_enabled)]
    fn py_features_enabled(&self) -> bool {
        self.inner.features_enabled()
    }

    #[pyo3(name = "features_into", signature = (symbol, values, mask, normalized = false))]
    fn py_features_into(
        &mut self,
        py: Python<'_>,
        symbol: &str,
        values: &Bound<'_, PyAny>,
        mask: &Bound<'_, PyAny>,
        normalized: bool,
    ) -> PyResult<u64> {
        let count = self.values.len();
        let vbuf = PyBuffer::<f64>::get(values)?;
        let mbuf = PyBuffer::<u8>::get(mask)?;
        for (name, ro, c, n) in [
            ("values", vbuf.readonly(), vbuf.is_c_contiguous(), vbuf.item_count()),
            ("mask", mbuf.readonly(), mbuf.is_c_contiguous(), mbuf.item_count()),
        ] {
            if ro || !c || n != count {
                return Err(PyValueError::new_err(format!(
                    "{name} must be a writable contiguous buffer of {count} items (float64 values, uint8 mask)"
                )));
            }
        }
        let f = self.inner.features(symbol).map_err(|e| book_err(py, e))?;
        f.write(normalized, &mut self.values, &mut self.mask);
        vbuf.copy_from_slice(py, &self.values)?;
        mbuf.copy_from_slice(py, &self.mask)?;
        Ok(f.updates())
    }

    #[pyo3(name = "set_reference_symbol")]
    fn py_set_reference_symbol(&mut self, py: Python<'_>, symbol: Option<&str>) -> PyResult<()> {
        self.inner.set_reference_symbol(symbol).map_err(|e| book_err(py, e))
    }

    #[pyo3(name = "set_external_mid")]
    fn py_set_external_mid(&mut self, py: Python<'_>, symbol: &str, mid: Option<f64>) -> PyResult<()> {
        self.inner.set_external_mid(symbol, mid).map_err(|e| book_err(py, e))
    }

    #[pyo3(name = "detections")]
    fn py_detections<'py>(&self, py: Python<'py>, symbol: &str) -> PyResult<Bound<'py, PyList>> {
        let f = self.inner.features(symbol).map_err(|e| book_err(py, e))?;
        let out = PyList::empty(py);
        for d in f.detections() {
            let item = PyDict::new(py);
            item.set_item("kind", d.kind)?;
            item.set_item("side", d.side.as_str())?;
            item.set_item("score", d.score)?;
            item.set_item("ts", d.ts)?;
            item.set_item("levels", d.levels.clone())?;
            out.append(item)?;
        }
        Ok(out)
    }

    #[getter(exchange)]
    fn py_exchange(&self) -> &'static str {
        self.inner.exchange().as_str()
    }

    #[getter(depth)]
    fn py_depth(&self) -> usize {
        self.inner.depth()
    }

    #[pyo3(name = "apply")]
    fn py_apply(&mut self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<(u8, Option<Py<PyString>>)> {
        let r = self.inner.apply(message_bytes(message)?);
        self.result(py, r)
    }

    /// Apply newline-separated messages in one call; the GIL is released meanwhile.
    #[pyo3(name = "apply_lines", signature = (data, rest_symbol = None, max_errors = 5))]
    fn py_apply_lines<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        rest_symbol: Option<&str>,
        max_errors: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let bytes = message_bytes(data)?;
        let inner = &mut self.inner;
        let rep = py.detach(|| inner.apply_lines(bytes, rest_symbol, max_errors));
        self.sync_names(py);
        let d = PyDict::new(py);
        d.set_item("lines", rep.lines)?;
        d.set_item("applied", rep.applied)?;
        d.set_item("skipped", rep.skipped)?;
        d.set_item("other", rep.other)?;
        d.set_item("errors", rep.errors)?;
        d.set_item("first_errors", rep.first_errors)?;
        Ok(d)
    }

    #[pyo3(name = "apply_snapshot")]
    fn py_apply_snapshot(
        &mut self,
        py: Python<'_>,
        symbol: &str,
        message: &Bound<'_, PyAny>,
    ) -> PyResult<(u8, Option<Py<PyString>>)> {
        let r = self.inner.apply_snapshot(symbol, message_bytes(message)?);
        self.result(py, r)
    }

    #[pyo3(name = "symbols")]
    fn py_symbols(&self) -> Vec<String> {
        self.inner.books().iter().map(|b| b.symbol.clone()).collect()
    }

    #[pyo3(name = "has_book")]
    fn py_has_book(&self, symbol: &str) -> bool {
        self.inner.find(symbol).is_some()
    }

    #[pyo3(name = "state")]
    fn py_state(&self, py: Python<'_>, symbol: &str) -> PyResult<&'static str> {
        Ok(self.book(py, symbol)?.state.as_str())
    }

    #[pyo3(name = "is_live")]
    fn py_is_live(&self, py: Python<'_>, symbol: &str) -> PyResult<bool> {
        Ok(self.book(py, symbol)?.is_live())
    }

    #[pyo3(name = "needs_resync")]
    fn py_needs_resync(&self) -> Vec<String> {
        self.inner.needs_resync().into_iter().map(str::to_owned).collect()
    }

    #[pyo3(name = "reset")]
    fn py_reset(&mut self, py: Python<'_>, symbol: &str) -> PyResult<()> {
        self.inner.reset(symbol).map_err(|e| book_err(py, e))
    }

    #[pyo3(name = "top_of_book")]
    fn py_top_of_book(&self, py: Python<'_>, symbol: &str) -> PyResult<Option<(f64, f64, f64, f64)>> {
        let b = self.book(py, symbol)?;
        Ok(match (b.bids.best(), b.asks.best()) {
            (Some(bid), Some(ask)) => Some((b.px_f64(bid), b.sz_f64(bid), b.px_f64(ask), b.sz_f64(ask))),
            _ => None,
        })
    }

    #[pyo3(name = "best_bid")]
    fn py_best_bid(&self, py: Python<'_>, symbol: &str) -> PyResult<Option<(String, String)>> {
        let b = self.book(py, symbol)?;
        Ok(b.bids.best().map(|l| (b.px_string(l), b.sz_string(l))))
    }

    #[pyo3(name = "best_ask")]
    fn py_best_ask(&self, py: Python<'_>, symbol: &str) -> PyResult<Option<(String, String)>> {
        let b = self.book(py, symbol)?;
        Ok(b.asks.best().map(|l| (b.px_string(l), b.sz_string(l))))
    }

    #[pyo3(name = "levels", signature = (symbol, n = 20))]
    fn py_levels(&self, py: Python<'_>, symbol: &str, n: usize) -> PyResult<(Levels, Levels)> {
        Ok(self.book(py, symbol)?.levels_strings(n))
    }

    #[pyo3(name = "update_id")]
    fn py_update_id(&self, py: Python<'_>, symbol: &str) -> PyResult<u64> {
        Ok(self.book(py, symbol)?.update_id)
    }

    #[pyo3(name = "last_ts")]
    fn py_last_ts(&self, py: Python<'_>, symbol: &str) -> PyResult<Option<i64>> {
        Ok(self.book(py, symbol)?.last_ts)
    }

    #[pyo3(name = "stats")]
    fn py_stats<'py>(&self, py: Python<'py>, symbol: &str) -> PyResult<Bound<'py, PyDict>> {
        let b = self.book(py, symbol)?;
        let d = PyDict::new(py);
        let s = &b.stats;
        d.set_item("messages", s.messages)?;
        d.set_item("update_id", b.update_id)?;
        d.set_item("gaps", s.gaps)?;
        d.set_item("resyncs", s.resyncs)?;
        d.set_item("stale", s.stale)?;
        d.set_item("crossed", s.crossed)?;
        d.set_item("checksums_checked", s.checksums_checked)?;
        d.set_item("checksum_failures", s.checksum_failures)?;
        d.set_item("bid_levels", b.bids.len())?;
        d.set_item("ask_levels", b.asks.len())?;
        d.set_item("depth", b.depth)?;
        d.set_item("state", b.state.as_str())?;
        Ok(d)
    }

    #[pyo3(name = "totals")]
    fn py_totals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = self.inner.totals();
        let d = PyDict::new(py);
        for (k, v) in [
            ("messages", t.messages),
            ("applied", t.applied),
            ("skipped", t.skipped),
            ("stale", t.stale),
            ("buffered", t.buffered),
            ("waiting", t.waiting),
            ("gaps", t.gaps),
            ("crossed", t.crossed),
            ("checksum_failures", t.checksum_failures),
            ("checksums_checked", t.checksums_checked),
            ("errors", t.errors),
            ("trades", t.trades),
        ] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
}
