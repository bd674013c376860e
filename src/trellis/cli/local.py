"""``trellis init``, ``trellis dev`` and ``trellis runtime``: a secured deployment, one command."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel

from trellis.cli.common import JsonFlag, emit_json, err, fail, out
from trellis.cli.service import DEFAULT_HOME
from trellis.loop import run
from trellis.nats.server import NatsServerError, PortInUseError
from trellis.runtime.bundle import Bundle, BundleError, init_bundle
from trellis.signals import wait_for_shutdown

DirArg = Annotated[
    Path,
    typer.Argument(help="The deployment bundle directory (default: $TRELLIS_HOME or ./.trellis)."),
]
Port = Annotated[int | None, typer.Option(help="Port to use (default: a free one at creation).")]


def register(app: typer.Typer) -> None:
    app.command("init")(init_cmd)
    app.command("dev")(dev_cmd)
    app.command("runtime")(runtime_cmd)


def _init(directory: Path, **ports: Any) -> Bundle:
    """``init_bundle`` with the ports the command was given; a refusal exits."""
    try:
        return init_bundle(directory, **ports)
    except BundleError as exc:
        raise fail(str(exc)) from None


def init_cmd(
    directory: DirArg = DEFAULT_HOME,
    client_port: Port = None,
    http_port: Port = None,
    monitor_port: Port = None,
    websocket_port: Port = None,
    as_json: JsonFlag = False,
) -> None:
    """Generate a local deployment bundle: NATS operator, accounts, callout keys, configs.

    Every secret file is written with mode 0600. Running it again on an existing bundle
    changes nothing.
    """
    existed = (directory / "runtime.json").exists()
    bundle = _init(
        directory,
        client_port=client_port,
        http_port=http_port,
        monitor_port=monitor_port,
        websocket_port=websocket_port,
    )
    info = _describe(bundle)
    if as_json:
        emit_json({**info, "created": not existed})
        return
    out.print(("Loaded existing" if existed else "Created") + f" bundle in {bundle.directory}")
    _print_info(info)


def _describe(bundle: Bundle) -> dict[str, str]:
    config = bundle.config
    return {
        "bundle": str(bundle.directory),
        "nats": bundle.nats_url,
        "websocket": bundle.websocket_url,
        "http": config.http.url,
        "monitor": config.nats.monitor_url,
        "adminSeedFile": str(bundle.path(config.admin_seed_file)),
        "adminPublicKey": config.admin_public_key,
        "natsConfig": str(bundle.nats_config_path),
    }


def _print_info(info: dict[str, str]) -> None:
    rows = "\n".join(
        f"[bold]{label:<10}[/] {info[key]}"
        for label, key in (
            ("NATS", "nats"),
            ("HTTP", "http"),
            ("websocket", "websocket"),
            ("monitor", "monitor"),
            ("bundle", "bundle"),
            ("admin key", "adminSeedFile"),
        )
    )
    out.print(Panel(rows, title="Trellis", expand=False), highlight=False)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )


def dev_cmd(
    directory: DirArg = DEFAULT_HOME,
    demo: Annotated[
        bool, typer.Option("--demo", help="Install the inventory example, exercise it, then exit.")
    ] = False,
    client_port: Port = None,
    http_port: Port = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what the runtime does.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a complete, secured local deployment: nats-server and the Trellis runtime.

    Creates the bundle if needed, starts both, waits until they are healthy and keeps them
    running until Ctrl-C. With --demo it installs and exercises the inventory example and
    exits with its outcome.
    """
    _configure_logging(verbose)
    bundle = _init(directory, client_port=client_port, http_port=http_port)
    code = run(_dev(bundle, demo=demo, as_json=as_json))
    raise typer.Exit(code)


async def _dev(bundle: Bundle, *, demo: bool, as_json: bool) -> int:
    from trellis.runtime.app import Runtime

    started = time.monotonic()
    server = bundle.nats_server()
    runtime = Runtime(bundle)
    try:
        with err.status("Starting nats-server…"):
            await server.astart(ready_within=20)
        with err.status("Starting the Trellis runtime…"):
            await runtime.start()
    except PortInUseError as exc:
        await _shutdown(runtime, server)
        raise fail(
            f"{exc}. Stop whatever uses it, or create another bundle with other ports."
        ) from None
    except NatsServerError as exc:
        await _shutdown(runtime, server)
        raise fail(f"nats-server did not start: {exc}") from None
    info = _describe(bundle)
    elapsed = time.monotonic() - started
    try:
        if not as_json:
            out.print(f"[green]Ready[/] in {elapsed:.1f}s.")
            _print_info(info)
        if demo:
            from trellis.cli.demo import DemoUnavailable, run_demo

            try:
                ok = await run_demo(bundle, emit=not as_json)
            except DemoUnavailable as exc:
                raise fail(str(exc)) from None
            if as_json:
                emit_json({**info, "ready_seconds": round(elapsed, 2), "demo": ok})
            return 0 if ok["passed"] else 1
        if as_json:
            emit_json({**info, "ready_seconds": round(elapsed, 2)})
        else:
            out.print(
                "Next: [bold]trellis service install MODULE:ATTR --name NAME --public-key KEY[/]"
                f" (with TRELLIS_HOME={bundle.directory}).\nPress Ctrl-C to stop."
            )
        await wait_for_shutdown()
        return 0
    finally:
        with err.status("Stopping…"):
            await _shutdown(runtime, server)
        if not as_json:
            out.print("Stopped.")


async def _shutdown(runtime: object, server: object) -> None:
    stop_runtime: Callable[[], Awaitable[None]] = runtime.stop  # type: ignore[attr-defined]
    try:
        await stop_runtime()
    except Exception:
        logging.getLogger("trellis.dev").exception("runtime stop failed")
    await server.astop()  # type: ignore[attr-defined]


def runtime_cmd(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="A bundle directory or its runtime.json.")
    ] = DEFAULT_HOME,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = True,
) -> None:
    """Run the Trellis runtime alone against an already running NATS deployment."""
    _configure_logging(verbose)
    directory = config.parent if config.name == "runtime.json" else config
    try:
        bundle = Bundle.load(directory)
    except BundleError as exc:
        raise fail(str(exc)) from None
    run(_run_runtime(bundle))


async def _run_runtime(bundle: Bundle) -> None:
    from trellis.runtime.app import Runtime

    runtime = Runtime(bundle)
    try:
        await runtime.start()
    except PortInUseError as exc:
        await runtime.stop()
        raise fail(str(exc)) from None
    except OSError as exc:
        await runtime.stop()
        raise fail(f"cannot reach NATS at {bundle.nats_url}: {exc}") from None
    try:
        await wait_for_shutdown()
    finally:
        await runtime.stop()
