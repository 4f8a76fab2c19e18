"""Reversal evidence from the native feature vector: one vote per indicator.

The position manager exits on a reversal when at least ``reversal_min_indicators`` (3) indicators
point against the position. Each indicator here votes +1 (up), -1 (down) or 0 (no opinion, or
missing: a missing feature never votes). A vote needs the value beyond a dead band, so noise around
zero does not count as confirmation:

=========================  ===========  ==========================================
feature                    dead band    reads as
=========================  ===========  ==========================================
``imbalance_5``            0.2          resting size leans to one side (top 5)
``pressure_10``            0.2          the same, weighted toward the touch
``ofi_norm_100``           0.5          net order-flow imbalance, last 100 updates
``volume_delta_10s``       0            net taker volume, last 10 s
``mid_roc_1s_bps``         1.0 bps      price change over the last second
``microprice_offset_bps``  0.1 bps      size-weighted price vs mid at the touch
=========================  ===========  ==========================================
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_INDICATORS: Mapping[str, float] = {
    "imbalance_5": 0.2,
    "pressure_10": 0.2,
    "ofi_norm_100": 0.5,
    "volume_delta_10s": 0.0,
    "mid_roc_1s_bps": 1.0,
    "microprice_offset_bps": 0.1,
}


def reversal_votes(
    features: Mapping[str, float | None], indicators: Mapping[str, float] = DEFAULT_INDICATORS
) -> dict[str, int]:
    """Indicator name -> +1 / -1 / 0 from feature values (None = missing)."""
    votes: dict[str, int] = {}
    for name, band in indicators.items():
        v = features.get(name)
        votes[name] = 0 if v is None else 1 if v > band else -1 if v < -band else 0
    return votes


__all__ = ["DEFAULT_INDICATORS", "reversal_votes"]
