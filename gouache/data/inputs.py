"""Checks on the files a data set hands gouache, before they are read: each problem is one
GouacheError naming the file.

    regular_file(path, what="caption")      a regular file (a FIFO would block the read forever)
    inside(path, root, what="caption")      its real path (symlinks followed) in the data folder
    read_bounded(path, limit, what=...)     its bytes, refused past ``limit``
    parse_json(text, where=...)             JSON, with 5000-digit numbers and deep nesting refused

Pictures have their own checks, in ``gouache.images.read_picture``.
"""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from gouache.errors import GouacheError

__all__ = ["regular_file", "inside", "read_bounded", "parse_json", "MAX_JSON_DEPTH"]

MAX_JSON_DEPTH = 64  # arrays and objects within each other in one JSON value


def regular_file(path: Path, *, what: str = "file") -> os.stat_result:
    """``path``'s stat (symlinks followed) when it is a regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise GouacheError(f"{path}: no such {what}") from None
    except OSError as e:
        raise GouacheError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise GouacheError(f"{path}: {what} is {kind}")
    return info


def inside(path: Path, root: Path, *, what: str = "file") -> Path:
    """``path`` when its real path lies in ``root``: a data folder never reads from outside itself."""
    real = Path(path).resolve()
    if not real.is_relative_to(Path(root).resolve()):
        raise GouacheError(f"{path}: {what} leads outside the data folder {root} (to {real})")
    return real


def read_bounded(path: Path, limit: int, *, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, refused when there are more than ``limit``."""
    size = regular_file(path, what=what).st_size
    if size > limit:
        raise GouacheError(f"{path}: {what} of {size} bytes, over gouache's limit of {limit}")
    with open(path, "rb") as f:
        data = f.read(limit + 1)  # it may have grown since
    if len(data) > limit:
        raise GouacheError(f"{path}: {what} of more than {limit} bytes, over gouache's limit")
    return data


def parse_json(text: str | bytes, *, where: str) -> Any:
    """``json.loads``, each refusal one GouacheError naming ``where``: invalid JSON, an integer
    of thousands of digits, nesting deeper than ``MAX_JSON_DEPTH``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise GouacheError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise GouacheError(f"{where}: a number of more than {sys.get_int_max_str_digits()} digits") from None
    except RecursionError:
        raise GouacheError(f"{where}: JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise GouacheError(f"{where}: JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    return value


def _depth(value: Any) -> int:
    """How many arrays and objects lie within each other in ``value`` (0 for a number or text)."""
    depth, level = 0, [value]
    while True:
        containers = [x for x in level if isinstance(x, (list, dict))]
        if not containers:
            return depth
        depth += 1
        level = [v for x in containers for v in (x.values() if isinstance(x, dict) else x)]
