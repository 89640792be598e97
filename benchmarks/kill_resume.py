"""Resume after kill -9 is exact: a run killed again and again at random moments (some of them
while a checkpoint is being written) and resumed each time ends with the same bytes as a run
that was never interrupted, for training, LoRA with the prior, and distillation.

    python benchmarks/kill_resume.py [--kills 8] [--steps 40] [--seed 0]

Prints a table: run kind, kills, kills that caught a save half-written (a temporary file or
folder was left at the moment of the kill), and whether every tensor of the final checkpoint
(EMA, weights, optimizer moments, random generators) equals the uninterrupted run's.
Tiny model and the shapes data set, on the CPU; a few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors.torch import load_file

GOUACHE = [sys.executable, "-m", "gouache"]
RECIPE = """steps = {steps}
batch_size = 8
lr = 1e-3
checkpoint_every = 3
log_every = 1
sample_every = 100000
seed = 3
[model]
preset = "tiny"
"""


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(GOUACHE + args, env=env, capture_output=True, text=True)


def _partial(run: Path) -> bool:
    """A save was caught half-way: a temporary checkpoint folder or file is there."""
    return any(p.name.startswith(".tmp") or p.name.endswith(".tmp") for p in run.rglob("*"))


def killed_run(args: list[str], run: Path, kills: int, rng: random.Random, env: dict) -> tuple[int, int]:
    """Start ``args`` (which write into ``run``) and kill -9 it ``kills`` times, resuming with
    ``--resume run`` each time; then let it finish. Every other kill waits for a checkpoint being
    written (a temporary folder appearing) and kills at once; the others kill at a random moment
    of training. Returns (kills done, kills that caught a save half-written)."""
    done = mid_save = 0
    while True:
        argv = _resume_args(args, run) if (run / "latest.txt").exists() else args
        proc = subprocess.Popen(GOUACHE + argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done < kills and _wait_for_moment(proc, run, mid_save_wanted=done % 2 == 0, rng=rng):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            done += 1
            mid_save += _partial(run)
            continue
        proc.wait()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.read().decode()[-400:]}")
        if _finished(run, args):
            return done, mid_save


def _wait_for_moment(proc: subprocess.Popen, run: Path, *, mid_save_wanted: bool, rng: random.Random) -> bool:
    """Poll until the moment to kill (True) or the process ended first (False)."""
    log = run / "log.csv"
    rows = len(log.read_text().splitlines()) if log.exists() else 0
    delay = None
    cleared = not _partial(run)  # a killed save's leftovers are removed when the run starts again
    while proc.poll() is None:
        if mid_save_wanted:
            partial = _partial(run)
            if cleared and partial:
                return True
            cleared = cleared or not partial
        if not mid_save_wanted:
            now = len(log.read_text().splitlines()) if log.exists() else 0
            if delay is None and now > rows:  # training is under way in this process
                delay = time.perf_counter() + rng.uniform(0.0, 1.5)
            if delay is not None and time.perf_counter() >= delay:
                return True
        time.sleep(0.005)
    return False


def _resume_args(args: list[str], run: Path) -> list[str]:
    """The same command, continuing ``run`` instead of starting it."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        out.append(a)
    return out + ["--resume", str(run)]


def _finished(run: Path, args: list[str]) -> bool:
    steps = int(args[args.index("--steps") + 1])
    latest = (run / "latest.txt").read_text().strip()
    return latest.endswith(f"step-{steps:08d}")


def final_tensors(run: Path) -> dict:
    folder = run / (run / "latest.txt").read_text().strip()
    return {f"{f.name}:{k}": v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(f).items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and a[k].equal(b[k]) for k in a)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=8)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = random.Random(a.seed)
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    work = Path(tempfile.mkdtemp(prefix="gouache-kill-"))
    data, recipe = work / "shapes", work / "tiny.toml"
    recipe.write_text(RECIPE.format(steps=a.steps))
    _run(["data", "shapes", "--out", str(data), "--size", "16", "--per-caption", "2"], env).check_returncode()
    t0 = time.perf_counter()
    base = ["train", "--config", str(recipe), "--data", str(data), "--steps", str(a.steps)]
    r = _run(base + ["--out", str(work / "teacher")], env)
    r.check_returncode()
    whole = time.perf_counter() - t0
    teacher = str(work / "teacher")
    kinds = {
        "train": base,
        "train --lora --prior": base + ["--init", teacher, "--lora", "4", "--prior", "8"],
        "distill": ["distill", teacher, "--data", str(data), "--steps", str(a.steps), "--batch-size", "8",
                    "--checkpoint-every", "3", "--sample-every", "100000"],
    }
    print(f"| run | kills | caught mid-save | final checkpoint equals the uninterrupted run's |")
    print("|---|---|---|---|")
    for kind, args in kinds.items():
        ref, cut = work / f"{kind.split()[0]}-{len(kind)}-ref", work / f"{kind.split()[0]}-{len(kind)}-cut"
        if kind == "train":
            ref = work / "teacher"
        else:
            r = _run(args + ["--out", str(ref)], env)
            if r.returncode:
                raise SystemExit(r.stderr[-400:])
        kills, mid = killed_run(args + ["--out", str(cut)], cut, a.kills, rng, env)
        print(f"| {kind} | {kills} | {mid} | {'yes' if same(final_tensors(ref), final_tensors(cut)) else 'NO'} |",
              flush=True)
    print(f"\n(work folder {work}; the uninterrupted run took {whole:.1f} s)")


if __name__ == "__main__":
    main()
