"""``trellis service ...``: install and manage services through the runtime's admin RPCs.

The CLI is itself a Trellis participant: it connects with the bundle's admin session key
(a ``trellis.cli@v1`` session holding ``admin``) through the auth callout, like any client.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from trellis.bootstrap import ConnectError
from trellis.cli.common import JsonFlag, emit_json, err, fail, out
from trellis.cli.loading import SourceError, load_manifest
from trellis.contracts import ContractError
from trellis.contracts.authoring import RpcSpec
from trellis.contracts.builtin import trellis_cli
from trellis.loop import run
from trellis.participant import Participant, connect_with_credentials
from trellis.result import Err, Result, TrellisError
from trellis.runtime.bundle import Bundle, BundleError
from trellis.sdk import auth

app = typer.Typer(help="Install and manage services.", no_args_is_help=True)

T = TypeVar("T")
O = TypeVar("O", bound=BaseModel)  # noqa: E741

HomeOption = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="TRELLIS_HOME",
        help="The deployment bundle directory (default: ./.trellis).",
    ),
]
DEFAULT_HOME = Path(os.environ.get("TRELLIS_HOME", ".trellis"))


def _bundle(home: Path) -> Bundle:
    try:
        return Bundle.load(home)
    except BundleError as exc:
        raise fail(f"{exc}. Run 'trellis dev' or 'trellis init' first, or pass --home.") from None


async def admin_session(bundle: Bundle, *, one_shot: bool = True) -> Participant:
    """The bundle's admin session (a ``trellis.cli@v1`` participant holding ``admin``)."""
    return await connect_with_credentials(
        trellis_cli,
        bundle.admin_key(),
        bundle.config.nats.servers,
        sentinel_creds=bundle.sentinel_creds,
        reconnect=not one_shot,
        connect_timeout=3 if one_shot else 5,
    )


async def _with_admin(home: Path, action: Callable[[Participant], Awaitable[T]]) -> T:
    bundle = _bundle(home)
    try:
        admin = await admin_session(bundle)
    except ConnectError as exc:
        if exc.reason == "nats_auth_refused" and not await _runtime_answers(bundle):
            raise fail(
                f"NATS at {bundle.nats_url} is up but the Trellis runtime is not answering at "
                f"{bundle.config.http.url}: nobody answers the auth callout, so NATS refuses "
                "every session. Start it with 'trellis dev' (or 'trellis runtime')."
            ) from None
        raise fail(
            f"cannot connect to Trellis at {bundle.nats_url} ({exc}). Is 'trellis dev' running?"
        ) from None
    async with admin:
        return await action(admin)


async def _runtime_answers(bundle: Bundle) -> bool:
    """Whether the runtime's HTTP health endpoint answers (a refusal at connect is
    otherwise indistinguishable from a callout nobody is running)."""
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            await http.get(f"{bundle.config.http.url}/healthz")
    except httpx.HTTPError:
        return False
    return True


def _call(
    home: Path, rpc: RpcSpec[Any, O, Any], payload: dict[str, Any], as_json: bool = False
) -> O:
    """Call a runtime RPC through its typed spec from ``trellis.sdk``; exit 1 on refusal."""

    async def action(client: Participant) -> Result[O, TrellisError]:
        return await client.call(rpc, payload)

    result = run(_with_admin(home, action))
    if isinstance(result, Err):
        raise refusal(result.error, as_json)
    return result.value


def refusal(error: TrellisError, as_json: bool = False) -> typer.Exit:
    """Print a typed error (its wire envelope on stdout with ``--json``); exit 1."""
    if as_json:
        emit_json(error.to_wire())
    problems = getattr(error, "problems", None) or []
    reason = error.reason
    for problem in problems:
        err.print(f"  [yellow]-[/] {problem}", highlight=False)
    return fail(f"{error.message} ({reason})", 1)


def _show(d: auth.Deployment, as_json: bool) -> None:
    if as_json:
        emit_json(d)
        return
    state = "[red]disabled[/]" if d.disabled else "[green]enabled[/]"
    out.print(f"[bold]{d.name}[/] {d.contract_id} {state}", highlight=False)
    out.print(f"  digest    {d.contract_digest}", highlight=False)
    out.print(f"  grants    {', '.join(d.capabilities or [])}", highlight=False)
    for key in d.instance_keys or []:
        out.print(f"  instance  {key}", highlight=False)


ContractArg = Annotated[
    str, typer.Argument(help="The service's contract: a manifest JSON file or MODULE:ATTR.")
]
NameOpt = Annotated[str, typer.Option("--name", "-n", help="Deployment name (lowercase, '-').")]
KeyOpt = Annotated[
    str, typer.Option("--public-key", "-k", help="The service's session public key.")
]


def _manifest(source: str) -> dict[str, Any]:
    try:
        return load_manifest(source)
    except SourceError as exc:
        raise fail(str(exc)) from None
    except ContractError as exc:
        raise fail(str(exc), 1) from None


def _deploy(
    rpc: RpcSpec[Any, auth.DeploymentOutput, Any],
    verb: str,
    contract: str,
    name: str,
    public_key: str,
    home: Path,
    as_json: bool,
) -> None:
    payload = {"contract": _manifest(contract), "publicKey": public_key}
    _change(rpc, verb, name, home, as_json, payload)


@app.command("install")
def install(
    contract: ContractArg,
    name: NameOpt,
    public_key: KeyOpt,
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonFlag = False,
) -> None:
    """Install a service: validate its contract, provision its resources, authorize its key."""
    _deploy(auth.AUTH_DEPLOYMENTS_CREATE, "installed", contract, name, public_key, home, as_json)


@app.command("upgrade")
def upgrade(
    contract: ContractArg,
    name: NameOpt,
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key",
            "-k",
            help="An instance key to authorize too (default: the deployment's first key).",
        ),
    ] = None,
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonFlag = False,
) -> None:
    """Install a new, compatible digest of a deployed service's contract."""
    if public_key is None:
        got = _call(home, auth.AUTH_DEPLOYMENTS_GET, {"name": name}, as_json)
        keys = got.deployment.instance_keys
        if not keys:
            raise fail(f"deployment {name!r} has no instance key: pass --public-key")
        public_key = keys[0]
    _deploy(auth.AUTH_DEPLOYMENTS_UPGRADE, "upgraded", contract, name, public_key, home, as_json)


@app.command("list")
def list_(home: HomeOption = DEFAULT_HOME, as_json: JsonFlag = False) -> None:
    """List deployed services."""
    result = _call(home, auth.AUTH_DEPLOYMENTS_LIST, {}, as_json)
    if as_json:
        emit_json(result.deployments)
        return
    if not result.deployments:
        out.print("no services installed")
    for d in result.deployments:
        _show(d, False)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument()],
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonFlag = False,
) -> None:
    """Show one deployment: its instances, their liveness (heartbeats) and live connections."""
    got = _call(home, auth.AUTH_DEPLOYMENTS_GET, {"name": name}, as_json)
    deployment, health = got.deployment, got.health or []
    connections = []
    for key in deployment.instance_keys or []:
        listed = _call(home, auth.AUTH_CONNECTIONS_LIST, {"sessionKey": key}, as_json)
        connections.extend(listed.connections)
    if as_json:
        emit_json(
            {
                **to_jsonable_python(deployment, by_alias=True),
                "health": got.health,
                "connections": connections,
            }
        )
        return
    _show(deployment, False)
    if not health:
        out.print("  liveness  [yellow]no heartbeat in the last 90 s[/]")
    for h in health:
        color = "green" if h.status == "healthy" else "red"
        out.print(
            f"  liveness  {h.instance_id}… [{color}]{h.status}[/] (last heartbeat {h.seen_at})",
            highlight=False,
        )
    out.print(f"  connected {len(connections)} connection(s)")
    for c in connections:
        out.print(f"    {c.session_key[:16]}… since {c.connected_at}", highlight=False)


def _change(
    rpc: RpcSpec[Any, auth.DeploymentOutput, Any],
    verb: str,
    name: str,
    home: Path,
    as_json: bool,
    payload: dict[str, Any] | None = None,
) -> None:
    """Call a deployment-changing RPC and show the deployment it returns."""
    result = _call(home, rpc, {"name": name, **(payload or {})}, as_json)
    if not as_json:
        out.print(f"[green]{verb}[/] {name}")
    _show(result.deployment, as_json)


@app.command("disable")
def disable(
    name: Annotated[str, typer.Argument()],
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonFlag = False,
) -> None:
    """Disable a service: its live connections are kicked and reconnects refused."""
    _change(auth.AUTH_DEPLOYMENTS_DISABLE, "disabled", name, home, as_json)


@app.command("enable")
def enable(
    name: Annotated[str, typer.Argument()],
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonFlag = False,
) -> None:
    """Enable a disabled service."""
    _change(auth.AUTH_DEPLOYMENTS_ENABLE, "enabled", name, home, as_json)


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument()],
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonFlag = False,
) -> None:
    """Remove a service and everything its installs made: its records, event consumers,
    streams and KV buckets (their data is deleted)."""
    _call(home, auth.AUTH_DEPLOYMENTS_REMOVE, {"name": name}, as_json)
    if as_json:
        emit_json({"removed": name})
    else:
        out.print(f"[green]removed[/] {name}")


@app.command("add-key")
def add_key(
    name: Annotated[str, typer.Argument()],
    public_key: Annotated[str, typer.Argument(help="Another instance's session public key.")],
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonFlag = False,
) -> None:
    """Authorize another instance key for a service (replicas share its queue groups)."""
    key = {"name": name, "instanceKey": public_key}
    info = _call(home, auth.AUTH_SERVICE_INSTANCES_PROVISION, key, as_json)
    if as_json:
        emit_json(info)
    else:
        out.print(f"[green]added[/] instance {info.instance_key} to {name}", highlight=False)


@app.command("remove-key")
def remove_key(
    name: Annotated[str, typer.Argument()],
    public_key: Annotated[str, typer.Argument()],
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonFlag = False,
) -> None:
    """Revoke one instance key of a service (its connections are kicked)."""
    key = {"name": name, "instanceKey": public_key}
    _call(home, auth.AUTH_SERVICE_INSTANCES_REMOVE, key, as_json)
    if as_json:
        emit_json({"removed": public_key})
    else:
        out.print(f"[green]removed[/] instance {public_key} from {name}", highlight=False)
