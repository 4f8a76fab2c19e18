"""Microstructure analytics and the ML feature vector, computed in the native core.

Features are kept current inside the Rust engine on every book update (engines created with
``features=True``); this module reads them into reusable numpy arrays without copying the book.
The layout is versioned (:data:`SCHEMA_VERSION`); names and definitions are in
``docs/features.md``, generated from the same schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

# The schema comes from the compiled core, read on first use, so the pure-Python modules of this
# package (the from-scratch oracle, the docs generator) import without it.
_LAZY = frozenset({"SCHEMA_VERSION", "SCHEMA", "FEATURE_NAMES", "N_FEATURES"})


@cache
def _schema() -> tuple[int, tuple[dict[str, str], ...]]:
    from pysrc._core import native

    return int(native.FEATURE_SCHEMA_VERSION), tuple(native.feature_schema())


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    version, schema = _schema()
    names = tuple(f["name"] for f in schema)
    values = {"SCHEMA_VERSION": version, "SCHEMA": schema, "FEATURE_NAMES": names, "N_FEATURES": len(names)}
    globals().update(values)
    return values[name]


@dataclass(slots=True)
class FeatureVector:
    """One symbol's features: ``values`` (0.0 where missing), ``mask`` (True = present), in the
    layout ``names`` (the base schema, then any configured temporal features)."""

    values: npt.NDArray[np.float64]
    mask: npt.NDArray[np.bool_]
    updates: int
    names: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, float | None]:
        """Name -> value, None where missing (for logs, JSON and people)."""
        names: tuple[str, ...] = self.names or __getattr__("FEATURE_NAMES")
        return {
            name: (float(v) if m else None)
            for name, v, m in zip(names, self.values.tolist(), self.mask.tolist(), strict=True)
        }


class FeatureReader:
    """Reads feature vectors out of a ``BookEngine(..., features=True)`` into reused buffers."""

    def __init__(self, engine: Any) -> None:
        if not engine.features_enabled:
            raise ValueError("the engine was created without features=True")
        self._engine = engine
        self.names: tuple[str, ...] = tuple(engine.feature_names())
        n = len(self.names)
        self._values = np.zeros(n, dtype=np.float64)
        self._mask = np.zeros(n, dtype=np.uint8)
        # Made once: a view per read would cost more than the native call itself.
        self._mask_bool = self._mask.view(bool)

    def read(self, symbol: str, *, normalized: bool = False, copy: bool = True) -> FeatureVector:
        """The current vector of ``symbol``. With ``copy=False`` the arrays are the reader's own
        buffers, overwritten by the next read (no allocation on the hot path)."""
        updates = self._engine.features_into(symbol, self._values, self._mask, normalized)
        if copy:
            return FeatureVector(self._values.copy(), self._mask.astype(bool), updates, self.names)
        return FeatureVector(self._values, self._mask_bool, updates, self.names)


__all__ = ["FEATURE_NAMES", "N_FEATURES", "SCHEMA", "SCHEMA_VERSION", "FeatureReader", "FeatureVector"]
