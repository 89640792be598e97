"""Where a command's output goes, checked before the work starts: an hour of training or a
thousand pictures must not end in "cannot write" (nor overwrite a device such as /dev/null),
nor replace what the user did not ask to replace, nor write over one of the command's own
inputs. Files and folders written atomically (a temporary sibling, then a rename), so a failed
write, a full disk included, leaves the previous version and no temporary file; a file's checksum.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from gouache.errors import DiskFull, GouacheError, raise_if_disk_full

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["check_output_file", "check_output_folder", "Inputs", "replacing", "replacing_folder",
           "write_json", "save_png", "json_safe", "file_sha256"]

Inputs = Iterable[tuple[str, "Path | str | None"]]  # (what it is, e.g. "the --image"; its path or None)


def _writable_parent(path: Path, what: str) -> None:
    """The nearest existing ancestor of ``path`` is a folder we may write in."""
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise GouacheError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GouacheError(f"{what} {path}: no permission to write in {parent}")


def _same(a: Path, b: Path) -> bool:
    return a == b or (a.exists() and b.exists() and os.path.samefile(a, b))


def _not_an_input(path: Path, inputs: Inputs, what: str, *, holding: bool = False) -> None:
    """``path`` is none of ``inputs`` and lies inside none of them (nor, ``holding``, holds one)."""
    out = path.resolve()
    for label, given in inputs:
        if given is None or given == "":
            continue
        source = Path(given).resolve()
        if _same(out, source):
            raise GouacheError(f"{what} {path} is also {label}; name another place to write")
        if source in out.parents:
            raise GouacheError(f"{what} {path} is inside {label} {given}; name a place outside it")
        if holding and out in source.parents:
            raise GouacheError(f"{what} {path} holds {label} {given}; name another folder")


def check_output_file(path: Path | str, *, what: str = "--out", inputs: Inputs = (),
                      overwrite: bool = False) -> Path:
    """A file the command will write: not a folder, not a device, in a writable place, none of
    the command's ``inputs`` (nor inside one), and new unless ``overwrite``."""
    path = Path(path)
    if path.is_dir():
        example = f", e.g. {path / 'out.png'}" if not path.suffix else ""
        raise GouacheError(f"{what} {path} is a folder; name a file{example}")
    if path.exists() and not path.is_file():
        raise GouacheError(f"{what} {path} is not a regular file")
    _writable_parent(path, what)
    _not_an_input(path, inputs, what)
    if path.exists() and not overwrite:
        raise GouacheError(f"{what} {path} exists; name another file, or add --overwrite to replace it")
    return path


def check_output_folder(path: Path | str, *, what: str = "--out", inputs: Inputs = (),
                        overwrite: bool | None = None, own: Callable[[Path], bool] | None = None,
                        empty: bool = True, replace: bool = False) -> Path:
    """A folder the command will write into (made if missing), in a writable place, none of the
    command's ``inputs`` (nor inside one).

    ``empty``: it must hold nothing yet, unless ``own(path)`` says it holds this command's own
    earlier output, or ``overwrite`` (the command's --overwrite; None: it has none) is set.
    ``replace``: the command writes the folder anew beside it and renames it into place
    (``replacing_folder``): it may not hold an input either.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise GouacheError(f"{what} {path} is a file, not a folder")
    if path.exists() and not os.access(path, os.W_OK | os.X_OK):
        raise GouacheError(f"{what} {path}: no permission to write in it")
    if replace or not path.exists():
        _writable_parent(path.absolute(), what)
    _not_an_input(path, inputs, what, holding=replace)
    cwd = Path.cwd().resolve()
    if replace and (path.resolve() == cwd or path.resolve() in cwd.parents):  # renamed away, the
        raise GouacheError(f"{what} {path} holds the current folder; name another folder")  # cwd would go too
    held = sorted(p.name for p in path.iterdir()) if path.is_dir() and empty else []
    if held and not overwrite and not (own is not None and own(path)):
        also = "" if overwrite is None else ", or add --overwrite"
        raise GouacheError(f"{what} {path} is not empty (it holds {held[0]}{' and more' if len(held) > 1 else ''}); "
                           f"name a new or empty folder{also}")
    return path


@contextmanager
def replacing(path: Path | str, *, shared: bool = False) -> Iterator[Path]:
    """A temporary file beside ``path`` for the body to write, renamed over ``path`` when the
    body is done: a reader sees the old file or the new one, never half of one. A failed
    write removes it; a full disk is one GouacheError line. ``shared``: a cache that several
    processes may fill at once, each through a temporary file of its own."""
    path = Path(path)
    # one name: a killed writer's file is replaced by the next; a shared cache's carry the pid
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp" if shared else f".{path.name}.tmp")
    try:
        yield tmp
        tmp.replace(path)
    except OSError as e:
        raise_if_disk_full(e, path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def replacing_folder(path: Path | str) -> Iterator[Path]:
    """A temporary folder beside ``path`` for the body to fill, renamed into place (replacing
    ``path`` and what it held) when the body is done; a failed body leaves no trace of it."""
    given, path = path, Path(path).absolute()
    tmp, old = (path.with_name(f".{path.name}.{end}") for end in ("tmp", "old"))
    for stale in (tmp, old):  # left by a process that was killed
        shutil.rmtree(stale, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        yield tmp
        there = path.is_symlink() or path.exists()
        if there:
            path.rename(old)
        try:
            tmp.rename(path)
        except OSError:
            if there:
                old.rename(path)  # the old folder back in its place
            raise
    except DiskFull:  # named by the file inside the temporary folder: name the folder
        raise DiskFull(f"disk full while writing {given}") from None
    except OSError as e:
        raise_if_disk_full(e, given)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if old.is_symlink():
        old.unlink()
    else:
        shutil.rmtree(old, ignore_errors=True)


def write_json(obj: dict, path: Path) -> None:
    """Write JSON atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_png(img: "Image.Image", path: Path | str) -> Path:
    """Write a PNG atomically (``replacing``), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        img.save(tmp, format="PNG")
    return path


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
