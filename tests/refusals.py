"""The bad-input harness every refusal table uses: run a command in-process on a work folder
and check that it was refused as a user deserves.

- exit code 2 and one line on stderr starting "gouache: error:", naming the problem;
- no traceback, and no hang (an alarm after ``SECONDS``);
- every file that was in the work folder before is byte-identical afterwards, and nothing new
  is left behind (no half-made run, no temporary file).

    def test_x(tmp_path, capsys):
        work = tmp_path / "work"; work.mkdir()
        ... make inputs in work ...
        assert_refused(["data", "shapes", "--out", str(work / "old")], "not empty", work, capsys)
"""
from __future__ import annotations

import hashlib
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

from gouache.cli.main import main

__all__ = ["snapshot", "assert_refused", "assert_unchanged", "time_limit", "SECONDS"]

SECONDS = 10  # a refusal comes at once; anything slower is a hang


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` -> sha256 of its bytes (folders and special files: their kind)."""
    out: dict[str, str] = {}
    for p in sorted(Path(folder).rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "symlink:" + str(p.readlink())
        elif p.is_dir():
            out[rel] = "dir"
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "special"
    return out


def assert_unchanged(before: dict[str, str], folder: Path) -> None:
    after = snapshot(folder)
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    assert not changed, f"changed: {changed}"
    assert not before.keys() - after.keys(), f"deleted: {sorted(before.keys() - after.keys())}"
    assert not after.keys() - before.keys(), f"left behind: {sorted(after.keys() - before.keys())}"


@contextmanager
def time_limit(seconds: int = SECONDS):
    """Fail (instead of hanging the suite) when the body runs past ``seconds``."""
    def _alarm(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def assert_refused(argv: list[str], message: str, work: Path, capsys: pytest.CaptureFixture,
                   *, seconds: int = SECONDS) -> str:
    """``gouache ARGV`` exits 2 with one line containing ``message`` and leaves ``work`` as it was.
    Returns the line."""
    before = snapshot(work)
    capsys.readouterr()  # what the setup printed is not the command's
    with time_limit(seconds), pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2, (e.value.code, err)
    assert err.startswith("gouache: error:") and "\n" not in err, err
    assert "Traceback" not in err, err
    assert message in err, err
    assert_unchanged(before, work)
    return err
