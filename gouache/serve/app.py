"""The web server: a page at ``/`` and a JSON API under ``/api`` (OpenAPI at ``/openapi.json``).

    app = create_app(Pipeline.load())
    uvicorn.run(app, host="127.0.0.1", port=7860)

``POST /api/generate`` answers with the pictures; ``POST /api/generate/stream``
answers with Server-Sent Events: ``queued``, ``progress`` (the predicted clean
pictures every few steps), then ``result`` or ``error``. Both go through the
one bounded queue of :class:`~gouache.serve.worker.Worker`: when it is full the
answer is 503 with ``Retry-After``. A client that goes away cancels its job.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from gouache.errors import GouacheError
from gouache.sampling.options import AUTO, SamplingOptions
from gouache.sampling.samplers import SAMPLERS
from gouache.serve.adapters import AdapterChoice, adapter_choices, adapter_scales
from gouache.serve.schemas import (
    MAX_REQUEST_SEED,
    AdapterOption,
    GenerateRequest,
    GenerateResponse,
    HealthResponse,
    InfoResponse,
    SamplerInfo,
)
from gouache.serve.worker import Job, QueueFull, Worker

__all__ = ["create_app"]

log = logging.getLogger("gouache.serve")
STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 262_144  # a few short fields, and perhaps a start picture and mask (see schemas)
PAGE_HEADERS = {  # the page uses its own files only: no CDN, no inline script
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
BUSY = {503: {"description": "The queue is full: retry after ``Retry-After`` seconds"}}


def create_app(pipeline, *, queue_size: int = 16, max_batch: int = 8,
               preview_every: int | None = None) -> FastAPI:
    """A FastAPI app serving ``pipeline`` (loaded once, painted by one worker thread).

    ``queue_size``: jobs that may wait; ``max_batch``: most pictures per batch;
    ``preview_every``: steps between streamed previews (default: about 10 per job).
    """
    worker = Worker(pipeline, queue_size=queue_size, max_batch=max_batch, preview_every=preview_every)
    adapters = adapter_choices(pipeline)  # those the server was started with; a request names one

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker.start()
        yield
        await asyncio.to_thread(worker.stop)

    app = FastAPI(title="gouache", version="0.1.0", lifespan=lifespan,
                  description="Paint pictures from a prompt with a gouache diffusion model.")
    app.state.worker = worker
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(GouacheError)(_refused)
    app.add_middleware(_BodyLimit)
    app.add_middleware(_WholeAnswers)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})

    @app.get("/api/health", response_model=HealthResponse, summary="Is the worker running")
    async def health() -> dict[str, Any]:
        s = worker.stats
        return {"status": "ok" if worker.alive else "stopped", "queued": worker.queued,
                "running": s.running, "served": s.served, "cancelled": s.cancelled,
                "failed": s.failed, "rejected": s.rejected, "batches": s.batches}

    @app.get("/api/info", response_model=InfoResponse, summary="The model, samplers, defaults and limits")
    async def info() -> InfoResponse:
        return InfoResponse(image_size=pipeline.image_size, queue_size=queue_size, max_batch=max_batch,
                            device=str(pipeline.device),
                            adapters=[AdapterOption(name=c.name, default_scale=c.default_scale)
                                      for c in adapters.values()],
                            samplers=_samplers(pipeline))

    @app.post("/api/generate", response_model=GenerateResponse, responses=BUSY, summary="Paint pictures")
    async def generate(req: GenerateRequest, request: Request) -> Any:
        job, events, _ = _submit(worker, req, adapters, previews=False)
        try:
            while True:
                try:
                    kind, data = await asyncio.wait_for(events.get(), timeout=0.5)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return Response(status_code=499)  # nobody is listening any more
                    continue
                if kind == "done":
                    return data
                if kind == "error":
                    raise HTTPException(data["status"], data["detail"])
        finally:
            job.cancel()  # a no-op once answered; frees the worker if the client went away

    @app.post("/api/generate/stream", responses={**BUSY, 200: {
        "description": "Server-Sent Events: `queued` {position}, `progress` (see ProgressEvent), "
                       "then `result` (see GenerateResponse) or `error` {status, detail}",
        "content": {"text/event-stream": {}}}}, summary="Paint pictures, streaming the progress")
    async def generate_stream(req: GenerateRequest) -> Response:
        job, events, position = _submit(worker, req, adapters, previews=True)
        return _JobStream(job, _events(events, position), media_type="text/event-stream",
                          headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


def _samplers(pipeline) -> list[SamplerInfo]:
    """auto first, then the samplers this model can run (a student's only if it has one)."""
    auto = pipeline.resolve(SamplingOptions())
    return [SamplerInfo(name=AUTO, default_steps=auto.steps)] + [
        SamplerInfo(name=n, default_steps=v.default_steps) for n, v in SAMPLERS.items()
        if not v.student or pipeline.student is not None]


def _submit(worker: Worker, req: GenerateRequest, adapters: dict[str, AdapterChoice], *,
            previews: bool) -> tuple[Job, asyncio.Queue, int]:
    """Queue the request; the worker's events arrive on the returned asyncio queue."""
    if req.lora is not None and req.lora not in adapters:  # 422, as pydantic's own checks answer
        offered = ", ".join(adapters) or "none"
        raise RequestValidationError([{"loc": ("body", "lora"), "type": "value_error",
                                       "msg": f"no adapter named {req.lora!r} on this server (it has: {offered})"}])
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()

    def sink(kind: str, data: dict[str, Any]) -> None:  # called from the worker thread
        loop.call_soon_threadsafe(events.put_nowait, (kind, data))

    seed = req.seed if req.seed is not None else random.randint(0, MAX_REQUEST_SEED)
    scale = None if req.lora is None else req.lora_scale if req.lora_scale is not None \
        else adapters[req.lora].default_scale
    image, mask = req.start_pictures()
    # "auto" named; the student's sampler refused (a GouacheError: 422) where it cannot paint what is asked
    options = worker.pipeline.resolve(req.sampling_options())
    job = Job(prompt=req.prompt, seed=seed, num_images=req.num_images, options=options,
              image=image, mask=mask, strength=req.strength, sink=sink, previews=previews,
              adapters=adapter_scales(adapters, req.lora, scale), lora=req.lora, lora_scale=scale)
    try:
        position = worker.submit(job)
    except QueueFull as e:
        raise HTTPException(503, "the server is busy: too many pictures queued; try again shortly",
                            headers={"Retry-After": str(e.retry_after)}) from None
    return job, events, position


async def _events(events: asyncio.Queue, position: int) -> AsyncIterator[str]:
    """The Server-Sent Events of one job, ending with its result or error (an error of its own too)."""
    try:
        yield _sse("queued", {"position": position})
        while True:
            try:
                kind, data = await asyncio.wait_for(events.get(), timeout=10)
            except asyncio.TimeoutError:
                yield ": waiting\n\n"  # a comment: keeps proxies from closing an idle stream
                continue
            if kind == "progress":
                yield _sse("progress", data)
            else:
                yield _sse("result" if kind == "done" else "error", data)
                return
    except Exception:
        log.exception("the event stream failed")
        yield _sse("error", {"status": 500, "detail": "the server failed to send the result: see its log"})


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _JobStream(StreamingResponse):
    """A stream that cancels its job however it ends: finished, failed or client gone."""

    def __init__(self, job: Job, content: AsyncIterator[str], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.job = job

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel()


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with FastAPI's usual ``detail`` list plus a one-line ``message`` naming each field."""
    errors = exc.errors()
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        field = ".".join(loc) if loc and err.get("type") != "json_invalid" else "body"
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "json_invalid":
            msg = f"malformed JSON ({err.get('ctx', {}).get('error', 'cannot parse')})"
        parts.append(f"{field}: {msg}")
    detail = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
    return JSONResponse({"detail": detail, "message": "; ".join(parts)}, status_code=422)


async def _refused(request: Request, exc: GouacheError) -> JSONResponse:
    """A GouacheError while handling a request (the library refusing what was asked): 422, in the shape
    of ``_validation_error``'s answer."""
    return JSONResponse({"detail": [{"loc": ["body"], "msg": str(exc), "type": "value_error"}],
                         "message": f"body: {exc}"}, status_code=422)


class _HttpOnly:
    """A plain ASGI wrapper of ``app`` for HTTP requests; anything else (lifespan) passes through."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        else:
            await self.http(scope, receive, send)

    async def http(self, scope, receive, send) -> None:
        raise NotImplementedError


class _WholeAnswers(_HttpOnly):
    """Whatever fails inside, the client gets a whole answer and its connection stays open for the
    next request (plain ASGI). An exception that escaped the app is logged; if no answer was started
    it is a 500, else the started body is ended. (Starlette's own 500 handler re-raises, and uvicorn
    then closes the connection: a keep-alive client's next request would be reset.)
    """

    async def http(self, scope, receive, send) -> None:
        started = ended = False

        async def watch(message: dict) -> None:
            nonlocal started, ended
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                ended = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if not started:
                await JSONResponse({"detail": "the server failed on this request: see its log"},
                                   status_code=500)(scope, receive, send)
            elif not ended:
                await send({"type": "http.response.body", "body": b"", "more_body": False})


class _BodyLimit(_HttpOnly):
    """Refuse bodies larger than a request could ever need with 413 (plain ASGI).

    A declared Content-Length over the limit is refused before reading; any body
    (chunked ones declare no length) is read here, counted as it arrives, and cut
    as soon as it passes the limit. What is under the limit is handed on to the app.
    """

    async def http(self, scope, receive, send) -> None:
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            await _too_large(scope, receive, send)
            return
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            if size > MAX_BODY_BYTES:
                await _too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body: dict | None = {"type": "http.request", "body": b"".join(parts), "more_body": False}

        async def replay() -> dict:
            nonlocal body
            if body is None:
                return await receive()  # after the body: the server's http.disconnect
            message, body = body, None
            return message

        await self.app(scope, replay, send)


async def _too_large(scope, receive, send) -> None:
    """413, and the connection closed: the rest of the body is never read."""
    response = JSONResponse({"detail": f"the body is larger than {MAX_BODY_BYTES} bytes"},
                            status_code=413, headers={"Connection": "close"})
    await response(scope, receive, send)
