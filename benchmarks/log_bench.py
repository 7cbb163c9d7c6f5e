"""The prediction log at scale: window cost as it grows, PostgreSQL write throughput,
retention's cost, and how many replicas one PostgreSQL sustains.

    python -m benchmarks.log_bench [--sizes 100000,1000000,10000000] [--out FILE]

1. **Window cost vs log size.** One log per backend (SQLite file, PostgreSQL database) grows
   in time order over 40 days: rows before a fixed hour, the hour itself (5,000 rows), then
   rows after it, until the log holds each size; 5 % of all rows are labeled, a minute after
   their prediction. At each size, a real
   ``driftloop serve`` on that log answers ``GET /drift/status?start&end`` for the hour and
   pages ``GET /drift/window`` through it, and ``PredictionLog.labeled_frame`` (what the
   retrain's ``load_data`` reads) loads its labeled rows. Medians of 5.
2. **Write throughput into PostgreSQL** from 1, 2 and 4 processes, each a ``LogWriter`` fed
   1,000-row requests as the server feeds it (encoding included), against one plain
   ``COPY`` of the same rows, pre-encoded, as the ceiling.
3. **Retention at the largest size**: ``POST /admin/retention`` with the default 30 days on a
   log spanning 40 days, while wrk drives ``POST /predict``; the latency before and during.
4. **Replicas per PostgreSQL**: the measured write ceiling over the rows one replica logs at
   its single-core ``/predict`` ceiling (benchmarks/results/serving.json).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.common import REPO, free_port, machine
from benchmarks.serving_bench import ROW, Server, run_wrk, wrk_script

MODEL = "iris-classifier"
LABELS = ["setosa", "versicolor", "virginica"]
HOUR_ROWS = 5_000
LABEL_SHARE = 0.05
SPAN_DAYS = 40
CHUNK = 50_000
PG_ADMIN = os.environ.get("DRIFTLOOP_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# --- synthetic rows, in time order -----------------------------------------------------------
class Rows:
    """Row tuples as the server writes them, cheap to make in bulk: 1,000 distinct feature
    rows (Iris-like, so drift evaluates real numbers), fresh random request ids."""

    def __init__(self, seed: int = 0) -> None:
        from driftloop.predlog import rows_for

        rng = np.random.default_rng(seed)
        numeric = rng.normal([5.8, 3.0, 3.8, 1.2], [0.8, 0.4, 1.7, 0.7], size=(1000, 4))
        proba = rng.dirichlet([1, 1, 1], size=1000)
        preds = [LABELS[i] for i in proba.argmax(axis=1)]
        self.template = rows_for(0, [""] * 1000, MODEL, "1", numeric, None, preds, proba,
                                 LABELS)

    def between(self, n: int, start_us: int, end_us: int) -> list[tuple[Any, ...]]:
        """Ids as the server makes them: milliseconds of the row's time, then 80 random
        bits (time-ordered, so the unique index grows at its right edge)."""
        step = (end_us - start_us) / max(n, 1)
        rand = os.urandom(10 * n).hex()
        t = self.template
        out = []
        for i in range(n):
            ts = start_us + int(i * step)
            out.append((ts, f"{ts // 1000:012x}{rand[20 * i : 20 * i + 20]}",
                        *t[i % 1000][2:]))
        return out


def load(log: Any, rows: Rows, n: int, start_us: int, end_us: int
         ) -> list[tuple[str, int]]:
    """Write ``n`` rows spread over ``[start, end)``; returns LABEL_SHARE of them (id, ts)
    to label."""
    labeled: list[tuple[str, int]] = []
    done = 0
    while done < n:
        k = min(CHUNK, n - done)
        lo = start_us + (end_us - start_us) * done // n
        hi = start_us + (end_us - start_us) * (done + k) // n
        batch = rows.between(k, lo, hi)
        log.write_rows(batch)
        labeled += [(r[1], r[0]) for r in batch[:: int(1 / LABEL_SHARE)]]
        done += k
    return labeled


def label(log: Any, ids: list[tuple[str, int]]) -> None:
    """Labels that arrived a minute after their predictions (as the log stores them)."""
    from sqlalchemy import text

    with log.engine.begin() as conn:
        conn.execute(text("INSERT INTO labels (request_id, label, ts) VALUES (:r, :l, :t)"),
                     [{"r": rid, "l": LABELS[j % 3], "t": ts + 60_000_000}
                      for j, (rid, ts) in enumerate(ids)])


def median_s(fn: Any, repeat: int = 5) -> float:
    fn()  # warm caches once, as a server that has been up for a while has
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# --- 1. window cost ---------------------------------------------------------------------------
def window_costs(url: str, log: Any, hour: tuple[str, str], spec: Any) -> dict[str, float]:
    start, end = hour
    with httpx.Client(base_url=url, timeout=300) as http:
        def status() -> None:
            r = http.get("/drift/status", params={"start": start, "end": end})
            assert r.status_code == 200 and r.json()["window"]["rows"] == HOUR_ROWS, r.text

        def paging() -> None:
            offset: int | None = 0
            seen = 0
            while offset is not None:
                r = http.get("/drift/window", params={"start": start, "end": end,
                                                      "limit": 1000, "offset": offset})
                assert r.status_code == 200, r.text
                seen += len(r.json()["rows"])
                offset = r.json().get("next_offset")
            assert seen == HOUR_ROWS, seen

        def frame() -> None:
            got = log.labeled_frame(start, end, spec, model_name=MODEL)
            assert len(got) == HOUR_ROWS * LABEL_SHARE, len(got)

        return {"drift_status_s": median_s(status), "window_paging_s": median_s(paging),
                "load_data_s": median_s(frame)}


def log_growth(backend: str, url: str, sizes: list[int], server_env: dict[str, str],
               work: Path) -> dict[str, Any]:
    from driftloop.predlog import PredictionLog, to_micros
    from driftloop.predlog.codec import iso
    from driftloop.settings import PROJECT_ROOT
    from driftloop.spec import load_spec

    spec = load_spec(PROJECT_ROOT / "specs" / "iris.yaml")
    log = PredictionLog(url)
    rows = Rows()
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = now - timedelta(days=SPAN_DAYS)
    hour_start = first + timedelta(days=1)
    hour = (iso(to_micros(hour_start)), iso(to_micros(hour_start + timedelta(hours=1))))
    # Before the hour, the hour, then the rest of the 40 days after it, in time order.
    before = sizes[0] - HOUR_ROWS
    label(log, load(log, rows, before, to_micros(first), to_micros(hour_start)))
    hour_ids = load(log, rows, HOUR_ROWS, to_micros(hour_start),
                    to_micros(hour_start + timedelta(hours=1)))
    label(log, hour_ids)
    filled, cursor = sizes[0], to_micros(hour_start + timedelta(hours=1))
    end_us = to_micros(now - timedelta(minutes=5))
    span = end_us - cursor
    total_after = sizes[-1] - sizes[0]
    env = {**server_env, "DRIFTLOOP_PREDICTION_LOG_URL": url}
    port = free_port()
    server = Server(f"log-{backend}", [str(REPO / ".venv/bin/python"), "-m", "driftloop",
                                       "serve", "--port", str(port), "--log-level", "warning"],
                    env, f"http://127.0.0.1:{port}", "/ready", work / "predict.lua")
    server.start()
    out: dict[str, Any] = {"sizes": {}}
    try:
        for size in sizes:
            if size > filled:
                k = size - filled
                upto = cursor + span * (size - sizes[0]) // max(total_after, 1)
                print(f"[log] {backend}: writing {k:,} rows (log -> {size:,}) ...", flush=True)
                started = time.perf_counter()
                label(log, load(log, rows, k, cursor, upto))
                print(f"[log] {backend}:   {k / (time.perf_counter() - started):,.0f} rows/s "
                      "loaded", flush=True)
                filled, cursor = size, upto
            costs = window_costs(server.url, log, hour, spec)
            print(f"[log] {backend} {size:>12,} rows: " + ", ".join(
                f"{k} {v * 1e3:.1f} ms" for k, v in costs.items()), flush=True)
            out["sizes"][str(size)] = costs
        out["bytes_on_disk"] = _disk_bytes(url)  # at the largest size, before retention
        out["retention"] = retention_under_load(server, backend)
    finally:
        server.stop()
        log.dispose()
    small, large = out["sizes"][str(sizes[0])], out["sizes"][str(sizes[-1])]
    out["ratio_largest_vs_smallest"] = {k: large[k] / small[k] for k in small}
    return out


# --- 3. retention under load ------------------------------------------------------------------
def retention_under_load(server: Server, backend: str, seconds: int = 10) -> dict[str, Any]:
    script = server.script
    before = run_wrk(server.url + "/predict", script, seconds, 8)
    if before["non_2xx"] or before["socket_errors"]:
        raise RuntimeError(f"[log] {backend}: /predict answered errors before retention "
                           f"({before}): no baseline to compare with")
    result: dict[str, Any] = {}

    def purge() -> None:
        token = server.env["DRIFTLOOP_ADMIN_TOKEN"]
        started = time.perf_counter()
        r = httpx.post(server.url + "/admin/retention", timeout=3600,
                       headers={"Authorization": f"Bearer {token}"})
        result["seconds"] = time.perf_counter() - started
        result["status"] = r.status_code
        result["body"] = r.json()

    print(f"[log] {backend}: retention (30 days of {SPAN_DAYS}) under /predict load ...",
          flush=True)
    thread = threading.Thread(target=purge)
    thread.start()
    during = []
    while thread.is_alive() or not during:
        during.append(run_wrk(server.url + "/predict", script, seconds, 8))
    thread.join()
    assert result["status"] == 200, result
    body = result["body"]
    print(f"[log] {backend}:   removed {body['predictions_deleted']:,} rows in "
          f"{result['seconds']:.1f} s", flush=True)
    return {"seconds": result["seconds"], "predictions_deleted": body["predictions_deleted"],
            "labels_deleted": body["labels_deleted"], "batches": body["batches"],
            "partitions_dropped": len(body["partitions_dropped"]),
            "predict_before": before, "predict_during": during}


# --- 2. write throughput into PostgreSQL ------------------------------------------------------
def _writer_process(url: str, n: int, barrier: Any, out: Any) -> None:
    from functools import partial

    from driftloop.predlog import LogWriter, PredictionLog, now_micros, rows_for

    log = PredictionLog(url, create=False)
    rng = np.random.default_rng(os.getpid())
    numeric, proba = rng.normal(5, 1, (1000, 4)), rng.dirichlet([1, 1, 1], 1000)
    preds = [LABELS[i] for i in proba.argmax(axis=1)]
    writer = LogWriter(log, queue_max_rows=n + 1000, batch_rows=500)
    barrier.wait()
    started = time.perf_counter()
    writer.start()
    for _ in range(n // 1000):
        ids = [os.urandom(16).hex() for _ in range(1000)]
        writer.submit(1000, partial(rows_for, now_micros(), ids, MODEL, "1", numeric, None,
                                    preds, proba, LABELS))
    left = writer.stop(timeout=600)
    out.put((time.perf_counter() - started, writer.written_rows, left))


def write_throughput(url: str, rows_per_config: int) -> dict[str, Any]:
    from driftloop.predlog import INSERT_COLUMNS, PredictionLog, now_micros

    log = PredictionLog(url)  # creates the schema and today's partitions
    # The ceiling: one COPY of pre-encoded rows (no Python per row while timed).
    rows = Rows(seed=1).between(rows_per_config, now_micros() - 60_000_000, now_micros())
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        buf = _copy_text(rows)
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
                f"COPY predictions ({', '.join(INSERT_COLUMNS)}) FROM STDIN") as copy:
            copy.write(buf)
        conn.commit()
        ceiling = rows_per_config / (time.perf_counter() - started)
    del rows, buf
    print(f"[log] postgresql COPY ceiling: {ceiling:,.0f} rows/s", flush=True)
    out: dict[str, Any] = {"copy_ceiling_rows_per_s": ceiling, "writers": {}}
    ctx = mp.get_context("spawn")
    for procs in (1, 2, 4):
        barrier, queue = ctx.Barrier(procs), ctx.Queue()
        workers = [ctx.Process(target=_writer_process,
                               args=(url, rows_per_config // procs, barrier, queue))
                   for _ in range(procs)]
        for w in workers:
            w.start()
        results = [queue.get(timeout=900) for _ in workers]
        for w in workers:
            w.join()
        wall = max(r[0] for r in results)
        written = sum(r[1] for r in results)
        assert sum(r[2] for r in results) == 0 and written == rows_per_config // procs * procs
        rate = written / wall
        out["writers"][str(procs)] = {"rows_per_s": rate, "share_of_copy": rate / ceiling}
        print(f"[log] postgresql, {procs} writer process(es): {rate:,.0f} rows/s "
              f"({rate / ceiling:.0%} of COPY)", flush=True)
    log.dispose()
    return out


def _copy_text(rows: list[tuple[Any, ...]]) -> bytes:
    """COPY's text format for these rows (bytea as hex)."""
    lines = []
    null = "\\N"
    for ts, rid, name, version, num, cat, pred, proba in rows:
        text = null if cat is None else cat
        lines.append(f"{ts}\t{rid}\t{name}\t{version}\t\\\\x{num.hex()}\t{text}\t{pred}\t"
                     f"{proba}")
    return ("\n".join(lines) + "\n").encode()


# --- databases --------------------------------------------------------------------------------
def fresh_pg(name: str) -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--write-rows", type=int, default=400_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" /
                        "log.json")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if shutil.which("wrk") is None:
        print("wrk is not installed: `make bench-tools` installs it", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-log-"))
    state = work / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.update(DRIFTLOOP_STATE_DIR=str(state), DRIFTLOOP_ADMIN_TOKEN="bench-log-token",
               UV_PYTHON_DOWNLOADS="never")
    print(f"[log] bootstrapping the Iris champion into {state} ...", flush=True)
    subprocess.run([str(REPO / ".venv/bin/python"), "-m", "driftloop", "bootstrap"], env=env,
                   cwd=REPO, check=True, capture_output=True)
    wrk_script(work / "predict.lua", {"features": ROW})
    results: dict[str, Any] = {"machine": machine(), "hour_rows": HOUR_ROWS,
                               "label_share": LABEL_SHARE, "span_days": SPAN_DAYS,
                               "command": "make bench-log", "backends": {}}
    try:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                url = f"sqlite:///{work / 'predictions.db'}"
            else:
                url = fresh_pg("driftloop_bench_log")
            results["backends"][backend] = log_growth(backend, url, sizes, env, work)
            if backend != "sqlite":
                drop_pg("driftloop_bench_log")
        if "postgresql" in args.backends:
            url = fresh_pg("driftloop_bench_write")
            results["postgres_writes"] = write_throughput(url, args.write_rows)
            drop_pg("driftloop_bench_write")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["replicas"] = replica_capacity(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"[log] wrote {args.out}")
    return 0


def _disk_bytes(url: str) -> int:
    """The log's size on disk: the SQLite file (and its WAL), or the PostgreSQL database."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    import psycopg

    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def replica_capacity(results: dict[str, Any]) -> dict[str, Any] | None:
    """Replicas one PostgreSQL absorbs: its best measured write rate over one replica's
    single-core /predict ceiling (one logged row per request)."""
    writes = results.get("postgres_writes")
    serving = REPO / "benchmarks" / "results" / "serving.json"
    if not writes or not serving.exists():
        return None
    per_replica = json.loads(serving.read_text())["median_rps"]["driftloop"]
    best = max(w["rows_per_s"] for w in writes["writers"].values())
    return {"rows_per_s_per_replica": per_replica, "postgres_rows_per_s": best,
            "replicas": best / per_replica}


if __name__ == "__main__":
    sys.exit(main())


# --- RESULTS.md -------------------------------------------------------------------------------
def section(r: dict[str, Any]) -> str:
    """The RESULTS.md section for ``benchmarks/results/log.json``."""
    lines = [
        "## Prediction log at scale (`make bench-log`)", "",
        f"One log per backend grows in time order over {r['span_days']} days; a fixed hour "
        f"holds {r['hour_rows']:,} rows, and {r['label_share']:.0%} of all rows are labeled. "
        "At each size a real `driftloop serve` on that log answers `GET /drift/status` for "
        "the hour and pages it through `GET /drift/window` (1,000 rows a page), and "
        "`PredictionLog.labeled_frame` (what the retrain's `load_data` reads) loads its "
        "labeled rows. Medians of 5 after a warm-up.", "",
        "| backend | log rows | `/drift/status` (hour) | `/drift/window` (5 pages) | "
        "`load_data` rows |", "|---|---:|---:|---:|---:|",
    ]
    for backend, b in r["backends"].items():
        for size, c in b["sizes"].items():
            lines.append(f"| {backend} | {int(size):,} | {c['drift_status_s'] * 1e3:.1f} ms | "
                         f"{c['window_paging_s'] * 1e3:.0f} ms | "
                         f"{c['load_data_s'] * 1e3:.1f} ms |")
    lines.append("")
    for backend, b in r["backends"].items():
        ratios = b["ratio_largest_vs_smallest"]
        worst = max(ratios.values())
        lines.append(
            f"- {backend}: largest / smallest log: " + ", ".join(
                f"{k.removesuffix('_s')} {v:.2f}x" for k, v in ratios.items())
            + f" (target <= 2x: {'met' if worst <= 2 else 'NOT met'}); "
            f"{b['bytes_on_disk'] / 1e9:.2f} GB on disk at the largest size (about "
            f"{b['bytes_on_disk'] / max(int(s) for s in b['sizes']):.0f} bytes a row, labels "
            "and indexes included).")
    lines += ["", "### Retention at the largest size, under `/predict` load", "",
              "`POST /admin/retention` (30 days) on the 40-day log while wrk drives "
              "`POST /predict` (one row, 8 connections; server on CPU 0, wrk on CPU 1).", "",
              "| backend | rows removed | how | time | /predict p50 / p99 before | "
              "p50 / p99 during | non-2xx during |", "|---|---:|---|---:|---:|---:|---:|"]
    for backend, b in r["backends"].items():
        t = b["retention"]
        before, during = t["predict_before"], t["predict_during"]
        p50 = statistics.median(d["p50_ms"] for d in during)
        p99 = max(d["p99_ms"] for d in during)
        how = (f"{t['partitions_dropped']} day partitions dropped" if t["partitions_dropped"]
               else f"{t['batches']} batches")
        lines.append(f"| {backend} | {t['predictions_deleted']:,} (+{t['labels_deleted']:,} "
                     f"labels) | {how} | {t['seconds']:.1f} s | {before['p50_ms']:.2f} / "
                     f"{before['p99_ms']:.2f} ms | {p50:.2f} / {p99:.2f} ms | "
                     f"{sum(d['non_2xx'] for d in during)} |")
    w = r.get("postgres_writes")
    if w:
        lines += ["", "### Write throughput into PostgreSQL", "",
                  "Each process runs a `LogWriter` fed 1,000-row requests as the server feeds "
                  "it (row encoding included; `COPY` in transactions of up to 10,000 rows). "
                  "The ceiling is one `COPY` of the same number of rows, encoded beforehand.",
                  "", "| writers | rows/s | share of the COPY ceiling |", "|---|---:|---:|",
                  f"| plain `COPY` (ceiling) | {w['copy_ceiling_rows_per_s']:,.0f} | 100 % |"]
        for procs, x in w["writers"].items():
            lines.append(f"| {procs} process{'es' if procs != '1' else ''} | "
                         f"{x['rows_per_s']:,.0f} | {x['share_of_copy']:.0%} |")
        best = max(x["share_of_copy"] for x in w["writers"].values())
        lines.append("")
        lines.append(f"- Best share of `COPY`: {best:.0%} (target >= 50 %: "
                     f"{'met' if best >= 0.5 else 'NOT met'}). PostgreSQL runs on the same "
                     "2 cores as the writers, so more writer processes compete with it.")
    rep = r.get("replicas")
    if rep:
        lines.append(
            f"- **Replicas one PostgreSQL absorbs**: {rep['postgres_rows_per_s']:,.0f} rows/s "
            f"(the best measured write rate) / {rep['rows_per_s_per_replica']:,.0f} rows/s "
            "(one replica's single-core `/predict` ceiling, one row a request, from the "
            f"serving benchmark) = **{rep['replicas']:.1f} replicas** running flat out on "
            "this 2-core machine. A replica at 100 requests/s logs 100 rows/s, so the same "
            f"database absorbs about {rep['postgres_rows_per_s'] / 100:,.0f} such replicas.")
    return "\n".join(lines)
