"""Contract fuzzing: schemathesis against a real server process and its generated OpenAPI.

Every documented operation gets valid and invalid inputs (positive and negative generation)
over real HTTP (uvicorn, httptools). Every answer must be a documented status with a body
that fits its schema, and none may be a server error; the server's own log must hold no
traceback afterwards. ``make test``: ~150 cases; ``make reliability``: over 1,000.

The request schemas of ``/predict`` and ``/feedback`` are the served model's (its features,
their kinds and its labels; serving/openapi.py), so most positive cases are requests the
model answers, and every schema-valid body must be accepted (2xx).

(Moved here from tests/serving/test_schemathesis.py, which ran in-process through ASGI.)
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.reliability.figures import Figures
from tests.reliability.scale import SCALE
from tests.reliability.server import TOKEN, ServerProcess

OPERATIONS = [("POST", "/predict"), ("POST", "/feedback"), ("GET", "/health"),
              ("GET", "/ready"), ("GET", "/model"), ("GET", "/model/expectations"),
              ("GET", "/metrics"), ("GET", "/drift/status"), ("GET", "/drift/window"),
              ("POST", "/admin/reload"), ("POST", "/admin/retention"),
              ("PUT", "/reports/{name}"), ("GET", "/reports"), ("GET", "/reports/{name}")]
AUTH = {"Authorization": f"Bearer {TOKEN}"}

#: status codes seen, per operation and generation mode; failed checks (for the figures)
_statuses: dict[str, Counter[int]] = {}
_failures: Counter[str] = Counter()


@pytest.fixture(scope="module")
def api_schema(live_server: ServerProcess) -> object:
    return schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")


@pytest.mark.timeout(60)
def test_every_operation_is_documented_and_fuzzed(api_schema: object) -> None:
    documented = {(op.method.upper(), op.path) for op in
                  (result.ok() for result in api_schema.get_all_operations())}
    assert documented == set(OPERATIONS)


#: Request schemas made exact for the served model: every schema-valid body is answered 2xx.
EXACT = {("POST", "/predict"), ("POST", "/feedback")}
#: Of their positive cases, at least this share must reach the model (2xx): fuzzing that
#: only meets validation tests validation.
MIN_VALID_SHARE = 0.8

#: Operations without inputs have nothing to make invalid.
NO_INPUTS = {("GET", "/health"), ("GET", "/ready"), ("GET", "/model"),
             ("GET", "/model/expectations"), ("GET", "/metrics")}
CASES = [(m, p, mode) for m, p in OPERATIONS for mode in GenerationMode
         if mode is GenerationMode.POSITIVE or (m, p) not in NO_INPUTS]


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("method", "path", "mode"), CASES,
                         ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES])
def test_operation_conforms_to_its_openapi(api_schema: object, live_server: ServerProcess,
                                           method: str, path: str,
                                           mode: GenerationMode) -> None:
    operation = api_schema[path][method]
    seen = _statuses.setdefault(f"{method} {path} ({mode.value})", Counter())

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=SCALE.fuzz_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        # With the token, /admin/reload is exercised past authentication too. Every check
        # runs, "schema-valid data is accepted" included where the schema is exact: the
        # served model's features and labels (serving/openapi.py). Elsewhere a schema cannot
        # say that start < end, or which report names exist, and the server rightly answers
        # those with a 4xx that names the problem.
        excluded = [] if (method, path) in EXACT else [positive_data_acceptance]
        try:
            response = case.call_and_validate(base_url=live_server.url, headers=AUTH,
                                              excluded_checks=excluded)
        except Exception as exc:  # counted for the figures, then failed as usual
            _failures[type(exc).__name__] += 1
            raise
        seen[response.status_code] += 1

    run()
    assert sum(seen.values()) >= 1


@pytest.mark.timeout(60)
def test_the_fuzzed_server_logged_no_error(live_server: ServerProcess,
                                           figures: Figures) -> None:
    """Runs after the fuzzing (file order): a 4xx that hid an exception would show here."""
    if not _statuses:
        pytest.skip("the fuzzing tests did not run in this session")
    time.sleep(0.5)
    output = live_server.output()
    errors = [line for line in output.splitlines()
              if line.startswith(("ERROR", "CRITICAL")) or "Traceback" in line]
    statuses = Counter[int]()
    for counts in _statuses.values():
        statuses.update(counts)
    cases = sum(statuses.values())
    valid = sum(n for status, n in statuses.items() if 200 <= status < 300)
    exact_positive = {f"{m} {p}": _statuses.get(f"{m} {p} (positive)", Counter())
                      for m, p in sorted(EXACT)}
    reached = {op: (sum(n for s, n in counts.items() if 200 <= s < 300), sum(counts.values()))
               for op, counts in exact_positive.items()}
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    figures.record("contract_fuzzing", cases=cases, failed_checks=sum(_failures.values()),
                   failures_by_kind=dict(_failures), server_errors=server_errors,
                   server_log_errors=len(errors), valid_cases_2xx=valid,
                   positive_cases_answered_2xx={op: f"{ok} of {n}" for op, (ok, n)
                                                in reached.items()},
                   operations=len(OPERATIONS), examples_per_operation=SCALE.fuzz_examples,
                   statuses={str(k): v for k, v in sorted(statuses.items())},
                   per_operation={k: sum(v.values()) for k, v in sorted(_statuses.items())})
    assert errors == [], "\n".join(errors[:20])
    assert server_errors == 0 and not _failures, dict(_failures)
    assert cases >= SCALE.fuzz_min_cases, f"only {cases} cases were generated"
    for op, (ok, n) in reached.items():
        assert n and ok >= MIN_VALID_SHARE * n, \
            f"{op}: only {ok} of {n} schema-valid cases reached the model (2xx)"
