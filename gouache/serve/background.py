"""Run the server in a background thread of this process: for tests and for Python callers
that want the page and API while they do other work; and the listening socket both it and
``gouache serve`` hand to uvicorn."""
from __future__ import annotations

import errno
import socket
import threading
import time
from typing import Any

from gouache.errors import GouacheError

__all__ = ["BackgroundServer", "listen"]


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (0: a free port), for uvicorn to listen on; a port
    in use or an address that is not this machine's is a GouacheError, before anything is served."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a closed port is free at once
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise GouacheError(f"port {port} is in use; choose another with --port") from None
        raise GouacheError(f"cannot listen on {host} port {port}: {e.strerror or e}") from None
    return sock


class BackgroundServer:
    """Serve an ASGI app with uvicorn in a daemon thread on a free loopback port.

        with BackgroundServer(create_app(pipe)) as server:
            httpx.get(server.url + "/api/health")
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self._sock = listen(host, port)
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
