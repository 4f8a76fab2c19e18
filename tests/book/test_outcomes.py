"""The Python outcome enum and the native outcome codes are one contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pysrc import _native
from pysrc.book import ApplyOutcome, BookEngine, MalformedMessage


def test_enum_values_are_the_native_codes() -> None:
    for member in ApplyOutcome:
        assert getattr(_native, member.name) == member.value
    assert {m.name for m in ApplyOutcome if m.breaks_book} == {"GAP", "CROSSED", "CHECKSUM_MISMATCH"}


def test_lazy_native_names_resolve_to_the_native_classes() -> None:
    assert BookEngine is _native.BookEngine
    assert MalformedMessage is _native.MalformedMessage
    assert issubclass(MalformedMessage, ValueError)


def test_pure_python_modules_import_without_the_compiled_core(tmp_path: Path) -> None:
    # Block the compiled module, then import the pure-Python parts of the package.
    code = (
        "import sys; sys.modules['pysrc._native'] = None\n"
        "import pysrc.book.reference, pysrc.book.capture, pysrc.book.synthetic\n"
        "import pysrc.book as b\n"
        "try:\n    b.BookEngine\nexcept ImportError:\n    print('blocked-as-expected')\n"
    )
    out = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "blocked-as-expected" in out.stdout
