"""A site exported from the shipped model, served from 127.0.0.1 while the tests run."""
from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test's output is not the place for request lines
        pass


class StaticServer:
    """``python -m http.server -d FOLDER`` on a free port of 127.0.0.1, in a thread."""

    def __init__(self, folder: Path) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "StaticServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


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
    with StaticServer(shipped_site) as server:
        yield server
