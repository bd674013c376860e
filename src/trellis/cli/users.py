"""``trellis user ...``: register participant sessions (CLIs, scripts, apps) and their grants."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from trellis.cli.common import JsonFlag, emit_json, out
from trellis.cli.service import DEFAULT_HOME, HomeOption, _call, _manifest
from trellis.sdk import auth

app = typer.Typer(help="Register client sessions and grant capabilities.", no_args_is_help=True)

UserArg = Annotated[str, typer.Argument(help="User id (lowercase letters, digits, '.', '-').")]
CapsArg = Annotated[list[str], typer.Argument(help="Capabilities, e.g. inventory::items.read.")]


def _print(user: auth.UserInfo, as_json: bool) -> None:
    if as_json:
        emit_json(user)
        return
    state = "[green]active[/]" if user.active else "[red]inactive[/]"
    out.print(f"[bold]{user.id}[/] {user.contract_id} {state}", highlight=False)
    out.print(f"  key           {user.session_key}", highlight=False)
    out.print(f"  capabilities  {', '.join(user.capabilities or []) or '(none)'}", highlight=False)


@app.command("add")
def add(
    user_id: UserArg,
    contract: Annotated[
        str, typer.Option("--contract", "-c", help="The client's contract (file or MODULE:ATTR).")
    ],
    public_key: Annotated[
        str, typer.Option("--public-key", "-k", help="The client's session public key.")
    ],
    grant: Annotated[
        list[str] | None, typer.Option("--grant", "-g", help="A capability to grant (repeatable).")
    ] = None,
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonFlag = False,
) -> None:
    """Register a client session key with its contract and initial capabilities.

    Capabilities are namespaced by contract id (inventory::items.read); those no installed
    contract declares are refused.  Run it again with the same key to register a changed
    contract: the grants it holds are kept.
    """
    payload = {
        "id": user_id,
        "sessionKey": public_key,
        "contract": _manifest(contract),
        "capabilities": grant or [],
    }
    _print(_call(home, auth.AUTH_USERS_CREATE, payload, as_json), as_json)


def _update(user_id: str, change: dict[str, Any], home: Path, as_json: bool) -> None:
    _print(_call(home, auth.AUTH_USERS_UPDATE, {"id": user_id, **change}, as_json), as_json)


@app.command("grant")
def grant_cmd(
    user_id: UserArg,
    capabilities: CapsArg,
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonFlag = False,
) -> None:
    """Grant capabilities; takes effect on the user's next call, without reconnecting."""
    _update(user_id, {"grant": capabilities}, home, as_json)


@app.command("revoke")
def revoke_cmd(
    user_id: UserArg,
    capabilities: CapsArg,
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonFlag = False,
) -> None:
    """Revoke capabilities; the user's next call is refused."""
    _update(user_id, {"revoke": capabilities}, home, as_json)


@app.command("disable")
def disable(user_id: UserArg, home: HomeOption = DEFAULT_HOME, as_json: JsonFlag = False) -> None:
    """Deactivate a user: live connections are kicked and reconnects refused."""
    _update(user_id, {"active": False}, home, as_json)


@app.command("enable")
def enable(user_id: UserArg, home: HomeOption = DEFAULT_HOME, as_json: JsonFlag = False) -> None:
    """Reactivate a user."""
    _update(user_id, {"active": True}, home, as_json)


@app.command("list")
def list_(home: HomeOption = DEFAULT_HOME, as_json: JsonFlag = False) -> None:
    """List registered users."""
    users = _call(home, auth.AUTH_USERS_LIST, {}, as_json).users
    if as_json:
        emit_json(users)
        return
    if not users:
        out.print("no users registered")
    for user in users:
        _print(user, False)
