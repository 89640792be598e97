"""A run folder's lock: a second holder is refused at once, naming the pid; the lock goes with
its process, however the process ends (kill -9 included), and the run resumes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gouache.errors import GouacheError
from gouache.store.lock import LOCK_FILE, locked

HOLD = "import sys, time\nfrom gouache.store.lock import locked\nwith locked(sys.argv[1]):\n" \
       "    print('held', flush=True)\n    time.sleep(600)\n"


def test_a_second_holder_is_refused_with_the_pid_until_the_first_is_killed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(GouacheError, match=rf"run is in use by another process \(pid {holder.pid}\)"):
            with locked(tmp_path / "run"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with locked(tmp_path / "run"):  # the kernel let it go with its process
        assert (tmp_path / "run" / LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_a_folder_made_for_the_lock_alone_is_removed_again(tmp_path):
    with locked(tmp_path / "runs" / "a"):
        pass
    assert not (tmp_path / "runs").exists()  # the run failed before writing: no trace
    with locked(tmp_path / "b") as folder:
        (folder / "log.csv").write_text("step\n")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [LOCK_FILE, "log.csv"]


def test_a_run_killed_mid_training_resumes(shapes_dir, tmp_path, capsys):
    from gouache.cli.main import main
    from gouache.store.checkpoint import run_step

    recipe = tmp_path / "recipe.toml"
    recipe.write_text('batch_size = 4\ncheckpoint_every = 1\nsample_every = 0\neval_every = 0\ndevice = "cpu"\n'
                      '[model]\npreset = "tiny"\n')
    argv = ["train", "--config", str(recipe), "--data", str(shapes_dir)]
    run = tmp_path / "run"
    trainer = subprocess.Popen([sys.executable, "-m", "gouache", *argv, "--out", str(run), "--steps", "100000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=os.environ | {"HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 240
        while (run_step(run) or 0) < 2 and time.monotonic() < deadline and trainer.poll() is None:
            time.sleep(0.2)
    finally:
        trainer.send_signal(signal.SIGKILL)  # mid-step, or mid-save
        trainer.wait()
    step = run_step(run)
    assert step is not None and step >= 2
    main(argv + ["--resume", str(run), "--steps", str(step + 1)])
    assert (run / "latest.txt").read_text() == f"checkpoints/step-{step + 1:08d}\n"
    assert not list(Path(run).rglob(".tmp-*"))
