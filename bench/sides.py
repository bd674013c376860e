"""The two sides of each benchmarked RPC: the service (responder) and the caller.

Every implementation answers ``GetItem`` with ``Item`` (the models of examples/inventory).
The service side of a row runs either in the benchmark's own process or, as deployed, in a
process of its own (``python -m bench.sides ROW URL CALLER_KEY``), which prints ``ready``
once it serves and stops at end of stdin.  The caller side always runs in the benchmark's
process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
CALL_TIMEOUT = 5.0
RAW_SUBJECT = "bench.raw.items.get"
FS_SUBJECT = "bench.faststream.items.get"

Call = Callable[[], Awaitable[None]]


class BenchError(RuntimeError):
    """A call failed or returned the wrong thing: the numbers would be meaningless."""


@dataclass(frozen=True)
class Row:
    """One measured implementation: ``impl`` served by ``processes`` service processes."""

    name: str
    impl: str  # raw | raw-headers | faststream | trellis
    processes: int = 1


ROWS = (
    Row("raw", "raw"),
    Row("raw-headers", "raw-headers"),
    Row("faststream", "faststream"),
    Row("trellis", "trellis"),
    Row("trellis-2proc", "trellis", processes=2),
)
ROWS_BY_NAME = {row.name: row for row in ROWS}


def models() -> tuple[type[BaseModel], type[BaseModel], Any]:
    """``GetItem``, ``Item`` and the ``inventory`` contract from examples/ (repo root on path)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from examples.inventory.contract import GetItem, Item, inventory

    return GetItem, Item, inventory


def _reply(item: Any, item_id: str) -> Any:
    return item(id=item_id, name="widget", category="tools", quantity=3)


# --------------------------------------------------------------------------- service sides


@contextlib.asynccontextmanager
async def _raw_service(url: str, caller_key: str) -> AsyncIterator[None]:
    get_item, item, _ = models()
    nc = await nats.connect(url)

    async def serve(msg: Any) -> None:
        req = get_item.model_validate_json(msg.data)
        await msg.respond(_reply(item, req.id).model_dump_json().encode())  # type: ignore[attr-defined]

    try:
        await nc.subscribe(RAW_SUBJECT, queue="bench", cb=serve)
        await nc.flush()
        yield
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def _raw_headers_service(url: str, caller_key: str) -> AsyncIterator[None]:
    """raw, reading the request headers Trellis sends (nats-py parses them for every
    message) and replying without echoing them (``respond`` would, Trellis does not)."""
    get_item, item, _ = models()
    nc = await nats.connect(url)

    async def serve(msg: Any) -> None:
        if msg.headers["session-key"] != caller_key:
            raise BenchError("raw-headers: the request lost its headers")
        req = get_item.model_validate_json(msg.data)
        await nc.publish(msg.reply, _reply(item, req.id).model_dump_json().encode())

    try:
        await nc.subscribe(RAW_SUBJECT, queue="bench", cb=serve)
        await nc.flush()
        yield
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def _faststream_service(url: str, caller_key: str) -> AsyncIterator[None]:
    from faststream.nats import NatsBroker

    get_item, item, _ = models()
    broker = NatsBroker(url, logger=None)

    @broker.subscriber(FS_SUBJECT, queue="bench")
    async def serve(body: get_item) -> item:  # type: ignore[valid-type]
        return _reply(item, body.id)  # type: ignore[attr-defined]

    await broker.start()
    try:
        yield
    finally:
        await broker.stop()


@contextlib.asynccontextmanager
async def _trellis_service(url: str, caller_key: str) -> AsyncIterator[None]:
    from trellis import Ok
    from trellis.principals import Principal, PrincipalCache
    from trellis.service.rpc import RequestContext, RpcServer

    _, item, inventory = models()
    cache = PrincipalCache()
    cache.put(
        Principal(
            session_key=caller_key,
            kind="user",
            name="bench",
            contract_id="bench@v1",
            contract_digest="bench",
            capabilities=("inventory::items.read",),
        )
    )
    nc = await nats.connect(url)  # the connection class connect_service uses
    server = RpcServer(nc, inventory, cache)

    @server.handler("Items.Get")
    async def get(req: Any, ctx: RequestContext) -> Any:
        return Ok(_reply(item, req.id))

    try:
        await server.start()
        yield
    finally:
        await server.stop(drain_timeout=5.0)
        await nc.close()


SERVICES: dict[str, Callable[[str, str], contextlib.AbstractAsyncContextManager[None]]] = {
    "raw": _raw_service,
    "raw-headers": _raw_headers_service,
    "faststream": _faststream_service,
    "trellis": _trellis_service,
}


@contextlib.asynccontextmanager
async def service_in_process(row: Row, url: str, caller_key: str) -> AsyncIterator[None]:
    async with SERVICES[row.impl](url, caller_key):
        yield


@contextlib.asynccontextmanager
async def service_processes(
    rows: list[tuple[Row, str]], caller_key: str, loop: str, within: float = 60.0
) -> AsyncIterator[None]:
    """The service processes of every ``(row, url)``, started together, all ``ready``."""
    procs: list[asyncio.subprocess.Process] = []
    try:
        for row, url in rows:
            for _ in range(row.processes):
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "bench.sides",
                        row.impl,
                        url,
                        caller_key,
                        f"--loop={loop}",
                        cwd=ROOT,
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                    )
                )

        async def ready(proc: asyncio.subprocess.Process) -> None:
            assert proc.stdout is not None
            if (await proc.stdout.readline()).strip() != b"ready":
                raise BenchError(f"a service process did not start (pid {proc.pid})")

        await asyncio.wait_for(asyncio.gather(*(ready(proc) for proc in procs)), within)
        yield
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 10.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# --------------------------------------------------------------------------- caller sides


async def until_served(call: Call, within: float = 10.0) -> None:
    """Retry the first call until it succeeds: right after a subscribe, nats-server has been
    seen to answer "no responders" for a moment, which would abort a whole run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            await call()
            return
        except Exception:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _raw_caller(url: str, key: Any) -> AsyncIterator[Call]:
    get_item, item, _ = models()
    nc = await nats.connect(url)
    body = get_item(id="item-1").model_dump_json().encode()

    async def call() -> None:
        msg = await nc.request(RAW_SUBJECT, body, timeout=CALL_TIMEOUT)
        if item.model_validate_json(msg.data).id != "item-1":  # type: ignore[attr-defined]
            raise BenchError(f"raw: unexpected reply {msg.data!r}")

    try:
        yield call
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def _raw_headers_caller(url: str, key: Any) -> AsyncIterator[Call]:
    """raw plus the four request headers of a Trellis call (signed once, sent as is): what
    carrying them through nats-py costs, apart from computing them."""
    import time

    from trellis.wire import RequestIds, request_headers

    get_item, item, _ = models()
    nc = await nats.connect(url)
    body = get_item(id="item-1").model_dump_json().encode()
    headers = request_headers(key, RAW_SUBJECT, body, int(time.time()), RequestIds().next(), None)

    async def call() -> None:
        msg = await nc.request(RAW_SUBJECT, body, timeout=CALL_TIMEOUT, headers=headers)
        if item.model_validate_json(msg.data).id != "item-1":  # type: ignore[attr-defined]
            raise BenchError(f"raw-headers: unexpected reply {msg.data!r}")

    try:
        yield call
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def _faststream_caller(url: str, key: Any) -> AsyncIterator[Call]:
    from faststream.nats import NatsBroker

    get_item, item, _ = models()
    broker = NatsBroker(url, logger=None)
    await broker.start()
    request = get_item(id="item-1")

    async def call() -> None:
        msg = await broker.request(request, FS_SUBJECT, timeout=CALL_TIMEOUT)
        if item.model_validate_json(msg.body).id != "item-1":  # type: ignore[attr-defined]
            raise BenchError(f"faststream: unexpected reply {msg.body!r}")

    try:
        yield call
    finally:
        await broker.stop()


@contextlib.asynccontextmanager
async def _trellis_caller(url: str, key: Any) -> AsyncIterator[Call]:
    from trellis import Ok
    from trellis.calls import RpcClient, rpc_targets

    get_item, _, inventory = models()
    nc = await nats.connect(url, inbox_prefix=key.inbox_prefix)  # as connect_client does
    client = RpcClient(nc, key, rpc_targets(inventory, include_own=True))
    request = get_item(id="item-1")

    async def call() -> None:
        result = await client.call("Items.Get", request, timeout=CALL_TIMEOUT)
        if not isinstance(result, Ok) or result.value.id != "item-1":
            raise BenchError(f"trellis: unexpected result {result!r}")

    try:
        yield call
    finally:
        await client.close()
        await nc.close()


CALLERS: dict[str, Callable[[str, Any], contextlib.AbstractAsyncContextManager[Call]]] = {
    "raw": _raw_caller,
    "raw-headers": _raw_headers_caller,
    "faststream": _faststream_caller,
    "trellis": _trellis_caller,
}


# --------------------------------------------------------------------------- service process


async def _serve_until_stdin_closes(impl: str, url: str, caller_key: str) -> None:
    async with SERVICES[impl](url, caller_key):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one benchmark service process")
    parser.add_argument("impl", choices=sorted(SERVICES))
    parser.add_argument("url")
    parser.add_argument("caller_key", help="the caller's public session key")
    parser.add_argument("--loop", default="auto")
    args = parser.parse_args(argv)
    from trellis.loop import run

    run(_serve_until_stdin_closes(args.impl, args.url, args.caller_key), loop=args.loop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
