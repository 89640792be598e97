"""One worker thread, one bounded queue: the only place the server touches the model.

Requests become :class:`Job` objects. ``Worker.submit`` puts a job in the queue
or raises :class:`QueueFull` (the server answers 503). The worker takes the
oldest job plus any queued jobs with the same options (sampler, steps,
guidance, negative prompt), up to ``max_batch`` pictures (a bigger job runs
alone), and paints them in one batch. Every picture keeps its own seed: image k of a job is the same
picture whether it was painted alone or batched with others.

A job reports through its ``sink(kind, data)``: ``progress`` (predicted clean
pictures every few steps, only if the job asked for previews), then ``done``
(the response) or ``error`` (a status and a message). ``Job.cancel()`` drops
a queued job; a running batch stops at its next step once all its jobs are
cancelled.
"""
from __future__ import annotations

import base64
import io
import itertools
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from PIL import Image

from gouache.errors import GouacheError
from gouache.images import to_pil
from gouache.sampling.options import SamplingOptions
from gouache.sampling.start import resolve_strength

__all__ = ["Job", "Worker", "QueueFull", "Cancelled", "render", "png_base64", "MAX_BATCH", "MAX_QUEUE"]

log = logging.getLogger("gouache.serve")
MAX_BATCH = 64  # pictures in one batch, at most: more would only hold every job of it longer
MAX_QUEUE = 1024  # jobs that may wait, at most (each may hold a start picture and a mask)
Sink = Callable[[str, dict[str, Any]], None]
_ids = itertools.count(1)


class QueueFull(Exception):
    """The queue holds ``queue_size`` jobs already; try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class Cancelled(Exception):
    """Raised inside the sampler callback to stop a batch whose clients have all gone."""


@dataclass(eq=False)
class Job:
    prompt: str
    seed: int
    num_images: int
    options: SamplingOptions  # jobs with equal options share a batch
    sink: Sink
    previews: bool = False
    image: Image.Image | None = None  # a start picture (image-to-image); such a job is painted alone
    mask: Image.Image | None = None  # with image: white = repaint
    strength: float | None = None  # with image: how far to noise it (None: the default)
    # the scale of every adapter on the network (serve/adapters.py); jobs with equal ones share a batch
    adapters: tuple[tuple[str, float], ...] = ()
    lora: str | None = None  # the chosen adapter's name and scale, for the response
    lora_scale: float | None = None
    id: int = field(default_factory=lambda: next(_ids))
    queued_at: float = field(default_factory=time.perf_counter)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Give up on this job (the client went away); safe to call at any time, from any thread."""
        self.cancelled.set()

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        try:
            self.sink(kind, data)
        except Exception:  # a sink that fails (e.g. its event loop closed) must not stop the worker
            log.debug("job %d: dropped %s event", self.id, kind, exc_info=True)


def png_base64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


@torch.inference_mode()
def render(pipeline, prompts: list[str], seeds: list[int], options: SamplingOptions,
           on_step: Callable[[int, int, torch.Tensor], None] | None = None, *,
           start: "Job | None" = None) -> list[Image.Image]:
    """Paint one picture per (prompt, seed), in one batch, with each request's own seeds
    (from ``start``'s picture, mask and strength when given)."""
    pictures = {} if start is None else dict(image=start.image, mask=start.mask, strength=start.strength)
    return pipeline.generate(prompts, options, seeds=seeds, batch_size=len(prompts), callback=on_step,
                             progress=False, **pictures).images


@dataclass
class Stats:
    served: int = 0  # jobs answered with pictures
    cancelled: int = 0  # jobs dropped because their client went away
    failed: int = 0  # jobs answered with an error
    rejected: int = 0  # submissions refused because the queue was full
    batches: int = 0
    running: int = 0  # jobs in the batch being painted now
    seconds_per_batch: float = 0.0  # moving average


class Worker:
    """A bounded queue of jobs and the one thread that paints them."""

    def __init__(self, pipeline, *, queue_size: int = 16, max_batch: int = 8,
                 preview_every: int | None = None) -> None:
        if not 1 <= queue_size <= MAX_QUEUE or not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"queue_size must be from 1 to {MAX_QUEUE} and max_batch from 1 to {MAX_BATCH}")
        self.pipeline = pipeline
        self.queue_size = queue_size
        self.max_batch = max_batch
        self.preview_every = preview_every
        self.stats = Stats()
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ---- the side the web handlers call ----
    def start(self) -> None:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._loop, name="gouache-worker", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current step; queued jobs are answered 503."""
        with self._cond:
            self._stopping = True
            left = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for job in left:
            job.emit("error", {"status": 503, "detail": "the server is shutting down"})
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def queued(self) -> int:
        return len(self._pending)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def submit(self, job: Job) -> int:
        """Queue ``job``; return its place in the queue (1 = next). Raises :class:`QueueFull`."""
        self.start()
        with self._cond:
            if len(self._pending) >= self.queue_size:
                self.stats.rejected += 1
                raise QueueFull(self.retry_after())
            self._pending.append(job)
            self._cond.notify()
            return len(self._pending)

    def retry_after(self) -> int:
        """Seconds until a place in the queue is likely free (1 to 60)."""
        per_batch = self.stats.seconds_per_batch or 1.0
        batches = len(self._pending) / self.max_batch + 1
        return max(1, min(60, math.ceil(per_batch * batches)))

    # ---- the worker thread ----
    def _take_batch(self) -> list[Job] | None:
        """Wait for work; return the oldest live job and the queued jobs that can share its batch."""
        with self._cond:
            while True:
                while self._pending and self._pending[0].cancelled.is_set():
                    self._pending.popleft()
                    self.stats.cancelled += 1
                if self._stopping:
                    return None
                if self._pending:
                    break
                self._cond.wait()
            first = self._pending.popleft()
            batch, size = [first], first.num_images
            for job in list(self._pending):
                if job.options == first.options and job.adapters == first.adapters \
                        and first.image is None and job.image is None \
                        and size + job.num_images <= self.max_batch \
                        and not job.cancelled.is_set():
                    self._pending.remove(job)
                    batch.append(job)
                    size += job.num_images
            self.stats.running = len(batch)
            return batch

    def _loop(self) -> None:
        while (batch := self._take_batch()) is not None:
            start = time.perf_counter()
            try:
                self._run(batch)
            finally:
                took = time.perf_counter() - start
                avg = self.stats.seconds_per_batch
                self.stats.seconds_per_batch = took if avg == 0 else 0.8 * avg + 0.2 * took
                self.stats.batches += 1
                self.stats.running = 0

    def _run(self, batch: list[Job]) -> None:
        prompts = [job.prompt for job in batch for _ in range(job.num_images)]
        seeds = [job.seed + k for job in batch for k in range(job.num_images)]
        try:
            start = batch[0] if batch[0].image is not None else None  # then the batch is that job alone
            if batch[0].adapters:
                self.pipeline.set_adapter_scales(dict(batch[0].adapters))
            images = render(self.pipeline, prompts, seeds, batch[0].options, self._on_step(batch), start=start)
        except Cancelled:
            if self._stopping:
                self._fail([job for job in batch if not job.cancelled.is_set()], 503,
                           "the server is shutting down")
            self.stats.cancelled += sum(job.cancelled.is_set() for job in batch)
            log.info("batch of %d job(s) stopped", len(batch))
            return
        except GouacheError as e:
            self._fail(batch, 400, str(e))
            return
        except Exception:
            log.exception("painting failed")
            self._fail(batch, 500, "painting failed: see the server log")
            return
        offset = 0
        for job in batch:
            mine = images[offset:offset + job.num_images]
            offset += job.num_images
            if job.cancelled.is_set():
                self.stats.cancelled += 1
                continue
            job.emit("done", self._response(job, mine))
            self.stats.served += 1

    def _on_step(self, batch: list[Job]) -> Callable[[int, int, torch.Tensor], None]:
        """The sampler callback: send previews, and stop once every job is cancelled."""
        def on_step(i: int, total: int, denoised: torch.Tensor) -> None:
            if self._stopping or all(job.cancelled.is_set() for job in batch):
                raise Cancelled
            every = self.preview_every or max(1, total // 10)
            done = i + 1
            if done % every and done != 1 or done == total:
                return  # the last step's picture comes with the result
            offset = 0
            for job in batch:
                part = denoised[offset:offset + job.num_images]
                offset += job.num_images
                if job.previews and not job.cancelled.is_set():
                    pngs = [png_base64(to_pil(img)) for img in part]
                    job.emit("progress", {"step": done, "total": total, "images": pngs})
        return on_step

    def _response(self, job: Job, images: list[Image.Image]) -> dict[str, Any]:
        s = job.options
        return {
            "images": [{"seed": job.seed + k, "png": png_base64(img), "width": img.width,
                        "height": img.height} for k, img in enumerate(images)],
            "prompt": job.prompt, "negative_prompt": s.negative_prompt, "sampler": s.sampler,
            "steps": s.steps, "guidance": s.guidance, "seed": job.seed, "num_images": job.num_images,
            "strength": None if job.image is None else resolve_strength(job.strength, masked=job.mask is not None),
            "lora": job.lora, "lora_scale": job.lora_scale,
            "elapsed_s": round(time.perf_counter() - job.queued_at, 4),
        }

    def _fail(self, batch: list[Job], status: int, detail: str) -> None:
        for job in batch:
            self.stats.failed += 1
            job.emit("error", {"status": status, "detail": detail})
