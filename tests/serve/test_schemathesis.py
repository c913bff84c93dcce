"""Schemathesis from the app's own OpenAPI schema: generated requests for every operation, none
answered with a 5xx, every answer documented and matching its schema (tests/serve/schemathesis.toml
says which statuses random bytes sent as images may get)."""
from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (cnnkit[test])")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
def served(tmp_path_factory, serve_pipeline):
    from cnnkit.serve import ServeConfig, Service, create_app

    svc = Service(ServeConfig(db=str(tmp_path_factory.mktemp("schemathesis") / "data")), pipeline=serve_pipeline)
    key, _ = svc.keys.add("admin")
    svc.galleries.create("demo", thumbnails=True)
    yield create_app(svc), key
    svc.close()


def test_api_conforms_to_its_schema(served) -> None:
    app, key = served
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=SchemathesisConfig.from_path(CONFIG))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {key}"})

        check()
