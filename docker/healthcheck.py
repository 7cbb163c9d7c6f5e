"""Docker HEALTHCHECK for the serving image: exit 0 when ``GET /health`` answers 200.

Kubernetes uses its own probes (k8s/base/serving.yaml); this serves ``docker run``. It reads
the port the server binds (``DRIFTLOOP_PORT``) and imports nothing but the standard library,
so a check costs a few milliseconds.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("DRIFTLOOP_PORT", "8000")
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            status = response.status
    except urllib.error.HTTPError as exc:  # the server answered, with an error status
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url} unreachable: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
