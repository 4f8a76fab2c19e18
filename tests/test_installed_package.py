"""The suite must test the installed wheel: compiled modules present, source tree not shadowing."""

from __future__ import annotations

from pathlib import Path

import pysrc
from pysrc import _native
from pysrc.indicators import _rolling


def test_imports_the_installed_package_not_the_source_tree(repo_root: Path) -> None:
    pkg = Path(pysrc.__file__).resolve().parent
    assert pkg != repo_root / "pysrc", "tests imported the source folder instead of the installed wheel"
    assert Path(_native.__file__).parent == pkg
    assert Path(_rolling.__file__).parent == pkg / "indicators"


def test_wheel_ships_typed_stubs() -> None:
    pkg = Path(pysrc.__file__).resolve().parent
    assert (pkg / "_native.pyi").is_file()
    assert (pkg / "indicators" / "_rolling.pyi").is_file()
    assert (pkg / "py.typed").is_file()
