"""The ``gouache serve`` command, and a way to run the server in a background thread.

FastAPI and uvicorn are imported only when a server starts, so that ``gouache``
works without them.
"""
from __future__ import annotations

import argparse
import socket
import threading
import time
from typing import Any

from gouache.errors import GouacheError

__all__ = ["add_serve", "BackgroundServer"]


def add_serve(sub) -> None:
    """Add the ``serve`` sub-command to the ``gouache`` parser."""
    p = sub.add_parser("serve", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       help="a web page and JSON API that paint from prompts",
                       description="Load the model once and serve a page at / and a JSON API at /api "
                                   "(OpenAPI at /openapi.json). Binds to this machine only unless "
                                   "--host says otherwise.")
    p.add_argument("--model", default=None, help="model or run folder (None: the shipped emoji model)")
    p.add_argument("--lora", action="append", default=[], metavar="FILE[:SCALE]",
                   help="a low-rank adapter (its .safetensors, or its run folder) that the page and API may "
                        "choose, by its run folder's or file's name, at SCALE unless they say (default 1); "
                        "repeat for several")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every network)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--queue-size", type=int, default=16, help="jobs that may wait; more get 503")
    p.add_argument("--max-batch", type=int, default=8, help="most pictures painted in one batch")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (None: torch's choice)")
    p.set_defaults(func=_serve)


def _serve(a: argparse.Namespace) -> None:
    try:
        import uvicorn

        from gouache.serve.app import create_app
    except ImportError as e:
        raise GouacheError(f"gouache serve needs fastapi and uvicorn ({e}): pip install fastapi uvicorn") from None
    from gouache.sampling.pipeline import Pipeline

    if not 0 <= a.port <= 65535:
        raise GouacheError(f"--port must be between 0 and 65535, got {a.port}")
    if a.queue_size < 1 or a.max_batch < 1:
        raise GouacheError("--queue-size and --max-batch must be at least 1")
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    pipeline = Pipeline.load(a.model, device=a.device, lora=a.lora)  # each chosen per request (serve/adapters.py)
    app = create_app(pipeline, queue_size=a.queue_size, max_batch=a.max_batch)
    print(f"gouache: painting {pipeline.image_size}x{pipeline.image_size} pictures on {pipeline.device}; "
          f"open http://{_url_host(a.host)}:{a.port}/", flush=True)
    uvicorn.run(app, host=a.host, port=a.port, log_level="info")


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host


class BackgroundServer:
    """Serve an ASGI app with uvicorn in a daemon thread on a free loopback port.

        with BackgroundServer(create_app(pipe)) as server:
            httpx.get(server.url + "/api/health")
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="gouache-server", daemon=True)

    def __enter__(self) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(15)
        self._sock.close()
