"""Service liveness from ``Health.Heartbeat`` events (``trellis.health@v1``).

Every service publishes a heartbeat every 30 s; the runtime keeps the latest one per
instance in ``trellis_heartbeats`` (TTL 90 s), so ``trellis service show`` reports which
instances are alive and healthy, whichever runtime replica answers.

Any participant allowed to publish the event (every service) could write any payload, and
NATS does not tell a subscriber who published a message, so the runtime records a heartbeat
only when it proves its sender (ours; the payload is upstream's and stays unchanged):

- headers ``session-key`` (the instance key) and ``proof``, the key's signature over the
  exact body under the ``health-heartbeat`` domain (``trellis.auth.heartbeat_proof``);
- the key is an instance key of the deployment the payload names, and the payload's
  ``instanceId`` is that key's first 16 characters: a key speaks only for itself;
- ``header.time`` is within the connect-token window (±30 s) of the runtime's clock and
  later than the last heartbeat recorded for the instance: a captured heartbeat replayed
  later changes nothing.

An unsigned heartbeat (upstream's services send no proof, and name their instance by a
random id) proves only that some participant allowed to publish ``Health.Heartbeat`` sent
it: the runtime does not record it.  Other subscribers still receive every heartbeat and
should treat an unsigned one as a claim, not as evidence.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from trellis.auth import IAT_SKEW_SECONDS, verify_heartbeat_proof
from trellis.contracts.builtin import HealthHeartbeat, InstanceHealth, trellis_health
from trellis.ids import now_iso
from trellis.logs import ThrottledLog
from trellis.runtime.state import ControlPlane, Table
from trellis.wire import HEADER_PROOF, HEADER_SESSION_KEY

__all__ = ["HealthMonitor"]

log = logging.getLogger("trellis.runtime.health")

HEARTBEAT_SUBJECT = trellis_health.model.events["Health.Heartbeat"].subject


class _Recorded(InstanceHealth):
    """What the bucket keeps: the health shown, and the signed time of the heartbeat."""

    beat_time: float = Field(default=0.0, alias="beatTime")


class HealthMonitor:
    def __init__(
        self, cp: ControlPlane, nc: NatsClient, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._cp = cp
        self._nc = nc
        self._clock = clock
        self._records = Table(cp.heartbeats.kv, _Recorded)
        self._sub: Subscription | None = None
        #: anyone allowed to publish heartbeats can make these: bounded warnings
        self._refusals = ThrottledLog(log)
        #: heartbeats not recorded, by reason
        self.ignored: dict[str, int] = {}

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(HEARTBEAT_SUBJECT, queue="trellis", cb=self._on_beat)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _on_beat(self, msg: Msg) -> None:
        reason = await self._record(msg)
        if reason is None:
            return
        self.ignored[reason] = self.ignored.get(reason, 0) + 1
        if reason == "unsigned":  # what upstream's services send: expected, not suspicious
            log.debug("an unsigned heartbeat is not recorded")
        else:
            self._refusals.warning("heartbeat not recorded: %s", reason)

    async def _record(self, msg: Msg) -> str | None:
        """Record a proven heartbeat; returns why one is not recorded."""
        headers = msg.headers or {}
        session_key = headers.get(HEADER_SESSION_KEY)
        proof = headers.get(HEADER_PROOF)
        if not session_key or not proof:
            return "unsigned"
        if not verify_heartbeat_proof(session_key, msg.data, proof):
            return "invalid_signature"
        try:
            beat = HealthHeartbeat.model_validate_json(msg.data)
            beat_time = datetime.fromisoformat(beat.header.time).timestamp()
        except (PydanticValidationError, ValueError):
            return "malformed"
        service = beat.service
        if service.instance_id != session_key[:16]:
            return "not_its_instance"
        principal = await self._cp.principals.get(session_key)
        if principal is None or principal.kind != "service" or principal.name != service.name:
            return "not_its_deployment"
        if abs(beat_time - self._clock()) > IAT_SKEW_SECONDS:
            return "stale"
        key = f"{service.name}.{service.instance_id}"
        previous = await self._records.get(key)
        if previous is not None and beat_time <= previous.beat_time:
            return "replayed"
        await self._records.put(
            key,
            _Recorded(
                name=service.name,
                instance_id=service.instance_id,
                status=beat.status,
                seen_at=now_iso(),
                started_at=service.started_at,
                contract_digest=service.contract_digest,
                summary=beat.summary,
                beat_time=beat_time,
            ),
        )
        return None

    async def instances(self, name: str) -> list[InstanceHealth]:
        return [
            health
            for key in await self._cp.heartbeats.keys()
            if key.startswith(name + ".")
            and (health := await self._cp.heartbeats.get(key)) is not None
        ]
