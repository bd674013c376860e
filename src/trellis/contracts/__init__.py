"""Contracts: authoring, the typed manifest, normalization, digests, validation and the
Trellis-owned contracts."""

from trellis.contracts.authoring import (
    Capability,
    Contract,
    Use,
    consumer,
    event,
    job,
    kv,
    rpc,
    store,
    stream,
)
from trellis.contracts.builtin import (
    BUILTIN_CONTRACTS,
    trellis_auth,
    trellis_core,
    trellis_health,
    trellis_jobs,
    trellis_state,
)
from trellis.contracts.manifest import (
    CONTRACT_FORMAT,
    contract_digest,
    normalize_manifest,
    project_manifest,
    subject_wildcard,
)
from trellis.contracts.model import Manifest
from trellis.contracts.validate import ContractError, Problem, check_manifest

__all__ = [
    "BUILTIN_CONTRACTS",
    "CONTRACT_FORMAT",
    "Capability",
    "Contract",
    "ContractError",
    "Manifest",
    "Problem",
    "Use",
    "check_manifest",
    "consumer",
    "contract_digest",
    "event",
    "job",
    "kv",
    "normalize_manifest",
    "project_manifest",
    "rpc",
    "store",
    "stream",
    "subject_wildcard",
    "trellis_auth",
    "trellis_core",
    "trellis_health",
    "trellis_jobs",
    "trellis_state",
]
