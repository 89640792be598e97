"""A full disk, for real: each write runs in a process whose files may not grow past a limit
(RLIMIT_FSIZE, with SIGXFSZ ignored, so a write past it fails with EFBIG as on a full disk).
It ends in one line, "disk full while writing PATH", and leaves the file that was there before
and no temporary file; a training run keeps its last checkpoint and resumes from it."""
from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from gouache.cli.main import main

LIMIT = 200_000  # bytes a file may hold: more than a recipe or a log, less than the tiny model's weights
RECIPE = ('steps = 2\nbatch_size = 4\nlog_every = 1\ncheckpoint_every = 1\nsample_every = 0\neval_every = 0\n'
          'device = "cpu"\n[model]\npreset = "tiny"\n')


def _limited() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def _run_limited(args: list[str]) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, env=env,
                          preexec_fn=_limited)


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


WRITES = """
import sys
from pathlib import Path
import torch
from PIL import Image
from gouache.errors import GouacheError
from gouache.store.files import save_png, write_json
from gouache.store.tensors import save_tensors

folder = Path(sys.argv[1])
for name, write in (("a.json", lambda p: write_json({"x": "y" * 300_000}, p)),
                    ("a.safetensors", lambda p: save_tensors({"x": torch.zeros(100_000)}, p)),
                    ("a.png", lambda p: save_png(Image.effect_noise((512, 512), 64).convert("RGB"), p))):
    try:
        write(folder / name)
        print("written", name)
    except GouacheError as e:
        print(e)
"""


def test_write_json_save_tensors_and_save_png_leave_the_old_file(tmp_path):
    import torch
    from PIL import Image

    from gouache.store.files import save_png, write_json
    from gouache.store.tensors import save_tensors

    write_json({"x": 1}, tmp_path / "a.json")
    save_tensors({"x": torch.ones(3)}, tmp_path / "a.safetensors")
    save_png(Image.new("RGB", (4, 4), "red"), tmp_path / "a.png")
    before = _hashes(tmp_path)
    done = _run_limited(["-c", WRITES, str(tmp_path)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"disk full while writing {tmp_path / n}"
                                        for n in ("a.json", "a.safetensors", "a.png")]
    assert _hashes(tmp_path) == before  # the old files, and no temporary one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.png", "a.safetensors"]


def test_a_checkpoint_that_does_not_fit_keeps_the_last_one_and_the_run_resumes(shapes_dir, tmp_path, capsys):
    (tmp_path / "recipe.toml").write_text(RECIPE)
    run = tmp_path / "run"
    argv = ["train", "--config", str(tmp_path / "recipe.toml"), "--data", str(shapes_dir)]
    main(argv + ["--out", str(run)])
    kept = _hashes(run / "checkpoints")
    done = _run_limited(["-m", "gouache", *argv, "--resume", str(run), "--steps", "4"])
    errors = [line[line.find("gouache: error:"):] for line in done.stderr.splitlines() if "gouache: error:" in line]
    assert done.returncode == 2 and len(errors) == 1, done.stderr  # one line, beside the progress bars
    assert errors[0] == (f"gouache: error: disk full while writing {run}/checkpoints/step-00000003; the "
                         "checkpoints before it are kept") and "Traceback" not in done.stderr
    assert (run / "latest.txt").read_text() == "checkpoints/step-00000002\n"
    assert _hashes(run / "checkpoints") == kept  # the last good checkpoint, and no half-written one
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]
    main(argv + ["--resume", str(run), "--steps", "4"])
    assert (run / "latest.txt").read_text() == "checkpoints/step-00000004\n"
    steps = [line.split(",")[1] for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3", "4"]


def test_an_export_that_does_not_fit_leaves_the_folder_it_would_replace(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "model"
    main(["export", str(tiny_model_dir), "--out", str(out)])  # fp16: 0.7 MB, past the limit too
    (out / "notes.txt").write_text("mine")
    before = _hashes(tmp_path)
    done = _run_limited(["-m", "gouache", "export", str(tiny_model_dir), "--out", str(out), "--fp32", "--overwrite"])
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"gouache: error: disk full while writing {out}"
    assert _hashes(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary sibling left
