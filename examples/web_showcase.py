"""The ten showcase prompts painted by the exported page in headless Chromium, beside the Python
pipeline's pictures for the same prompts and seeds (the student, 4 steps): docs/images/web_showcase.png.

    python examples/web_showcase.py --out docs/images/web_showcase.png

Needs the ``web`` and ``browser`` extras, Debian's chromium and npm (the export fetches
onnxruntime-web). Prints the mean absolute difference of each pair, in 1/255.
"""
from __future__ import annotations

import argparse
import base64
import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from gouache.data.emoji_prompts import DEFAULT_SAMPLE_PROMPTS
from gouache.images import labelled_strip
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.store.checkpoint import default_model_dir
from gouache.web.site import StaticServer, write_site

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 240_000


def page_pictures(url: str, prompts: list[str], seeds: list[int]) -> dict[tuple[str, int], Image.Image]:
    """Type each prompt and seed into the page, click, and read the newest picture of its history."""
    from playwright.sync_api import expect, sync_playwright

    out = {}
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium",
                                                        headless=True, args=ARGS)
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(url)
        expect(page.locator("#status")).to_contain_text("ready", timeout=TIMEOUT_MS)
        for prompt in prompts:
            for seed in seeds:
                page.fill("#prompt", prompt)
                page.fill("#seed", str(seed))
                page.click("#generate")
                expect(page.locator("#history .card")).to_have_count(len(out) + 1, timeout=TIMEOUT_MS)
                expect(page.locator("#generate")).to_have_text("Generate")
                src = page.locator("#history .card img").first.get_attribute("src")
                data = base64.b64decode(src.split(",", 1)[1])
                out[prompt, seed] = Image.open(io.BytesIO(data)).convert("RGB")
        context.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/images/web_showcase.png"))
    p.add_argument("--seeds", default="0,1")
    a = p.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    prompts = list(DEFAULT_SAMPLE_PROMPTS)
    with tempfile.TemporaryDirectory() as tmp:
        site = write_site(default_model_dir(), Path(tmp) / "site")
        with StaticServer(site) as server:
            web = page_pictures(server.url + "/", prompts, seeds)
    pipe = Pipeline.load(device="cpu")
    rows, names = [], []
    for seed in seeds:
        python = [pipe.generate(q, SamplingOptions(steps=4), seed=seed, progress=False).images[0] for q in prompts]
        page = [web[q, seed] for q in prompts]
        for q, x, y in zip(prompts, page, python):
            diff = np.abs(np.asarray(x, dtype=int) - np.asarray(y, dtype=int))
            print(f"{q!r:24} seed {seed}: page vs Python mean {diff.mean():.2f}/255, max {diff.max()}/255")
        rows += [page, python]
        names += [f"page, seed {seed}", f"Python, seed {seed}"]
    labelled_strip(rows, prompts, row_names=names, scale=2).save(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
