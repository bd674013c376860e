"""``POST /bootstrap/client`` and ``/bootstrap/service``: the requests our participants send
and every reply a real runtime gives, checked against upstream's schemas."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from examples.inventory.contract import inventory, inventory_cli
from pydantic import BaseModel

from tests.interop.conftest import Deployment, check
from tests.service.test_streams_e2e import orders
from trellis import ConnectError, Contract, connect_client, kv
from trellis.auth import DOMAIN_BOOTSTRAP_CLIENT, SessionKey
from trellis.bootstrap import client_bootstrap_body, service_bootstrap_body
from trellis.contracts import trellis_core
from trellis.runtime.state import active_key

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Note(BaseModel):
    text: str


#: a service that asks for its own binding, as upstream's services do at start
binder = Contract(
    "binder@v1",
    kind="service",
    display_name="Binder",
    description="Reads its binding.",
    kv={"notes": kv(Note, purpose="Notes", history=3)},
    uses={"core": trellis_core.use(rpc=["Trellis.Bindings.Get"])},
)


async def post(d: Deployment, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=d.dep.runtime_url) as http:
        response = await http.post(path, json=body)
    return response.status_code, response.json()


def upstream_client_body(key: SessionKey, iat: int | None = None) -> dict[str, Any]:
    """What upstream's client sends: no contract at all."""
    iat = int(time.time()) if iat is None else iat
    return {
        "sessionKey": key.public_key,
        "iat": iat,
        "sig": key.sign_domain(DOMAIN_BOOTSTRAP_CLIENT, str(iat)),
    }


async def test_client_bootstrap_ready_for_our_request_and_upstreams(deployment: Deployment) -> None:
    key = deployment.user_key
    ours = client_bootstrap_body(key, inventory_cli.digest, int(time.time()))
    check("ClientBootstrapRequest", ours)
    for body in (ours, upstream_client_body(key)):
        status, reply = await post(deployment, "/bootstrap/client", body)
        assert status == 200, reply
        check("ClientBootstrapReady", reply)
        check("ClientTransports", reply["connectInfo"]["transports"])
        info = reply["connectInfo"]
        # the runtime answers with the contract registered for the key
        assert (info["contractId"], info["contractDigest"]) == (
            inventory_cli.id,
            inventory_cli.digest,
        )
        assert info["transport"]["inboxPrefix"] == key.inbox_prefix


async def test_client_bootstrap_auth_required_for_an_unknown_or_disabled_key(
    deployment: Deployment,
) -> None:
    stranger = SessionKey.generate()
    status, reply = await post(deployment, "/bootstrap/client", upstream_client_body(stranger))
    assert (status, reply["status"], reply["reason"]) == (200, "auth_required", "session_not_found")
    check("ClientBootstrapAuthRequired", reply)
    with pytest.raises(ConnectError) as refused:
        await connect_client(
            inventory_cli, session=stranger, trellis_url=deployment.dep.runtime_url
        )
    assert refused.value.reason == "session_not_found"

    key = await deployment.dep.user("leaver", inventory_cli, [])
    admin = await deployment.dep.admin()
    assert (await admin.call("Auth.Users.Update", {"id": "leaver", "active": False})).is_ok()
    status, reply = await post(deployment, "/bootstrap/client", upstream_client_body(key))
    assert (status, reply["status"], reply["reason"]) == (200, "auth_required", "user_inactive")
    check("ClientBootstrapAuthRequired", reply)


async def test_client_bootstrap_not_ready_when_a_required_contract_is_gone(
    deployment: Deployment,
) -> None:
    key = await deployment.dep.user("waiting", inventory_cli, [])
    cp = deployment.dep.runtime.cp
    assert cp is not None
    active = await cp.active.get(active_key(inventory.id))
    assert active is not None
    await cp.active.delete(active_key(inventory.id))  # as if inventory were not installed
    try:
        status, reply = await post(deployment, "/bootstrap/client", upstream_client_body(key))
    finally:
        await cp.active.put(active_key(inventory.id), active)
    assert (status, reply["status"], reply["reason"]) == (200, "not_ready", "contract_not_active")
    assert inventory.id in reply["message"]
    check("ClientBootstrapNotReady", reply)


async def test_client_bootstrap_iat_out_of_range_carries_server_time_and_no_status(
    deployment: Deployment,
) -> None:
    body = upstream_client_body(deployment.user_key, int(time.time()) - 3600)
    status, reply = await post(deployment, "/bootstrap/client", body)
    assert status == 400
    check("ClientBootstrapIatOutOfRange", reply)
    # upstream's client retries on a reply without ``status``; one with it would end the loop
    assert "status" not in reply


async def test_service_bootstrap_request_ready_reply_and_bindings(deployment: Deployment) -> None:
    body = service_bootstrap_body(
        deployment.service_key, inventory.id, inventory.digest, int(time.time())
    )
    check("ServiceBootstrapRequest", body)
    status, reply = await post(deployment, "/bootstrap/service", body)
    assert status == 200, reply
    check("ServiceBootstrapReady", reply)
    resources = reply["binding"]["resources"]
    check("ContractResourceBindings", resources)
    assert set(resources["kv"]) == {"items", "audit"}
    for bucket in resources["kv"].values():
        check("KvResourceBinding", bucket)
        assert (bucket["history"], bucket["ttlMs"]) == (1, 0)
    assert set(resources["eventConsumers"]) == {"audit"}
    audit = resources["eventConsumers"]["audit"]
    check("EventConsumerResourceBinding", audit)
    assert audit["filterSubjects"] == ["events.v1.Items.Created.*"]

    # the consumer NATS holds is the one the binding names, with the stated settings
    js = (await deployment.dep.raw_runtime()).jetstream()
    consumer = await js.consumer_info(audit["stream"], audit["consumerName"])
    assert consumer.config.max_deliver == audit["maxDeliver"]
    assert consumer.config.ack_wait == audit["ackWaitMs"] / 1000
    assert consumer.config.filter_subject == audit["filterSubjects"][0]


async def test_trellis_bindings_get_returns_the_bootstrap_binding(deployment: Deployment) -> None:
    key = await deployment.dep.install(binder)
    status, reply = await post(
        deployment,
        "/bootstrap/service",
        service_bootstrap_body(key, binder.id, binder.digest, int(time.time())),
    )
    assert status == 200
    service = await deployment.dep.connect_service(binder, key)
    got = await service.call("Trellis.Bindings.Get", {"contractId": binder.id})
    binding = got.unwrap().model_dump(mode="json", by_alias=True, exclude_none=True)["binding"]
    check("ContractResourceBindings", binding["resources"])
    assert binding == reply["binding"]
    assert binding["resources"]["kv"]["notes"]["history"] == 3


async def test_stream_resources_travel_where_upstream_ignores_them(deployment: Deployment) -> None:
    key = await deployment.dep.install(orders)
    status, reply = await post(
        deployment,
        "/bootstrap/service",
        service_bootstrap_body(key, orders.id, orders.digest, int(time.time())),
    )
    assert status == 200
    check("ServiceBootstrapReady", reply)
    streams = reply["binding"]["resources"]["streams"]
    assert list(streams) == ["log"] and streams["log"]["subjects"][0].endswith(".orders.*")
    service = await deployment.dep.connect_service(orders, key)
    assert service.streams.log.subjects == ["orders.*"]


@pytest.mark.parametrize(
    ("case", "http_status", "reason"),
    [
        ("unknown key", 404, "unknown_service"),
        ("bad signature", 400, "invalid_signature"),
        ("other digest", 409, "contract_changed"),
        ("stale iat", 400, "iat_out_of_range"),
    ],
)
async def test_service_bootstrap_refusals(
    deployment: Deployment, case: str, http_status: int, reason: str
) -> None:
    now = int(time.time())
    key = SessionKey.generate() if case == "unknown key" else deployment.service_key
    digest = "A" * 43 if case == "other digest" else inventory.digest
    body = service_bootstrap_body(key, inventory.id, digest, now - 3600 if "iat" in case else now)
    if case == "bad signature":
        body["sig"] = service_bootstrap_body(key, inventory.id, digest, now + 1)["sig"]
    status, reply = await post(deployment, "/bootstrap/service", body)
    assert (status, reply["reason"]) == (http_status, reason), reply
    check("ServiceBootstrapFailure", reply)


@pytest.mark.parametrize("path", ["/bootstrap/service", "/bootstrap/client"])
async def test_a_malformed_bootstrap_request_is_refused_as_invalid_request(
    deployment: Deployment, path: str
) -> None:
    status, reply = await post(deployment, path, {"sessionKey": "not a key", "iat": "now"})
    assert (status, reply["reason"]) == (400, "invalid_request"), reply
    assert "sessionKey" in reply["message"] and "sig" in reply["message"]
    check("ServiceBootstrapFailure", reply)
