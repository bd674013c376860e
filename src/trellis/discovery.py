"""Where the Trellis runtime is, when the caller did not say.

A participant needs the runtime's HTTP URL to bootstrap.  Spelling it out every time is
friction on a developer machine, where ``trellis dev`` already wrote it into the bundle's
``runtime.json`` (public settings only: URLs, ports, public keys and file names, no
secrets).  The order is the explicit argument, then ``TRELLIS_URL``, then the bundle in
``TRELLIS_HOME`` (default ``./.trellis``, as the ``trellis`` command uses).
"""

from __future__ import annotations

import os
from pathlib import Path

from trellis.runtime.bundle import Bundle, BundleError

__all__ = ["TRELLIS_HOME_ENV", "TRELLIS_URL_ENV", "TrellisUrlNotFound", "resolve_trellis_url"]

TRELLIS_URL_ENV = "TRELLIS_URL"
TRELLIS_HOME_ENV = "TRELLIS_HOME"
DEFAULT_HOME = ".trellis"


class TrellisUrlNotFound(LookupError):
    """No runtime URL was given and none could be found; the message says where it looked."""


def resolve_trellis_url(explicit: str | None = None, *, home: Path | None = None) -> str:
    """The runtime URL: ``explicit``, else ``$TRELLIS_URL``, else the bundle's runtime.json
    (in ``home`` when given, e.g. the CLI's ``--home``, else ``$TRELLIS_HOME``)."""
    if explicit:
        return explicit
    from_env = os.environ.get(TRELLIS_URL_ENV, "").strip()
    if from_env:
        return from_env
    home = home or Path(os.environ.get(TRELLIS_HOME_ENV) or DEFAULT_HOME)
    try:
        return Bundle.load(home).config.http.url
    except BundleError as exc:
        raise TrellisUrlNotFound(
            f"no Trellis runtime URL: pass trellis_url=..., set {TRELLIS_URL_ENV}, or point "
            f"{TRELLIS_HOME_ENV} at a bundle made by 'trellis dev' ({exc})"
        ) from None
