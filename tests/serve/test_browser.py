"""The page of ``gouache serve`` in headless Chromium: type a prompt, paint, get a picture.

Needs Debian's ``chromium`` at /usr/bin/chromium (``apt-get install chromium``) and the
``playwright`` Python package (no browser download); skipped otherwise. Run it with
``pytest -m browser``.
"""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

@pytest.fixture()
def browser_page(chromium):
    """The headless page (tests/conftest.py) and its console errors."""
    _, page, errors = chromium
    return page, errors


@pytest.fixture()
def server(tiny_pipeline):
    pytest.importorskip("fastapi")
    from gouache.serve.app import create_app
    from gouache.serve.background import BackgroundServer

    with BackgroundServer(create_app(tiny_pipeline)) as running:
        yield running


def data_url_image(url: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(url[len(prefix):]))).convert("RGB")


def test_page_paints_a_picture(server, browser_page, tiny_pipeline, tmp_path):
    from playwright.sync_api import expect

    page, errors = browser_page
    page.goto(server.url + "/")
    expect(page.locator("#status")).to_have_class(re.compile(r"\bok\b"))
    expect(page.locator("#sampler option")).to_have_count(6)  # auto, then the five the tiny model runs

    page.click("#generate")  # no prompt yet: the page says so and sends nothing
    expect(page.locator("#error")).to_contain_text("prompt")

    page.fill("#prompt", "red apple")
    page.fill("#steps", "12")
    page.click("#dice")
    seed = int(page.input_value("#seed"))
    page.click("#generate")
    card = page.locator("#history .card")
    expect(card).to_have_count(1, timeout=120_000)
    expect(page.locator("#generate")).to_have_text("Generate")
    expect(page.locator("#error")).to_be_hidden()

    src = card.locator("img").first.get_attribute("src")
    img = data_url_image(src)
    size = tiny_pipeline.image_size
    assert img.size == (size, size)
    assert np.asarray(img).std() > 1  # not a blank picture
    assert page.locator("#canvas img").first.get_attribute("src") == src  # the live view ends on it
    link = card.locator("a[download]").first
    assert link.get_attribute("href") == src
    assert link.get_attribute("download") == f"red-apple-seed{seed}.png"
    expect(card.locator(".chips")).to_contain_text(str(seed))
    expect(page.locator("#caption")).to_contain_text("red apple")
    expect(page.locator("#history-empty")).to_be_hidden()
    page.fill("#prompt", "something else")
    card.locator(".reuse").click()  # the card's settings come back into the form
    assert page.input_value("#prompt") == "red apple" and page.input_value("#seed") == str(seed)
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    assert errors == []


def test_page_repaints_only_where_the_brush_went(server, browser_page, tiny_pipeline, tmp_path):
    import json

    from playwright.sync_api import expect

    page, errors = browser_page
    page.goto(server.url + "/")
    expect(page.locator("#status")).to_have_class(re.compile(r"\bok\b"))
    size = tiny_pipeline.image_size
    upload = Image.fromarray(np.random.default_rng(5).integers(0, 256, (size, size, 3), dtype=np.uint8))
    upload.save(tmp_path / "start.png")

    page.click("#start summary")
    page.set_input_files("#start-file", str(tmp_path / "start.png"))
    canvas = page.locator("#start-canvas")
    expect(canvas).to_be_visible()
    page.focus("#strength")
    page.keyboard.press("ArrowRight")  # 0.75 -> 0.80
    expect(page.locator("#strength-out")).to_have_text("0.80")
    box = canvas.bounding_box()  # a brush stroke down the left third of the picture
    page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.15 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.85 * box["height"], steps=12)
    page.mouse.up()
    expect(page.locator("#mask-clear")).to_be_enabled()

    page.fill("#prompt", "green apple")
    page.fill("#steps", "6")
    with page.expect_request("**/api/generate/stream") as request:
        page.click("#generate")
    sent = json.loads(request.value.post_data)
    assert sent["strength"] == 0.8 and {"image", "mask"} <= set(sent)
    card = page.locator("#history .card")
    expect(card).to_have_count(1, timeout=120_000)
    expect(card.locator(".chips")).to_contain_text("0.80")

    start = np.asarray(Image.open(io.BytesIO(base64.b64decode(sent["image"]))).convert("RGB"))
    assert np.abs(start.astype(int) - np.asarray(upload)).max() <= 2  # the upload, at the model's size
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(sent["mask"]))).convert("L")) >= 128
    assert 0 < mask.mean() < 0.6  # the stroke, not the whole picture
    result = np.asarray(data_url_image(card.locator("img").first.get_attribute("src")))
    assert np.array_equal(result[~mask], start[~mask])  # outside the brush: the picture, exactly
    assert np.abs(result[mask].astype(int) - start[mask]).mean() > 10  # inside: repainted
    page.screenshot(path=str(tmp_path / "start-page.png"), full_page=True)
    assert errors == []


def test_the_shipped_model_answers_a_click_with_a_finished_picture(browser_page, capsys):
    """The shipped model as `gouache serve` runs it: the default settings, one click; the time
    from the click to the finished picture goes to the log (a figure, not a bar: see
    benchmarks/README.md for the measured one)."""
    pytest.importorskip("fastapi")
    import time

    from playwright.sync_api import expect

    from gouache.sampling.pipeline import Pipeline
    from gouache.serve.app import create_app
    from gouache.serve.background import BackgroundServer

    pipe = Pipeline.load(device="cpu")
    with BackgroundServer(create_app(pipe)) as running:
        page, errors = browser_page
        page.goto(running.url + "/")
        expect(page.locator("#status")).to_have_class(re.compile(r"\bok\b"))
        page.fill("#prompt", "red apple")
        times = []
        for k in range(3):  # the first pays for warming up; the others are what a user waits
            start = time.perf_counter()
            page.click("#generate")
            expect(page.locator("#history .card")).to_have_count(k + 1, timeout=120_000)
            times.append(time.perf_counter() - start)
            expect(page.locator("#generate")).to_have_text("Generate")
        chips = " ".join(page.locator("#history .card .chips").first.inner_text().split())
        with capsys.disabled():
            print(f"\nshipped model, default settings ({chips}): click to finished picture "
                  + ", ".join(f"{t:.2f} s" for t in times))
        assert np.asarray(data_url_image(page.locator("#history .card img").first.get_attribute("src"))).std() > 1
        assert errors == []


def test_page_offers_the_servers_adapters_by_name_and_paints_with_the_chosen_one(browser_page, tiny_model_dir,
                                                                                text_encoder, tmp_path):
    """A server started with ``--lora cat.safetensors``: the page preselects it at its scale; the
    request names it (never a path), and "none" paints the base."""
    import json

    from playwright.sync_api import expect

    pytest.importorskip("fastapi")
    import torch

    from gouache.model.lora import adapter_tensors, add_adapter
    from gouache.sampling.options import SamplingOptions
    from gouache.sampling.pipeline import Pipeline
    from gouache.serve.app import create_app
    from gouache.serve.background import BackgroundServer
    from gouache.store.adapters import AdapterInfo, save_adapter
    from gouache.store.checkpoint import load_network
    from gouache.store.fingerprint import weights_fingerprint

    net, _ = load_network(tiny_model_dir)
    add_adapter(net, "a", rank=2, alpha=2.0)
    with torch.no_grad():
        for t in adapter_tensors(net, "a").values():
            t.copy_(0.05 * torch.randn(t.shape, generator=torch.Generator().manual_seed(0)))
    info = AdapterInfo(rank=2, alpha=2.0, convs=True, base_model="tiny",
                       base_sha256=weights_fingerprint(tiny_model_dir))
    cat = save_adapter(net, "a", info, tmp_path / "cat.safetensors")
    pipe = Pipeline.load(tiny_model_dir, device="cpu", text_encoder=text_encoder, lora=[cat])
    page, errors = browser_page
    with BackgroundServer(create_app(pipe)) as server:
        page.goto(server.url + "/")
        expect(page.locator("#status")).to_have_class(re.compile(r"\bok\b"))
        expect(page.locator("#adapter-row")).to_be_visible()
        assert page.locator("#lora option").all_text_contents() == ["none", "cat"]
        assert page.input_value("#lora") == "cat" and float(page.input_value("#lora_scale")) == 1.0
        page.fill("#prompt", "red circle")
        page.fill("#steps", "4")
        page.fill("#seed", "3")
        page.fill("#lora_scale", "0.5")
        pictures = []
        for choice in ("cat", ""):
            page.select_option("#lora", choice)
            if choice:
                page.fill("#lora_scale", "0.5")
            with page.expect_request("**/api/generate/stream") as request:
                page.click("#generate")
            sent = json.loads(request.value.post_data)
            assert (sent.get("lora"), sent.get("lora_scale")) == (("cat", 0.5) if choice else (None, None))
            card = page.locator("#history .card").first
            expect(page.locator("#history .card")).to_have_count(len(pictures) + 1, timeout=120_000)
            pictures.append(np.asarray(data_url_image(card.locator("img").first.get_attribute("src"))))
        expect(page.locator("#history .card").nth(1).locator(".chips")).to_contain_text("cat × 0.50")
    opts = SamplingOptions(steps=4)
    for lora, got in (([f"{cat}:0.5"], pictures[0]), ([], pictures[1])):
        ref = Pipeline.load(tiny_model_dir, device="cpu", text_encoder=text_encoder, lora=lora)
        assert np.array_equal(got, np.asarray(ref.generate("red circle", opts, seed=3, progress=False).images[0]))
    assert errors == []
