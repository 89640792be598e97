"""The training loop's bookkeeping: log.csv's rows, and a Ctrl-C that stops after the step."""
from __future__ import annotations

import csv
import io
import math
import signal
import sys
import threading
import time
from pathlib import Path

from gouache.errors import GouacheError, raise_if_disk_full
from gouache.store.files import replacing
from gouache.store.reading import MissingFile, read_text

__all__ = ["TrainLog", "StopSignal"]

MAX_LOG = 1 << 30  # bytes of log.csv read back: some 15 million rows


class TrainLog:
    """Rows of log.csv: step, loss, lr, images_per_second, heldout_loss (blank where not measured)."""

    FIELDS = ("time", "step", "loss", "lr", "images_per_second", "heldout_loss")

    def __init__(self, path: Path, *, step: int = 0) -> None:
        """Rows past ``step``, the step the run starts from, are dropped: a resumed run redoes them."""
        self.path = path
        rows = []
        try:  # a regular file of UTF-8 text (never a pipe to wait on)
            rows = list(csv.reader(io.StringIO(read_text(path, what="training log", limit=MAX_LOG), newline="")))
        except MissingFile:
            pass
        except csv.Error as e:
            raise GouacheError(f"training log {path}: not CSV ({e})") from None
        header = rows[0] if rows else list(self.FIELDS)
        at = header.index("step") if "step" in header else 1
        kept = [r for r in rows[1:] if len(r) > at and r[at].isascii() and r[at].isdigit() and int(r[at]) <= step]
        if not rows or len(kept) < len(rows) - 1:  # new (or empty), or rows to drop
            with replacing(path) as tmp, open(tmp, "w", newline="") as f:
                csv.writer(f).writerows([header, *kept])

    def write(self, **row: float) -> None:
        row["time"] = int(time.time())
        try:
            with open(self.path, "a", newline="") as f:
                csv.writer(f).writerow([_fmt(row.get(k, "")) for k in self.FIELDS])
        except OSError as e:
            raise_if_disk_full(e, self.path)
            raise


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) else str(v)


class StopSignal:
    """Ctrl-C or SIGTERM asks the loop to stop after the current step, with a checkpoint.

    A second signal acts at once (the previous handlers are back by then). Handlers
    can only be set from the main thread; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, object] = {}

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        self._restore()
        print("\nstopping after this step, with a checkpoint (again to abort)", file=sys.stderr)

    def _restore(self) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old = {}

    def __exit__(self, *exc: object) -> None:
        self._restore()
