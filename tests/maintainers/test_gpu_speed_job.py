"""maintainers/gpu_speed_job.sh: the one-command GPU speed measurement, run here on the CPU at a
tiny size, in a checkout as the GPU machine sees it (the repository not installed, the packed
encoder and the data carried in .gpu/)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_job_writes_the_table_and_the_loops_log(maintainer_script, emoji_fixture, tmp_path):
    remote = maintainer_script("remote_gpu")
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("gouache", "maintainers", "benchmarks", "configs"):
        (root / name).symlink_to(REPO / name)
    remote.pack(emoji_fixture, root / ".gpu", extra=[])
    shutil.copytree(emoji_fixture, root / ".gpu" / "data" / "emoji")
    (root / "tiny.toml").write_text("steps = 1000\ncooldown = 200\nbatch_size = 4\nwarmup = 2\nlog_every = 2\n"
                                    "checkpoint_every = 1000\nsample_every = 2\neval_every = 0\n"
                                    "sample_steps = 2\n[model]\npreset = \"tiny\"\n")
    out = tmp_path / "out"
    out.mkdir()
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(tmp_path), "OUT": str(out),
           "QUICK": "1", "DEVICE": "cpu", "DATA": ".gpu/data/emoji", "CONFIG": "tiny.toml", "LOOP_MIN": "0.1",
           "BUDGET": "400", "COMPILED": "", "WARM_LOOP": "0", "ROWS": "peak,loop,base-256-eager",
           "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    job = subprocess.run(["bash", str(REPO / "maintainers" / "gpu_speed_job.sh")], cwd=root, env=env,
                         capture_output=True, text=True, timeout=450)
    assert job.returncode == 0, job.stdout + job.stderr
    rows = json.loads((out / "gpu_speed.json").read_text())["rows"]
    assert rows["loop"]["exit"] == 0 and rows["base-256-eager"]["images_per_s"] > 0
    assert (root / ".gpu" / "data" / "emoji" / "prompt_embeddings.safetensors").is_file()  # encoded once
    assert (out / "loop_log.csv").is_file() and (out / "loop_samples.png").is_file()
    assert "| real loop" in (out / "gpu_speed.md").read_text()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(p.parent == out for p in files)  # what comes back from the machine
