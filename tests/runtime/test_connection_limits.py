"""Per-connection limits that NATS itself enforces (issue 11 item 4).

nats-server builds an auth-callout user from the JWT's permissions alone: the ``subs``,
``payload`` and ``data`` limits in that JWT are not applied (server/auth_callout.go and
``applyAccountLimits``, which reads user limits only from a JWT presented at CONNECT).
The deployment's limits therefore sit on the TRELLIS account, which every participant
joins; these tests prove NATS refuses what goes beyond them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from examples.inventory.contract import inventory, inventory_cli

from tests.runtime.support import eventually
from trellis.runtime.bundle import ConnectionLimits
from trellis.testing import LocalDeployment, local_deployment

LIMITS = ConnectionLimits(max_payload=64 * 1024, max_subscriptions=40)


async def nats_logged(dep: LocalDeployment, text: str) -> None:
    """nats-server's own log says it refused (the client may only see its socket close)."""
    log = dep.bundle.directory / dep.bundle.config.log_file
    await eventually(lambda: text in log.read_text(), what=f"nats-server logging {text!r}")


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[LocalDeployment]:
    async with local_deployment(tmp_path / "trellis", limits=LIMITS) as dep:
        yield dep


async def test_a_publish_beyond_the_deployment_payload_limit_is_refused_by_nats(
    limited: LocalDeployment,
) -> None:
    await limited.install(inventory)
    key = await limited.user("big", inventory_cli, ["inventory::items.read"])
    errors: list[str] = []
    nc = await limited.raw_participant(key, inventory_cli.digest, errors)
    # nats-py only knows the server-wide 1 MiB limit, so it sends; NATS refuses and hangs up
    assert nc.max_payload > LIMITS.max_payload
    oversized = b"x" * (LIMITS.max_payload + 1)
    await nc.publish("rpc.v1.Items.Get", oversized, reply=key.inbox_prefix + ".1")
    await eventually(lambda: nc.is_closed, what="the oversized publisher cut off")
    await nats_logged(limited, 'user:big" - maximum payload exceeded: 65537 vs 65536')

    # just under the limit (headers count too) is accepted: the connection stays up
    errors.clear()
    nc = await limited.raw_participant(key, inventory_cli.digest, errors)
    body = b"x" * (LIMITS.max_payload - 1024)
    await nc.publish("rpc.v1.Items.Get", body, reply=key.inbox_prefix + ".2")
    await nc.flush()
    assert nc.is_connected and not errors


async def test_subscriptions_beyond_the_deployment_limit_are_refused_by_nats(
    limited: LocalDeployment,
) -> None:
    await limited.install(inventory)
    key = await limited.user("subs", inventory_cli, ["inventory::items.read"])
    errors: list[str] = []
    nc = await limited.raw_participant(key, inventory_cli.digest, errors)
    for n in range(LIMITS.max_subscriptions + 5):
        await nc.subscribe(f"{key.inbox_prefix}.s{n}")
    await nats_logged(limited, 'user:subs" - maximum subscriptions exceeded')


async def test_the_limits_are_recorded_in_the_bundle(limited: LocalDeployment) -> None:
    assert limited.bundle.config.limits == LIMITS
