"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis): whatever a client sends, no 5xx,
and every answer (errors included) has a documented status, content type and JSON shape.

Bounded: 30 generated requests per operation, through the ASGI app in-process (no network)."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="API fuzzing needs schemathesis (pip install 'drywallqa[test]')")
pytest.importorskip("multipart", reason="FastAPI forms need python-multipart (pip install 'drywallqa[serve]')")
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from serving_helpers import DarkPixelPredictor

from drywallqa.serving import create_app

# Not "positive_data_acceptance": a schema-valid upload may still be no image (415) or too small (422).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Both schema-valid requests and requests that break the schema (wrong types, missing fields).
CONFIG = schemathesis.Config.from_dict({"generation": {"mode": "all"}})
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(DarkPixelPredictor(), timeout_s=10), config=CONFIG)


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
def test_api_answers_every_generated_request_as_documented(case):
    response = case.call_and_validate(checks=CHECKS)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["status"] == response.status_code and error["code"] and error["message"]
