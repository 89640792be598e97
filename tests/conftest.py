"""Shared fixtures: the real (frozen, bundled) text encoder, a tiny model, tiny data."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
torch.set_num_threads(min(2, os.cpu_count() or 1))

FIXTURES = Path(__file__).parent / "fixtures"
MAINTAINERS = Path(__file__).resolve().parents[1] / "maintainers"


def load_script(name: str) -> ModuleType:
    """``maintainers/NAME.py`` as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"gouache_maintainers_{name}", MAINTAINERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def maintainer_script():
    """``maintainer_script("remote_gpu")`` imports maintainers/remote_gpu.py."""
    return load_script


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run as fast on one thread, and a busy CPU does not stall OpenMP's two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def text_encoder():
    from gouache.model.text import TextEncoder

    return TextEncoder()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A model folder with a randomly initialised tiny network (16x16 images)."""
    from safetensors.torch import save_file

    from gouache.model.config import ModelConfig
    from gouache.model.unet import PRESETS, UNet
    from gouache.store.files import write_json
    from gouache.store.tensors import contiguous

    folder = tmp_path_factory.mktemp("tiny_model")
    cfg = ModelConfig(unet=PRESETS["tiny"])
    torch.manual_seed(0)
    net = UNet(cfg.unet)
    for p in net.parameters():  # zero-initialised output layers would paint flat grey
        p.data.add_(0.02 * torch.randn_like(p))
    write_json(cfg.to_dict(), folder / "config.json")
    save_file(contiguous(net.state_dict()), folder / "ema.safetensors")
    return folder


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_model_dir, text_encoder):
    from gouache.sampling.pipeline import Pipeline

    return Pipeline.load(tiny_model_dir, device="cpu", text_encoder=text_encoder)


@pytest.fixture(scope="session")
def emoji_fixture() -> Path:
    """36 real emoji images (18 emoji x google/twitter) with metadata.jsonl; 6 in split test."""
    return FIXTURES / "emoji"


@pytest.fixture(scope="session")
def emoji_svg_fixture() -> Path:
    """106 real emoji pictures at 64 px (14 code sequences x 9 styles, where a style has them),
    built by ``gouache data emoji`` (version 2); 3 emoji held out. See tests/data/test_emoji.py."""
    return FIXTURES / "emoji_svg"


@pytest.fixture()
def shapes_dir(tmp_path) -> Path:
    from gouache.data.build.shapes import build_shapes_dataset

    build_shapes_dataset(tmp_path / "shapes", size=16, per_caption=4, seed=0, progress=False)
    return tmp_path / "shapes"


@pytest.fixture()
def client(tiny_pipeline):
    """The web server's app in a test client, its worker running (skipped without FastAPI)."""
    testclient = pytest.importorskip("fastapi.testclient")
    from gouache.serve.app import create_app

    with testclient.TestClient(create_app(tiny_pipeline)) as c:
        yield c


CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium; playwright drives it, downloads none
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture()
def chromium(tmp_path):
    """A fresh headless Chromium profile: its context, its page, and the list its console errors
    collect in. Skipped without /usr/bin/chromium or playwright."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield context, page, errors
        finally:
            context.close()
