"""Serving throughput, side by side: driftloop vs ``mlflow models serve`` vs bare FastAPI.

All three serve on CPU 0 (``taskset -c 0``), one process each; wrk runs on CPU 1 with 32
connections, one row per request. Rounds alternate between the servers so that load from
other processes on the machine hits all of them alike; the ratios use the median of the
rounds. driftloop runs as deployed: ONNX form, every row written to the prediction log, and
a poller asks ``GET /drift/status`` once a second during its runs. After the runs the
prediction log is counted: it must hold every row wrk got a 200 for.

    python -m benchmarks.serving_bench [--duration 10] [--rounds 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import REPO, free_port, machine

ROW = [5.1, 3.5, 1.4, 0.2]
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def wrk_script(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{json.dumps(body)}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def run_wrk(url: str, script: Path, duration: int, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
         "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return {
        "rps": rps, "requests": total,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
        "p50_ms": float(p50.group(1)) * scale[p50.group(2)] if p50 else None,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else None,
    }


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], url: str,
                 ready_path: str, script: Path, cwd: Path = REPO) -> None:
        self.name, self.cmd, self.env, self.url = name, cmd, env, url
        self.ready_path, self.script, self.cwd = ready_path, script, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        fd, path = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")
        self.log = os.fdopen(fd, "wb")
        self.log_path = path

    def start(self, timeout: float = 180) -> None:
        self.proc = subprocess.Popen(["taskset", "-c", "0", *self.cmd], env=self.env,
                                     cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def drift_poller(url: str, stop: threading.Event, seen: list[int]) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.wait(1.0):
            try:
                seen.append(client.get(url + "/drift/status").status_code)
            except httpx.HTTPError:
                seen.append(-1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" /
                        "serving.json")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: `make bench` installs it (apt-get install -y wrk)",
              file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-serving-"))
    state = work / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.update(DRIFTLOOP_STATE_DIR=str(state), UV_PYTHON_DOWNLOADS="never")
    py = str(REPO / ".venv" / "bin" / "python")
    print(f"[serving] bootstrapping the Iris champion into {state} ...", flush=True)
    subprocess.run([py, "-m", "driftloop", "bootstrap"], env=env, cwd=REPO, check=True,
                   capture_output=True)

    ports = {name: free_port() for name in ("driftloop", "mlflow", "bare")}
    # mlflow execs `uvicorn` through bash: the venv's bin must be on PATH.
    mlflow_env = {**env, "PATH": f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}",
                  "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow.db'}",
                  "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
    servers = [
        Server("driftloop", [py, "-m", "serving", "--port", str(ports["driftloop"]),
                             "--log-level", "warning"],
               env, f"http://127.0.0.1:{ports['driftloop']}", "/ready",
               wrk_script(work / "driftloop.lua", {"features": ROW})),
        Server("mlflow", [str(REPO / ".venv" / "bin" / "mlflow"), "models", "serve",
                          "-m", "models:/iris-classifier/1", "--env-manager", "local",
                          "--host", "127.0.0.1", "--port", str(ports["mlflow"]),
                          "--workers", "1"],
               mlflow_env, f"http://127.0.0.1:{ports['mlflow']}", "/ping",
               wrk_script(work / "mlflow.lua",
                          {"dataframe_split": {"columns": COLUMNS, "data": [ROW]}})),
        Server("bare", [py, "-m", "uvicorn", "benchmarks.bare_app:app", "--port",
                        str(ports["bare"]), "--loop", "uvloop", "--http", "httptools",
                        "--no-access-log", "--log-level", "warning"],
               env, f"http://127.0.0.1:{ports['bare']}", "/docs",
               wrk_script(work / "bare.lua", {"features": ROW})),
    ]
    paths = {"driftloop": "/predict", "mlflow": "/invocations", "bare": "/predict"}
    results: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
    drift_calls: list[int] = []
    warmups: list[dict[str, Any]] = []  # driftloop's warm-up runs: their rows are logged too
    try:
        for server in servers:
            print(f"[serving] starting {server.name} on CPU 0 ...", flush=True)
            server.start()
        by_name = {s.name: s for s in servers}
        for rnd in range(args.rounds):
            # driftloop and the bare endpoint run back to back, in alternating order, so each
            # round's ratio compares runs under the same background load.
            order = ["driftloop", "bare", "mlflow"] if rnd % 2 == 0 else ["bare", "driftloop",
                                                                           "mlflow"]
            for server in (by_name[name] for name in order):
                url = server.url + paths[server.name]
                warm = run_wrk(url, server.script, args.warmup, args.connections)
                if server.name == "driftloop":
                    warmups.append(warm)
                stop = threading.Event()
                poller = None
                if server.name == "driftloop":
                    poller = threading.Thread(target=drift_poller,
                                              args=(server.url, stop, drift_calls))
                    poller.start()
                res = run_wrk(url, server.script, args.duration, args.connections)
                stop.set()
                if poller is not None:
                    poller.join()
                results[server.name].append(res)
                print(f"[serving] round {rnd + 1} {server.name:9s} {res['rps']:9.1f} req/s "
                      f"p50 {res['p50_ms']} ms p99 {res['p99_ms']} ms non-2xx "
                      f"{res['non_2xx']} errors {res['socket_errors']}", flush=True)
    finally:
        for server in servers:
            server.stop()

    # A baseline that answers errors is not a baseline: every side answered 2xx only.
    failed = {name: sum(r["non_2xx"] + r["socket_errors"] for r in runs)
              for name, runs in results.items()}
    if any(failed.values()):
        print(f"[serving] error: non-2xx answers or socket errors {failed}: no ratio is "
              "printed", file=sys.stderr, flush=True)
        return 1
    # The log must hold every row driftloop answered with 200 (warm-ups included; the
    # server drained its queue on stop). One row per request. wrk does not count the
    # requests in flight when its duration ends (at most one per connection per run), which
    # the server answered and logged: those are the only rows the log may hold beyond.
    from driftloop.predlog import PredictionLog

    log = PredictionLog(f"sqlite:///{state / 'predictions.db'}", create=False)
    with log.engine.connect() as conn:
        logged = conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar_one()
    log.dispose()
    wrk_runs = [*warmups, *results["driftloop"]]
    answered = sum(r["requests"] - r["non_2xx"] for r in wrk_runs)
    if not answered <= logged <= answered + args.connections * len(wrk_runs):
        print(f"[serving] error: driftloop answered {answered} rows with 200 but the log holds "
              f"{logged}: no ratio is printed", file=sys.stderr, flush=True)
        return 1

    median = {name: statistics.median(r["rps"] for r in runs) for name, runs in results.items()}
    per_round = {
        "vs_mlflow": [d["rps"] / m["rps"] for d, m in zip(results["driftloop"], results["mlflow"],
                                                           strict=True)],
        "vs_bare": [d["rps"] / b["rps"] for d, b in zip(results["driftloop"], results["bare"],
                                                         strict=True)],
    }
    summary = {
        "machine": machine(),
        "command": "make bench (python -m benchmarks.serving_bench)",
        "duration_s": args.duration, "rounds": args.rounds, "connections": args.connections,
        "median_rps": median,
        # Headline: the median of the rounds' ratios (each round's runs are adjacent in time).
        "ratio_vs_mlflow": statistics.median(per_round["vs_mlflow"]),
        "ratio_vs_bare": statistics.median(per_round["vs_bare"]),
        "ratio_of_medians": {"vs_mlflow": median["driftloop"] / median["mlflow"],
                             "vs_bare": median["driftloop"] / median["bare"]},
        "per_round_ratios": per_round,
        "runs": results,
        "driftloop_rows_logged": logged,
        "driftloop_rows_answered_200": answered,
        "driftloop_requests_timed": sum(r["requests"] for r in results["driftloop"]),
        "drift_status_calls": {"count": len(drift_calls),
                               "ok": sum(1 for c in drift_calls if c == 200)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(f"[serving] driftloop {median['driftloop']:.0f} req/s, mlflow "
          f"{median['mlflow']:.0f}, bare FastAPI {median['bare']:.0f}: "
          f"{summary['ratio_vs_mlflow']:.1f}x mlflow, {summary['ratio_vs_bare']:.0%} of bare; "
          f"{logged} rows logged", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
