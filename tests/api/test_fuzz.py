"""Schemathesis fuzzes every operation of the OpenAPI schema against the real server: no 5xx.

Bounded (a few dozen examples per operation), marked slow.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from _service_server import Server

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

pytestmark = pytest.mark.slow

#: a bounce posted by a relay (POST /v1/channels/{name}/bounces): any bytes, and messages
#: with headers a report would have
schemathesis.openapi.media_type("message/rfc822", st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda kind, body: (f"Content-Type: {kind}\r\n\r\n{body}").encode(),
              st.sampled_from(["multipart/report; report-type=delivery-status; boundary=b",
                               "text/plain", "message/delivery-status"]),
              st.text(max_size=500))))


@pytest.fixture(scope="module")
def api_schema(server: Server):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error(case, server: Server) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(headers={"Authorization": f"Bearer {server.keys['admin']}"},
                           checks=[not_a_server_error])
