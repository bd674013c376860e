"""``trellis serve MODULE:ATTR --processes N``: one service run as N processes.

Python uses more cores with more processes: every process connects as the same service and
joins its RPC queue group, so NATS spreads the requests over them.  ``ATTR`` names the
service's entry point, an async function called in every process as::

    async def serve(session_key: str, trellis_url: str) -> None:
        service = await connect_service(contract, session_key=session_key,
                                        trellis_url=trellis_url)
        ...  # mount the handlers
        await service.run()  # returns after SIGTERM/SIGINT, once drained

The supervisor forwards SIGTERM/SIGINT to every process and waits for them to drain.  If one
exits on its own, it is reported and the others are stopped: restarting is the job of the
process manager above (systemd, Kubernetes, ...), which then sees the failure.
"""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import typer

from trellis.cli.loading import SourceError, load_attribute

__all__ = ["load_entry_point", "register", "supervise"]

#: how long stopped processes get to drain before they are killed
STOP_GRACE_SECONDS = 15.0

EntryPoint = Callable[[str, str], Coroutine[Any, Any, None]]


def load_entry_point(target: str) -> EntryPoint:
    """Import ``MODULE:ATTR`` and check it is ``async def ATTR(session_key, trellis_url)``."""
    func = load_attribute(target)
    if not inspect.iscoroutinefunction(func):
        raise SourceError(f"{target} must be an async function (session_key, trellis_url)")
    try:
        inspect.signature(func).bind("session_key", "trellis_url")
    except TypeError:
        raise SourceError(f"{target} must take (session_key, trellis_url)") from None
    return func  # type: ignore[no-any-return]


def run_one(target: str, session_key: str, trellis_url: str) -> None:
    """Run the entry point in this process (on uvloop where installed)."""
    from trellis.loop import run

    run(load_entry_point(target)(session_key, trellis_url))


def supervise(
    target: str,
    processes: int,
    session_key: str,
    trellis_url: str,
    *,
    report: Callable[[str], None] = print,
) -> int:
    """Run ``processes`` copies of the entry point until a signal or a crash; exit status.

    Each child gets its own session, so a terminal's Ctrl-C reaches only this supervisor,
    which then stops every child exactly once (a second signal would cut a drain short).
    """
    load_entry_point(target)  # fail here, once, rather than in N children
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    argv = [sys.executable, "-c", _CHILD, str(os.getpid()), target, session_key, trellis_url]
    children: list[subprocess.Popen[bytes]] = []
    status = 0
    try:
        for _ in range(processes):
            children.append(
                subprocess.Popen(  # noqa: S603 - argv list, no shell
                    argv, start_new_session=True
                )
            )
        report(f"serving {target} in {processes} processes: {[c.pid for c in children]}")
        while not stopping:
            crashed = [c for c in children if c.poll() is not None]
            if crashed:
                for child in crashed:
                    report(f"process {child.pid} exited with status {child.returncode}")
                status = 1
                break
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in children:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                report(f"process {child.pid} did not drain in time; killed")
                child.kill()
                child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def serve_cmd(
    target: Annotated[
        str,
        typer.Argument(
            help="MODULE:ATTR naming 'async def ATTR(session_key, trellis_url)', which "
            "connects the service and runs it (await service.run())."
        ),
    ],
    processes: Annotated[
        int, typer.Option("--processes", "-p", min=1, help="Service processes to run.")
    ] = 1,
    seed: Annotated[
        str,
        typer.Option("--seed", envvar="TRELLIS_SEED", help="The service's seed file (or env:VAR)."),
    ] = "",
    trellis_url: Annotated[
        str, typer.Option("--trellis", envvar="TRELLIS_URL", help="The runtime's HTTP URL.")
    ] = "",
) -> None:
    """Run a service as N processes in its RPC queue group (scaling across cores).

    SIGTERM or Ctrl-C stops every process after it drains; a process that exits on its own
    is reported and the others are stopped (exit status 1).
    """
    if not seed or not trellis_url:
        raise typer.BadParameter("--seed and --trellis (or TRELLIS_SEED, TRELLIS_URL) are needed")
    try:
        if processes == 1:
            run_one(target, seed, trellis_url)
            return
        status = supervise(target, processes, seed, trellis_url, report=_report)
    except SourceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(status)


def _report(line: str) -> None:
    typer.echo(line, err=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)


def _stop_when_orphaned(parent: int) -> None:
    """A child whose supervisor died (even by SIGKILL) stops itself, as if told to."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="trellis-serve-orphan-watch", daemon=True).start()


def _child(supervisor: str, target: str, session_key: str, trellis_url: str) -> None:
    """A process started by :func:`supervise` (``session_key`` is a seed file or env:VAR,
    never the seed itself)."""
    _stop_when_orphaned(int(supervisor))  # its pid, in case it died while this one started
    run_one(target, session_key, trellis_url)


#: what a child runs; ``-c`` keeps the current directory importable, as ``python -m`` does
_CHILD = "import sys; from trellis.cli.serve import _child; _child(*sys.argv[1:5])"
