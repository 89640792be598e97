"""maintainers/remote_gpu.py: the packed prompt encoder encodes the dataset's captions as the full
one does, data packed as its sources is rendered there byte for byte or refused, and a model
split into parts for the return trip merges back bit for bit."""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def remote(maintainer_script):
    return maintainer_script("remote_gpu")


def test_packed_encoder_matches_the_full_one_on_the_captions(remote, emoji_fixture, text_encoder, tmp_path):
    from gouache.data.prompts import dataset_captions
    from gouache.model.text import TextEncoder

    remote.pack(emoji_fixture, tmp_path / "pack", extra=[])
    packed = tmp_path / "pack" / "encoder" / "model.safetensors"
    assert packed.stat().st_size < 30 * 2**20  # the fp32 original is 91 MB
    folder = remote.unpack(tmp_path / "pack", tmp_path / "site")
    small = TextEncoder(str(folder)).eval()
    captions = dataset_captions(emoji_fixture)[1:]
    with torch.no_grad():
        want, got = text_encoder(captions), small(captions)
        assert torch.equal(want.mask, got.mask)
        rel = (want.tokens - got.tokens).norm() / want.tokens.norm()
        assert rel < 3e-3  # fp16 rounding of the weights
        # words no caption uses: their rows were dropped
        full, pruned = text_encoder(["zebra on a unicycle"]).tokens, small(["zebra on a unicycle"]).tokens
        assert (full - pruned).norm() / full.norm() > 0.05


def _built_from_tarballs(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A version 2 emoji build (two styles, 16 px squares at 64 px) from the small npm tarballs
    of tests/data/test_emoji.py, and the cache folder holding them."""
    spec = importlib.util.spec_from_file_location("emoji_build_tests", Path(__file__).parents[1] / "data" / "build" / "test_emoji.py")
    tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests)
    registry = tests.fake_registry(tmp_path / "npm", monkeypatch)
    data = tmp_path / "data"
    tests._build(data, registry, ["noto", "twemoji"])
    return data, registry


def test_data_travels_as_its_sources_and_is_rendered_the_same(remote, tmp_path, monkeypatch):
    data, registry = _built_from_tarballs(tmp_path, monkeypatch)
    remote.pack_sources(data, tmp_path / "pack", registry)
    carried = sorted(f.name for f in (tmp_path / "pack" / "sources").iterdir())
    assert carried == sorted(["emojibase-data-17.0.0.tgz", "iconify-json-noto-1.2.9.tgz",
                              "iconify-json-twemoji-1.2.5.tgz", "images.sha256", "manifest.json", "pins.json"])
    remote.rebuild(tmp_path / "pack", tmp_path / "there", jobs=1)
    here = {f.relative_to(data): f.read_bytes() for f in data.rglob("*") if f.is_file()}
    there = {f.relative_to(tmp_path / "there"): f.read_bytes() for f in (tmp_path / "there").rglob("*") if f.is_file()}
    assert here == there and len(here) > 70
    # pictures that are not the packed ones (another renderer) are refused, not trained on
    (tmp_path / "pack" / "sources" / "images.sha256").write_text("0" * 64)
    with pytest.raises(SystemExit, match="pictures differ"):
        remote.rebuild(tmp_path / "pack", tmp_path / "there2", jobs=1)
    assert not (tmp_path / "there2").exists()  # moved aside, so no later job trains on it
    assert (tmp_path / "there2.rejected" / "metadata.jsonl").is_file()
    # a tarball that is not the one the data was built from is not packed
    (registry / "iconify-json-noto-1.2.9.tgz").write_bytes(b"not it")
    with pytest.raises(SystemExit, match="not the tarball"):
        remote.pack_sources(data, tmp_path / "pack", registry)


def test_shard_and_merge_round_trip(remote, tiny_model_dir, tmp_path):
    remote.shard(tiny_model_dir, tmp_path / "parts", max_mib=0.25)
    parts = sorted((tmp_path / "parts").glob("ema-*.safetensors"))
    assert len(parts) > 1 and all(p.stat().st_size <= 0.25 * 2**20 + 2**16 for p in parts)
    index = json.loads((tmp_path / "parts" / "ema.safetensors.index.json").read_text())["weight_map"]
    assert set(index.values()) == {p.name for p in parts}
    remote.merge(tmp_path / "parts", tmp_path / "merged")
    want, got = load_file(tiny_model_dir / "ema.safetensors"), load_file(tmp_path / "merged" / "ema.safetensors")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert (tmp_path / "merged" / "config.json").read_text() == (tiny_model_dir / "config.json").read_text()


def test_merge_refuses_missing_parts(remote, tiny_model_dir, tmp_path):
    remote.shard(tiny_model_dir, tmp_path / "parts", max_mib=0.25)
    next((tmp_path / "parts").glob("ema-*.safetensors")).unlink()
    with pytest.raises(SystemExit, match="parts missing"):
        remote.merge(tmp_path / "parts", tmp_path / "merged")


def _job(remote, data: Path, tmp_path: Path, config: str, sources: Path | None = None,
         **env: str) -> tuple[list[str], dict, Path]:
    """A checkout as the GPU machine sees it (the repository not installed, the packed
    encoder and the data carried in .gpu/, or the data's npm ``sources`` instead): the job's
    command, environment and folder."""
    repo = Path(__file__).resolve().parents[2]
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("gouache", "maintainers"):
        (root / name).symlink_to(repo / name)
    remote.pack(data, root / ".gpu", extra=[])
    if sources is None:
        shutil.copytree(data, root / ".gpu" / "data" / "emoji")
    else:
        remote.pack_sources(data, root / ".gpu", sources)
    (root / "tiny.toml").write_text(config + '[model]\npreset = "tiny"\n')
    (tmp_path / "out").mkdir()
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "OUT": str(tmp_path / "out"), "SITE": str(tmp_path / "site"), "BUDGET": "240",
           "LOAD_S": "30", "CONFIG": "tiny.toml", "DATA": ".gpu/data/emoji", "RUN": "runs/tiny"} | env
    return [str(repo / "maintainers" / "remote_gpu_job.sh")], env, root


def _paints(remote, parts: Path, tmp_path: Path) -> None:
    from gouache.sampling.options import SamplingOptions
    from gouache.sampling.pipeline import Pipeline

    remote.merge(parts, tmp_path / "model")
    pipe = Pipeline.load(tmp_path / "model", device="cpu")
    assert pipe.generate(["red apple"], SamplingOptions(steps=2), seeds=[0], progress=False).images[0].size == (16, 16)


def _run(cmd: list[str], env: dict, root: Path, *, until=None, timeout: float = 300) -> int | None:
    """Run the job in its own session until it ends or ``until()`` holds; then kill its whole
    process group, as the machine does at its time limit on a command. The exit status, None if killed."""
    job = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while job.poll() is None and time.monotonic() < deadline and not (until and until()):
            time.sleep(0.2)
        return job.poll()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()


def test_job_trains_and_returns_a_model_in_parts(remote, emoji_fixture, tmp_path):
    cmd, env, root = _job(remote, emoji_fixture, tmp_path, "steps = 6\nbatch_size = 4\nwarmup = 2\n"
                          "log_every = 2\nsample_every = 6\neval_every = 6\n")
    out = tmp_path / "out"
    assert _run(cmd, env, root) == 0, (out / "train.log").read_text()
    log = (out / "train.log").read_text()
    assert "trained to step 6" in log
    assert f"encoder package {tmp_path / 'site'}" in log  # the packed encoder, not an installed one
    assert (out / "log.csv").is_file() and (out / "last_samples.png").is_file()
    _paints(remote, out / "model", tmp_path)
    # a second job into the same run folder would return the first one's checkpoints as its own
    assert _run(cmd, env, root) == 1
    assert "already holds a run" in (out / "train.log").read_text()


def test_job_renders_data_carried_as_its_sources(remote, tmp_path, monkeypatch):
    data, registry = _built_from_tarballs(tmp_path, monkeypatch)
    cmd, env, root = _job(remote, data, tmp_path, "steps = 2\nbatch_size = 4\nsample_every = 0\n"
                          "eval_every = 0\n", sources=registry)
    out = tmp_path / "out"
    assert _run(cmd, env, root) == 0, (out / "train.log").read_text()
    log = (out / "train.log").read_text()
    assert "pictures, the same bytes as packed" in log and "data rendered in" in log
    assert "trained to step 2" in log
    built = root / ".gpu" / "data" / "emoji"
    assert (built / "metadata.jsonl").read_bytes() == (data / "metadata.jsonl").read_bytes()


def test_job_cut_off_at_the_hard_limit_still_returns_weights(remote, emoji_fixture, tmp_path):
    """The machine kills the whole job (no SIGTERM, no time to export): $OUT already holds
    the latest checkpoint, copied while training ran, and nothing of the job runs on."""
    cmd, env, root = _job(remote, emoji_fixture, tmp_path, "steps = 100000\nbatch_size = 4\n"
                          "checkpoint_every = 20\nsample_every = 0\neval_every = 0\n", SNAP_S="1")
    out = tmp_path / "out"
    index = out / "model" / "ema.safetensors.index.json"
    assert _run(cmd, env, root, until=index.exists, timeout=180) is None, (out / "train.log").read_text()
    assert index.exists(), (out / "train.log").read_text()
    size = (out / "train.log").stat().st_size
    time.sleep(2)  # training's progress bar writes to the log several times a second
    assert (out / "train.log").stat().st_size == size
    _paints(remote, out / "model", tmp_path)
