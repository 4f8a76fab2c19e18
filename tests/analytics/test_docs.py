"""``docs/features.md`` is generated from the native feature schema and must stay identical to it.

When a test here fails after a schema change, regenerate the page (from any directory, with the
rebuilt wheel installed)::

    python -P -m pysrc.analytics.docs > docs/features.md
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pysrc._core import native
from pysrc.analytics.docs import COMMAND, main, render_features_md

FIELDS = ("name", "group", "units", "window", "formula", "missing")


@pytest.fixture(scope="module")
def committed(repo_root: Path) -> str:
    path = repo_root / "docs" / "features.md"
    assert path.is_file(), f"docs/features.md is missing; generate it with: {COMMAND}"
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def schema() -> list[dict[str, str]]:
    return native.feature_schema()


def test_committed_page_equals_the_generated_one(committed: str) -> None:
    generated = render_features_md()
    assert committed == generated, f"docs/features.md is stale; regenerate it with: {COMMAND}"


def test_every_feature_is_documented_once(committed: str, schema: list[dict[str, str]]) -> None:
    # Each name appears as the name cell of exactly one table row, at its vector position.
    for i, spec in enumerate(schema):
        rows = [line for line in committed.splitlines() if line.startswith(f"| {i} | ")]
        assert len(rows) == 1, f"position {i} ({spec['name']}) is not exactly one table row"
        assert f"| `{spec['name']}` |" in rows[0]


def test_table_rows_have_six_cells(committed: str) -> None:
    # Formulas contain pipes (|buy - sell|); an unescaped one would shift every later cell.
    rows = [line for line in committed.splitlines() if re.match(r"\| \d+ \| `", line)]
    assert rows
    for line in rows:
        cells = re.split(r"(?<!\\)\|", line)[1:-1]
        assert len(cells) == 6, line


def test_schema_shape(schema: list[dict[str, str]]) -> None:
    names = [spec["name"] for spec in schema]
    assert len(set(names)) == len(names), "feature names must be unique"
    assert len(names) >= 50
    for spec in schema:
        assert set(spec) >= set(FIELDS), spec
        assert all(isinstance(spec[f], str) and spec[f].strip() for f in FIELDS), spec
        assert re.fullmatch(r"[a-z][a-z0-9_]*", spec["name"]), spec["name"]


def test_schema_version_is_a_positive_int() -> None:
    version = native.FEATURE_SCHEMA_VERSION
    assert type(version) is int  # not a bool, not a float
    assert version >= 1


def test_check_flag(committed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fresh = tmp_path / "features.md"
    fresh.write_text(committed, encoding="utf-8")
    assert main(["--check", str(fresh)]) == 0
    fresh.write_text(committed.replace("| 0 | ", "| 0 | edited ", 1), encoding="utf-8")
    assert main(["--check", str(fresh)]) == 1
    assert "stale" in capsys.readouterr().err
    assert main(["--check", str(tmp_path / "absent.md")]) == 1


def test_documented_command_prints_the_page(committed: str, tmp_path: Path) -> None:
    # Exactly the command in the page's header, from a directory without pysrc/ (the installed
    # wheel answers, as it does for a user).
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "pysrc.analytics.docs"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == committed
