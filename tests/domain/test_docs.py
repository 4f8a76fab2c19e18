"""``docs/state-machines.md`` carries the code's tables verbatim (generated blocks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pysrc.domain.docs import BLOCKS, COMMAND, main, render, stale_blocks

PAGE = Path(__file__).resolve().parents[2] / "docs" / "state-machines.md"


@pytest.fixture(scope="module")
def committed() -> str:
    return PAGE.read_text(encoding="utf-8")


def test_committed_page_has_the_current_tables(committed: str) -> None:
    assert stale_blocks(committed) == [], f"docs/state-machines.md is stale; regenerate with: {COMMAND}"
    assert render(committed) == committed


def test_every_block_is_on_the_page(committed: str) -> None:
    for name in BLOCKS:
        assert f"<!-- BEGIN GENERATED: {name} -->" in committed


def test_check_detects_a_stale_block(tmp_path: Path, committed: str) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        committed.replace("| `submit` | NEW | PENDING_SUBMIT |", "| `submit` | NEW | FILLED |")
    )
    assert main(["--check", str(page)]) == 1
    assert main([str(page)]) == 0
    assert page.read_text() == committed
    assert main(["--check", str(page)]) == 0


def test_missing_or_unknown_blocks_are_errors() -> None:
    with pytest.raises(ValueError, match="lacks"):
        render("no blocks here\n")
    with pytest.raises(ValueError, match="unknown"):
        render("<!-- BEGIN GENERATED: nope -->\nx\n<!-- END GENERATED: nope -->\n")
