"""Batch sources: where a run gets each step's images and caption ids (``batches.py`` chooses).

Two kinds, one interface (``BatchSource``):

* ``MemorySource``: an imagefolder held in memory. Every rank draws the same
  global batch of indices and captions from the shared data generator and keeps
  its contiguous share, so a run is exactly reproducible and resumes exactly,
  with any number of processes. ``PriorSource`` is one whose batches are half
  new pictures, half the base model's own (a LoRA run's prior preservation).
* ``StreamSource``: WebDataset shards streamed by a DataLoader (``ShardStream``);
  each rank reads its own shards. The data generator still draws the caption
  variant and the caption dropout for the global batch, but which images come
  is up to the stream: a resumed streamed run continues with fresh shuffles
  (seeded by the seed and the step it resumes at), not with the exact images
  an uninterrupted run would have seen.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

import torch

from gouache import distributed as dist
from gouache.data.imagefolder import CaptionedImages
from gouache.data.prompts import (
    EMBEDDINGS_FILE,
    CaptionCache,
    CaptionTable,
    load_prompt_embeddings,
)
from gouache.errors import GouacheError
from gouache.model.text import TextEncoder

__all__ = ["BatchSource", "MemorySource", "PriorSource", "StreamSource"]


class BatchSource(Protocol):
    def draw(self, batch_size: int, *, generator: torch.Generator, dropout: float,
             step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of a global batch of ``batch_size``: uint8 images
        (b, 3, H, W) and caption ids (b,), "" for a share ``dropout`` of them."""
        ...

    def cond(self, ids: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """The network's prompt inputs (tokens, mask, pooled) for caption ids."""
        ...


class MemorySource:
    """Images in memory, captions from a ``CaptionTable``; drawn uniformly, or with
    ``weights`` (N,) when some images should come more often (``balanced_weights``)."""

    def __init__(self, data: CaptionedImages, table: CaptionTable, weights: torch.Tensor | None = None) -> None:
        self.data, self.table, self.weights = data, table, weights

    def picks(self, batch_size: int, *, generator: torch.Generator) -> torch.Tensor:
        """The image indices of a global batch, (batch_size,) long."""
        return _uniform_or_weighted(len(self.data), self.weights, batch_size, generator)

    def indices(self, batch_size: int, *, generator: torch.Generator,
                dropout: float) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of a global batch: image indices and caption ids (both (b,) long)."""
        idx = self.picks(batch_size, generator=generator)
        ids = self.table.draw(idx, generator=generator, dropout=dropout)
        return dist.shard(idx), dist.shard(ids)  # every rank draws all, keeps its part

    def draw(self, batch_size: int, *, generator: torch.Generator, dropout: float,
             step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        idx, ids = self.indices(batch_size, generator=generator, dropout=dropout)
        return self.data.images[idx], ids

    def cond(self, ids: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        return self.table.cond(ids, device)


class PriorSource(MemorySource):
    """Prior preservation (``training/prior.py``): the data is the new pictures followed by the
    base's own (``with_prior``); a global batch is ``batch_size`` new pictures (uniform, or by
    ``weights`` over them) followed by ``batch_size`` of the base's own, which the loss weighs
    apart (``prior_loss_weights``)."""

    def __init__(self, data: CaptionedImages, table: CaptionTable, new: int,
                 weights: torch.Tensor | None = None) -> None:
        if not 0 < new < len(data):
            raise GouacheError(f"prior preservation needs new pictures and the base's: {new} of {len(data)}")
        super().__init__(data, table, weights)
        self.new = new

    def picks(self, batch_size: int, *, generator: torch.Generator) -> torch.Tensor:
        new = _uniform_or_weighted(self.new, self.weights, batch_size, generator)
        prior = self.new + torch.randint(len(self.data) - self.new, (batch_size,), generator=generator)
        return torch.cat([new, prior])  # (2 batch_size,)


def _uniform_or_weighted(n: int, weights: torch.Tensor | None, batch_size: int,
                         generator: torch.Generator) -> torch.Tensor:
    """``batch_size`` indices below ``n``: uniform, or drawn by ``weights`` (n,)."""
    if weights is None:
        return torch.randint(n, (batch_size,), generator=generator)
    return torch.multinomial(weights, batch_size, replacement=True, generator=generator)


def _pick(variants: list[str], probs: list[float], u: float) -> str:
    """The variant whose cumulative probability first reaches ``u``."""
    total = 0.0
    for caption, p in zip(variants, probs):
        total += p
        if u <= total:
            return caption
    return variants[-1]


class StreamSource:
    """Shards streamed through a DataLoader; prompt embeddings from a ``CaptionCache``.

    The cache starts from ``prompt_embeddings.safetensors`` beside the shards
    when that file fits the text encoder (``gouache data embed``), else encodes
    each new caption once.
    """

    def __init__(self, spec: str | Path, *, size: int, encoder: TextEncoder, split: str | None = "train",
                 num_workers: int = 0, seed: int = 0, buffer: int = 1000,
                 pin_memory: bool = False) -> None:
        from gouache.data.shards import expand_shards, shards_folder

        self.urls = expand_shards(spec)
        self.size, self.split, self.num_workers = size, split, num_workers
        self.seed, self.buffer, self.pin_memory = seed, buffer, pin_memory
        stored = load_prompt_embeddings(shards_folder(spec) / EMBEDDINGS_FILE, encoder)
        self.captions = CaptionCache(encoder, stored)
        self._batches: Iterator | None = None
        self._local = 0

    def _start(self, local_batch: int, step: int) -> None:
        from torch.utils.data import DataLoader

        from gouache.data.shards import ShardStream, collate

        stream = ShardStream(self.urls, size=self.size, split=self.split, rank=dist.rank(),
                             world=dist.world_size(), seed=self.seed * 1_000_003 + step, buffer=self.buffer)
        loader = DataLoader(stream, batch_size=local_batch, num_workers=self.num_workers,
                            collate_fn=collate, pin_memory=self.pin_memory,
                            persistent_workers=self.num_workers > 0)
        self._batches, self._local = iter(loader), local_batch

    def draw(self, batch_size: int, *, generator: torch.Generator, dropout: float,
             step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        local = batch_size // dist.world_size()
        if self._batches is None or self._local != local:
            self._start(local, step)
        try:
            images, variants, probs = next(self._batches)
        except GouacheError as e:  # from a worker process, the message holds its traceback: keep the last line
            raise GouacheError(str(e).strip().splitlines()[-1].removeprefix("gouache.errors.GouacheError: ")) from None
        u = dist.shard(torch.rand(batch_size, generator=generator)).tolist()
        drop = dist.shard(torch.rand(batch_size, generator=generator) < dropout).tolist()
        captions = ["" if d else _pick(v, p, x) for v, p, x, d in zip(variants, probs, u, drop)]
        return images, self.captions.ids(captions)

    def cond(self, ids: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        return self.captions.cond(ids, device)
