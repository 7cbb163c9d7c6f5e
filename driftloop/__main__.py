"""``python -m driftloop`` is the ``driftloop`` command."""

from __future__ import annotations

import sys

from driftloop.cli import main

sys.exit(main())
