"""The ``trellis`` command's entry point (also ``python -m trellis``).

The command lives in :mod:`trellis.cli` and needs the ``cli`` extra (typer, rich); ``trellis
dev`` and ``trellis runtime`` also need the ``runtime`` extra (FastAPI, uvicorn,
nats-server). A library-only install gets a one-line hint instead of a traceback.
"""

from __future__ import annotations

import sys

#: what Trellis itself imports from each extra
_EXTRA_OF = {"typer": "cli", "rich": "cli", "fastapi": "runtime", "uvicorn": "runtime"}


def main() -> None:
    try:
        from trellis.cli import main as cli_main

        cli_main()
    except ModuleNotFoundError as exc:
        extra = _EXTRA_OF.get((exc.name or "").partition(".")[0])
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        importer = str(tb.tb_frame.f_globals.get("__name__", "")) if tb else ""
        if extra is None or not importer.startswith("trellis."):
            raise  # a user's module (a contract being loaded, say) lacks something
        sys.exit(
            f"trellis: this command needs the '{extra}' extra ({exc.name} is not installed): "
            f"pip install 'trellis-py[{extra}]'"
        )


if __name__ == "__main__":
    main()
