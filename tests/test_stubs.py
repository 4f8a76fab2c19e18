"""The hand-written .pyi files are the contract of the compiled modules: mypy.stubtest fails when
the compiled module and its stub drift apart (a missing function, a renamed argument...)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MODULES = ["pysrc._native", "pysrc.indicators._rolling"]


@pytest.mark.parametrize("module", MODULES)
def test_stub_matches_compiled_module(module: str, tmp_path: Path) -> None:
    # Run from an empty directory with -P so the installed package is checked, not the source tree.
    env = {**os.environ, "MYPY_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "mypy.stubtest", module, "--ignore-missing-stub"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
