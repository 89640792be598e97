"""The JSON API and the worker with a start picture: image-to-image and inpainting."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from test_api import SETTINGS, Gated, Sink, decode, run_gated  # noqa: E402  (the API tests' helpers)

from gouache.sampling.options import SamplingOptions  # noqa: E402
from gouache.serve.worker import Job, Worker, render  # noqa: E402


def _png64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def test_start_picture_and_mask_repaint_only_inside_the_mask(client, tiny_pipeline):
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[4:12, 4:12] = 255
    req = {"prompt": "green apple", "steps": 4, "seed": 3, "image": _png64(picture),
           "mask": "data:image/png;base64," + _png64(Image.fromarray(mask)), "strength": 0.8}
    body = client.post("/api/generate", json=req).json()
    assert body["strength"] == 0.8
    out, src = np.asarray(decode(body["images"][0]["png"]).convert("RGB")), np.asarray(picture)
    keep = mask == 0
    assert np.array_equal(out[keep], src[keep]) and not np.array_equal(out[~keep], src[~keep])
    ref = tiny_pipeline.generate("green apple", SamplingOptions(steps=4), seed=3, image=picture,
                                 mask=Image.fromarray(mask), strength=0.8, progress=False)
    assert np.array_equal(out, np.asarray(ref.images[0]))  # the same as the Python API


@pytest.mark.parametrize("change, field", [
    ({"image": "not base64!"}, "image"),
    ({"image": base64.b64encode(b"GIF89a....").decode()}, "image"),
    ({"mask": "AAAA"}, "mask"),
    ({"strength": 0.5}, "need image"),
    ({"image": "PLACEHOLDER", "strength": 1.5}, "strength"),
])
def test_bad_start_pictures_are_422_naming_the_field(client, change, field):
    if change.get("image") == "PLACEHOLDER":
        change = {**change, "image": _png64(Image.new("RGB", (8, 8)))}
    r = client.post("/api/generate", json={"prompt": "red apple", "steps": 2, **change})
    assert r.status_code == 422 and field in json.dumps(r.json())


def test_a_job_with_a_start_picture_is_painted_alone(tiny_pipeline):
    gated = Gated(tiny_pipeline)
    worker = Worker(gated, queue_size=8, max_batch=8)
    picture = Image.new("RGB", (16, 16), (200, 30, 30))
    sinks = [Sink() for _ in range(4)]
    jobs = [Job("first", 1, 1, SETTINGS, sinks[0]),
            Job("apple", 2, 1, SETTINGS, sinks[1], image=picture, strength=0.5),
            Job("pear", 3, 1, SETTINGS, sinks[2]), Job("plum", 4, 1, SETTINGS, sinks[3])]
    run_gated(worker, gated, jobs, sinks)
    assert worker.stats.batches == 3  # [first] [apple, alone: its own picture] [pear plum]
    done = sinks[1].events[-1][1]
    assert done["strength"] == 0.5
    alone = render(tiny_pipeline, ["apple"], [2], SETTINGS, start=jobs[1])
    assert np.array_equal(np.asarray(decode(done["images"][0]["png"]).convert("RGB")), np.asarray(alone[0]))
