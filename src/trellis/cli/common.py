"""Console output shared by every ``trellis`` command: human text on a rich console,
``--json`` for scripts, errors on stderr with a non-zero exit."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from pydantic_core import to_jsonable_python
from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error and return the ``Exit`` to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def emit_json(data: Any) -> None:
    """Print ``data`` (JSON values and pydantic models, by their wire names) as JSON."""
    text = json.dumps(to_jsonable_python(data, by_alias=True), indent=2, ensure_ascii=False)
    sys.stdout.write(text + "\n")
