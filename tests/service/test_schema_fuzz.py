"""Schema-driven fuzzing: schemathesis generates valid and invalid requests for every operation in the served
OpenAPI document (with an admin key, so requests get past authentication); none may produce a server error.

Bounded: a fixed number of examples per operation, derandomized so a failure reproduces."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

pytestmark = [pytest.mark.service, pytest.mark.slow]

EXAMPLES_PER_OPERATION = 25


def _operations(url: str):
    schema = schemathesis.openapi.from_url(url + "/docs.json")
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    return [result.ok() for result in schema.get_all_operations()]


def test_openapi_lists_every_endpoint(live):
    paths = {op.path for op in _operations(live.url)}
    assert {"/sentiment", "/attrition", "/spread", "/assess", "/warnings", "/warnings/{warning_id}",
            "/warnings/{warning_id}/ack", "/warnings/{warning_id}/assign", "/warnings/{warning_id}/resolve",
            "/teams/{unit_id}/risk", "/info", "/healthz", "/readyz", "/metrics"} <= paths


def _fuzz(operation, live, failures: list[str]) -> list[int]:
    """Run the bounded examples of one operation; returns the status codes seen, server errors into `failures`."""
    seen: list[int] = []

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case):
        response = case.call(base_url=live.url, headers={"X-API-Key": live.keys["admin"]}, timeout=60)
        seen.append(response.status_code)
        if response.status_code >= 500:
            failures.append(f"{operation.method.upper()} {operation.path} -> {response.status_code}: "
                            f"{response.text[:300]}\n  {case.as_curl_command()}")

    run()
    return seen


def test_no_server_error_for_generated_requests(live):
    failures: list[str] = []
    for operation in _operations(live.url):
        assert _fuzz(operation, live, failures), f"no request generated for {operation.path}"
    assert not failures, "server errors:\n" + "\n".join(failures[:10])
