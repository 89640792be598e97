"""Where a command's output goes, checked before the work starts: an hour of training or a
thousand pictures must not end in "cannot write" (nor overwrite a device such as /dev/null);
JSON written atomically; a file's checksum.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

from gouache.errors import GouacheError

__all__ = ["check_output_file", "check_output_folder", "write_json", "json_safe", "file_sha256"]


def _writable_parent(path: Path, what: str) -> None:
    """The nearest existing ancestor of ``path`` is a folder we may write in."""
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise GouacheError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GouacheError(f"{what} {path}: no permission to write in {parent}")


def check_output_file(path: Path | str, *, what: str = "--out") -> Path:
    """A file the command will write (or replace): not a folder, not a device, in a writable place."""
    path = Path(path)
    if path.is_dir():
        raise GouacheError(f"{what} {path} is a folder; name a file, e.g. {path / 'out.png'}")
    if path.exists() and not path.is_file():
        raise GouacheError(f"{what} {path} is not a regular file")
    _writable_parent(path, what)
    return path


def check_output_folder(path: Path | str, *, what: str = "--out", empty: bool = False) -> Path:
    """A folder the command will write into (made if missing); ``empty``: it must hold nothing yet."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise GouacheError(f"{what} {path} is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise GouacheError(f"{what} {path}: no permission to write in it")
        if empty and any(path.iterdir()):
            raise GouacheError(f"{what} {path} is not empty; name a new or empty folder")
        return path
    _writable_parent(path, what)
    return path


def write_json(obj: dict, path: Path) -> None:
    """Write JSON atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def json_safe(x):
    """``x`` with every NaN or infinite float replaced by None, recursively (JSON has neither)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
