"""One process at a time writes a run folder: an advisory lock (``fcntl.flock``) on RUN/.lock.

The kernel releases the lock when the process ends, however it ends (kill -9 included), so a
run killed mid-step resumes with no lock to clear by hand. The file keeps the pid of the
process that last held it, which a refusal names.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from gouache.errors import GouacheError

__all__ = ["LOCK_FILE", "locked", "refuse_if_locked"]

LOCK_FILE = ".lock"


@contextmanager
def locked(folder: Path | str) -> Iterator[Path]:
    """Hold ``folder``'s lock (the folder made if missing) for the body, or refuse at once in one
    line naming the folder and the pid that holds it. A folder this call made and that holds
    nothing but the lock when the body ends is removed again, with the parents it made."""
    folder = Path(folder)
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    path = folder / LOCK_FILE
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            error = _in_use(folder, fd)
            os.close(fd)
            raise error from None
        if path.exists() and os.stat(path).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the file was removed (below, by the process before) as this one opened it
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield folder
        finally:
            if made and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
                path.unlink()  # still held: no other process can have taken it
                for p in made:
                    try:
                        p.rmdir()
                    except OSError:
                        break
    finally:
        os.close(fd)


def refuse_if_locked(folder: Path | str) -> None:
    """Refuse at once, as ``locked`` would, when another process holds ``folder``'s lock; nothing
    is made or written (what a run calls before it reads the checkpoint it continues)."""
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:  # no lock file: no process holds it
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # refused only while another holds it
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise _in_use(Path(folder), fd) from None
    except OSError:  # not a file a lock is taken on: ``locked`` will say
        pass
    finally:
        os.close(fd)


def _in_use(folder: Path, fd: int) -> GouacheError:
    pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
    return GouacheError(f"{folder} is in use by another process (pid {pid}) that trains into it; "
                        "wait for it to end, or name another folder")
