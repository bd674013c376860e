"""Who is calling: principals by session key, cached locally from the runtime's KV bucket.

The runtime writes one record per session key it knows (service instances, CLI and user
sessions) into the ``trellis_principals`` bucket.  Every RPC handler resolves callers from a
local cache fed by a KV watch, so a request costs no extra round trip and a grant or
revocation reaches every service as soon as the KV update does (ARCHITECTURE, "Zero extra
round trips").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from trellis.nats.kv import watch

__all__ = ["PRINCIPALS_BUCKET", "Principal", "PrincipalCache"]

PRINCIPALS_BUCKET = "trellis_principals"
log = logging.getLogger(__name__)


class Principal(BaseModel):
    """A session key and what it may do."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    session_key: str = Field(alias="sessionKey")
    kind: Literal["service", "user"]
    #: deployment name for services, user id for users and CLIs
    name: str
    contract_id: str = Field(alias="contractId")
    contract_digest: str = Field(alias="contractDigest")
    capabilities: tuple[str, ...] = ()
    disabled: bool = False

    def holds(self, required: tuple[str, ...] | list[str]) -> bool:
        return not self.disabled and set(required).issubset(self.capabilities)


class PrincipalCache:
    """Session key → Principal, kept current by watching the principals bucket."""

    def __init__(self) -> None:
        self._by_key: dict[str, Principal] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def get(self, session_key: str) -> Principal | None:
        return self._by_key.get(session_key)

    def put(self, principal: Principal) -> None:
        """Update the cache directly (the runtime does this for its own writes)."""
        self._by_key[principal.session_key] = principal

    async def start(
        self, js: JetStreamContext, bucket: str = PRINCIPALS_BUCKET, *, read_only: bool = False
    ) -> None:
        """Load the bucket and follow it.  ``read_only``: this session may not delete
        consumers (a service: deleting watch consumers would let one service blind the
        others to revocations), so its own watch consumer is left to expire."""
        kv = await js.key_value(bucket)
        self._task = asyncio.create_task(
            self._watch(kv, read_only), name="trellis-principals-watch"
        )
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self, kv: KeyValue, read_only: bool) -> None:
        # not ``kv.watchall()``: its "initial values done" marker can come before the values
        # (see trellis.nats.kv), which would make the cache ready while still empty
        async with await watch(kv, delete_on_stop=not read_only) as watcher:
            async for entry in watcher:
                if entry is None:  # the initial values have all been delivered
                    self._ready.set()
                    continue
                if entry.deleted or not entry.value:
                    self._by_key.pop(entry.key, None)
                    continue
                try:
                    principal = Principal.model_validate_json(entry.value)
                except PydanticValidationError:
                    log.warning("ignoring malformed principal record %s", entry.key)
                    continue
                self._by_key[entry.key] = principal
