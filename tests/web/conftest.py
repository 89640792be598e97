"""A site exported from the shipped model, served from 127.0.0.1 while the tests run."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shipped_site(tmp_path_factory) -> Path:
    """``gouache export`` of the shipped model with ``--web``: needs onnx, onnxruntime and
    onnxruntime-web (npm, or GOUACHE_ORT_WEB)."""
    pytest.importorskip("onnxruntime")
    from gouache.errors import GouacheError
    from gouache.sampling.pipeline import default_model_dir
    from gouache.web.site import write_site

    try:
        return write_site(default_model_dir(), tmp_path_factory.mktemp("web") / "site")
    except GouacheError as e:
        if "onnxruntime-web" in str(e):
            pytest.skip(str(e))
        raise


@pytest.fixture(scope="session")
def site_server(shipped_site):
    from gouache.web.site import StaticServer

    with StaticServer(shipped_site) as server:
        yield server
