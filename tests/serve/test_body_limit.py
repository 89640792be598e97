"""The server's body limit: counted as the bytes arrive, chunked uploads included."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from gouache.serve.app import create_app  # noqa: E402


class CountingReads:
    """The app as the server sees it, counting the body bytes the app asks for."""

    def __init__(self, app) -> None:
        self.app, self.reads = app, []

    async def __call__(self, scope, receive, send) -> None:
        async def counted():
            message = await receive()
            self.reads.append(len(message.get("body", b"")))
            return message

        await self.app(scope, counted, send)


def _chunked_post(url: str, path: str, chunks: int, chunk: bytes) -> bytes:
    """POST a chunked body (no Content-Length) over a raw socket, sending until the server answers
    or stops reading; return the answer's first bytes."""
    import select
    import socket
    from urllib.parse import urlsplit

    host = urlsplit(url)
    with socket.create_connection((host.hostname, host.port), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host.netloc}\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode() + b'3\r\n{"p\r\n')
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        for _ in range(chunks):
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable or not writable:
                break  # the answer came (or the server stopped reading for 30 s)
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            sock.sendall(b"0\r\n\r\n")
        return sock.recv(4096)


def test_chunked_body_is_cut_at_the_limit(tiny_pipeline):
    """No Content-Length to refuse up front: the bytes are counted as they arrive and reading
    stops at the message that passes the limit (uvicorn hands on up to its 64 KiB buffer plus one
    socket read at once), so the app holds about the limit, not the 8 MiB sent here."""
    from gouache.serve.app import MAX_BODY_BYTES
    from gouache.serve.background import BackgroundServer

    app = CountingReads(create_app(tiny_pipeline))
    with BackgroundServer(app) as server:
        for path in ("/api/generate", "/api/generate/stream"):
            app.reads = []
            answer = _chunked_post(server.url, path, chunks=128, chunk=b"a" * 65_536)
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
            assert sum(app.reads[:-1]) <= MAX_BODY_BYTES < sum(app.reads) < 2**20, app.reads
    with TestClient(create_app(tiny_pipeline)) as client:  # a small chunked body still works
        r = client.post("/api/generate", content=iter([b'{"prompt": "red ', b'apple", "steps": 2}']),
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
