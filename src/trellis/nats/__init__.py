"""The one seam to NATS: identities (nkeys, JWTs, xkeys, creds), the nats-server manager,
KV helpers, and :func:`settle`."""

from nats.aio.client import Client as NatsClient

from trellis.nats.headers import guard_header_parsing

guard_header_parsing()  # every NATS connection of the process: see trellis.nats.headers


async def settle(nc: NatsClient) -> None:
    """Return once the server has processed every command sent so far (and answered any
    refusal of them).

    nats-py's ``flush()`` writes its PING straight to the socket, ahead of commands still
    queued for its flusher task, so a single flush can return before the server has even
    read a SUB sent just before it.  The flusher runs while the first flush waits, so the
    second PING follows everything sent earlier, and its PONG comes after their errors.
    """
    await nc.flush()
    await nc.flush()
