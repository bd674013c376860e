"""The bootstrap endpoints answer anyone: what an unauthenticated client can make the runtime
do is bounded (issue 11 item 1).  A real runtime and nats-server (trellis.testing); the
requests go through a real socket to the runtime's HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from examples.inventory.contract import inventory, inventory_cli

from trellis.testing import LocalDeployment, local_deployment

MB = 1024 * 1024


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[LocalDeployment]:
    async with local_deployment(tmp_path / "b") as deployment:
        yield deployment


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


async def _post_raw(url: str, headers: dict[str, str], body_bytes: int) -> tuple[bytes, int]:
    """POST through a bare socket, streaming up to ``body_bytes`` of body while reading the
    answer: returns the answer and how much body was sent before it came (the test holds
    none of the body; a server that read it all would answer only after ``body_bytes``)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(f"POST /bootstrap/service HTTP/1.1\r\nhost: {host}\r\n{head}\r\n".encode())
    chunked = headers.get("transfer-encoding") == "chunked"
    sent = 0

    async def send_body() -> None:
        nonlocal sent
        chunk = b"A" * (64 * 1024)
        while sent < body_bytes:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await writer.drain()
            sent += len(chunk)

    sending = asyncio.create_task(send_body())
    try:
        answer = b""
        with contextlib.suppress(ConnectionError):  # the server may reset once it answered
            while chunk := await asyncio.wait_for(reader.read(4096), 30):
                answer += chunk
                if b'"serverNow"' in answer:
                    break
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sending
        writer.close()
    return answer, sent


async def test_a_50_mb_streamed_post_is_refused_without_being_read(stack: LocalDeployment) -> None:
    before = _max_rss_mb()
    answer, sent = await _post_raw(
        stack.runtime_url,
        {"content-type": "application/json", "transfer-encoding": "chunked"},
        50 * MB,
    )
    # the 413 comes back, unless the server's close (with our body unread) reset the
    # connection first: a client still sending may see either
    assert answer == b"" or (answer.startswith(b"HTTP/1.1 413") and b"request_too_large" in answer)
    assert sent < 10 * MB  # refused once past the bound, not after the whole body
    assert stack.runtime.http is not None and stack.runtime.http.guard is not None
    assert stack.runtime.http.guard.refused.get("request_too_large") == 1
    # the runtime shares this process: 50 MB read or parsed would show in the peak RSS
    assert _max_rss_mb() - before < 25


async def test_an_announced_huge_body_is_refused_before_it_is_sent(
    stack: LocalDeployment,
) -> None:
    answer, sent = await _post_raw(
        stack.runtime_url, {"content-type": "application/json", "content-length": str(40 * MB)}, 0
    )
    assert answer.startswith(b"HTTP/1.1 413") and b'"request_too_large"' in answer
    assert sent == 0


async def test_a_malformed_body_is_refused_without_echoing_it(stack: LocalDeployment) -> None:
    marker = "ECHO-ME-" * 1000  # 8 KB of something the refusal must not repeat
    async with httpx.AsyncClient(base_url=stack.runtime_url, timeout=30) as http:
        response = await http.post(
            "/bootstrap/service", json={"sessionKey": marker, "junk": marker}
        )
    assert response.status_code == 400 and response.json()["reason"] == "invalid_request"
    assert "ECHO-ME" not in response.text and len(response.content) < 1000


async def test_one_source_is_rate_limited_and_connects_keep_being_admitted(
    stack: LocalDeployment,
) -> None:
    """A flood from one address gets 429s with Retry-After; meanwhile the callout, which no
    longer shares a loop with the HTTP server, keeps admitting connections."""
    key = await stack.install(inventory)
    statuses: list[int] = []

    async def flood() -> None:
        async with httpx.AsyncClient(base_url=stack.runtime_url, timeout=30) as http:
            for _ in range(150):
                response = await http.post("/bootstrap/client", json={"x": 1})
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert response.headers["retry-after"] == "1"
                    assert response.json()["reason"] == "rate_limited"

    flooding = asyncio.create_task(flood())
    admitted = 0
    while not flooding.done():
        nc = await stack.raw_participant(key, inventory.digest)
        admitted += nc.is_connected
        await nc.close()
    await flooding
    assert 429 in statuses and 400 in statuses  # the first ones were answered, then limited
    assert admitted >= 1


async def test_a_client_bootstrapping_while_its_source_is_limited_waits_and_connects(
    stack: LocalDeployment,
) -> None:
    """Our bootstrap honours 429's Retry-After instead of failing: many processes started
    at once from one machine (``trellis serve --processes N``) all get in."""
    await stack.install(inventory)
    key = await stack.user("erin", inventory_cli, ["inventory::items.read"])
    async with httpx.AsyncClient(base_url=stack.runtime_url, timeout=30) as http:
        statuses = [(await http.post("/bootstrap/client", json={})).status_code for _ in range(60)]
    assert statuses[-1] == 429  # this address is out of tokens now
    client = await stack.connect_client(inventory_cli, key)
    assert client.nc.is_connected
