"""The one exception type that the CLI turns into a one-line message, and the one line a full
disk becomes."""
from __future__ import annotations

import errno
from pathlib import Path

DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # no space, file too large, over quota


class GouacheError(Exception):
    """A user-facing error: bad input, a missing file, an incompatible checkpoint."""


class DiskFull(GouacheError):
    """A write that failed for want of space."""


def raise_if_disk_full(e: OSError, path: Path | str) -> None:
    """A write of ``path`` that failed for want of space is one line (``DiskFull``); any other
    failure is left to the caller."""
    if e.errno in DISK_FULL:
        raise DiskFull(f"disk full while writing {path}") from None
