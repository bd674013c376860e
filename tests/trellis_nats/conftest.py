"""Fixtures for tests that need a real nats-server (never mocked).

``nats_bundle`` is a freshly generated runtime bundle on free 127.0.0.1 ports;
``nats_bundle_server`` runs nats-server on it for the duration of one test and always
stops the process afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trellis.nats.server import NatsServer
from trellis.runtime.bundle import Bundle, init_bundle


@pytest.fixture
def nats_bundle(tmp_path: Path) -> Bundle:
    return init_bundle(tmp_path / "bundle")


@pytest.fixture
def nats_bundle_server(nats_bundle: Bundle) -> Iterator[NatsServer]:
    server = nats_bundle.nats_server()
    server.start(ready_within=15)
    try:
        yield server
    finally:
        server.stop()
