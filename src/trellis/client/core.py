"""``TrellisClient``: calling services from CLIs, scripts and apps.

``connect_client`` bootstraps over HTTP (``POST /bootstrap/client``, signed with the
``bootstrap-client`` domain over ``iat``), then connects through the auth callout like a
service does.  The session key must have been registered by an operator
(``trellis user add``) with this contract.  Everything a client does — ``call``,
``subscribe``, ``publish``, ``close`` — is the shared :class:`~trellis.participant.Participant`.
"""

from __future__ import annotations

from pathlib import Path

from trellis.auth import SessionKey
from trellis.bootstrap import load_session_key, start_session
from trellis.contracts import Contract
from trellis.discovery import resolve_trellis_url
from trellis.participant import Participant

__all__ = ["TrellisClient", "connect_client"]


class TrellisClient(Participant):
    """A connected client session: ``await client.call(GET_ITEM, GetItem(id="1"))``.

    Use it as ``async with await connect_client(...) as client:`` to close it on exit.
    """


async def connect_client(
    contract: Contract,
    *,
    session: SessionKey | str | Path,
    trellis_url: str | None = None,
    timeout: float = 10.0,
) -> TrellisClient:
    """Connect a registered ``cli``/``app``/``agent`` session; raises ``ConnectError``.

    ``session`` is a ``SessionKey``, a seed file path or ``env:VAR``; ``trellis_url`` defaults
    as ``resolve_trellis_url`` says (``TRELLIS_URL``, then ``$TRELLIS_HOME/runtime.json``).
    """
    key = load_session_key(session)
    info, nc, relay = await start_session(
        resolve_trellis_url(trellis_url), key, contract.digest, timeout=timeout
    )
    client = TrellisClient(contract, key, nc, info.clock())
    relay.client = client._rpc
    return client
