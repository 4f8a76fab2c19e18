"""Rolling-window indicator kernels (compiled with Cython) behind typed wrappers.

The wrappers accept any array-like of numbers, convert it once to a contiguous float64 array
(the kernels' only input type), and validate parameters with clear errors.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pysrc.indicators import _rolling

FloatArray = npt.NDArray[np.float64]


def _as_f64(values: npt.ArrayLike) -> FloatArray:
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D series, got shape {arr.shape}")
    return arr


def rolling_mean(values: npt.ArrayLike, window: int) -> FloatArray:
    """Trailing mean over ``window`` samples; NaN until the window is full or while it holds a NaN."""
    return _rolling.rolling_mean(_as_f64(values), int(window))


def rolling_std(values: npt.ArrayLike, window: int, ddof: int = 0) -> FloatArray:
    """Trailing standard deviation over ``window`` samples (``ddof`` as in ``numpy.std``)."""
    return _rolling.rolling_std(_as_f64(values), int(window), int(ddof))


def ema(values: npt.ArrayLike, *, span: float | None = None, alpha: float | None = None) -> FloatArray:
    """Exponential moving average; give ``span`` (alpha = 2 / (span + 1)) or ``alpha``."""
    if (span is None) == (alpha is None):
        raise ValueError("give exactly one of span or alpha")
    if span is not None:
        if span < 1:
            raise ValueError("span must be >= 1")
        alpha = 2.0 / (span + 1.0)
    assert alpha is not None
    return _rolling.ema(_as_f64(values), float(alpha))


__all__ = ["ema", "rolling_mean", "rolling_std"]
