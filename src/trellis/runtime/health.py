"""Service liveness from ``Health.Heartbeat`` events (``trellis.health@v1``).

Every service publishes a heartbeat every 30 s; the runtime keeps the latest one per
instance in ``trellis_heartbeats`` (TTL 90 s), so ``trellis service show`` reports which
instances are alive and healthy, whichever runtime replica answers.  A heartbeat only counts
for a deployment whose instance keys include the one it names.
"""

from __future__ import annotations

import contextlib
import logging

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError as PydanticValidationError

from trellis.contracts.builtin import HealthHeartbeat, InstanceHealth, trellis_health
from trellis.ids import now_iso
from trellis.runtime.state import ControlPlane

__all__ = ["HealthMonitor"]

log = logging.getLogger("trellis.runtime.health")

HEARTBEAT_SUBJECT = trellis_health.model.events["Health.Heartbeat"].subject


class HealthMonitor:
    def __init__(self, cp: ControlPlane, nc: NatsClient) -> None:
        self._cp = cp
        self._nc = nc
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(HEARTBEAT_SUBJECT, queue="trellis", cb=self._on_beat)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _on_beat(self, msg: Msg) -> None:
        try:
            beat = HealthHeartbeat.model_validate_json(msg.data)
        except PydanticValidationError:
            log.debug("ignoring a malformed heartbeat")
            return
        service = beat.service
        deployment = await self._cp.deployments.get(service.name)
        if deployment is None or not any(
            key.startswith(service.instance_id) for key in deployment.instance_keys
        ):
            return
        await self._cp.heartbeats.put(
            f"{service.name}.{service.instance_id}",
            InstanceHealth(
                name=service.name,
                instance_id=service.instance_id,
                status=beat.status,
                seen_at=now_iso(),
                started_at=service.started_at,
                contract_digest=service.contract_digest,
                summary=beat.summary,
            ),
        )

    async def instances(self, name: str) -> list[InstanceHealth]:
        return [
            health
            for key in await self._cp.heartbeats.keys()
            if key.startswith(name + ".")
            and (health := await self._cp.heartbeats.get(key)) is not None
        ]
