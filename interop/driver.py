"""Drive a local Trellis deployment with upstream's TypeScript client and service.

Run it by hand (prints every step, exits 1 if one failed)::

    TRELLIS_UPSTREAM=/path/to/upstream TRELLIS_DENO=/path/to/deno \\
        .venv/bin/python -m interop.driver [client|service|all]

``tests/interop/test_upstream_ts.py`` runs the same scenarios under pytest.  Two scenarios:

- ``client``: our Python inventory service serves upstream's unmodified ``TrellisClient``
  (connect, an RPC, a declared error, a validation error, an insufficient-permissions
  error, an event), see ``upstream_client.ts``;
- ``service``: a service built with upstream's service package, installed with
  ``trellis service install``, bootstraps and serves ``trellis call`` from Python, including
  a handler that reads the caller Trellis resolved through ``Auth.Requests.Validate``, see
  ``upstream_service.ts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interop.upstream import deno_binary, deno_command, upstream_root, write_import_map
from trellis.auth import SessionKey
from trellis.testing import LocalDeployment, local_deployment

#: how long one TS step may take before the scenario gives up on it (Deno's first run
#: downloads upstream's npm dependencies into its cache, which takes longer)
STEP_TIMEOUT = 120.0
#: how long a running TS service may stay silent before a milestone it should report is
#: given up on (upstream's service stalls rather than exits when its job workers cannot start)
MILESTONE_TIMEOUT = 30.0
#: steps recorded but not required: ours does not answer a request without proof headers,
#: by decision (docs/protocol.md); upstream's does
INFORMATIONAL = frozenset({"missing proof"})
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TRELLIS = str(Path(sys.executable).with_name("trellis"))


@dataclass
class Step:
    """One observed step: what upstream's code (or ours) reported."""

    step: str
    ok: bool
    detail: Any = None
    #: False for what is only recorded (where we differ from upstream on purpose)
    required: bool = True


@dataclass
class Upstream:
    """Where upstream's checkout and Deno are, and the Deno config derived for them."""

    root: Path
    deno: str
    imports: Path

    @classmethod
    def locate(cls, workdir: Path) -> Upstream | None:
        root, deno = upstream_root(), deno_binary()
        if root is None or deno is None:
            return None
        return cls(root, deno, write_import_map(root, workdir / "deno"))

    def command(self, entry: str, *args: str) -> list[str]:
        return deno_command(self.deno, self.imports, entry, *args)


def missing_tools() -> str | None:
    """Why the interop scenarios cannot run here, or None when they can."""
    if upstream_root() is None:
        return (
            "TRELLIS_UPSTREAM must name a checkout of Qlever-LLC/trellis (holding "
            "js/packages/trellis); see docs/interop.md"
        )
    if deno_binary() is None:
        return "no Deno: set TRELLIS_DENO to the binary (npm package 'deno') or put deno on PATH"
    return None


@dataclass
class Scenario:
    """The steps of one scenario, and the TS process's stderr for the report."""

    steps: list[Step] = field(default_factory=list)
    stderr: str = ""

    def failed(self) -> list[Step]:
        """The required steps that did not pass."""
        return [s for s in self.steps if s.required and not s.ok]


async def _run_json(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a command that prints one JSON object and exits 0."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[-2:]} exited {proc.returncode}: {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def _trellis(dep: LocalDeployment, *args: str) -> tuple[int, Any]:
    """Run our ``trellis`` command against the deployment's bundle (``--json`` output)."""
    env = {**os.environ, "TRELLIS_HOME": str(dep.bundle.directory)}
    proc = await asyncio.create_subprocess_exec(
        TRELLIS,
        *args,
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT)
    text = out.decode().strip() or err.decode().strip()
    try:
        return proc.returncode or 0, json.loads(text)
    except json.JSONDecodeError:
        return proc.returncode or 0, text


async def _trellis_plain(dep: LocalDeployment, *args: str) -> tuple[int, str]:
    """Run our ``trellis`` command against the deployment's bundle (plain output)."""
    env = {**os.environ, "TRELLIS_HOME": str(dep.bundle.directory)}
    proc = await asyncio.create_subprocess_exec(
        TRELLIS, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT)
    return proc.returncode or 0, out.decode()


def _json_line(line: bytes, key: str) -> dict[str, Any] | None:
    """A JSON object line of ours (it has ``key``), or None for anything else printed."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and key in data else None


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", **extra}


@contextlib.asynccontextmanager
async def _process(
    cmd: list[str], env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A TS process with pipes, killed at the end if it is still running."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        env=env,
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        await _stop(proc)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Kill ``proc`` unless it has ended already, and reap it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await proc.wait()


async def _stderr_of(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    with contextlib.suppress(asyncio.TimeoutError):
        data = await asyncio.wait_for(proc.stderr.read(), 5)
        return data.decode()[-4000:]
    return ""


# ---------------------------------------------------------------- upstream client → our service


async def _serve_inventory(dep: LocalDeployment, workdir: Path) -> Path:
    """Install and start our Python inventory service; the path of its manifest file."""
    from examples.inventory.contract import inventory
    from examples.inventory.service import mount

    manifest_file = workdir / "inventory.json"
    manifest_file.write_text(json.dumps(inventory.manifest))
    service = await dep.connect_service(inventory, await dep.install(inventory))
    mount(service)
    await service.start()
    return manifest_file


async def client_scenario(dep: LocalDeployment, up: Upstream, workdir: Path) -> Scenario:
    """Upstream's TrellisClient against our Python inventory service."""
    result = Scenario()
    manifest_file = await _serve_inventory(dep, workdir)
    env = _env(INVENTORY_MANIFEST=str(manifest_file))

    agent = await _run_json(up.command("upstream_client.ts", "manifest"), env)
    ours = _our_digest(agent["manifest"])
    result.steps.append(
        Step(
            "agent digest agrees",
            ours == agent["digest"],
            {"upstream": agent["digest"], "ours": ours},
        )
    )
    agent_file = workdir / "interop-agent.json"
    agent_file.write_text(json.dumps(agent["manifest"]))

    seed_file = workdir / "agent.seed"
    key = SessionKey.generate()
    seed_file.write_text(key.seed + "\n")
    code, out = await _trellis(
        dep,
        "user", "add", "interop-agent", "-c", str(agent_file), "-k", key.public_key,
        "-g", "inventory::items.read", "-g", "inventory::items.write",
    )  # fmt: skip
    result.steps.append(Step("trellis user add (agent manifest)", code == 0, out))
    if code != 0:
        return result

    async with _process(
        up.command("upstream_client.ts", "run"),
        _env(
            INVENTORY_MANIFEST=str(manifest_file),
            TRELLIS_URL=dep.runtime_url,
            INTEROP_SEED_FILE=str(seed_file),
        ),
    ) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), STEP_TIMEOUT)
            if not line:
                break
            data = _json_line(line, "step")
            if data is None:  # upstream's own log lines share stdout
                continue
            step = Step(data["step"], bool(data["ok"]), data.get("detail"))
            step.required = step.step not in INFORMATIONAL
            if step.step == "await revoke":
                code, out = await _trellis(
                    dep, "user", "revoke", "interop-agent", "inventory::items.write"
                )
                result.steps.append(Step("trellis user revoke items.write", code == 0, out))
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
                continue
            result.steps.append(step)
        await asyncio.wait_for(proc.wait(), STEP_TIMEOUT)
        result.stderr = await _stderr_of(proc)
    return result


def _our_digest(manifest: dict[str, Any]) -> str:
    """Our digest of a manifest upstream's builder made (``refused: ...`` when our parser
    refuses it)."""
    from trellis.contracts.builtin import BUILTIN_CONTRACTS
    from trellis.contracts.manifest import contract_digest
    from trellis.contracts.model import Manifest
    from trellis.contracts.validate import ContractError

    known = {c.id: c.model for c in BUILTIN_CONTRACTS.values()}
    try:
        Manifest.parse(manifest, known)
    except ContractError as exc:
        return f"refused: {exc}"
    return contract_digest(manifest)


# ---------------------------------------------------------------- our client → upstream service


async def service_scenario(dep: LocalDeployment, up: Upstream, workdir: Path) -> Scenario:
    """A service on upstream's runtime, installed with ``trellis service install``, called
    from Python with ``trellis call``."""
    result = Scenario()
    echo = await _run_json(up.command("upstream_service.ts", "manifest"), _env())
    ours = _our_digest(echo["manifest"])
    result.steps.append(
        Step(
            "service digest agrees",
            ours == echo["digest"],
            {"upstream": echo["digest"], "ours": ours},
        )
    )
    echo_file = workdir / "interop-echo.json"
    echo_file.write_text(json.dumps(echo["manifest"]))

    service_key = SessionKey.generate()
    service_seed = workdir / "echo.seed"
    service_seed.write_text(service_key.seed + "\n")
    code, out = await _trellis(
        dep,
        "service",
        "install",
        str(echo_file),
        "-n",
        "interop-echo",
        "-k",
        service_key.public_key,
    )
    result.steps.append(Step("trellis service install", code == 0, out))
    if code != 0:
        return result

    caller = {
        "format": "trellis.contract.v1",
        "id": "interop-caller@v1",
        "displayName": "Interop caller",
        "description": "Our Python client calling a service on upstream's runtime.",
        "kind": "agent",
        "uses": {
            "required": {
                "echo": {
                    "contract": "interop-echo@v1",
                    "rpc": {"call": ["Echo.Say", "Echo.Last", "Echo.WhoAmI"]},
                }
            }
        },
    }
    caller_file = workdir / "interop-caller.json"
    caller_file.write_text(json.dumps(caller))
    caller_key = SessionKey.generate()
    caller_seed = workdir / "caller.seed"
    caller_seed.write_text(caller_key.seed + "\n")
    code, out = await _trellis(
        dep, "user", "add", "interop-caller", "-c", str(caller_file), "-k", caller_key.public_key,
        "-g", "interop-echo::echo.call",
    )  # fmt: skip
    result.steps.append(Step("trellis user add (caller)", code == 0, out))

    async with _process(
        up.command("upstream_service.ts", "serve"),
        _env(TRELLIS_URL=dep.runtime_url, INTEROP_SEED_FILE=str(service_seed)),
    ) as proc:
        assert proc.stdout is not None
        ready: dict[str, Any] = {"ready": False, "error": "exited without a word"}
        while line := await asyncio.wait_for(proc.stdout.readline(), STEP_TIMEOUT):
            said = _json_line(line, "ready")
            if said is not None:
                ready = said
                break
        result.steps.append(Step("upstream service bootstraps", bool(ready.get("ready")), ready))
        if ready.get("ready"):

            async def call(rpc: str, body: str) -> tuple[int, Any]:
                session = ["-s", str(caller_seed), "-c", str(caller_file), "--timeout", "5"]
                return await _trellis(dep, "call", rpc, body, *session)

            code, out = await call("Echo.Say", '{"message": "hello"}')
            result.steps.append(
                Step("rpc Echo.Say", code == 0 and out == {"message": "hello"}, out)
            )
            code, out = await call("Echo.Last", "{}")
            result.steps.append(
                Step("kv via binding", code == 0 and out == {"message": "hello"}, out)
            )
            code, out = await call("Echo.Say", '{"message": "forbidden"}')
            declared = isinstance(out, dict) and out.get("type") == "Refused"
            result.steps.append(Step("declared error Refused", code == 1 and declared, out))
            code, out = await call("Echo.WhoAmI", "{}")
            who = out if isinstance(out, dict) else {}
            result.steps.append(
                Step(
                    "caller via Auth.Requests.Validate",
                    code == 0 and who.get("type") == "user" and who.get("id") == "interop-caller",
                    out,
                )
            )
            code, out = await call("Echo.Say", '{"message": ""}')
            invalid = isinstance(out, dict) and out.get("type") == "ValidationError"
            result.steps.append(Step("validation error", code == 1 and invalid, out))
            result.steps.append(await _missing_proof(dep, caller_key, caller_file))
            result.steps.append(await _generated_sdk_call(dep, echo_file, workdir))
            code, out = await _trellis(
                dep, "user", "revoke", "interop-caller", "interop-echo::echo.call"
            )
            result.steps.append(Step("trellis user revoke echo.call", code == 0, out))
            code, out = await call("Echo.Say", '{"message": "hello"}')
            denied = isinstance(out, dict) and out.get("reason") == "insufficient_permissions"
            result.steps.append(Step("insufficient permissions", code == 1 and denied, out))
        await _stop(proc)
        rest = await asyncio.wait_for(proc.stdout.read(), 5)  # upstream's log lines
        result.stderr = rest.decode()[-4000:] + await _stderr_of(proc)
    return result


async def _missing_proof(dep: LocalDeployment, key: SessionKey, contract_file: Path) -> Step:
    """A request with no proof headers to upstream's service, on a bare admitted connection:
    what upstream answers (recorded: ours differs on purpose, see docs/protocol.md)."""
    from trellis.contracts.manifest import contract_digest

    digest = contract_digest(json.loads(await asyncio.to_thread(contract_file.read_text)))
    nc = await dep.raw_participant(key, digest)
    try:
        msg = await nc.request("rpc.v1.Echo.Say", b'{"message": "x"}', timeout=5)
    except Exception as exc:  # what happened is the observation
        return Step("missing proof", False, f"{type(exc).__name__}: {exc}", required=False)
    finally:
        await nc.close()
    body = json.loads(msg.data) if msg.data else None
    status = (msg.headers or {}).get("status")
    return Step(
        "missing proof", status == "error", {"status": status, "body": body}, required=False
    )


async def _python(*args: str, cwd: Path) -> tuple[int, str]:
    """Run this interpreter with ``args`` in ``cwd``; its exit code and output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT)
    return proc.returncode or 0, out.decode()


async def _generated_sdk_call(dep: LocalDeployment, echo_file: Path, workdir: Path) -> Step:
    """``trellis contract generate`` on the manifest upstream's builder made; the generated
    module and a typed caller pass ``mypy --strict``, and the caller calls the TS service."""
    name = "generated SDK calls service"
    code, out = await _trellis_plain(dep, "contract", "generate", "--help")
    if code != 0:
        return Step(name, False, "no 'trellis contract generate' on this branch", required=False)
    here = workdir / "typed"
    here.mkdir()
    code, out = await _trellis_plain(
        dep, "contract", "generate", str(echo_file), "-o", str(here / "echo_sdk")
    )
    if code != 0:
        return Step(name, False, f"generate: {out}")
    (here / "typed_caller.py").write_bytes((HERE / "typed_caller.py").read_bytes())
    config = str(REPO / "pyproject.toml")
    checks = [
        "--strict",
        "--no-incremental",
        "--config-file",
        config,
        "echo_sdk",
        "typed_caller.py",
    ]
    code, out = await _python("-m", "mypy", *checks, cwd=here)
    if code != 0:
        return Step(name, False, f"mypy --strict: {out[-1500:]}")
    code, out = await _python("typed_caller.py", "manifest", cwd=here)
    if code != 0:
        return Step(name, False, f"caller manifest: {out[-1500:]}")
    (here / "caller.json").write_text(out)
    key = SessionKey.generate()
    (here / "caller.seed").write_text(key.seed + "\n")
    code, added = await _trellis(
        dep, "user", "add", "interop-typed", "-c", str(here / "caller.json"), "-k", key.public_key,
        "-g", "interop-echo::echo.call",
    )  # fmt: skip
    if code != 0:
        return Step(name, False, f"user add: {added}")
    code, out = await _python("typed_caller.py", "run", dep.runtime_url, "caller.seed", cwd=here)
    said = _json_line(out.strip().splitlines()[-1].encode(), "said") if out.strip() else None
    ok = code == 0 and said == {"said": "typed", "refused_word": "forbidden"}
    return Step(name, ok, said or out[-1500:])


# ---------------------------------------------------------------- upstream's jobs and consumers


async def _start_upstream_part(
    dep: LocalDeployment, up: Upstream, workdir: Path, part: str, result: Scenario
) -> dict[str, str] | None:
    """Emit, check and install the ``part`` service of upstream_worker.ts; the environment
    to serve it with, or None when a step failed."""
    env = _env(INVENTORY_MANIFEST=str(workdir / "inventory.json"))
    made = await _run_json(up.command("upstream_worker.ts", part, "manifest"), env)
    ours = _our_digest(made["manifest"])
    agrees = ours == made["digest"]
    result.steps.append(
        Step(f"{part} digest agrees", agrees, {"upstream": made["digest"], "ours": ours})
    )
    manifest = workdir / f"interop-{part}.json"
    manifest.write_text(json.dumps(made["manifest"]))
    key = SessionKey.generate()
    seed = workdir / f"{part}.seed"
    seed.write_text(key.seed + "\n")
    name = f"interop-{part}"
    code, out = await _trellis(
        dep, "service", "install", str(manifest), "-n", name, "-k", key.public_key
    )
    result.steps.append(Step(f"trellis service install ({part})", code == 0, out))
    if code != 0:
        return None
    return {**env, "TRELLIS_URL": dep.runtime_url, "INTEROP_SEED_FILE": str(seed)}


async def consumer_scenario(dep: LocalDeployment, up: Upstream, workdir: Path) -> Scenario:
    """Upstream's service runtime consumes our inventory's event through a durable
    eventConsumers group: that binding and its permissions, used by upstream's code."""
    from examples.inventory.contract import CREATE_ITEM, NewItem, inventory_cli

    result = Scenario()
    await _serve_inventory(dep, workdir)
    env = await _start_upstream_part(dep, up, workdir, "consumer", result)
    if env is None:
        return result
    async with _process(up.command("upstream_worker.ts", "consumer", "serve"), env) as proc:
        lines = _Lines(proc)
        ready = await lines.wait_for(lambda d: "ready" in d)
        result.steps.append(Step("upstream consumer bootstraps", bool(ready.get("ready")), ready))
        if ready.get("ready"):
            creator = await dep.user(
                "creator", inventory_cli, ["inventory::items.read", "inventory::items.write"]
            )
            client = await dep.connect_client(inventory_cli, creator)
            item = NewItem(id="interop-1", name="Dune", category="books", quantity=1)
            created = await client.call(CREATE_ITEM, item)
            result.steps.append(Step("our service publishes Items.Created", created.is_ok(), None))
            consumed = await lines.wait_for(lambda d: d.get("milestone") == "event consumed")
            result.steps.append(
                Step("durable consumer gets the event", consumed.get("itemId") == item.id, consumed)
            )
        await _stop(proc)
        result.stderr = "\n".join(lines.other[-40:]) + await _stderr_of(proc)
    return result


async def jobs_scenario(dep: LocalDeployment, up: Upstream, workdir: Path) -> Scenario:
    """Upstream's service runtime runs a job of its own queue: the jobs binding and the
    streams and consumers behind it, used by upstream's code."""
    result = Scenario()
    from examples.inventory.contract import inventory

    (workdir / "inventory.json").write_text(json.dumps(inventory.manifest))
    env = await _start_upstream_part(dep, up, workdir, "jobs", result)
    if env is None:
        return result
    async with _process(up.command("upstream_worker.ts", "jobs", "serve"), env) as proc:
        lines = _Lines(proc)
        ready = await lines.wait_for(lambda d: "ready" in d)
        result.steps.append(
            Step("upstream jobs service bootstraps", bool(ready.get("ready")), ready)
        )
        if ready.get("ready"):
            done = await lines.wait_for(lambda d: d.get("milestone") == "job done")
            result.steps.append(Step("job runs", done.get("itemId") == "interop-job-1", done))
        await _stop(proc)
        result.stderr = "\n".join(lines.other[-40:]) + await _stderr_of(proc)
    return result


class _Lines:
    """The JSON lines of a TS process's stdout, read as the scenario waits for them."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        self._stdout = proc.stdout
        self.other: list[str] = []  # upstream's own log lines, for the report
        self._gave_up: dict[str, Any] | None = None

    async def wait_for(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first line of ours that ``wanted`` accepts, or one saying a step failed;
        ``{"gave_up": ...}`` when the process ends or says nothing more for MILESTONE_TIMEOUT,
        and at once on every later call (a stalled service does not stall each step)."""
        if self._gave_up is not None:
            return self._gave_up
        try:
            while line := await asyncio.wait_for(self._stdout.readline(), MILESTONE_TIMEOUT):
                data = _json_line(line, "ready") or _json_line(line, "milestone")
                if data is not None and (wanted(data) or "failed" in data.get("milestone", "")):
                    return data
                self.other.append(line.decode().rstrip())
            self._gave_up = {"gave_up": "the process ended first"}
        except TimeoutError:
            self._gave_up = {"gave_up": f"nothing more within {MILESTONE_TIMEOUT}s"}
        return self._gave_up


# ---------------------------------------------------------------- command line


SCENARIOS = {
    "client": client_scenario,
    "service": service_scenario,
    "consumer": consumer_scenario,
    "jobs": jobs_scenario,
}


async def run(which: str) -> dict[str, Scenario]:
    reason = missing_tools()
    if reason:
        raise SystemExit(reason)
    results: dict[str, Scenario] = {}
    with tempfile.TemporaryDirectory(prefix="trellis-interop-") as tmp:
        workdir = Path(tmp)
        up = Upstream.locate(workdir)
        assert up is not None
        for name, scenario in SCENARIOS.items():
            if which not in (name, "all"):
                continue
            here = workdir / name
            here.mkdir()
            async with local_deployment(here / "trellis") as dep:  # a fresh one each
                results[name] = await scenario(dep, up, here)
    return results


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    results = asyncio.run(run(which))
    failed = False
    for name, scenario in results.items():
        print(f"== {name}")
        for step in scenario.steps:
            mark = "ok  " if step.ok else "FAIL" if step.required else "info"
            print(f"  {mark} {step.step}: {json.dumps(step.detail)[:600]}")
            failed |= step.required and not step.ok
        if scenario.failed() and scenario.stderr:
            print("  -- TS stderr (tail):\n" + scenario.stderr[-1500:])
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
