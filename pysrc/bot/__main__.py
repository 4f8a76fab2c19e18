"""``python -m pysrc.bot``: see :mod:`pysrc.bot.cli`."""

import sys

from pysrc.bot.cli import main

if __name__ == "__main__":
    sys.exit(main())
