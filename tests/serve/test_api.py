"""The JSON API of ``gouache serve`` with the tiny random model: answers, validation, queue, streaming."""
from __future__ import annotations

import base64
import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from gouache.sampling.options import SamplingOptions  # noqa: E402
from gouache.serve.app import create_app  # noqa: E402
from gouache.serve.worker import Job, Worker, render  # noqa: E402

SETTINGS = SamplingOptions(sampler="dpmpp_2m", steps=4, guidance=3.0, negative_prompt="")


class Gated:
    """The real pipeline, except that painting waits for ``gate`` (and ``entered`` says it got there)."""

    def __init__(self, pipe) -> None:
        self._pipe = pipe
        self.gate = threading.Event()
        self.entered = threading.Event()

    def __getattr__(self, name: str):
        return getattr(self._pipe, name)

    def generate(self, *args, **kwargs):
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return self._pipe.generate(*args, **kwargs)


class Slow:
    """The real pipeline with every network call slowed down, so that a client can leave mid-way."""

    def __init__(self, pipe, delay: float = 0.02) -> None:
        self._pipe = pipe
        self.delay = delay

    def generate(self, *args, callback=None, **kwargs):
        def slow_step(i, total, denoised):
            time.sleep(self.delay)
            if callback is not None:
                callback(i, total, denoised)

        return self._pipe.generate(*args, callback=slow_step, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._pipe, name)


class Sink:
    """Collects a job's events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.finished = threading.Event()

    def __call__(self, kind: str, data: dict) -> None:
        self.events.append((kind, data))
        if kind in ("done", "error"):
            self.finished.set()

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]


def run_gated(worker: Worker, gated: Gated, jobs: list[Job], sinks: list[Sink]) -> None:
    """The first job starts painting; the others queue while it is held at the gate; then all finish."""
    try:
        worker.submit(jobs[0])
        assert gated.entered.wait(10)
        for job in jobs[1:]:
            worker.submit(job)
        gated.gate.set()
        for sink in sinks:
            assert sink.finished.wait(30)
    finally:
        worker.stop()


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_generate_returns_pngs_and_settings(client, tiny_pipeline):
    r = client.post("/api/generate", json={"prompt": "  red apple ", "negative_prompt": "blurry", "steps": 4,
                                           "guidance": 2.5, "sampler": "euler", "seed": 11, "num_images": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("prompt", "negative_prompt", "sampler", "steps", "guidance", "seed",
                                 "num_images")} == {"prompt": "red apple", "negative_prompt": "blurry",
                                                    "sampler": "euler", "steps": 4, "guidance": 2.5,
                                                    "seed": 11, "num_images": 2}
    assert [im["seed"] for im in body["images"]] == [11, 12]
    size = tiny_pipeline.image_size
    for im in body["images"]:
        img = decode(im["png"])
        assert img.format == "PNG" and img.size == (size, size) == (im["width"], im["height"])


def test_defaults_fill_steps_and_pick_a_seed(client):
    body = client.post("/api/generate", json={"prompt": "sun"}).json()
    assert body["sampler"] == "dpmpp_2m" and body["steps"] == 20 and body["guidance"] == 3.0
    assert isinstance(body["seed"], int) and 0 <= body["seed"] < 2**31
    assert body["images"][0]["seed"] == body["seed"]


@pytest.mark.parametrize("change, field", [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "x" * 301}, "prompt"),
    ({"prompt": None}, "prompt"),
    ({"negative_prompt": "y" * 301}, "negative_prompt"),
    ({"steps": 0}, "steps"),
    ({"steps": 201}, "steps"),
    ({"steps": 2.5}, "steps"),
    ({"steps": "20"}, "steps"),
    ({"guidance": -0.5}, "guidance"),
    ({"guidance": 20.5}, "guidance"),
    ({"guidance": "high"}, "guidance"),
    ({"sampler": "nope"}, "sampler"),
    ({"sampler": "../../etc/passwd"}, "sampler"),
    ({"num_images": 0}, "num_images"),
    ({"num_images": 9}, "num_images"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**40}, "seed"),
    ({"model": "/etc/passwd"}, "model"),
    ({"out": "/tmp/x.png"}, "out"),
])
def test_each_invalid_field_is_422_naming_it(client, change, field):
    r = client.post("/api/generate", json={"prompt": "red apple", "steps": 2, **change})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["message"].startswith(f"{field}:")
    assert any(err["loc"][-1] == field for err in body["detail"])


def test_missing_prompt_is_422(client):
    r = client.post("/api/generate", json={"steps": 2})
    assert r.status_code == 422 and r.json()["message"].startswith("prompt:")


@pytest.mark.parametrize("raw", [b'{"prompt": "x",', b"not json", b"[1, 2]", b'"red apple"', b""])
def test_malformed_json_is_422(client, raw):
    for path in ("/api/generate", "/api/generate/stream"):
        r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (raw, r.text)
        assert r.json()["message"].startswith("body:")


def test_oversized_body_is_413(client):
    r = client.post("/api/generate", content=b'{"prompt": "' + b"a" * 300_000 + b'"}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_same_seed_gives_the_same_bytes(client):
    req = {"prompt": "blue whale", "steps": 4, "seed": 123, "num_images": 2}
    a, b = (client.post("/api/generate", json=req).json() for _ in range(2))
    assert [im["png"] for im in a["images"]] == [im["png"] for im in b["images"]]
    c = client.post("/api/generate", json={**req, "seed": 124}).json()
    assert c["images"][0]["png"] == a["images"][1]["png"]  # image k uses seed + k
    assert c["images"][0]["png"] != a["images"][0]["png"]


def test_same_pictures_as_pipeline_generate(client, tiny_pipeline):
    req = {"prompt": "red apple", "negative_prompt": "green", "steps": 5, "guidance": 4.0, "sampler": "heun",
           "seed": 7, "num_images": 2}
    body = client.post("/api/generate", json=req).json()
    opts = SamplingOptions(negative_prompt="green", steps=5, guidance=4.0, sampler="heun")
    ref = tiny_pipeline.generate("red apple", opts, seed=7, num_images=2, progress=False)
    for im, expected in zip(body["images"], ref.images, strict=True):
        assert np.array_equal(np.asarray(decode(im["png"]).convert("RGB")), np.asarray(expected))


def test_compatible_jobs_share_a_batch_and_keep_their_pictures(tiny_pipeline):
    gated = Gated(tiny_pipeline)
    worker = Worker(gated, queue_size=8, max_batch=3)
    sinks = [Sink() for _ in range(5)]
    other = SamplingOptions(sampler="euler", steps=3, guidance=3.0, negative_prompt="")
    jobs = [Job("first", 1, 1, SETTINGS, sinks[0]), Job("apple", 5, 1, SETTINGS, sinks[1]),
            Job("pear", 9, 2, SETTINGS, sinks[2]), Job("kiwi", 2, 1, other, sinks[3]),
            Job("plum", 3, 1, SETTINGS, sinks[4])]  # a 4th picture: waits for the next batch
    run_gated(worker, gated, jobs, sinks)
    assert worker.stats.batches == 4 and worker.stats.served == 5  # [first] [apple pear] [kiwi] [plum]
    for job, sink in zip(jobs, sinks):
        kind, data = sink.events[-1]
        assert kind == "done" and [im["seed"] for im in data["images"]] == [job.seed + k for k in range(job.num_images)]
        alone = render(tiny_pipeline, [job.prompt] * job.num_images,
                       [job.seed + k for k in range(job.num_images)], job.options)
        for im, ref in zip(data["images"], alone, strict=True):
            assert np.array_equal(np.asarray(decode(im["png"]).convert("RGB")), np.asarray(ref))


def test_full_queue_answers_503_with_retry_after(tiny_pipeline):
    gated = Gated(tiny_pipeline)
    app = create_app(gated, queue_size=1, max_batch=1)
    with TestClient(app) as client:
        worker = app.state.worker
        running, waiting = Sink(), Sink()
        worker.submit(Job("running", 0, 1, SETTINGS, running))
        assert gated.entered.wait(10)
        worker.submit(Job("waiting", 0, 1, SETTINGS, waiting))  # the queue (size 1) is now full
        for path in ("/api/generate", "/api/generate/stream"):
            r = client.post(path, json={"prompt": "one more", "steps": 2})
            assert r.status_code == 503, r.text
            assert int(r.headers["Retry-After"]) >= 1
        assert client.get("/api/health").json()["rejected"] == 2
        gated.gate.set()
        assert running.finished.wait(30) and waiting.finished.wait(30)
        assert client.post("/api/generate", json={"prompt": "now", "steps": 2}).status_code == 200


def parse_sse(lines) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line[5:])))
    return events


def test_stream_sends_progress_then_the_final_picture(client, tiny_pipeline):
    req = {"prompt": "yellow star", "steps": 10, "seed": 3, "num_images": 2}
    with client.stream("POST", "/api/generate/stream", json=req) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(r.iter_lines())
    kinds = [k for k, _ in events]
    assert kinds[0] == "queued" and kinds[-1] == "result"
    progress = [d for k, d in events if k == "progress"]
    assert len(progress) >= 3 and all(p["total"] == 10 for p in progress)
    assert [p["step"] for p in progress] == sorted({p["step"] for p in progress}) and progress[-1]["step"] < 10
    size = tiny_pipeline.image_size
    assert all(decode(b64).size == (size, size) for p in progress for b64 in p["images"])
    result = events[-1][1]
    assert len(result["images"]) == 2 and decode(result["images"][0]["png"]).size == (size, size)
    plain = client.post("/api/generate", json=req).json()
    assert [im["png"] for im in plain["images"]] == [im["png"] for im in result["images"]]


def test_cancelled_queued_job_never_runs(tiny_pipeline):
    gated = Gated(tiny_pipeline)
    worker = Worker(gated, queue_size=4)
    first, second, third = Sink(), Sink(), Sink()
    try:
        worker.submit(Job("first", 0, 1, SETTINGS, first))
        assert gated.entered.wait(10)
        job = Job("second", 0, 1, SETTINGS, second)
        worker.submit(job)
        job.cancel()
        worker.submit(Job("third", 0, 1, SETTINGS, third))
        gated.gate.set()
        assert first.finished.wait(30) and third.finished.wait(30)
    finally:
        worker.stop()
    assert second.events == [] and worker.stats.cancelled == 1 and worker.stats.served == 2


def test_cancel_stops_sampling_midway(tiny_pipeline):
    worker = Worker(tiny_pipeline, preview_every=1)
    sink = Sink()
    job = Job("red apple", 0, 1, SamplingOptions("euler", 60, 3.0, ""), sink, previews=True)

    def cancel_on_first_preview(kind: str, data: dict) -> None:
        sink(kind, data)
        job.cancel()

    job.sink = cancel_on_first_preview
    try:
        worker.submit(job)
        wait_until(lambda: worker.stats.cancelled == 1)
        assert 1 <= len(sink.events) < 5 and "done" not in sink.kinds()
        after = Sink()
        worker.submit(Job("pear", 0, 1, SETTINGS, after))  # the worker lives on
        assert after.finished.wait(30) and after.kinds()[-1] == "done"
    finally:
        worker.stop()


def test_client_that_disconnects_cancels_its_job(tiny_pipeline):
    import httpx

    from gouache.serve.background import BackgroundServer

    app = create_app(Slow(tiny_pipeline), preview_every=1)
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        req = {"prompt": "slow apple", "steps": 200, "sampler": "euler"}
        with http.stream("POST", "/api/generate/stream", json=req) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("event: progress"):
                    break  # leave mid-way
        wait_until(lambda: http.get("/api/health").json()["cancelled"] == 1)
        with pytest.raises(httpx.ReadTimeout):  # the plain endpoint: a client that gives up
            http.post("/api/generate", json=req, timeout=0.5)
        wait_until(lambda: http.get("/api/health").json()["cancelled"] == 2)
        wait_until(lambda: http.get("/api/health").json()["running"] == 0)
        health = http.get("/api/health").json()
        assert health["served"] == 0 and health["status"] == "ok"


def test_info_health_and_page(client, tiny_pipeline):
    info = client.get("/api/info").json()
    assert info["image_size"] == tiny_pipeline.image_size
    assert {s["name"] for s in info["samplers"]} >= {"dpmpp_2m", "ddpm"}
    assert info["limits"]["max_steps"] == 200 and info["limits"]["max_images"] == 8
    assert client.get("/api/health").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.split("<body")[0]  # no CDN in the head
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    assert client.get("/static/../../pyproject.toml").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/generate", "/api/generate/stream", "/api/info", "/api/health"} <= set(paths)


def test_cli_has_serve():
    from gouache.cli.main import build_parser

    args = build_parser().parse_args(["serve", "--port", "8000", "--model", "m"])
    assert (args.host, args.port, args.model, args.queue_size) == ("127.0.0.1", 8000, "m", 16)
