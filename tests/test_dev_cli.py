"""``trellis init`` and ``trellis dev`` as a user runs them: the installed console script in
a subprocess (real nats-server, real runtime), from the repository root."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

TRELLIS = Path(sys.executable).with_name("trellis")
#: a subprocess that has not finished by then is a hang, not a slow machine
DEADLINE = 120.0


def trellis(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TRELLIS), *args],
        cwd=ROOT,  # the demo imports examples/ from the repository
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )


def test_dev_demo_passes_end_to_end(tmp_path: Path) -> None:
    result = trellis("dev", str(tmp_path / ".trellis"), "--demo", "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    demo = report["demo"]
    assert demo["passed"] is True
    failed = [step for step in demo["steps"] if not step["passed"]]
    assert failed == []
    names = {step["name"] for step in demo["steps"]}
    assert {"RPC Items.Create", "declared error", "validation error"} <= names
    assert report["nats"].startswith("nats://127.0.0.1:")
    assert report["http"].startswith("http://127.0.0.1:")


def test_init_is_idempotent_and_keeps_secrets_private(tmp_path: Path) -> None:
    bundle = tmp_path / ".trellis"
    first = trellis("init", str(bundle), "--json")
    assert first.returncode == 0, first.stderr
    files = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    second = trellis("init", str(bundle), "--json")
    third = trellis("init", str(bundle), "--json")
    assert second.returncode == third.returncode == 0

    created, loaded = json.loads(first.stdout), json.loads(second.stdout)
    assert created.pop("created") is True
    assert loaded.pop("created") is False
    assert created == loaded  # same ports, keys and paths: nothing was regenerated
    assert third.stdout == second.stdout
    assert {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()} == files

    secret_dirs = {bundle / "keys", bundle / "creds"}
    secrets = [p for p in files if p.parent in secret_dirs]
    assert len(secrets) >= 5
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for directory in secret_dirs:
        assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0, directory
    # no seed leaks into a file anyone may read, nor into the output
    seeds = {p.read_text().strip() for p in secrets if p.parent == bundle / "keys"}
    readable = [p for p in files if stat.S_IMODE(p.stat().st_mode) & 0o044]
    for path in readable:
        text = path.read_text(errors="replace")
        assert not any(seed in text for seed in seeds), path
    assert not any(seed in first.stdout for seed in seeds)


def test_dev_on_a_busy_port_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for option in ("--client-port", "--http-port"):
            result = trellis("dev", str(tmp_path / option.strip("-")), option, str(port), "--json")
            assert result.returncode == 2, (option, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr
            assert str(port) in result.stderr
            assert "in use" in result.stderr


def test_runtime_runs_alone_against_a_running_nats_and_stops_on_sigterm(tmp_path: Path) -> None:
    import signal
    import time
    import urllib.request

    from trellis.runtime.bundle import init_bundle

    bundle = init_bundle(tmp_path / ".trellis")
    server = bundle.nats_server()
    server.start(ready_within=20)
    try:
        process = subprocess.Popen(
            [str(TRELLIS), "runtime", "--config", str(bundle.runtime_config_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            healthy = False
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    with urllib.request.urlopen(
                        f"{bundle.config.http.url}/healthz", timeout=1
                    ) as r:
                        healthy = json.loads(r.read())["status"] == "ok"
                except OSError:
                    pass
                if healthy:
                    break
                time.sleep(0.1)
            assert healthy, process.stderr.read() if process.poll() is not None else "not healthy"
            admin = trellis("service", "list", "--json", "--home", str(bundle.directory))
            assert admin.returncode == 0, admin.stderr
            assert json.loads(admin.stdout) == []
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=DEADLINE) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    finally:
        server.stop()


def test_admin_commands_say_what_is_down_instead_of_hanging(tmp_path: Path) -> None:
    """Nothing running: NATS is unreachable.  NATS alone: nobody answers the callout, so
    NATS refuses every session; the command says the runtime is the missing part."""
    from trellis.runtime.bundle import Bundle

    home = tmp_path / ".trellis"
    assert trellis("init", str(home)).returncode == 0
    down = trellis("user", "list", "--home", str(home))
    assert down.returncode == 2, down.stderr
    assert "cannot reach NATS" in down.stderr and "Is 'trellis dev' running?" in down.stderr

    with Bundle.load(home).nats_server():
        alone = trellis("user", "list", "--home", str(home))
    assert alone.returncode == 2, alone.stderr
    assert "the Trellis runtime is not answering" in alone.stderr, alone.stderr
    assert "Traceback" not in down.stderr + alone.stderr
