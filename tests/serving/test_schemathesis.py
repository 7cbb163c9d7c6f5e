"""A bounded schemathesis run against the generated OpenAPI: no 5xx, answers as documented.

Operations are driven one by one through Hypothesis (schemathesis' lazy pytest fixture
integration does not run under pytest 9).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from driftloop.settings import Settings
from serving.app import create_app
from serving.served import ServedModel
from tests.serving.conftest import TOKEN

OPERATIONS = [("POST", "/predict"), ("POST", "/feedback"), ("GET", "/health"),
              ("GET", "/ready"), ("GET", "/model"), ("GET", "/model/expectations"),
              ("GET", "/metrics"), ("GET", "/drift/status"), ("GET", "/drift/window"),
              ("POST", "/admin/reload")]


@pytest.fixture(scope="module")
def api_schema(iris_store: Settings, iris_model: ServedModel,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    log = tmp_path_factory.mktemp("schemathesis") / "predictions.db"
    app = create_app(Settings(state_dir=iris_store.state_dir, spec_path=iris_store.spec_path,
                              prediction_log_url=f"sqlite:///{log}", admin_token=TOKEN,
                              max_batch_rows=50), model=iris_model)
    with TestClient(app):  # runs the lifespan: log open, model installed
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_is_covered(api_schema: object) -> None:
    documented = {(op.method.upper(), op.path) for op in
                  (result.ok() for result in api_schema.get_all_operations())}
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_its_openapi(api_schema: object, method: str, path: str) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    def run(case: schemathesis.Case) -> None:
        # With the token, /admin/reload is exercised past authentication too. Every check
        # runs except "schema-valid data is accepted": the schema cannot say that a row needs
        # as many values as the model has features, or that start < end, and the server
        # rightly answers those with a 422 that names the problem.
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"},
                               excluded_checks=[positive_data_acceptance])

    run()
