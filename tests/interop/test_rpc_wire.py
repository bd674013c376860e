"""What travels over NATS, checked against upstream's schemas: the connect token, the
``Auth.*`` answers, RPC error bodies and event bodies, as a real deployment produces them
(raw NATS connections admitted by the callout, so the bytes are the wire's)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from examples.inventory.contract import inventory, inventory_cli
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from tests.interop.conftest import READ, Deployment, check
from tests.runtime.support import Collector, eventually
from trellis import Contract, Err
from trellis.auth import SessionKey
from trellis.contracts.builtin import trellis_cli
from trellis.encoding import b64url_encode, sha256
from trellis.ids import ulid
from trellis.nats import settle
from trellis.wire import HEADER_STATUS, STATUS_ERROR, request_headers

pytestmark = pytest.mark.asyncio(loop_scope="module")

VALIDATE = "rpc.v1.Auth.Requests.Validate"


async def request(nc: NatsClient, key: SessionKey, subject: str, payload: Any) -> Msg:
    """A signed request as our callers send it; the raw reply."""
    body = json.dumps(payload).encode()
    headers = request_headers(key, subject, body, int(time.time()), ulid(), None)
    return await nc.request(subject, body, headers=headers, timeout=5)


def reply_json(msg: Msg, *, error: bool) -> Any:
    is_error = (msg.headers or {}).get(HEADER_STATUS) == STATUS_ERROR
    assert is_error == error, msg.data
    return json.loads(msg.data)


def validate_input(key: SessionKey, subject: str, payload: Any, caps: list[str]) -> dict[str, Any]:
    """What a service asks ``Auth.Requests.Validate`` about a request it received."""
    body = json.dumps(payload).encode()
    iat, request_id = int(time.time()), ulid()
    headers = request_headers(key, subject, body, iat, request_id, None)
    return {
        "sessionKey": key.public_key,
        "proof": headers["proof"],
        "subject": subject,
        "payloadHash": b64url_encode(sha256(body)),
        "iat": iat,
        "requestId": request_id,
        "capabilities": caps,
    }


async def test_validate_describes_a_user_caller(deployment: Deployment) -> None:
    key = deployment.service_key
    service = await deployment.dep.raw_participant(key, inventory.digest)
    asked = validate_input(deployment.user_key, "rpc.v1.Items.Get", {"id": "1"}, [READ])
    check("AuthRequestsValidate", asked)
    answer = reply_json(await request(service, key, VALIDATE, asked), error=False)
    check("AuthRequestsValidateResponse", answer)
    check("CallerView", answer["caller"])
    check("CallerViewUser", answer["caller"])
    assert answer["allowed"] is True
    assert answer["inboxPrefix"] == deployment.user_key.inbox_prefix
    caller = answer["caller"]
    assert (caller["userId"], caller["participantKind"]) == ("reader", "agent")
    assert READ in caller["capabilities"]

    lacking = validate_input(
        deployment.user_key, "rpc.v1.Items.Get", {"id": "1"}, ["inventory::items.delete"]
    )
    denied = reply_json(await request(service, key, VALIDATE, lacking), error=False)
    check("AuthRequestsValidateResponse", denied)
    assert denied["allowed"] is False

    # the same request asked about twice is refused, as a replayed request would be
    again = reply_json(await request(service, key, VALIDATE, asked), error=True)
    check("AuthErrorData", again)
    assert again["reason"] == "invalid_signature"


async def test_validate_describes_a_service_caller(deployment: Deployment) -> None:
    key = deployment.service_key
    service = await deployment.dep.raw_participant(key, inventory.digest)
    asked = validate_input(key, "rpc.v1.Trellis.Catalog", {}, [])
    answer = reply_json(await request(service, key, VALIDATE, asked), error=False)
    check("AuthRequestsValidateResponse", answer)
    check("CallerView", answer["caller"])
    check("AuthenticatedService", answer["caller"])
    assert (answer["caller"]["id"], answer["caller"]["name"]) == (key.public_key, "inventory")


@pytest.mark.parametrize("fault", ["proof", "iat", "stranger"])
async def test_validate_refuses_with_upstreams_auth_errors(
    deployment: Deployment, fault: str
) -> None:
    key = deployment.service_key
    service = await deployment.dep.raw_participant(key, inventory.digest)
    caller = SessionKey.generate() if fault == "stranger" else deployment.user_key
    asked = validate_input(caller, "rpc.v1.Items.Get", {"id": "1"}, [READ])
    if fault == "proof":
        asked["requestId"] = ulid()  # the proof covered another request id
    if fault == "iat":
        asked["iat"] -= 3600
    error = reply_json(await request(service, key, VALIDATE, asked), error=True)
    check("TrellisErrorData", error)
    check("AuthErrorData", error)
    expected = {"proof": "invalid_signature", "iat": "iat_out_of_range"}
    assert error["reason"] == expected.get(fault, "session_not_found")


async def test_sessions_me_describes_the_caller(deployment: Deployment) -> None:
    user = await deployment.dep.raw_participant(deployment.user_key, inventory_cli.digest)
    me = reply_json(
        await request(user, deployment.user_key, "rpc.v1.Auth.Sessions.Me", {}), error=False
    )
    check("AuthSessionsMeResponse", me)
    assert me["participantKind"] == "agent" and me["service"] is None and me["device"] is None
    assert me["user"]["userId"] == "reader"

    admin_key = deployment.dep.bundle.admin_key()
    admin = await deployment.dep.raw_participant(admin_key, trellis_cli.digest)
    me = reply_json(await request(admin, admin_key, "rpc.v1.Auth.Sessions.Me", {}), error=False)
    check("AuthSessionsMeResponse", me)
    assert "admin" in me["user"]["capabilities"]


async def test_error_bodies_are_upstreams(deployment: Deployment) -> None:
    dep = deployment.dep
    user = await dep.raw_participant(deployment.user_key, inventory_cli.digest)
    key = deployment.user_key

    declared = reply_json(await request(user, key, "rpc.v1.Items.Get", {"id": "nope"}), error=True)
    check("TrellisErrorData", declared)
    assert declared["type"] == "ItemNotFound"

    invalid = reply_json(await request(user, key, "rpc.v1.Items.Create", {"id": 1}), error=True)
    check("TrellisErrorData", invalid)
    check("ValidationErrorData", invalid)

    reader = await dep.user("no-write", inventory_cli, [READ])
    limited = await dep.raw_participant(reader, inventory_cli.digest)
    item = {"id": "x", "name": "X", "category": "books"}
    denied = reply_json(await request(limited, reader, "rpc.v1.Items.Create", item), error=True)
    check("AuthErrorData", denied)
    assert denied["reason"] == "insufficient_permissions"


async def test_event_bodies_carry_upstreams_header(deployment: Deployment) -> None:
    observer = await deployment.dep.raw_runtime()
    events = Collector()
    await observer.subscribe("events.v1.Items.Created.>", cb=events.add)
    await settle(observer)
    user = await deployment.dep.raw_participant(deployment.user_key, inventory_cli.digest)
    item = {"id": f"i-{ulid()}", "name": "Dune", "category": "books"}
    created = await request(user, deployment.user_key, "rpc.v1.Items.Create", item)
    reply_json(created, error=False)
    await eventually(lambda: bool(events.messages), what="Items.Created")
    check("EventHeader", json.loads(events.messages[0].data))


def tool(kind: str) -> Contract:
    """A client of the inventory of ``kind`` (``cli``: the seed's kind, our extension)."""
    return Contract(
        f"{kind}-tool@v1",
        kind=kind,
        display_name=f"A {kind}",
        description="A client of the inventory.",
        uses={"inventory": inventory.use(rpc=["Items.Get"])},
    )


@pytest.mark.parametrize(("kind", "upstream_kind"), [("cli", "agent"), ("app", "app")])
async def test_cli_and_app_clients_work_and_have_upstreams_participant_kind(
    deployment: Deployment, kind: str, upstream_kind: str
) -> None:
    dep = deployment.dep
    contract = tool(kind)
    key = await dep.user(f"{kind}-user", contract, [READ])
    client = await dep.connect_client(contract, key)
    missing = await client.call("Items.Get", {"id": "nope"})
    assert isinstance(missing, Err) and missing.error.type == "ItemNotFound"

    service = await dep.raw_participant(deployment.service_key, inventory.digest)
    asked = validate_input(key, "rpc.v1.Items.Get", {"id": "nope"}, [READ])
    answer = reply_json(
        await request(service, deployment.service_key, VALIDATE, asked), error=False
    )
    check("CallerViewUser", answer["caller"])
    assert answer["caller"]["participantKind"] == upstream_kind

    user = await dep.raw_participant(key, contract.digest)
    me = reply_json(await request(user, key, "rpc.v1.Auth.Sessions.Me", {}), error=False)
    check("AuthSessionsMeResponse", me)
    assert me["participantKind"] == upstream_kind
