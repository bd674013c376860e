"""``trellis_url`` defaults: the explicit value, then ``TRELLIS_URL``, then the bundle's
``runtime.json`` in ``TRELLIS_HOME`` (or ``./.trellis``), which ``trellis dev`` writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from examples.inventory.contract import inventory, inventory_cli

from tests.service.conftest import READ, Inventory
from trellis.client import connect_client
from trellis.discovery import TrellisUrlNotFound, resolve_trellis_url
from trellis.runtime.bundle import init_bundle
from trellis.service import connect_service


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.delenv("TRELLIS_URL", raising=False)
    monkeypatch.delenv("TRELLIS_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_the_order_is_explicit_then_env_then_bundle(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(TrellisUrlNotFound, match="TRELLIS_URL") as missing:
        resolve_trellis_url(None)
    assert "TRELLIS_HOME" in str(missing.value)

    bundle = init_bundle(tmp_path / ".trellis")  # ./.trellis, as `trellis dev` makes it
    assert resolve_trellis_url(None) == bundle.config.http.url
    written = json.loads(bundle.runtime_config_path.read_text())
    assert written["http"] == {"host": bundle.config.http.host, "port": bundle.config.http.port}
    assert written["nats"]["servers"] == [bundle.nats_url]

    elsewhere = init_bundle(tmp_path / "elsewhere")
    clean_env.setenv("TRELLIS_HOME", str(elsewhere.directory))
    assert resolve_trellis_url(None) == elsewhere.config.http.url
    clean_env.setenv("TRELLIS_URL", "http://runtime.example:8080")
    assert resolve_trellis_url(None) == "http://runtime.example:8080"
    assert resolve_trellis_url("http://given:1") == "http://given:1"

    clean_env.delenv("TRELLIS_URL")
    clean_env.setenv("TRELLIS_HOME", str(tmp_path / "nothing-here"))
    with pytest.raises(TrellisUrlNotFound, match="nothing-here"):
        resolve_trellis_url(None)


async def test_participants_connect_without_a_url_given(
    inv: Inventory, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("TRELLIS_HOME", str(inv.dep.bundle.directory))
    async with await connect_service(inventory, session_key=inv.key) as service:
        assert service.name == "inventory"
    _, key = await inv.user([READ])
    async with await connect_client(inventory_cli, session=key) as client:
        me = await client.call("Auth.Sessions.Me")
        assert me.is_ok(), me
