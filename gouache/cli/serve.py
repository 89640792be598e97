"""``gouache serve``: parse, load the model, serve it (``gouache.serve.app``) with uvicorn.

FastAPI and uvicorn are imported only when a server starts, so that ``gouache``
works without them.
"""
from __future__ import annotations

import argparse
import os

from gouache.cli.arguments import HELP
from gouache.errors import GouacheError

__all__ = ["add_serve"]


def add_serve(sub) -> None:
    """Add the ``serve`` sub-command to the ``gouache`` parser."""
    p = sub.add_parser("serve", formatter_class=HELP,
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
    p.add_argument("--queue-size", type=int, default=16, help="jobs that may wait (1 to 1024); more get 503")
    p.add_argument("--max-batch", type=int, default=8, help="most pictures painted in one batch (1 to 64)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads, at most this machine's CPUs (None: torch's choice)")
    p.set_defaults(func=_serve)


def _serve(a: argparse.Namespace) -> None:
    """Refuse what cannot work (options, adapters, the port, the model) before listening; then serve."""
    try:
        import uvicorn

        from gouache.serve.app import create_app
    except ImportError as e:
        raise GouacheError(f"gouache serve needs fastapi and uvicorn ({e}): pip install fastapi uvicorn") from None
    from gouache.sampling.pipeline import Pipeline
    from gouache.serve.adapters import check_adapters
    from gouache.serve.background import listen
    from gouache.serve.worker import MAX_BATCH, MAX_QUEUE

    cpus = os.cpu_count() or 1
    if not 0 <= a.port <= 65535:
        raise GouacheError(f"--port must be between 0 and 65535, got {a.port}")
    if not 1 <= a.queue_size <= MAX_QUEUE:
        raise GouacheError(f"--queue-size must be from 1 to {MAX_QUEUE}, got {a.queue_size}")
    if not 1 <= a.max_batch <= MAX_BATCH:
        raise GouacheError(f"--max-batch must be from 1 to {MAX_BATCH}, got {a.max_batch}")
    if a.threads is not None and not 1 <= a.threads <= cpus:
        raise GouacheError(f"--threads must be from 1 to {cpus} (this machine's CPUs), got {a.threads}")
    check_adapters(a.lora)
    sock = listen(a.host, a.port)  # a port in use is refused here, before the model loads
    try:
        if a.threads:
            import torch

            torch.set_num_threads(a.threads)
        pipeline = Pipeline.load(a.model, device=a.device, lora=a.lora)  # each chosen per request (serve/adapters.py)
        app = create_app(pipeline, queue_size=a.queue_size, max_batch=a.max_batch)
    except BaseException:
        sock.close()
        raise
    port = sock.getsockname()[1]
    print(f"gouache: painting {pipeline.image_size}x{pipeline.image_size} pictures on {pipeline.device}; "
          f"open http://{_url_host(a.host)}:{port}/", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has stopped the server, as uvicorn.run does
        pass
    finally:
        sock.close()
    if not server.started:
        raise GouacheError("the server did not start: see the log above")


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
