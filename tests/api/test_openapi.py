"""The OpenAPI document: valid, and a schemathesis fuzz run of every operation finds no 5xx
and no response that breaks the documented shapes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import negative_data_rejection, not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from controller.store import Store
from tests.api.server import ApiServer, start_api

EXAMPLES_PER_OPERATION = 40


class AcceptingCallControl:
    def hangup(self, call_uuids: Sequence[str], cause: str = "NORMAL_CLEARING") -> list[str]:
        return list(call_uuids)

    def originate(self, session_id: str, leg_id: str, role: str, to: str, gateway: str) -> str:
        return leg_id


@pytest.fixture
def seeded(store: Store) -> Iterator[tuple[ApiServer, dict[str, str]]]:
    # A call control that accepts every originate, so /dial is fuzzed past its 503 (no ESL here).
    api, server = start_api(store, call_control=AcceptingCallControl())
    org = api.org()
    api.call("PATCH", "/v1/sip", org, body={"enabled": True})
    con = api.call(
        "POST",
        "/v1/connections",
        org,
        body={
            "provider": "telnyx",
            "name": "n",
            "credentials": {"api_key": "KEY0123456789"},
            "is_default": True,
        },
    ).json()
    api.call("POST", "/v1/phone_numbers", org, body={"number": "+14155550100", "connection_id": con["id"]})
    api.call("POST", "/v1/sessions", org, body={})
    yield api, {"Authorization": f"Bearer {org.key}"}
    server.stop()


def test_document_is_valid_openapi(api: ApiServer) -> None:
    resp = api.call("GET", "/v1/openapi.json")  # public: no key needed
    assert resp.status_code == 200
    doc = resp.json()
    validate(doc)
    assert doc["openapi"].startswith("3.")
    ops = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert ("/v1/sessions", "post") in ops and ("/v1/sip/credentials", "post") in ops
    assert len(ops) == 27
    # The request schemas are the models the server validates with.
    assert doc["components"]["schemas"]["SessionCreate"]["additionalProperties"] is False
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == 27


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_fuzz_every_operation(
    seeded: tuple[ApiServer, dict[str, str]], mode: schemathesis.GenerationMode
) -> None:
    api, auth = seeded
    doc = api.call("GET", "/v1/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 27
    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call(base_url=api.base, headers=auth)
            case.validate_response(response, checks=checks)
            if mode is schemathesis.GenerationMode.NEGATIVE:
                # Data outside the schema must be refused (4xx), never accepted.
                case.validate_response(response, checks=[negative_data_rejection])

        fuzz()
