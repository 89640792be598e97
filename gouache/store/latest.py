"""``latest.txt``: which checkpoint of a run folder is its newest.

The file holds one line, ``checkpoints/step-NNNNNNNN``: the folder of the run's last complete
checkpoint (``checkpoint.save_run_state`` writes it). Nothing else is followed: no absolute
path, no ``..``, no other name, so that a run folder only ever leads inside itself.
"""
from __future__ import annotations

import re
from pathlib import Path

from gouache.errors import GouacheError
from gouache.store.reading import KB, MissingFile, read_text

__all__ = ["LATEST_FILE", "read_latest"]

LATEST_FILE = "latest.txt"
_CHECKPOINT = re.compile(r"checkpoints/step-[0-9]{8,12}")  # as save_run_state names them


def read_latest(run: Path | str) -> Path | None:
    """The checkpoint folder that ``run/latest.txt`` names; None when the run has no latest.txt."""
    path = Path(run) / LATEST_FILE
    try:
        name = read_text(path, what="the run's", limit=KB).strip()
    except MissingFile:
        return None
    if not _CHECKPOINT.fullmatch(name):
        raise GouacheError(f"{path} must name a checkpoint inside the run folder, like "
                           f"checkpoints/step-00001000; it holds {name[:80]!r}")
    folder = Path(run) / name
    if not folder.is_dir():
        raise GouacheError(f"{path} names {name}, which is not a folder of {run}")
    return folder
