# cython: language_level=3
"""Rolling-window kernels over float64 arrays (Cython).

O(n) single passes with add/remove (Welford) updates, so a window of any length costs the same
per element. NaN inputs are skipped inside a window and make that window's output NaN, so one
bad tick never poisons the rest of the series.
"""

import numpy as np

from libc.math cimport NAN, isnan, sqrt


def rolling_mean(const double[::1] x, Py_ssize_t window):
    """Mean over the trailing ``window`` values; the first ``window - 1`` outputs are NaN."""
    if window < 1:
        raise ValueError("window must be >= 1")
    cdef Py_ssize_t n = x.shape[0], i
    out_arr = np.empty(n, dtype=np.float64)
    cdef double[::1] out = out_arr
    cdef double total = 0.0, comp = 0.0, y, t, v
    cdef Py_ssize_t nans = 0
    for i in range(n):
        v = x[i]
        if isnan(v):
            nans += 1
        else:
            # Kahan-compensated running sum: adding and removing millions of values must not
            # accumulate rounding error.
            y = v - comp
            t = total + y
            comp = (t - total) - y
            total = t
        if i >= window:
            v = x[i - window]
            if isnan(v):
                nans -= 1
            else:
                y = -v - comp
                t = total + y
                comp = (t - total) - y
                total = t
        if i + 1 < window or nans > 0:
            out[i] = NAN
        else:
            out[i] = total / window
    return out_arr


def rolling_std(const double[::1] x, Py_ssize_t window, int ddof=0):
    """Standard deviation over the trailing ``window`` values (``ddof`` as in numpy)."""
    if window < 1:
        raise ValueError("window must be >= 1")
    if ddof < 0 or ddof >= window:
        raise ValueError("ddof must be in [0, window)")
    cdef Py_ssize_t n = x.shape[0], i
    out_arr = np.empty(n, dtype=np.float64)
    cdef double[::1] out = out_arr
    cdef double mean = 0.0, m2 = 0.0, d, v
    cdef Py_ssize_t count = 0, nans = 0
    for i in range(n):
        # Remove the value leaving the window before adding the new one, so the running
        # moments never cover more than `window` values.
        if i >= window:
            v = x[i - window]
            if isnan(v):
                nans -= 1
            else:
                count -= 1
                if count == 0:
                    mean = 0.0
                    m2 = 0.0
                else:
                    d = v - mean
                    mean -= d / count
                    m2 -= d * (v - mean)
        v = x[i]
        if isnan(v):
            nans += 1
        else:
            count += 1
            if count == 1:
                # Exact restart: no cancellation residue from values that left the window.
                mean = v
                m2 = 0.0
            else:
                d = v - mean
                mean += d / count
                m2 += d * (v - mean)
        if m2 < 0.0:
            m2 = 0.0
        if i + 1 < window or nans > 0:
            out[i] = NAN
        else:
            out[i] = sqrt(m2 / (window - ddof)) if m2 > 0.0 else 0.0
    return out_arr


def ema(const double[::1] x, double alpha):
    """Exponential moving average ``y[i] = alpha * x[i] + (1 - alpha) * y[i-1]``, seeded with the
    first non-NaN value; NaN inputs carry the previous average forward."""
    if not (0.0 < alpha <= 1.0):
        raise ValueError("alpha must be in (0, 1]")
    cdef Py_ssize_t n = x.shape[0], i
    out_arr = np.empty(n, dtype=np.float64)
    cdef double[::1] out = out_arr
    cdef double acc = NAN, v
    cdef bint started = False
    for i in range(n):
        v = x[i]
        if not isnan(v):
            if started:
                acc = alpha * v + (1.0 - alpha) * acc
            else:
                acc = v
                started = True
        out[i] = acc
    return out_arr
