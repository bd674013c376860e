"""Live connection tracking and kicks.

The callout records every connection it admits (session key, user nkey, server and client
ids) in ``trellis_connections`` under ``<session key>.<server id>.<client id>`` and announces
``Auth.Connections.Opened``; the server's ``$SYS.ACCOUNT.<TRELLIS>.DISCONNECT`` advisories
close the record.  An advisory names the connection by server id and client id (its ``user``
is the JWT's name, never the user nkey), so that is what the key carries: a disconnect
deletes its own record through a key filter instead of scanning every record.  Kicking a session key
asks each server holding one of its connections to drop it
(``$SYS.REQ.SERVER.<id>.KICK``); the callout then refuses the reconnect on its own merits.

A record keeps the contract digest its connection was admitted with, so an upgrade drops
only the connections still on the old digest (``kick_stale``) and an instance already
reconnected with the new one keeps serving.  A connection the callout admitted on a
principal that changed while it was being admitted (an upgrade, disable or removal between
the callout's read and its record) would escape a kick pass that ran before the record was
written: ``opened`` reads the principal again after recording and drops such a connection
itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from trellis.ids import now_iso, ulid
from trellis.nats.callout import AuthorizationRequest
from trellis.principals import Principal
from trellis.runtime.state import Connection, ControlPlane

__all__ = ["ConnectionTracker"]

log = logging.getLogger("trellis.runtime.connections")


class ConnectionTracker:
    def __init__(
        self, cp: ControlPlane, trellis_nc: NatsClient, system_nc: NatsClient, account: str
    ) -> None:
        self._cp = cp
        self._nc = trellis_nc
        self._sys = system_nc
        self._account = account
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._sys.subscribe(
            f"$SYS.ACCOUNT.{self._account}.DISCONNECT", cb=self._on_disconnect
        )

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):  # the system connection may be gone
                await self._sub.unsubscribe()

    async def opened(self, request: AuthorizationRequest, principal: Principal) -> None:
        client_id = request.client_info.get("id")
        connection = Connection(
            session_key=principal.session_key,
            user_nkey=request.user_nkey,
            server_id=request.server_id,
            client_id=int(client_id) if isinstance(client_id, int) else -1,
            kind=principal.kind,
            name=principal.name,
            contract_digest=principal.contract_digest,
        )
        await self._cp.connections.put(_record_key(connection), connection)
        await self._event("Auth.Connections.Opened", connection)
        current = await self._cp.principals.get(principal.session_key)
        if (
            current is None
            or current.disabled
            or current.contract_digest != (principal.contract_digest)
        ):
            log.info("%s %s changed while it was admitted", principal.kind, principal.name)
            await self.kick_connection(connection)

    async def _on_disconnect(self, msg: Msg) -> None:
        try:
            data = json.loads(msg.data)
            server_id, client_id = data["server"]["id"], data["client"]["id"]
        except (ValueError, KeyError, TypeError):
            return
        if not (isinstance(server_id, str) and _TOKEN.fullmatch(server_id)):
            return
        if not isinstance(client_id, int) or isinstance(client_id, bool):
            return
        for key in await self._cp.connections.keys(f"*.{server_id}.{client_id}"):
            connection = await self._cp.connections.get(key)
            await self._cp.connections.delete(key)
            if connection is not None:
                await self._event("Auth.Connections.Closed", connection)

    async def list(self, session_key: str | None = None) -> list[Connection]:
        if session_key is not None and not _SESSION_KEY.fullmatch(session_key):
            return []  # not a key: and never a wildcard widening the filter below
        return [
            connection
            for key in await self._cp.connections.keys(f"{session_key}.>" if session_key else ">")
            if (connection := await self._cp.connections.get(key)) is not None
        ]

    async def kick(self, session_key: str) -> int:
        """Disconnect every live connection of ``session_key``; returns how many were asked."""
        kicked = 0
        for connection in await self.list(session_key):
            if await self.kick_connection(connection):
                kicked += 1
        return kicked

    async def kick_stale(self, session_keys: Iterable[str], digest: str) -> int:
        """Disconnect the connections of ``session_keys`` admitted with another contract
        digest than ``digest`` (after an upgrade); returns how many were asked."""
        kicked = 0
        for key in session_keys:
            for connection in await self.list(key):
                if connection.contract_digest != digest and await self.kick_connection(connection):
                    kicked += 1
        return kicked

    async def kick_user_nkey(self, user_nkey: str) -> int:
        kicked = 0
        for connection in await self.list():
            if connection.user_nkey == user_nkey and await self.kick_connection(connection):
                kicked += 1
        return kicked

    async def kick_connection(self, connection: Connection) -> bool:
        subject = f"$SYS.REQ.SERVER.{connection.server_id}.KICK"
        try:
            reply = await self._sys.request(
                subject, json.dumps({"cid": connection.client_id}).encode(), timeout=2
            )
        except Exception as exc:
            log.warning("kick of %s failed: %s", connection.name, exc)
            return False
        ok = b'"error"' not in reply.data
        if ok:
            log.info(
                "kicked %s %s (cid %s)", connection.kind, connection.name, connection.client_id
            )
        await self._cp.connections.delete(_record_key(connection))
        return ok

    async def _event(self, name: str, connection: Connection) -> None:
        payload: dict[str, Any] = {
            "header": {"id": ulid(), "time": now_iso()},
            "origin": "service" if connection.kind == "service" else "trellis",
            "id": connection.name,
            "sessionKey": connection.session_key,
            "userNkey": connection.user_nkey,
        }
        try:
            await self._nc.publish(f"events.v1.{name}", json.dumps(payload).encode())
        except Exception:
            log.debug("could not publish %s", name, exc_info=True)


#: a server id as it may appear in a key filter (an nkey: no dots, no wildcards)
_TOKEN = re.compile(r"[A-Z0-9]+")
_SESSION_KEY = re.compile(r"[A-Za-z0-9_-]{43}")


def _record_key(connection: Connection) -> str:
    return f"{connection.session_key}.{connection.server_id}.{connection.client_id}"
