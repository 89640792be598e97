"""Adapters on the server: a request chooses one the server was started with, by name, at a
scale; a path or an unknown name is refused; jobs with other adapters never share a batch."""
from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from gouache.model.lora import adapter_tensors, add_adapter
from gouache.sampling.options import SamplingOptions  # noqa: E402
from gouache.sampling.pipeline import Pipeline  # noqa: E402
from gouache.serve.app import create_app  # noqa: E402
from gouache.serve.worker import Job, Worker  # noqa: E402
from gouache.store.adapters import AdapterInfo, save_adapter
from gouache.store.checkpoint import load_network  # noqa: E402
from gouache.store.fingerprint import weights_fingerprint

OPTIONS = SamplingOptions(steps=3)
REQUEST = {"prompt": "red circle", "steps": 3, "seed": 4, "num_images": 2}


def _adapter(model: Path, path: Path, seed: int) -> Path:
    """An adapter file for ``model`` with non-zero weights, as training would leave it."""
    net, _ = load_network(model)
    add_adapter(net, "a", rank=2, alpha=2.0)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in adapter_tensors(net, "a").values():
            t.copy_(0.05 * torch.randn(t.shape, generator=g))
    info = AdapterInfo(rank=2, alpha=2.0, convs=True, base_model=model.name, base_sha256=weights_fingerprint(model))
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_adapter(net, "a", info, path)


@pytest.fixture()
def files(tiny_model_dir, tmp_path) -> dict[str, Path]:
    return {"cat": _adapter(tiny_model_dir, tmp_path / "cat.safetensors", 0),
            "mine": _adapter(tiny_model_dir, tmp_path / "runs" / "mine" / "checkpoints" / "step-00000009"
                             / "adapter.safetensors", 1)}


@pytest.fixture()
def served(tiny_model_dir, text_encoder, files):
    """A server started as ``gouache serve --lora cat.safetensors --lora runs/mine:0.5``."""
    (files["mine"].parents[2] / "latest.txt").write_text("checkpoints/step-00000009\n")
    pipe = Pipeline.load(tiny_model_dir, device="cpu", text_encoder=text_encoder,
                         lora=[files["cat"], f"{files['mine'].parents[2]}:0.5"])
    with TestClient(create_app(pipe)) as client:
        yield client


def _pixels(body: dict) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(im["png"]))).convert("RGB")) for im in body["images"]]


def _expected(tiny_model_dir, text_encoder, lora) -> list[np.ndarray]:
    pipe = Pipeline.load(tiny_model_dir, device="cpu", text_encoder=text_encoder, lora=lora)
    return [np.asarray(im) for im in pipe.generate("red circle", OPTIONS, num_images=2, seed=4,
                                                   progress=False).images]


def test_info_names_the_adapters_the_server_was_started_with(served):
    info = served.get("/api/info").json()
    assert info["adapters"] == [{"name": "cat", "default_scale": 1.0}, {"name": "mine", "default_scale": 0.5}]
    assert info["limits"]["max_lora_scale"] == 2.0


def test_a_request_paints_with_the_adapter_it_names_at_its_scale(served, tiny_model_dir, text_encoder, files):
    base = _expected(tiny_model_dir, text_encoder, [])
    cat = _expected(tiny_model_dir, text_encoder, [f"{files['cat']}:1.5"])
    mine = _expected(tiny_model_dir, text_encoder, [f"{files['mine']}:0.5"])
    assert not np.array_equal(base[0], cat[0]) and not np.array_equal(cat[0], mine[0])
    plain = served.post("/api/generate", json=REQUEST).json()  # no adapter named: none, whatever was loaded
    assert plain["lora"] is None and plain["lora_scale"] is None
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(plain), base, strict=True))
    body = served.post("/api/generate", json=REQUEST | {"lora": "cat", "lora_scale": 1.5}).json()
    assert body["lora"] == "cat" and body["lora_scale"] == 1.5
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(body), cat, strict=True))
    body = served.post("/api/generate", json=REQUEST | {"lora": "mine"}).json()  # its start-up scale
    assert body["lora_scale"] == 0.5
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(body), mine, strict=True))
    off = served.post("/api/generate", json=REQUEST | {"lora": "cat", "lora_scale": 0}).json()
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(off), base, strict=True))  # scale 0: the base


@pytest.mark.parametrize("change, message", [
    ({"lora": "dog"}, "no adapter named 'dog' on this server (it has: cat, mine)"),
    ({"lora": "/etc/passwd"}, "no adapter named"),  # a path is only a name that is not there
    ({"lora": "../cat.safetensors"}, "no adapter named"),
    ({"lora_scale": 1.0}, "lora_scale needs lora"),
    ({"lora": "cat", "lora_scale": 2.5}, "lora_scale"),
    ({"lora": "cat", "lora_scale": -0.5}, "lora_scale"),
    ({"lora": "x" * 101}, "lora"),
])
def test_an_adapter_the_server_does_not_have_is_422(served, change, message):
    r = served.post("/api/generate", json=REQUEST | change)
    assert r.status_code == 422 and message in r.json()["message"]
    assert served.post("/api/generate/stream", json=REQUEST | change).status_code == 422


def test_a_server_without_adapters_offers_none(client):
    assert client.get("/api/info").json()["adapters"] == []
    r = client.post("/api/generate", json=REQUEST | {"lora": "cat"})
    assert r.status_code == 422 and "(it has: none)" in r.json()["message"]


def test_jobs_with_other_adapters_or_scales_never_share_a_batch(tiny_model_dir, text_encoder, files):
    pipe = Pipeline.load(tiny_model_dir, device="cpu", text_encoder=text_encoder, lora=[files["cat"]])
    worker = Worker(pipe, queue_size=8, max_batch=8)
    done: dict[int, dict] = {}
    all_done = threading.Event()

    def sink(k: int):
        def put(kind: str, data: dict) -> None:
            done[k] = data
            if len(done) == 4:
                all_done.set()
        return put

    jobs = [Job("red circle", 4, 1, OPTIONS, sink(k), adapters=(("lora0", scale),),
                lora=None if scale == 0 else "cat", lora_scale=scale or None)
            for k, scale in enumerate((0.0, 1.0, 1.0, 0.5))]
    worker._pending.extend(jobs)  # queued before the worker starts, so that it could batch them all
    worker.start()
    try:
        assert all_done.wait(60)
    finally:
        worker.stop()
    assert worker.stats.batches == 3  # [0] [1.0 1.0] [0.5]
    for k, scale in enumerate((0.0, 1.0, 1.0, 0.5)):
        ref = _expected(tiny_model_dir, text_encoder, [f"{files['cat']}:{scale}"])[0]
        assert np.array_equal(_pixels(done[k])[0], ref)
