"""Reading the variants: each read given a few seconds, a FIFO's blocked reader released, and
the outcomes counted per format (``Tally``).
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, Phase, given, settings

from gouache.errors import GouacheError

from .formats import Context, Format
from .variants import SPECIALS, Variant

__all__ = ["Hang", "attempt", "Tally", "HEADER", "run_format"]


class Hang(BaseException):
    """No answer in time (a BaseException, so that no reader's ``except Exception`` swallows it)."""


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:160]


def _release_later(fifo: Path, seconds: float) -> subprocess.Popen:
    """A process that, after ``seconds``, opens ``fifo`` for writing again and again, so that a
    reader blocked opening it gets an end of file. (A process, not a thread: a reader may hold
    the GIL while it waits, in a library's native code, where no signal reaches it either.)"""
    script = f"sleep {seconds}; while :; do : > {shlex.quote(str(fifo))}; sleep 0.05; done"
    return subprocess.Popen(["sh", "-c", script], start_new_session=True)


def attempt(read: Callable[[], Any], check: Callable[[Any], str | None], *, seconds: float,
            fifo: Path | None = None) -> tuple[str, str]:
    """("valid" | "refused" | "failure", what happened) of one read, given ``seconds``. A read
    blocked opening ``fifo`` is released with an end of file (``_release_later``)."""
    def alarm(signum, frame):
        raise Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    releaser = _release_later(fifo, seconds) if fifo is not None else None
    start = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            obj = read()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        problem = check(obj)
        outcome = ("failure", f"accepted: {problem}") if problem else ("valid", "")
    except Hang:
        outcome = ("failure", f"Hang: no answer within {seconds:g} s")
    except GouacheError as e:
        text = str(e)
        lines = text.count("\n") + 1
        outcome = (("refused", text) if text.strip() and lines == 1
                   else ("failure", f"GouacheError of {lines} lines: {text[:120]!r}"))
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 (a reader's any other exception is what is counted)
        outcome = ("failure", f"{type(e).__name__}: {_one_line(e)}")
    finally:
        signal.signal(signal.SIGALRM, old)
        if releaser is not None:
            os.killpg(releaser.pid, signal.SIGKILL)  # its own session: the shell and its sleep
            releaser.wait()
    took = time.monotonic() - start
    if took > seconds and outcome[0] != "failure":
        outcome = ("failure", f"Hang: answered only after {took:.1f} s")
    return outcome


@dataclass
class Tally:
    """What the reads of one format did."""

    name: str
    valid: int = 0
    refused: int = 0
    failures: Counter = field(default_factory=Counter)  # kind (the exception's name) -> count
    first: dict[str, str] = field(default_factory=dict)  # kind -> its first variant and message
    seconds: float = 0.0
    log: list[tuple[str, str, str]] | None = None  # every read's (variant, outcome, detail), if kept

    @property
    def count(self) -> int:
        return self.valid + self.refused + sum(self.failures.values())

    def add(self, what: str, outcome: str, detail: str) -> None:
        if self.log is not None:
            self.log.append((what, outcome, detail))
        if outcome == "valid":
            self.valid += 1
        elif outcome == "refused":
            self.refused += 1
        else:
            kind = detail.split(":", 1)[0]
            self.failures[kind] += 1
            self.first.setdefault(kind, f"{what[:80]} -> {detail[:200]}")

    def row(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in self.failures.most_common()) or "-"
        return (f"{self.name:22} {self.count:6} {self.valid:6} {self.refused:8} {sum(self.failures.values()):8}"
                f"  {self.seconds:6.1f}s  {kinds}")

    def report(self, examples: int = 3) -> str:
        lines = [self.row()] + [f"    {k}: {v}" for k, v in list(self.first.items())[:examples]]
        return "\n".join(lines)


HEADER = f"{'format':22} {'reads':>6} {'valid':>6} {'refused':>8} {'failures':>8}  {'time':>7}  failure kinds"


def _clear(path: Path) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _place(path: Path, v: Variant, original: bytes, outside: Path) -> None:
    """Put variant ``v`` where the valid file ``path`` was."""
    _clear(path)
    if v.special is None:
        path.write_bytes(v.data)
    elif v.special == "directory":
        path.mkdir()
    elif v.special == "fifo":
        os.mkfifo(path)
    elif v.special == "dangling symlink":
        path.symlink_to(path.with_name(path.name + ".nowhere"))
    elif v.special == "symlink loop":
        path.symlink_to(path.name)
    elif v.special == "symlink to its folder":
        path.symlink_to(".")
    elif v.special == "symlink to /dev/null":
        path.symlink_to("/dev/null")
    elif v.special == "symlink to a good copy":
        outside.write_bytes(original)
        path.symlink_to(outside)


def run_format(fmt: Format, work: Path, ctx: Context, *, examples: int, seed: int | None = None,
               log: bool = False) -> Tally:
    """Read ``fmt`` with every SPECIALS thing in its file's place, then with ``examples``
    variants drawn by hypothesis (the same ones each run unless ``seed`` is given); ``log``:
    keep every read's outcome in the tally."""
    start = time.monotonic()
    tally = Tally(fmt.name, log=[] if log else None)
    case, outside = work / "case", work / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    fmt.build(case, ctx)
    target = case / fmt.target if fmt.target else None
    original = target.read_bytes() if target else b""

    def one(v: Variant) -> None:
        if target is not None:
            _place(target, v, original, outside / target.name)
        try:
            outcome, detail = attempt(lambda: fmt.read(case, ctx, v), fmt.check, seconds=fmt.seconds,
                                      fifo=target if v.special == "fifo" else None)
        finally:
            if target is not None:
                _clear(target)
                target.write_bytes(original)
        tally.add(v.what, outcome, detail)

    if target is not None:
        for special in SPECIALS:
            one(Variant(special, special=special))

    @settings(max_examples=examples, deadline=None, derandomize=seed is None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(fmt.variants(original))
    def each(v: Variant) -> None:
        one(v)

    if seed is not None:
        from hypothesis import seed as with_seed
        each = with_seed(seed)(each)
    each()
    tally.seconds = time.monotonic() - start
    return tally
