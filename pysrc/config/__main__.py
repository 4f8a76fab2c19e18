"""``python -m pysrc.config``: print the example configuration (every key at its default)."""

import sys

from pysrc.config import example_yaml

sys.stdout.write(example_yaml())
