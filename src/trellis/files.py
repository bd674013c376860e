"""Writing secrets to disk: created 0600 from the first byte, never widened (no chmod)."""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["write_secret_file"]


def write_secret_file(
    path: str | os.PathLike[str], data: str | bytes, *, overwrite: bool = False, mode: int = 0o600
) -> Path:
    """Write ``data`` to a new file created with mode 0600 (or ``mode``), whatever the umask.

    With ``overwrite`` the data goes to a fresh 0600 temporary file that then replaces
    ``path`` atomically; otherwise an existing file is refused with ``FileExistsError``.
    The error never contains the data.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    destination = target
    if overwrite:
        destination = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}.tmp")
    try:
        fd = os.open(destination, flags, mode)
    except FileExistsError:
        raise FileExistsError(f"{target} already exists; refusing to overwrite a secret") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    if overwrite:
        os.replace(destination, target)
    return target
