"""The exported page in headless Chromium: type a prompt, paint, the picture appears; the same
prompt and seed paint the same pixels; they are the Python pipeline's, up to rounding.

Needs Debian's ``chromium`` at /usr/bin/chromium and the ``playwright`` package (no browser
download); skipped otherwise. Run with ``pytest -m browser``.
"""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

PAINT_TIMEOUT_MS = 240_000  # a busy 2-core CPU: loading the networks and four steps


@pytest.fixture()
def browser(chromium):
    """Headless Chromium (tests/conftest.py): its context, page and console errors."""
    return chromium


def picture(url: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url[len(prefix):]))).convert("RGB"))


def wait_ready(page) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_have_class(re.compile(r"\bok\b"), timeout=PAINT_TIMEOUT_MS)


def paint(page, prompt: str, seed: int, count: int) -> np.ndarray:
    """Paint at the default 4 steps; the history's newest picture once there are ``count``."""
    from playwright.sync_api import expect

    page.fill("#prompt", prompt)
    page.fill("#seed", str(seed))
    page.click("#generate")
    expect(page.locator("#history .card")).to_have_count(count, timeout=PAINT_TIMEOUT_MS)
    expect(page.locator("#generate")).to_have_text("Generate")
    return picture(page.locator("#history .card img").first.get_attribute("src"))


def test_the_page_paints_red_apple_the_same_twice_and_as_python(site_server, browser, tmp_path):
    from playwright.sync_api import expect

    from gouache.sampling.options import SamplingOptions
    from gouache.sampling.pipeline import Pipeline

    context, page, errors = browser
    page.goto(site_server.url + "/")
    wait_ready(page)
    assert page.input_value("#steps") == "4"
    page.click("#generate")  # no prompt yet: the page says so
    expect(page.locator("#error")).to_contain_text("prompt")

    first = paint(page, "red apple", 7, 1)
    assert first.shape == (64, 64, 3) and first.std() > 10  # a picture, not a blank
    card = page.locator("#history .card").first
    link = card.locator("a[download]")
    assert link.get_attribute("download") == "red-apple-seed7.png"
    assert page.locator("#canvas img").get_attribute("src") == link.get_attribute("href")
    expect(card.locator(".chips")).to_contain_text("7")
    again = paint(page, "red apple", 7, 2)
    assert np.array_equal(first, again)  # the same prompt and seed: the same pixels
    other = paint(page, "red apple", 8, 3)
    assert not np.array_equal(first, other)
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

    pipe = Pipeline.load(device="cpu")
    python = np.asarray(pipe.generate("red apple", SamplingOptions(steps=4), seed=7, progress=False).images[0])
    diff = np.abs(first.astype(int) - python.astype(int))
    print(f"\npage vs Python, red apple seed 7: mean abs {diff.mean():.3f}/255, max {diff.max()}/255")
    assert diff.mean() <= 2  # int8 weights and onnxruntime's arithmetic, nothing more
    assert errors == []


def test_the_page_paints_offline_once_loaded(site_server, shipped_site, browser):
    from playwright.sync_api import expect

    assert "gouache-web-SITE" not in (shipped_site / "sw.js").read_text()  # its cache named after the files
    context, page, errors = browser
    page.goto(site_server.url + "/")
    wait_ready(page)
    first = paint(page, "green apple", 3, 1)
    context.set_offline(True)
    page.reload()
    wait_ready(page)
    assert np.array_equal(paint(page, "green apple", 3, 2), first)  # the history outlived the reload
    page.click("#clear")
    expect(page.locator("#history .card")).to_have_count(0)
    expect(page.locator("#history-empty")).to_be_visible()
    expect(page.locator("#clear")).to_be_hidden()
    assert errors == []


def test_the_webgpu_build_paints_what_the_webassembly_build_paints(site_server, browser):
    """?backend=webgpu loads onnxruntime-web's JSPI build; without a GPU adapter here it runs its
    WebAssembly backend, and must paint the same pixels."""
    context, page, errors = browser
    pictures = []
    for k, backend in enumerate(("wasm", "webgpu")):
        page.goto(f"{site_server.url}/?backend={backend}")
        wait_ready(page)
        pictures.append(paint(page, "blue heart", 11, k + 1))
    assert "WebGPU" in page.inner_text("#status")
    assert np.array_equal(*pictures)
    assert errors == []
