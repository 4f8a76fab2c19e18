"""Fixtures of the domain tests. ``domain_support`` (beside this file) holds the builders and
hypothesis strategies shared by several test modules; importlib import mode does not put test
folders on ``sys.path``, so this conftest does it for that one module."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
