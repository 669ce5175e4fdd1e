"""``python -m metalab``: the metalab command of :mod:`metalab.cli`. Imports cli."""

from __future__ import annotations

import sys

from metalab.cli import main

# Worker processes started by spawn or forkserver import the main module again (as
# __mp_main__); without this guard each of them would run the command a second time.
if __name__ == "__main__":
    sys.exit(main())
