"""Rows past retention, written to Parquet before they are deleted.

Any fsspec URL (``file://``, a local path, ``s3://``, ``gs://`` with their filesystem
packages installed). One file per deleted batch or dropped day partition, named so that a
later export never overwrites an earlier one; columns as stored in the log (``num`` packed
float64, ``cat`` and ``proba`` JSON), so training data can be rebuilt from them with the
log's own decoders (:mod:`.codec`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from driftloop.errors import DriftloopError


class ArchiveError(DriftloopError):
    """The export failed (unreachable URL, full disk, no permission): nothing was deleted."""


def write(url: str, table: str, name: str, columns: Sequence[str],
          rows: Sequence[Sequence[Any]]) -> str:
    """Write ``rows`` to ``<url>/<table>/<name>.parquet``; returns the file's URL."""
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
        folder = f"{root.rstrip('/')}/{table}"
        fs.makedirs(folder, exist_ok=True)
        path = f"{folder}/{name}.parquet"
        data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
        with fs.open(path, "wb") as out:
            pq.write_table(pa.table(data), out, compression="zstd")
    except Exception as exc:
        raise ArchiveError(f"could not archive {len(rows)} {table} row(s) to {url!r}: "
                           f"{type(exc).__name__}: {exc}. Nothing was deleted; fix the "
                           f"archive (DRIFTLOOP_LOG_ARCHIVE_URL) or unset it.") from exc
    return fs.unstrip_protocol(path)
