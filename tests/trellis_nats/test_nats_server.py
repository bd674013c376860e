from __future__ import annotations

import os
import socket
from pathlib import Path

import nats
import pytest

from trellis.nats.server import (
    NatsServer,
    NatsServerStartError,
    PortInUseError,
    check_port_free,
    find_nats_server,
    free_port,
    free_ports,
)


def _plain_config(tmp_path: Path, port: int, monitor: int) -> Path:
    conf = tmp_path / "plain.conf"
    conf.write_text(f'host: "127.0.0.1"\nport: {port}\nhttp: "127.0.0.1:{monitor}"\n')
    return conf


def test_find_binary() -> None:
    binary = find_nats_server()
    assert binary.name.startswith("nats-server")
    assert os.access(binary, os.X_OK)


def test_free_ports_distinct() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        check_port_free("127.0.0.1", port)
    assert free_port() > 0


async def test_async_start_stop(tmp_path: Path) -> None:
    client, monitor = free_ports(2)
    server = NatsServer(
        _plain_config(tmp_path, client, monitor), client_port=client, monitor_port=monitor
    )
    async with server:
        assert server.running and server.pid is not None
        nc = await nats.connect(server.url)
        await nc.close()
    assert not server.running
    check_port_free("127.0.0.1", client)  # released


def test_sync_start_without_monitor(tmp_path: Path) -> None:
    client = free_port()
    conf = tmp_path / "c.conf"
    conf.write_text(f'host: "127.0.0.1"\nport: {client}\n')
    with NatsServer(conf, client_port=client) as server:
        assert server.running
        with socket.create_connection(("127.0.0.1", client), timeout=2) as sock:
            assert sock.recv(4) == b"INFO"
    assert not server.running


def test_busy_port_is_a_typed_error(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        monitor = free_port()
        server = NatsServer(
            _plain_config(tmp_path, busy, monitor), client_port=busy, monitor_port=monitor
        )
        with pytest.raises(PortInUseError) as info:
            server.start()
        assert info.value.port == busy
        assert str(busy) in str(info.value)
        assert not server.running


def test_busy_port_detected_after_launch(tmp_path: Path) -> None:
    # The config's port is busy but the caller declared another one: the server exits
    # and the log is translated into a PortInUseError rather than a bare failure.
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        declared = free_port()
        conf = tmp_path / "c.conf"
        conf.write_text(f'host: "127.0.0.1"\nport: {busy}\n')
        server = NatsServer(conf, client_port=declared)
        with pytest.raises(PortInUseError):
            server.start(ready_within=5)
        assert not server.running


def test_bad_config_is_a_typed_error(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("this is { not valid\n")
    server = NatsServer(conf, client_port=free_port())
    with pytest.raises(NatsServerStartError, match="exited"):
        server.start(ready_within=5)
    with pytest.raises(NatsServerStartError, match="does not exist"):
        NatsServer(tmp_path / "missing.conf", client_port=free_port()).start()


def test_never_healthy_is_a_typed_error_and_cleans_up(tmp_path: Path) -> None:
    client = free_port()
    conf = tmp_path / "c.conf"
    conf.write_text(f'host: "127.0.0.1"\nport: {client}\n')
    # The declared monitor port is not in the config, so /healthz never answers.
    server = NatsServer(conf, client_port=client, monitor_port=free_port())
    with pytest.raises(NatsServerStartError, match="did not become healthy"):
        server.start(ready_within=1)
    assert not server.running
    check_port_free("127.0.0.1", client)
