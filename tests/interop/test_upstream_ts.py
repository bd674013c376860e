"""Upstream's real TypeScript client and service against our deployment (issue 10).

Optional: runs only when ``TRELLIS_UPSTREAM`` names a checkout of ``Qlever-LLC/trellis`` and
Deno is at hand (``TRELLIS_DENO``, or ``deno`` on PATH); otherwise every test here skips and
says why.  docs/interop.md says how to bring both and what was seen.

The scenarios (``interop/driver.py``) run once for the module, each against a fresh local
deployment; every check below is one step of them, so a report shows which of upstream's
expectations hold and which do not.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from interop.driver import Scenario, missing_tools, run

#: upstream's TrellisClient (unmodified) against our Python inventory service
CLIENT_CHECKS = [
    "agent digest agrees",
    "trellis user add (agent manifest)",
    "connect",
    "listen",
    "rpc Items.Create",
    "rpc Items.Get",
    "declared error",
    "validation error",
    "event Items.Created",
    "insufficient permissions",
]

#: a service on upstream's runtime, installed with `trellis service install`, called from Python
SERVICE_CHECKS = [
    "service digest agrees",
    "trellis service install",
    "trellis user add (caller)",
    "upstream service bootstraps",
    "rpc Echo.Say",
    "kv via binding",
    "declared error Refused",
    "caller via Auth.Requests.Validate",
    "validation error",
    "generated SDK calls service",
    "insufficient permissions",
]


#: upstream's service runtime consuming our event through a durable group
CONSUMER_CHECKS = [
    "consumer digest agrees",
    "trellis service install (consumer)",
    "upstream consumer bootstraps",
    "our service publishes Items.Created",
    "durable consumer gets the event",
]

#: upstream's service runtime running a job of its own queue
JOBS_CHECKS = [
    "jobs digest agrees",
    "trellis service install (jobs)",
    "upstream jobs service bootstraps",
    "job runs",
]


@pytest.fixture(scope="module")
def scenarios() -> dict[str, Scenario]:
    reason = missing_tools()
    if reason is not None:
        pytest.skip(f"upstream interop not configured: {reason}")
    return asyncio.run(run("all"))


def _check(scenario: Scenario, name: str) -> None:
    steps = {step.step: step for step in scenario.steps}
    if name not in steps:
        reached = ", ".join(f"{s.step}={'ok' if s.ok else 'FAIL'}" for s in scenario.steps)
        pytest.fail(f"step {name!r} never ran; steps: {reached}\n{scenario.stderr[-1500:]}")
    step = steps[name]
    if not step.required:
        pytest.skip(f"{name}: {step.detail}")
    assert step.ok, f"{name}: {json.dumps(step.detail)[:1500]}"


@pytest.mark.parametrize("name", CLIENT_CHECKS)
def test_upstream_client(scenarios: dict[str, Scenario], name: str) -> None:
    _check(scenarios["client"], name)


@pytest.mark.parametrize("name", SERVICE_CHECKS)
def test_upstream_service(scenarios: dict[str, Scenario], name: str) -> None:
    _check(scenarios["service"], name)


@pytest.mark.parametrize("name", CONSUMER_CHECKS)
def test_upstream_durable_consumer(scenarios: dict[str, Scenario], name: str) -> None:
    _check(scenarios["consumer"], name)


@pytest.mark.parametrize("name", JOBS_CHECKS)
def test_upstream_jobs(scenarios: dict[str, Scenario], name: str) -> None:
    _check(scenarios["jobs"], name)
