//! `RateLimiter` for Python: named token buckets, non-blocking.

use pyo3::prelude::*;

use super::errors::bucket_err;
use crate::bucket::RateLimiter;

#[pyclass(name = "RateLimiter", module = "pysrc._native")]
pub struct PyRateLimiter {
    inner: RateLimiter,
}

#[pymethods]
impl PyRateLimiter {
    #[new]
    fn py_new() -> Self {
        PyRateLimiter { inner: RateLimiter::new() }
    }

    #[pyo3(name = "add_bucket")]
    fn py_add_bucket(&mut self, py: Python<'_>, name: &str, capacity: f64, refill_per_second: f64) -> PyResult<()> {
        self.inner.add_bucket(name, capacity, refill_per_second).map_err(|e| bucket_err(py, e))
    }

    #[pyo3(name = "try_acquire", signature = (name, cost = 1.0))]
    fn py_try_acquire(&mut self, py: Python<'_>, name: &str, cost: f64) -> PyResult<bool> {
        self.inner.try_acquire(name, cost).map_err(|e| bucket_err(py, e))
    }

    #[pyo3(name = "time_until_available", signature = (name, cost = 1.0))]
    fn py_time_until_available(&mut self, py: Python<'_>, name: &str, cost: f64) -> PyResult<f64> {
        self.inner.time_until(name, cost).map_err(|e| bucket_err(py, e))
    }

    #[pyo3(name = "available")]
    fn py_available(&mut self, py: Python<'_>, name: &str) -> PyResult<f64> {
        self.inner.available(name).map_err(|e| bucket_err(py, e))
    }

    #[pyo3(name = "set_available")]
    fn py_set_available(&mut self, py: Python<'_>, name: &str, tokens: f64) -> PyResult<()> {
        self.inner.set_available(name, tokens).map_err(|e| bucket_err(py, e))
    }

    #[pyo3(name = "buckets")]
    fn py_buckets(&self) -> Vec<String> {
        self.inner.names().to_vec()
    }
}
