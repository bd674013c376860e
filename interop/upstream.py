"""Run upstream's TypeScript (``Qlever-LLC/trellis``) with Deno against our deployment.

Nothing of upstream's is copied into this repository: the checkout lives wherever
``TRELLIS_UPSTREAM`` points (its root, holding ``js/``), and Deno comes from the npm package
``deno`` (``TRELLIS_DENO``, else ``deno`` on PATH).  JSR is out of reach here, so the import
map is derived at run time from upstream's own ``js/deno.json``: its npm imports are kept,
the JSR-only ``@nats-io/transport-deno`` is mapped to ``npm:@nats-io/transport-node`` (same
version range), other JSR imports are dropped (the client and service paths do not load
them), and upstream's workspace packages are mapped to the checkout's source files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: the JSR-only transport upstream loads under Deno, and its npm stand-in
_DENO_TRANSPORT = "@nats-io/transport-deno"
_NODE_TRANSPORT = "npm:@nats-io/transport-node"


def upstream_root() -> Path | None:
    """The upstream checkout named by ``TRELLIS_UPSTREAM``, if it looks like one."""
    value = os.environ.get("TRELLIS_UPSTREAM")
    if not value:
        return None
    root = Path(value)
    return root if (root / "js" / "packages" / "trellis" / "deno.json").is_file() else None


def deno_binary() -> str | None:
    """``TRELLIS_DENO`` if set (a path to the ``deno`` binary), else ``deno`` on PATH."""
    value = os.environ.get("TRELLIS_DENO")
    if value:
        return value if Path(value).is_file() else None
    return shutil.which("deno")


def _package_exports(package_dir: Path) -> dict[str, str]:
    """Import-map entries for one upstream workspace package, from its ``deno.json``."""
    meta = json.loads((package_dir / "deno.json").read_text())
    exports = meta["exports"]
    if isinstance(exports, str):
        exports = {".": exports}
    entries: dict[str, str] = {}
    for sub, target in exports.items():
        name = meta["name"] if sub == "." else meta["name"] + sub[1:]
        entries[name] = (package_dir / target).resolve().as_uri()
    return entries


def import_map(root: Path) -> dict[str, str]:
    """The import map upstream's client and service code resolve through, from ``root``."""
    js = root / "js"
    upstream_imports: dict[str, str] = json.loads((js / "deno.json").read_text())["imports"]
    imports: dict[str, str] = {}
    for name, target in upstream_imports.items():
        if name == _DENO_TRANSPORT:
            version = target.rpartition("@")[2]
            imports[name] = f"{_NODE_TRANSPORT}@{version}"
            imports[name + "/"] = f"npm:/{_NODE_TRANSPORT.removeprefix('npm:')}@{version}/"
        elif target.startswith("npm:"):
            imports[name] = target
            if not name.endswith("/"):  # a deno.json entry covers subpaths; a map needs it said
                imports[name + "/"] = "npm:/" + target.removeprefix("npm:") + "/"
        # jsr: imports (std, hono, dnt) are unreachable, local paths (the svelte kit, SDKs
        # generated into the workspace) absent; the client and service paths load neither
    for package in ("trellis", "result"):
        imports.update(_package_exports(js / "packages" / package))
    return imports


def write_import_map(root: Path, directory: Path) -> Path:
    """Write the derived import map into ``directory``.

    It is passed with ``--no-config --import-map``: with a ``--config`` of ours, Deno still
    resolves modules inside upstream's workspace through upstream's own ``deno.json``, whose
    ``jsr:`` transport cannot load here."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "import_map.json"
    path.write_text(json.dumps({"imports": import_map(root)}, indent=2) + "\n")
    return path


def deno_command(deno: str, imports: Path, entry: str, *args: str) -> list[str]:
    """The ``deno run`` command line for one of our TS entry files in ``interop/``."""
    return [
        deno,
        "run",
        "--quiet",
        "--no-lock",
        "--no-prompt",
        "--allow-all",
        "--no-config",
        "--import-map",
        str(imports),
        str(HERE / entry),
        *args,
    ]
