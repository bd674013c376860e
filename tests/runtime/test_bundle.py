from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import nats
import pytest

from trellis.nats.creds import read_creds
from trellis.nats.jwt import decode_jwt
from trellis.nats.nkey import KeyRole, NKeyPair, is_public_key
from trellis.nats.server import free_ports
from trellis.runtime.bundle import RUNTIME_CONFIG_FILE, Bundle, BundleError, init_bundle


def _snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = (path.read_bytes(), st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    client, monitor, ws = free_ports(3)
    return init_bundle(tmp_path / "b", client_port=client, monitor_port=monitor, websocket_port=ws)


def test_layout_and_secret_modes(bundle: Bundle) -> None:
    root = bundle.directory
    cfg = bundle.config
    secrets = [
        cfg.operator_seed_file,
        cfg.system.seed_file,
        cfg.auth.seed_file,
        cfg.trellis.seed_file,
        cfg.auth_callout.issuer_signing_seed_file,
        cfg.auth_callout.target_signing_seed_file,
        cfg.auth_callout.xkey_seed_file,
        cfg.creds.callout,
        cfg.creds.sentinel,
        cfg.creds.runtime,
        cfg.creds.system,
    ]
    for relative in secrets:
        mode = stat.S_IMODE(os.stat(root / relative).st_mode)
        assert mode == 0o600, relative
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    # No secret leaks into the non-secret files.
    public_text = (root / RUNTIME_CONFIG_FILE).read_text() + bundle.nats_config_path.read_text()
    for relative in secrets:
        for line in (root / relative).read_text().splitlines():
            if line.startswith("S") and len(line) == 58:
                assert line not in public_text


def test_runtime_config_keys(bundle: Bundle) -> None:
    cfg = bundle.config
    assert is_public_key(cfg.operator_public_key, KeyRole.OPERATOR)
    for account in (cfg.system, cfg.auth, cfg.trellis):
        assert is_public_key(account.public_key, KeyRole.ACCOUNT)
    assert cfg.auth_callout.issuer_account == cfg.auth.public_key
    assert cfg.auth_callout.target_account == cfg.trellis.public_key
    assert bundle.auth_signing_key().public_key == cfg.auth.signing_public_key
    assert bundle.trellis_signing_key().public_key == cfg.trellis.signing_public_key
    assert bundle.callout_xkey().public_key == cfg.auth_callout.xkey_public_key
    assert bundle.nats_url == f"nats://127.0.0.1:{cfg.nats.client_port}"
    assert bundle.websocket_url == f"ws://127.0.0.1:{cfg.nats.websocket_port}"
    # Plain JSON, loadable again.
    raw = json.loads(bundle.runtime_config_path.read_text())
    assert raw["format"] == "trellis.runtime.bundle.v1"
    assert Bundle.load(bundle.directory) == bundle


def test_account_jwts(bundle: Bundle) -> None:
    cfg = bundle.config
    jwt_dir = bundle.directory / "jwt"
    operator = decode_jwt((jwt_dir / "operator.jwt").read_text(), expected_type="operator")
    assert operator.subject == cfg.operator_public_key
    assert operator.nats["system_account"] == cfg.system.public_key
    sys_jwt = decode_jwt((jwt_dir / "SYS.jwt").read_text(), expected_type="account")
    auth_jwt = decode_jwt((jwt_dir / "AUTH.jwt").read_text(), expected_type="account")
    trellis_jwt = decode_jwt((jwt_dir / "TRELLIS.jwt").read_text(), expected_type="account")
    for account in (sys_jwt, auth_jwt, trellis_jwt):
        assert account.issuer == cfg.operator_public_key
    # SYS: no JetStream limits at all (nats-server refuses to start otherwise).
    assert not {"mem_storage", "disk_storage", "streams", "consumer"} & set(sys_jwt.nats["limits"])
    assert auth_jwt.nats["limits"]["disk_storage"] == -1
    assert trellis_jwt.nats["limits"]["disk_storage"] == -1
    assert auth_jwt.nats["signing_keys"] == [cfg.auth.signing_public_key]
    assert trellis_jwt.nats["signing_keys"] == [cfg.trellis.signing_public_key]
    callout_user = NKeyPair.from_seed(read_creds(bundle.callout_creds).seed).public_key
    assert auth_jwt.nats["authorization"] == {
        "auth_users": [callout_user],
        "allowed_accounts": [cfg.trellis.public_key],
        "xkey": cfg.auth_callout.xkey_public_key,
    }
    # Preloaded into the server config.
    conf = bundle.nats_config_path.read_text()
    assert "resolver: MEMORY" in conf
    for token in (sys_jwt, auth_jwt, trellis_jwt):
        assert token.token in conf


def test_user_creds(bundle: Bundle) -> None:
    cfg = bundle.config
    sentinel = decode_jwt(read_creds(bundle.sentinel_creds).jwt, expected_type="user")
    assert sentinel.issuer == cfg.auth.public_key
    assert sentinel.nats["pub"] == {"deny": [">"]}
    assert sentinel.nats["sub"] == {"deny": [">"]}
    callout = decode_jwt(read_creds(bundle.callout_creds).jwt, expected_type="user")
    assert callout.issuer == cfg.auth.public_key
    assert callout.nats["pub"] == {"allow": [">"]}
    runtime = decode_jwt(read_creds(bundle.runtime_creds).jwt, expected_type="user")
    assert runtime.issuer == cfg.trellis.public_key
    system = decode_jwt(read_creds(bundle.system_creds).jwt, expected_type="user")
    assert system.issuer == cfg.system.public_key
    for creds in (bundle.callout_creds, bundle.sentinel_creds, bundle.runtime_creds):
        assert NKeyPair.from_seed(read_creds(creds).seed).role is KeyRole.USER


def test_idempotent(bundle: Bundle) -> None:
    before = _snapshot(bundle.directory)
    nats_cfg = bundle.config.nats
    again = init_bundle(
        bundle.directory,
        client_port=nats_cfg.client_port,
        monitor_port=nats_cfg.monitor_port,
        websocket_port=nats_cfg.websocket_port,
    )
    assert again == bundle
    assert init_bundle(bundle.directory) == bundle  # ports omitted: load as is
    assert _snapshot(bundle.directory) == before


def test_port_mismatch_on_existing_bundle(bundle: Bundle) -> None:
    with pytest.raises(BundleError, match="client_port"):
        init_bundle(bundle.directory, client_port=bundle.config.nats.client_port + 1)


def test_refuses_foreign_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "something.txt").write_text("x")
    with pytest.raises(BundleError, match="not empty"):
        init_bundle(tmp_path)
    with pytest.raises(BundleError, match="no Trellis bundle"):
        Bundle.load(tmp_path)


def test_free_ports_are_picked_when_omitted(tmp_path: Path) -> None:
    bundle = init_bundle(tmp_path / "auto")
    ports = {
        bundle.config.nats.client_port,
        bundle.config.nats.monitor_port,
        bundle.config.nats.websocket_port,
    }
    assert len(ports) == 3


async def test_bundle_server_starts_and_accepts_runtime(bundle: Bundle) -> None:
    async with bundle.nats_server() as server:
        assert server.url == bundle.nats_url
        nc = await nats.connect(bundle.nats_url, user_credentials=str(bundle.runtime_creds))
        try:
            sub = await nc.subscribe("hello")
            await nc.publish("hello", b"world")
            assert (await sub.next_msg(timeout=2)).data == b"world"
        finally:
            await nc.close()
    assert not server.running
