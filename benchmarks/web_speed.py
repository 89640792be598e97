"""The exported page (`gouache export --web`) against `gouache serve`'s page, in headless Chromium.

    python benchmarks/web_speed.py                    # exports the shipped model's site first
    python benchmarks/web_speed.py --site OUT         # a site exported before

For each page: the first load (a fresh browser profile, from navigation to "ready") with the
bytes it downloaded, then "red apple" painted --repeats times at the default 4 steps, each timed
from the click to the finished picture in the history; the median is reported. The server's page
runs PyTorch in this process, the exported page onnxruntime-web's WebAssembly in the browser
(one thread: http.server does not send the headers that allow threads). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def measure(pw, url: str, repeats: int, profile: Path, served=None) -> dict:
    """``served()``: the bytes the server sent so far, where it counts them (the page's own count
    misses what its service worker fetched)."""
    context = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                    args=ARGS)
    page = context.pages[0] if context.pages else context.new_page()
    sizes: list[int] = []

    def count(response) -> None:
        try:
            sizes.append(len(response.body()))
        except Exception:  # a redirect or an aborted request has no body
            pass

    page.on("response", count)
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("#status.ok", timeout=600_000)
    load = time.perf_counter() - start
    loaded = served() if served else sum(sizes)
    page.fill("#prompt", "red apple")
    times = []
    for k in range(repeats):
        page.fill("#seed", str(k))
        start = time.perf_counter()
        page.click("#generate")
        page.locator("#history .card").nth(k).wait_for(timeout=600_000)  # no script: the server's page forbids eval
        times.append(time.perf_counter() - start)
        page.wait_for_selector("#generate:not(.stop)")
    context.close()
    return {"load_s": load, "mb": loaded / 1e6, "paint_s": statistics.median(times), "all": times}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--site", type=Path, default=None, help="an exported site (default: export the shipped model)")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    from playwright.sync_api import sync_playwright

    from gouache.cli.serve import BackgroundServer
    from gouache.sampling.pipeline import Pipeline, default_model_dir
    from gouache.serve.app import create_app
    from gouache.web.site import StaticServer, write_site

    with tempfile.TemporaryDirectory() as tmp:
        site = a.site or write_site(default_model_dir(), Path(tmp) / "site")
        rows = {}
        with sync_playwright() as pw:
            with StaticServer(site) as server:
                rows["exported page (onnxruntime-web, WebAssembly)"] = measure(
                    pw, server.url + "/", a.repeats, Path(tmp) / "p1", served=lambda: server.bytes_sent)
            with BackgroundServer(create_app(Pipeline.load(device="cpu"))) as server:
                rows["gouache serve (PyTorch, this machine)"] = measure(pw, server.url + "/", a.repeats,
                                                                       Path(tmp) / "p2")
    print(f"\n| page | first load, s | downloaded, MB | click to picture, 4 steps, median of {a.repeats}, s |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['load_s']:.1f} | {r['mb']:.1f} | {r['paint_s']:.2f} "
              f"({', '.join(f'{t:.2f}' for t in r['all'])}) |")


if __name__ == "__main__":
    main()
