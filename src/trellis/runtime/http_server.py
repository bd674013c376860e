"""The runtime's HTTP endpoints, served from a thread of their own.

Anyone can reach them; the auth callout, which admits every NATS connection, must not wait
behind them.  So they run on their own event loop in their own thread, with their own NATS
connection and control-plane view (the state is all in JetStream KV), behind
:class:`~trellis.runtime.http_guard.RequestGuard`; uvicorn's ``limit_concurrency`` answers
503 beyond 64 open requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

import nats
import uvicorn

from trellis.nats.server import PortInUseError
from trellis.runtime.bundle import Bundle
from trellis.runtime.http import create_app
from trellis.runtime.http_guard import RequestGuard
from trellis.runtime.state import ControlPlane

__all__ = ["HttpServer"]

log = logging.getLogger("trellis.runtime.http")


class _ThreadServer(uvicorn.Server):
    """uvicorn off the main thread: signals stay with the process that embeds it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """Starts and stops the HTTP thread; ``guard`` counts what it refused."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        clock: Callable[[], float] = time.time,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self._bundle = bundle
        self._clock = clock
        self._ready = ready
        self._thread: threading.Thread | None = None
        self._server: _ThreadServer | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.guard: RequestGuard | None = None

    async def start(self, within: float = 15.0) -> None:
        """Start serving; raises what kept the server from starting."""
        self._thread = threading.Thread(target=self._run, name="trellis-http", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._started.wait, within)
        if self._error is not None:
            raise self._error
        if self._server is None or not self._server.started:
            raise RuntimeError("the runtime's HTTP server did not start")

    async def stop(self, within: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, within)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(), or logged once serving
            self._error = exc
            if self._started.is_set():
                log.exception("the HTTP server stopped")
        finally:
            self._started.set()

    async def _serve(self) -> None:
        config = self._bundle.config
        nc = await nats.connect(
            config.nats.servers,
            user_credentials=str(self._bundle.runtime_creds),
            name="trellis-runtime-http",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
        )
        try:
            cp = await ControlPlane.open(nc.jetstream(), replicas=config.replicas)
            app = create_app(self._bundle, cp, clock=self._clock, ready=self._ready)
            self.guard = RequestGuard(app, server_now=self._clock)
            self._server = _ThreadServer(
                uvicorn.Config(
                    self.guard,
                    host=config.http.host,
                    port=config.http.port,
                    log_level="warning",
                    lifespan="off",
                    limit_concurrency=64,
                )
            )
            serving = asyncio.create_task(self._server.serve())
            for _ in range(1500):  # uvicorn sets ``started`` once it listens
                if self._server.started or serving.done():
                    break
                await asyncio.sleep(0.01)
            if serving.done() and not self._server.started:  # uvicorn exits when it cannot bind
                raise PortInUseError(config.http.host, config.http.port)
            self._started.set()
            await serving
        finally:
            with contextlib.suppress(Exception):
                await nc.drain()
