"""``python -m serving`` is ``driftloop serve``."""

from __future__ import annotations

import sys

from driftloop.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
