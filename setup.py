"""Build of the one wheel: the Rust core (PyO3, via setuptools-rust) and the Cython kernels.

Release builds by default. Set BYBIT_BOT_DEBUG_BUILD=1 for a debug build of the Rust part (a debug
core is roughly 50x slower; never benchmark one).
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools_rust import Binding, RustExtension

DEBUG = os.environ.get("BYBIT_BOT_DEBUG_BUILD", "") == "1"

setup(
    rust_extensions=[
        RustExtension(
            "pysrc._native",
            path="Cargo.toml",
            binding=Binding.PyO3,
            features=["python"],
            debug=DEBUG,
            # Build exactly the dependency versions committed in Cargo.lock.
            cargo_manifest_args=["--locked"],
        )
    ],
    ext_modules=cythonize(
        [Extension("pysrc.indicators._rolling", ["pysrc/indicators/_rolling.pyx"])],
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            # No doctest dict: the module surface stays exactly what the .pyi declares.
            "autotestdict": False,
        },
    ),
    zip_safe=False,
)
