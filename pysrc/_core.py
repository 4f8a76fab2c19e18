"""Import point of the compiled core, with a clear message when it is missing.

The most common cause is running from a source checkout: ``python -m pysrc.bot`` from the
repository root imports the ``pysrc/`` folder you are standing in (which has no compiled module)
instead of the installed wheel. ``python -P`` (Python 3.11+) skips the current directory.
"""

from __future__ import annotations

try:
    from pysrc import _native as native
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    import pysrc

    raise ImportError(
        "the compiled core pysrc._native is not importable from "
        f"{pysrc.__path__[0]!r}. If that is a source checkout, run from another directory or "
        "with `python -P`, or build it in place with `pip install -e .`."
    ) from exc

__all__ = ["native"]
