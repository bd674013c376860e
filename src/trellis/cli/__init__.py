"""The ``trellis`` command line (typer + rich)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from trellis.auth import SessionKey
from trellis.canonical import canonical_json
from trellis.cli.common import JsonFlag, err, out
from trellis.cli.common import emit_json as _emit_json
from trellis.cli.common import fail as _fail
from trellis.cli.loading import SourceError, load_contract_object, load_manifest
from trellis.contracts import ContractError, Manifest, Problem, contract_digest
from trellis.contracts.authoring import known_manifests

app = typer.Typer(
    name="trellis",
    help="Trellis for Python: contract-driven services over NATS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(
    help="Session keys (Ed25519) for services, CLIs and apps.", no_args_is_help=True
)
contract_app = typer.Typer(help="Build, digest and check contracts.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(contract_app, name="contract")


@keys_app.command("new")
def keys_new(
    out_file: Annotated[
        Path,
        typer.Option("--out", "-o", help="Seed file to create (mode 0600; never overwritten)."),
    ] = Path("trellis.seed"),
    as_json: JsonFlag = False,
) -> None:
    """Generate a session key: write its seed to a 0600 file and print the public key."""
    key = SessionKey.generate()
    try:
        key.save(out_file)
    except (FileExistsError, OSError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _emit_json({"publicKey": key.public_key, "seedFile": str(out_file)})
    else:
        out.print(f"public key: [bold]{key.public_key}[/]", highlight=False)
        out.print(f"seed written to {out_file} (mode 0600). Keep it secret.", highlight=False)


@keys_app.command("show")
def keys_show(
    seed_file: Annotated[Path, typer.Argument(help="A seed file written by 'trellis keys new'.")],
    as_json: JsonFlag = False,
) -> None:
    """Print the public key of a seed file."""
    try:
        key = SessionKey.load(seed_file)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _emit_json({"publicKey": key.public_key})
    else:
        out.print(key.public_key, highlight=False)


SourceArg = Annotated[
    str, typer.Argument(help="A manifest JSON file, or MODULE:ATTR naming a trellis Contract.")
]


@contract_app.command("build")
def contract_build(
    source: Annotated[str, typer.Argument(help="MODULE:ATTR naming a trellis Contract.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the manifest here instead of stdout."),
    ] = None,
) -> None:
    """Emit the trellis.contract.v1 manifest of a Python contract."""
    try:
        contract = load_contract_object(source)
    except SourceError as exc:
        raise _fail(str(exc)) from None
    except ContractError as exc:
        raise _fail(str(exc), 1) from None
    text = json.dumps(contract.manifest, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    err.print(f"wrote {output} ({contract.id}, digest {contract.digest})", highlight=False)


@contract_app.command("digest")
def contract_digest_cmd(source: SourceArg, as_json: JsonFlag = False) -> None:
    """Print the contract digest (what upstream runtimes compute for the same manifest)."""
    manifest, problems = _parse(source)
    if manifest is None or problems:
        raise _fail(str(ContractError(problems, manifest.id if manifest else None)), 1)
    digest = contract_digest(manifest.dump())
    if as_json:
        _emit_json({"id": manifest.id, "digest": digest})
    else:
        sys.stdout.write(digest + "\n")


@contract_app.command("check")
def contract_check(source: SourceArg, as_json: JsonFlag = False) -> None:
    """List every problem in a contract; exit 1 when there is any."""
    manifest, problems = _parse(source)
    digest = contract_digest(manifest.dump()) if manifest and not problems else None
    if as_json:
        _emit_json(
            {
                "ok": not problems,
                "digest": digest,
                "problems": [{"path": p.path, "message": p.message} for p in problems],
            }
        )
    elif problems:
        err.print(f"[bold red]{len(problems)} problem(s):[/]")
        for problem in problems:
            err.print(
                f"  [yellow]{problem.path or '(manifest)'}[/]: {problem.message}", highlight=False
            )
    else:
        assert manifest is not None
        out.print(f"[green]ok[/] {manifest.id} digest {digest}", highlight=False)
    if problems:
        raise typer.Exit(1)


@contract_app.command("generate")
def contract_generate(
    source: SourceArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="The package directory to write.")],
) -> None:
    """Write a typed Python SDK package (models, errors, specs, CONTRACT) for a contract."""
    from trellis.contracts.codegen import GenerateError, generate, write_sdk

    try:
        sdk = generate(load_manifest(source))
    except SourceError as exc:
        raise _fail(str(exc)) from None
    except (ContractError, GenerateError) as exc:
        raise _fail(str(exc), 1) from None
    write_sdk(sdk, output)
    err.print(
        f"wrote {output} ({sdk.contract_id}; CONTRACT rebuilds digest {sdk.digest})",
        highlight=False,
    )


def _parse(source: str) -> tuple[Manifest | None, list[Problem]]:
    """The parsed manifest named on the command line and its problems (uses are checked
    against the Trellis-owned contracts)."""
    try:
        data = load_manifest(source)
    except SourceError as exc:
        raise _fail(str(exc)) from None
    except ContractError as exc:
        return None, exc.problems
    return Manifest.check(data, known_manifests())


@app.command("canonical")
def canonical_cmd(
    file: Annotated[Path, typer.Argument(help="A JSON file ('-' for standard input).")],
) -> None:
    """Print the canonical JSON form of a JSON document."""
    text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    try:
        sys.stdout.write(canonical_json(json.loads(text)) + "\n")
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _register() -> None:
    from trellis.cli import call, local, serve, service, users

    app.add_typer(service.app, name="service")
    app.add_typer(users.app, name="user")
    app.command("call", epilog=call.EXAMPLES)(call.call_cmd)
    local.register(app)
    serve.register(app)


_register()


def main() -> None:
    app()
