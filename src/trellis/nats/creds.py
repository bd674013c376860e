"""NATS ``.creds`` files: a user JWT and the user's nkey seed, in the text nsc writes.

The ``nkeys`` package does not read or write them. The seed is a secret: files are written
0600 and errors never echo it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from trellis.files import write_secret_file
from trellis.nats.jwt import JwtError
from trellis.nats.nkey import KeyRole, NKeyError, decode_seed

__all__ = ["Creds", "format_creds", "parse_creds", "read_creds", "write_creds"]


@dataclass(frozen=True)
class Creds:
    """A parsed ``.creds`` file: the user JWT and the user's nkey seed (secret)."""

    jwt: str
    seed: str = field(repr=False)


def _block(title: str) -> re.Pattern[str]:
    return re.compile(rf"-{{3,}}BEGIN {title}-{{3,}}\s*\n\s*(\S+)\s*\n\s*-{{3,}}END {title}-{{3,}}")


_CREDS_JWT = _block("NATS USER JWT")
_CREDS_SEED = _block("USER NKEY SEED")


def format_creds(user_jwt: str, seed: str) -> str:
    """The standard ``.creds`` text (as nsc writes it) for a user JWT and seed."""
    if not user_jwt or any(c.isspace() for c in user_jwt):
        raise JwtError("user JWT must be a single token")
    decode_seed(seed, KeyRole.USER)
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n"
        "\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n"
        "\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed}\n"
        "------END USER NKEY SEED------\n"
        "\n"
        "*************************************************************\n"
    )


def parse_creds(text: str) -> Creds:
    """Parse ``.creds`` text. Raises :class:`JwtError` (never echoing the seed)."""
    jwt_match = _CREDS_JWT.search(text)
    seed_match = _CREDS_SEED.search(text)
    if jwt_match is None:
        raise JwtError("creds have no NATS USER JWT block")
    if seed_match is None:
        raise JwtError("creds have no USER NKEY SEED block")
    seed = seed_match.group(1)
    try:
        decode_seed(seed, KeyRole.USER)
    except NKeyError as exc:
        raise JwtError(f"creds seed is invalid: {exc}") from exc
    return Creds(jwt=jwt_match.group(1), seed=seed)


def read_creds(path: str | os.PathLike[str]) -> Creds:
    return parse_creds(Path(path).read_text(encoding="utf-8"))


def write_creds(
    path: str | os.PathLike[str], user_jwt: str, seed: str, *, overwrite: bool = False
) -> Path:
    """Write a ``.creds`` file with mode 0600."""
    return write_secret_file(path, format_creds(user_jwt, seed), overwrite=overwrite)
