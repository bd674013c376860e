"""Typed SDKs of the Trellis-owned contracts, generated from ``trellis.contracts.builtin``.

``trellis.sdk.auth`` (``trellis.auth@v1``), ``trellis.sdk.core``, ``trellis.sdk.health``,
``trellis.sdk.jobs`` and ``trellis.sdk.state``: models, declared errors and typed specs, as
``trellis contract generate`` writes them for any contract.  Regenerate after changing a
builtin contract with ``python -m trellis.sdk`` (a test fails while they are stale).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SDKS", "regenerate"]

#: package name → builtin contract id
SDKS = {
    "auth": "trellis.auth@v1",
    "core": "trellis.core@v1",
    "health": "trellis.health@v1",
    "jobs": "trellis.jobs@v1",
    "state": "trellis.state@v1",
}


def regenerate(root: Path | None = None) -> dict[str, dict[str, str]]:
    """The generated files of every SDK (package → file → text), written under ``root``."""
    from trellis.contracts.builtin import BUILTIN_CONTRACTS
    from trellis.contracts.codegen import generate, write_sdk

    out = {}
    for package, contract_id in SDKS.items():
        sdk = generate(BUILTIN_CONTRACTS[contract_id].manifest)
        out[package] = sdk.files
        if root is not None:
            write_sdk(sdk, root / package)
    return out
