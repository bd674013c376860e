"""The runtime's HTTP endpoints answer anyone, before any credential: whatever the body,
the answer is a proper one (a 200 with ``status`` and ``serverNow``, or one of the
documented refusals) or a 4xx with ``{reason, message, serverNow}``: never a 500, never a
framework-shaped error, never the input echoed back (the one exception: a correctly signed
service bootstrap whose contract differs from the installed one is told both ids).

The application behind its request guard, exactly as the HTTP thread serves it, on the
module's real deployment (its control plane in JetStream), through httpx's ASGI transport;
the guard's rate limit is raised so that every example reaches the application.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest
import pytest_asyncio
from examples.inventory.contract import inventory, inventory_cli
from hypothesis import event, example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import Deployed, fuzz
from tests.fuzz.strategies import DEEP_ARRAY, DEEP_OBJECT, json_values
from trellis.auth import SessionKey
from trellis.bootstrap import client_bootstrap_body, service_bootstrap_body
from trellis.runtime.http import create_app
from trellis.runtime.http_guard import RequestGuard
from trellis.runtime.state import ControlPlane

pytestmark = pytest.mark.asyncio(loop_scope="module")

PATHS = ("/bootstrap/service", "/bootstrap/client")
#: every string the fuzz puts in a body contains this, so an echo is easy to spot
MARK = "zq9MARK"
STRANGER = SessionKey.generate()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(deployed: Deployed) -> AsyncIterator[httpx.AsyncClient]:
    dep = deployed.dep
    nc = await nats.connect(dep.nats_url, user_credentials=str(dep.bundle.runtime_creds))
    cp = await ControlPlane.open(nc.jetstream())
    app = RequestGuard(create_app(dep.bundle, cp), rate=1e9, burst=10**9)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as client:
        yield client
    await nc.close()


_marked = st.text(max_size=20).map(lambda t: f"{MARK}{t}")
_values = st.one_of(json_values, _marked)


@st.composite
def bodies(draw: st.DrawFn, deployed: Deployed) -> dict[str, Any]:
    """A signed body (of a registered service or user, or of a stranger) with some fields
    replaced, dropped or added."""
    key = draw(st.sampled_from([deployed.service_key, deployed.user_key, STRANGER]))
    iat = int(time.time()) + draw(st.sampled_from([0, 0, 0, -31, 31]))
    digest = draw(st.sampled_from([inventory.digest, inventory_cli.digest, "x"]))
    if draw(st.booleans()):
        body = service_bootstrap_body(
            key, draw(st.sampled_from([inventory.id, "x@v1"])), digest, iat
        )
    else:
        body = client_bootstrap_body(key, digest, iat)
    for name in draw(
        st.lists(
            st.sampled_from(
                ["sessionKey", "contractId", "contractDigest", "iat", "sig", "contract", MARK]
            ),
            max_size=3,
        )
    ):
        if draw(st.booleans()):
            body.pop(name, None)
        else:
            body[name] = draw(st.one_of(_values, st.integers(-(10**400), 10**400)))
    return body


def _check(response: httpx.Response, sent: bytes) -> None:
    assert response.status_code < 500, response.text
    answer = response.json()
    assert isinstance(answer, dict) and isinstance(answer.get("serverNow"), int), answer
    if response.status_code == 200:
        assert answer["status"] in ("ready", "auth_required", "not_ready"), answer
    else:
        assert 400 <= response.status_code < 500
        assert isinstance(answer.get("reason"), str) and isinstance(answer.get("message"), str)
        assert "status" not in answer
        # a refusal never grows with the input (a bootstrap body may be 16 KiB)
        assert len(response.content) < 2048, len(response.content)
    # nothing sent comes back, except in the refusal after a verified signature that
    # names the caller's own contract id (at most 200 characters) next to the installed one
    if MARK.encode() in sent and answer.get("reason") != "contract_changed":
        assert MARK not in response.text, response.text


async def _post(http: httpx.AsyncClient, path: str, body: bytes, headers: dict[str, str]) -> None:
    response = await http.post(path, content=body, headers=headers)
    _check(response, body)
    answer = response.json()
    event(f"{response.status_code} {answer.get('reason') or answer.get('status')}")


@fuzz()
@given(st.sampled_from(PATHS), st.data())
async def test_near_valid_bodies_get_an_answer_or_a_shaped_refusal(
    http: httpx.AsyncClient, deployed: Deployed, path: str, data: st.DataObject
) -> None:
    body = json.dumps(data.draw(bodies(deployed))).encode()
    await _post(http, path, body, {"content-type": "application/json"})


@fuzz()
@given(
    st.sampled_from(PATHS),
    st.one_of(
        st.binary(max_size=300),
        _values.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(_marked, _values, max_size=4).map(lambda d: json.dumps(d).encode()),
    ),
    st.sampled_from(
        [
            "application/json",
            "text/plain",
            "",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin-1",
        ]
    ),
)
@example("/bootstrap/service", DEEP_ARRAY.encode(), "application/json")
@example("/bootstrap/client", DEEP_OBJECT.encode(), "application/json")
@example(
    "/bootstrap/service",
    json.dumps(
        {
            "sessionKey": "A" * 43,
            "contractId": "x",
            "contractDigest": "x",
            "iat": 10**400,
            "sig": "A" * 86,
        }
    ).encode(),
    "application/json",
)
@example("/bootstrap/client", b'{"sessionKey": "zq9MARK", "iat": "zq9MARK"}', "application/json")
async def test_arbitrary_bytes_get_a_shaped_refusal(
    http: httpx.AsyncClient, path: str, body: bytes, content_type: str
) -> None:
    await _post(http, path, body, {"content-type": content_type} if content_type else {})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/bootstrap/service"),
        ("PUT", "/bootstrap/client"),
        ("POST", "/nowhere"),
        ("GET", f"/{MARK}"),
    ],
)
async def test_other_methods_and_paths_get_a_shaped_refusal(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await http.request(method, path)
    _check(response, path.encode())
    assert response.status_code in (404, 405)
