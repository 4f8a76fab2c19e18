"""docs/strategies-and-risk.md states every default and reason code the code uses: this keeps the
page from drifting (a changed default fails here until the page says the same)."""

from __future__ import annotations

from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Any

from pysrc.positions import PositionRules
from pysrc.risk import RejectCode, RiskLimits, SizingConfig
from pysrc.strategy import OrderBookScalper, ScannerConfig


def _page(repo_root: Path) -> str:
    return (repo_root / "docs" / "strategies-and-risk.md").read_text(encoding="utf-8")


def _text(value: Any) -> str:
    return str(value.value if isinstance(value, Enum) else value)


def test_every_default_is_documented(repo_root: Path) -> None:
    page = _page(repo_root)
    rows: list[tuple[str, Any]] = [(p.name, p.default) for p in OrderBookScalper.PARAMS]
    for cls in (ScannerConfig, SizingConfig, RiskLimits, PositionRules):
        rows += [(f.name, f.default) for f in fields(cls)]
    missing = [
        f"| `{name}` | {_text(default)} |" for name, default in rows if f"| `{name}` | {_text(default)} |" not in page
    ]
    assert not missing, "docs/strategies-and-risk.md lacks or contradicts:\n" + "\n".join(missing)


def test_every_reject_code_is_documented(repo_root: Path) -> None:
    page = _page(repo_root)
    assert [c.value for c in RejectCode if f"`{c.value}`" not in page] == []
