"""``trellis call RPC [JSON]``: one ad-hoc RPC call, for trying a service from a shell.

It calls as the bundle's admin session (the RPCs ``trellis.cli@v1`` uses: the runtime's
admin and catalog RPCs), or as a registered session with ``--session`` and ``--contract``.
A contract given as a manifest file has no Python models: the input is sent as given, the
output printed as received, and RPCs of non-Trellis contracts are assumed at their
conventional subject ``rpc.v1.<name>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from trellis.auth import SessionKey
from trellis.bootstrap import ConnectError, start_session
from trellis.calls import DEFAULT_TIMEOUT, RpcClient, RpcTarget, rpc_targets
from trellis.cli.common import JsonFlag, err, fail, out
from trellis.cli.loading import SourceError, load_contract_object, load_manifest
from trellis.cli.service import DEFAULT_HOME, HomeOption, _with_admin, refusal
from trellis.contracts import Contract, ContractError, Manifest, contract_digest
from trellis.contracts.authoring import BUILTIN_REGISTRY, known_manifests
from trellis.contracts.builtin import trellis_cli
from trellis.discovery import TrellisUrlNotFound, resolve_trellis_url
from trellis.loop import run
from trellis.participant import Participant
from trellis.result import Err, Result, TrellisError

__all__ = ["call_cmd"]

EXAMPLES = """
Examples:

  trellis call Auth.Users.List

  trellis call Items.Get '{"id": "42"}' --session me.seed \\
      --contract examples.inventory.contract:inventory_cli

  echo '{"id": "42"}' | trellis call Items.Get - -s me.seed -c inventory-cli.json --json
"""


def call_cmd(
    rpc: Annotated[str, typer.Argument(help="The RPC's logical name, e.g. Items.Get.")],
    payload: Annotated[
        str, typer.Argument(help="The input as a JSON object ('-' reads standard input).")
    ] = "{}",
    session: Annotated[
        Path | None,
        typer.Option("--session", "-s", help="A registered session's seed file (not admin)."),
    ] = None,
    contract: Annotated[
        str | None,
        typer.Option(
            "--contract", "-c", help="That session's contract: MODULE:ATTR or a manifest .json."
        ),
    ] = None,
    trellis_url: Annotated[
        str | None,
        typer.Option(
            "--trellis-url",
            help="The runtime's URL for --session (default: $TRELLIS_URL, else the bundle's "
            "runtime.json).",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reply.")] = (
        DEFAULT_TIMEOUT
    ),
    home: HomeOption = DEFAULT_HOME,
    as_json: JsonFlag = False,
) -> None:
    """Call an RPC by logical name and print its output; exit 1 with the typed error on Err.

    Without --session it calls as the bundle's admin session, like the other admin commands.
    """
    body = _payload(payload)
    if (session is None) != (contract is None):
        raise fail("--session and --contract go together")
    try:
        if session is None or contract is None:
            result = _admin_call(home, rpc, body, timeout)
        else:
            result = _session_call(session, contract, trellis_url, home, rpc, body, timeout)
    except ConnectError as exc:  # refused at bootstrap or connect: the reason says why
        raise refusal(exc.error, as_json) from None
    if isinstance(result, Err):
        raise refusal(result.error, as_json)
    output = result.value
    if isinstance(output, BaseModel):
        output = output.model_dump(mode="json", by_alias=True)
    if as_json:
        sys.stdout.write(json.dumps(output, separators=(",", ":"), ensure_ascii=False) + "\n")
    else:
        out.print_json(data=output)


def _payload(text: str) -> dict[str, Any]:
    raw = sys.stdin.read() if text == "-" else text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise fail(f"the input is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise fail('the input must be a JSON object, e.g. \'{"id": "42"}\'')
    return value


def _check_name(rpc: str, targets: dict[str, RpcTarget], who: str) -> None:
    """Refuse a name the contract cannot call, listing those it can."""
    if rpc not in targets:
        err.print(f"  {who} can call: {', '.join(sorted(targets)) or '(nothing)'}")
        raise fail(f"{rpc!r} is not an RPC {who} uses; add it to the contract's 'uses'")


def _admin_call(
    home: Path, rpc: str, body: dict[str, Any], timeout: float
) -> Result[Any, TrellisError]:
    _check_name(rpc, rpc_targets(trellis_cli), "the admin session (trellis.cli@v1)")

    async def action(client: Participant) -> Result[Any, TrellisError]:
        return await client.call(rpc, body, timeout=timeout)

    return run(_with_admin(home, action))


def _session_call(
    seed: Path,
    source: str,
    url: str | None,
    home: Path,
    rpc: str,
    body: dict[str, Any],
    timeout: float,
) -> Result[Any, TrellisError]:
    try:
        key = SessionKey.load(seed)
        if source.endswith(".json"):
            manifest = Manifest.parse(load_manifest(source), known_manifests())
            targets = _manifest_targets(manifest)
            digest = contract_digest(manifest.dump())
        else:
            contract: Contract = load_contract_object(source)
            targets, digest = rpc_targets(contract), contract.digest
        base_url = resolve_trellis_url(url, home=home)
    except (ValueError, OSError, SourceError, TrellisUrlNotFound) as exc:
        raise fail(str(exc)) from None
    except ContractError as exc:
        raise fail(str(exc), 1) from None
    _check_name(rpc, targets, "this contract")

    async def call() -> Result[Any, TrellisError]:
        info, nc, relay = await start_session(base_url, key, digest)
        client = RpcClient(nc, key, targets, clock=info.clock())
        relay.client = client
        try:
            return await client.call(rpc, body, timeout=timeout)
        finally:
            await client.close()
            await nc.close()

    return run(call())


def _manifest_targets(manifest: Manifest) -> dict[str, RpcTarget]:
    """The RPCs a manifest file's ``uses`` may call: Trellis-owned ones as declared, others
    at their conventional subject (a file carries no models of the contracts it uses)."""
    targets: dict[str, RpcTarget] = {}
    for _, use, _ in manifest.dependencies():
        builtin = BUILTIN_REGISTRY.get(use.contract)
        known = rpc_targets(builtin, include_own=True) if builtin is not None else {}
        for name in use.rpc.call:
            targets[name] = known.get(name) or RpcTarget(
                name, use.contract, f"rpc.v1.{name}", None, None, {}
            )
    return targets
