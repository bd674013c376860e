"""A service cannot speak for another instance's health (issue 11 item 8): any service may
publish ``Health.Heartbeat``, and the runtime used to record whatever instance a payload
named, so one compromised service could show another deployment's instances alive and
healthy (or unhealthy).  Now a heartbeat counts only when the instance key it names signed
its exact body, and only once.  A real nats-server and runtime (trellis.testing)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from examples.inventory.contract import inventory

from tests.runtime.support import eventually, pricing
from trellis.auth import DOMAIN_NATS_CONNECT, SessionKey, heartbeat_proof, verify_heartbeat_proof
from trellis.contracts.builtin import DeploymentOutput
from trellis.encoding import b64url_encode, sha256
from trellis.ids import now_iso, ulid
from trellis.nats import settle
from trellis.runtime.health import HealthMonitor
from trellis.testing import LocalDeployment
from trellis.wire import HEADER_PROOF, HEADER_SESSION_KEY

SUBJECT = "events.v1.Health.Heartbeat"


def _beat(name: str, instance_id: str, *, time: str | None = None) -> bytes:
    return json.dumps(
        {
            "header": {"id": ulid(), "time": time or now_iso()},
            "service": {
                "name": name,
                "kind": "service",
                "instanceId": instance_id,
                "contractId": f"{name}@v1",
                "contractDigest": "forged",
                "startedAt": now_iso(),
                "publishIntervalMs": 30_000,
                "runtime": "python",
            },
            "status": "unhealthy",
            "checks": [],
        }
    ).encode()


def _signed(key: SessionKey, body: bytes, *, as_key: str | None = None) -> dict[str, str]:
    return {HEADER_SESSION_KEY: as_key or key.public_key, HEADER_PROOF: heartbeat_proof(key, body)}


async def _health(dep: LocalDeployment, name: str) -> list[Any]:
    admin = await dep.admin()
    found: DeploymentOutput = (await admin.call("Auth.Deployments.Get", {"name": name})).unwrap()
    await admin.close()
    return found.health


async def test_a_service_cannot_forge_or_replay_another_instances_heartbeat(
    trellis_deployment: LocalDeployment,
) -> None:
    dep = trellis_deployment
    monitor = dep.runtime.health
    assert isinstance(monitor, HealthMonitor)
    victim = await dep.install(inventory)  # never connects
    attacker_key = await dep.install(pricing)
    attacker = await dep.connect_service(pricing, attacker_key)
    nc = attacker.nc
    captured: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()

    async def capture(msg: Any) -> None:
        beat = json.loads(msg.data)
        if beat["service"]["contractDigest"] == pricing.digest:  # the genuine ones
            await captured.put((msg.data, dict(msg.headers or {})))

    observer = await dep.raw_runtime()  # anyone allowed to subscribe to heartbeats
    await observer.subscribe(SUBJECT, cb=capture)
    await settle(observer)
    victim_instance = victim.public_key[:16]

    # 1. the victim's instance, unsigned (what was recorded before)
    await nc.publish(SUBJECT, _beat("inventory", victim_instance))
    # 2. signed by the attacker, naming the victim's instance
    body = _beat("inventory", victim_instance)
    await nc.publish(SUBJECT, body, headers=_signed(attacker_key, body))
    # 3. signed by the attacker for its own instance id, but under the victim's deployment
    body = _beat("inventory", attacker_key.public_key[:16])
    await nc.publish(SUBJECT, body, headers=_signed(attacker_key, body))
    # 4. naming the victim's key, signed by the attacker
    body = _beat("inventory", victim_instance)
    await nc.publish(SUBJECT, body, headers=_signed(attacker_key, body, as_key=victim.public_key))
    # 5. its own, correctly signed, but ten minutes old
    body = _beat("pricing", attacker_key.public_key[:16], time="2020-01-01T00:00:00.000Z")
    await nc.publish(SUBJECT, body, headers=_signed(attacker_key, body))

    # its own genuine heartbeat, published after them on the same connection, is recorded:
    # the runtime has handled every message before it
    assert (await attacker.heartbeat()).is_ok()
    await eventually(lambda: monitor.ignored.get("stale", 0) == 1, what="forgeries handled")
    [own] = await _health(dep, "pricing")
    assert own.instance_id == attacker_key.public_key[:16]
    assert own.contract_digest == pricing.digest
    assert await _health(dep, "inventory") == []
    assert monitor.ignored == {
        "unsigned": 1,
        "not_its_instance": 1,
        "not_its_deployment": 1,
        "invalid_signature": 1,
        "stale": 1,
    }

    # a captured genuine heartbeat replayed verbatim is not recorded again
    data, headers = await asyncio.wait_for(captured.get(), 10)
    assert set(headers) >= {HEADER_SESSION_KEY, HEADER_PROOF}
    await nc.publish(SUBJECT, data, headers=headers)
    # the next genuine one is (its header.time is later: the clock moved on meanwhile)
    assert (await attacker.heartbeat()).is_ok()
    for _ in range(500):
        [latest] = await _health(dep, "pricing")
        if latest.seen_at != own.seen_at:
            break
        await asyncio.sleep(0.02)
    assert latest.seen_at > own.seen_at
    assert monitor.ignored.get("replayed") == 1


def test_a_heartbeat_proof_covers_the_exact_body_and_its_domain_only() -> None:
    key, other = SessionKey.generate(), SessionKey.generate()
    body = _beat("pricing", key.public_key[:16])
    proof = heartbeat_proof(key, body)
    assert verify_heartbeat_proof(key.public_key, body, proof)
    assert not verify_heartbeat_proof(key.public_key, body + b" ", proof)
    assert not verify_heartbeat_proof(other.public_key, body, proof)
    # the same key's signature of the same value under another domain is not a proof
    value = b64url_encode(sha256(body))
    assert not verify_heartbeat_proof(
        key.public_key, body, key.sign_domain(DOMAIN_NATS_CONNECT, value)
    )
