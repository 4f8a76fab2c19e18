"""Cython rolling kernels against direct numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pysrc.indicators import ema, rolling_mean, rolling_std


def windows_view(x: np.ndarray, w: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(x, w)


def test_rolling_mean_matches_numpy() -> None:
    x = np.random.default_rng(1).normal(100, 5, 1000)
    got = rolling_mean(x, 20)
    assert np.isnan(got[:19]).all()
    np.testing.assert_allclose(got[19:], windows_view(x, 20).mean(axis=1), rtol=1e-12)


@pytest.mark.parametrize("ddof", [0, 1])
def test_rolling_std_matches_numpy(ddof: int) -> None:
    x = np.random.default_rng(2).normal(0, 3, 2000)
    got = rolling_std(x, 50, ddof=ddof)
    np.testing.assert_allclose(got[49:], windows_view(x, 50).std(axis=1, ddof=ddof), rtol=1e-9, atol=1e-12)


def test_nan_poisons_only_its_windows() -> None:
    x = np.arange(10, dtype=float)
    x[4] = np.nan
    m = rolling_mean(x, 3)
    assert np.isnan(m[4:7]).all()
    assert m[3] == pytest.approx(2.0)
    assert m[7] == pytest.approx(6.0)
    s = rolling_std(x, 3)
    assert np.isnan(s[4:7]).all() and not np.isnan(s[7])


def test_ema_against_a_plain_loop() -> None:
    x = np.random.default_rng(3).normal(0, 1, 500)
    alpha = 2 / (10 + 1)
    ref = np.empty_like(x)
    ref[0] = x[0]
    for i in range(1, len(x)):
        ref[i] = alpha * x[i] + (1 - alpha) * ref[i - 1]
    np.testing.assert_allclose(ema(x, span=10), ref, rtol=1e-12)
    np.testing.assert_allclose(ema(x, alpha=alpha), ref, rtol=1e-12)


def test_parameter_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="window"):
        rolling_mean([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="ddof"):
        rolling_std([1.0, 2.0], 2, ddof=2)
    with pytest.raises(ValueError, match="exactly one"):
        ema([1.0], span=3, alpha=0.5)
    with pytest.raises(ValueError, match="1-D"):
        rolling_mean(np.ones((2, 2)), 1)


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(np.float64, st.integers(1, 200), elements=st.floats(-1e6, 1e6, allow_nan=False)),
    w=st.integers(1, 30),
)
def test_incremental_equals_from_scratch(x: np.ndarray, w: int) -> None:
    if w > len(x):
        assert np.isnan(rolling_mean(x, w)).all()
        return
    ref_m = windows_view(x, w).mean(axis=1)
    ref_s = windows_view(x, w).std(axis=1)
    np.testing.assert_allclose(rolling_mean(x, w)[w - 1 :], ref_m, rtol=1e-9, atol=1e-6)
    # A one-pass add/remove update carries rounding of order sqrt(eps) * |x| into the std when
    # the window's spread is tiny next to its values; that is the honest bound to hold it to.
    scale = float(np.abs(x).max()) or 1.0
    np.testing.assert_allclose(rolling_std(x, w)[w - 1 :], ref_s, rtol=1e-6, atol=1e-6 * scale)
