"""Opening a file that gouache keeps, checked before anything is allocated or trusted.

Every reader of a file format opens its file through these, so that each of these is one
``GouacheError`` line naming the file (and, for sizes, the figure):

- a folder, a named pipe (which would block the reader for ever), a device or a socket
  where a regular file belongs;
- a file larger than what it holds could be (``limit``);
- text that is not UTF-8;
- JSON or TOML nested deeper than any config is, holding a number of thousands of digits,
  or whose top level is not an object (a table);
- a safetensors header that is not one, or that declares more bytes than the file has.

    regular_file(path, what="model config")           the path, once it is a regular file
    inside(path, root, what="caption")                its real path, once it lies in ``root``
    read_bytes(path, what=..., limit=MB)              its bytes
    read_text(path, what=..., limit=MB)               decoded as UTF-8
    read_json(path, what=..., limit=MB)               a JSON object, as a dict
    parse_json(text, what=...)                        the same checks on JSON already read
    read_toml(path, what=..., limit=MB)               a TOML table, as a dict
    safetensors_header(path, what=...)                name -> TensorSpec(dtype, shape), and the
                                                      metadata, from the header alone

``what`` says what the file is ("model config", "adapter"); it starts the message. A missing
file raises ``MissingFile``, a ``GouacheError`` that a caller may word its own way.
"""
from __future__ import annotations

import json
import math
import os
import stat
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import torch

from gouache.errors import GouacheError

__all__ = ["MissingFile", "TensorSpec", "regular_file", "inside", "read_bytes", "read_text", "read_json", "parse_json",
           "read_record", "read_toml", "safetensors_header", "check_depth", "KB", "MB", "MAX_DEPTH", "MAX_DIGITS"]

KB, MB = 1 << 10, 1 << 20
MAX_DEPTH = 32  # levels of nesting in a JSON or TOML file (a run's state.json has 5)
MAX_DIGITS = 40  # digits of a whole number in JSON (a seed has at most 19)
MAX_HEADER = 100 * MB  # of a safetensors file: its JSON table of tensors (safetensors' own limit)

# safetensors' names of dtypes, as torch's
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool, "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
          "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}


class MissingFile(GouacheError):
    """The file is not there."""


class TensorSpec(NamedTuple):
    """A tensor as a safetensors header describes it."""

    dtype: torch.dtype
    shape: tuple[int, ...]


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int, path: Path, what: str) -> GouacheError:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return GouacheError(f"{what} {path} is {kind}, not a regular file")


@contextmanager
def _naming(path: Path, what: str) -> Iterator[None]:
    """A file that cannot be found or opened, as one line naming it."""
    try:
        yield
    except (FileNotFoundError, NotADirectoryError):
        raise MissingFile(f"{what} {path} is missing") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        raise GouacheError(f"{what} {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None


def regular_file(path: Path | str, what: str) -> Path:
    """``path``, once it is a regular file (after symbolic links); stat only: nothing is opened."""
    path = Path(path)
    with _naming(path, what):
        mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _not_regular(mode, path, what)
    return path


def inside(path: Path, root: Path, *, what: str = "file") -> Path:
    """``path``'s real path (symbolic links followed), once it lies in ``root``: a data folder
    never reads from outside itself."""
    try:
        real = Path(path).resolve()
    except (RuntimeError, OSError) as e:  # a symlink loop
        raise GouacheError(f"{path}: cannot follow {what} ({e})") from None
    if not real.is_relative_to(Path(root).resolve()):
        raise GouacheError(f"{path}: {what} leads outside the folder {root} (to {real})")
    return real


def _open(path: Path, what: str) -> tuple[int, int]:
    """A descriptor of the regular file ``path`` and its size. Opened without blocking, so a
    named pipe put in the file's place is refused instead of waiting for a writer."""
    with _naming(path, what):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _not_regular(info.st_mode, path, what)
    return fd, info.st_size


def _too_large(path: Path, what: str, size: int, limit: int) -> GouacheError:
    return GouacheError(f"{what} {path} is {size:,} bytes, more than such a file may be ({limit:,})")


def _read(fd: int, n: int) -> bytes:
    parts, left = [], n
    while left > 0:
        part = os.read(fd, min(left, 16 * MB))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_bytes(path: Path | str, *, what: str, limit: int) -> bytes:
    """The bytes of the regular file ``path``, refused if over ``limit``."""
    path = Path(path)
    fd, size = _open(path, what)
    try:
        if size > limit:
            raise _too_large(path, what, size, limit)
        data = _read(fd, limit + 1)  # one more: a file that grew since fstat
    finally:
        os.close(fd)
    if len(data) > limit:
        raise _too_large(path, what, len(data), limit)
    return data


def _decode(data: bytes, label: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GouacheError(f"{label} is not UTF-8 text (byte {e.start})") from None


def read_text(path: Path | str, *, what: str, limit: int) -> str:
    """The regular file ``path`` as UTF-8 text, refused if over ``limit`` bytes."""
    return _decode(read_bytes(path, what=what, limit=limit), f"{what} {path}")


def _whole_number(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"a number of {len(text.lstrip('-'))} digits (at most {MAX_DIGITS})")
    return int(text)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def check_depth(value: Any, *, what: str, limit: int = MAX_DEPTH) -> Any:
    """``value`` (parsed JSON or TOML), refused if its lists and objects nest deeper than ``limit``."""
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > limit:
            raise GouacheError(f"{what}: nested deeper than {limit} levels")
        level = [v for x in level for v in (x.values() if isinstance(x, dict) else x)
                 if isinstance(v, (dict, list))]
    return value


def parse_json(text: str | bytes, *, what: str, top: type | None = dict) -> Any:
    """``text`` parsed as JSON, its top level of type ``top`` (None: any), with the file's checks:
    depth, whole numbers' digits, no NaN or Infinity (``what`` names the file)."""
    if isinstance(text, bytes):
        text = _decode(text, what)
    try:
        value = json.loads(text, parse_int=_whole_number, parse_constant=_no_constant)
    except RecursionError:
        raise GouacheError(f"{what}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:  # JSONDecodeError, or a number refused above
        raise GouacheError(f"{what}: not valid JSON ({e})") from None
    if top is not None and not isinstance(value, top):
        raise GouacheError(f"{what}: the top level must be {_kind(top)}, not {_kind(type(value))}")
    return check_depth(value, what=what) if isinstance(value, (dict, list)) else value


def _kind(t: type) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true or false", type(None): "null"}
    return names.get(t, "a number")


def read_json(path: Path | str, *, what: str, limit: int = MB, top: type | None = dict) -> Any:
    """The regular file ``path`` (at most ``limit`` bytes, UTF-8) parsed as JSON whose top level
    is of type ``top`` (an object unless told)."""
    return parse_json(read_text(path, what=what, limit=limit), what=f"{what} {path}", top=top)


def read_record(path: Path | str, record: type, *, what: str, missing: str, kind: str) -> Any:
    """The small JSON file ``path`` as the frozen dataclass ``record`` (which checks its own
    fields): a missing file is ``{path} is missing: {missing}``, unknown or absent fields
    ``{path}: not {kind} (...)``, a bad value ``{path}: ...``; each one line."""
    try:
        d = read_json(path, what=what, limit=64 * KB)
    except MissingFile:
        raise GouacheError(f"{path} is missing: {missing}") from None
    try:
        return record(**d)
    except TypeError as e:
        raise GouacheError(f"{path}: not {kind} ({e})") from None
    except GouacheError as e:
        raise GouacheError(f"{path}: {e}") from None


def read_toml(path: Path | str, *, what: str, limit: int = MB) -> dict:
    """The regular file ``path`` (at most ``limit`` bytes, UTF-8) parsed as TOML."""
    text = read_text(path, what=what, limit=limit)
    try:
        table = tomllib.loads(text)
    except RecursionError:
        raise GouacheError(f"{what} {path}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:  # TOMLDecodeError, or a whole number of thousands of digits
        raise GouacheError(f"{what} {path}: not valid TOML ({e})") from None
    return check_depth(table, what=f"{what} {path}")


def safetensors_header(path: Path | str, *, what: str) -> tuple[dict[str, TensorSpec], dict[str, str]]:
    """The tensors (name -> dtype and shape) and the metadata that the safetensors file ``path``
    declares, read from its header alone: no tensor is read. Refused unless every tensor's bytes
    lie inside the file and match its dtype and shape."""
    path = Path(path)
    fd, size = _open(path, what)
    try:
        head = _read(fd, 8)
        if len(head) < 8:
            raise GouacheError(f"{what} {path}: not a readable safetensors file (only {size} bytes)")
        n = int.from_bytes(head, "little")
        if n < 2 or n > MAX_HEADER or 8 + n > size:
            raise GouacheError(f"{what} {path}: not a readable safetensors file (its header declares "
                               f"{n:,} bytes, the file has {size:,})")
        raw = _read(fd, n)
        try:
            header = parse_json(raw.decode("utf-8"), what=f"{what} {path}: not a readable safetensors file, its header")
        except UnicodeDecodeError:
            raise GouacheError(f"{what} {path}: not a readable safetensors file (its header is not text)") from None
    finally:
        os.close(fd)
    data = size - 8 - n  # the bytes after the header
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise GouacheError(f"{what} {path}: not a readable safetensors file (its metadata is not text)")
    return {name: _spec(name, entry, data, path, what) for name, entry in header.items()}, meta


def _spec(name: str, entry: Any, data: int, path: Path, what: str) -> TensorSpec:
    """One header entry, checked: a dtype, a shape, and offsets inside the ``data`` bytes."""
    def bad(why: str) -> GouacheError:
        return GouacheError(f"{what} {path}: not a readable safetensors file (tensor {name!r} {why})")

    if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str) or entry["dtype"] not in DTYPES:
        raise bad("has no dtype it knows")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise bad("has no shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise bad("has no place in the file")
    dtype = DTYPES[entry["dtype"]]
    begin, end = offsets
    need = math.prod(shape) * dtype.itemsize
    if not 0 <= begin <= end <= data:
        raise bad(f"lies at bytes {begin:,} to {end:,}, past the {data:,} the file holds")
    if end - begin != need:
        raise bad(f"of shape {tuple(shape)} needs {need:,} bytes, the header gives it {end - begin:,}")
    return TensorSpec(dtype, tuple(shape))
