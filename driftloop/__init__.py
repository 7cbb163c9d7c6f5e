"""driftloop core library: settings, model specs, training, drift, registry and deployers.

This package must stay importable without a web framework, an orchestrator or a pipeline SDK;
heavy ML imports happen inside the modules that need them, never here.
"""

from __future__ import annotations

__version__ = "0.1.0"
