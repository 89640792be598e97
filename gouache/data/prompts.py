"""Prompt embeddings computed once per unique caption, then looked up by id.

Training never runs the text encoder in its loop: before the first step every
caption variant of the dataset (and "", the unconditional prompt) is encoded
once, and a step only indexes that table.

``gouache data embed DATA`` goes further and stores those states beside the
data, in ``DATA/prompt_embeddings.safetensors``:

    tokens   (U, L, D) fp16   per-token states, zero on padding
    mask     (U, L) bool      True on real tokens
    pooled   (U, D) fp32      the sentence embeddings
    metadata: captions (a JSON list, row order), text_model, max_length

``CaptionTable.build`` (in-memory data) and ``CaptionCache`` (streamed shards)
use the file when its text model and token limit are the model's, so a large
run never encodes a prompt; without it the cache encodes each new caption once.
A file that is there is checked before it is used (``check_embeddings``): every
tensor and the caption list present, of those shapes and dtypes (L at most
max_length, D the encoder's), finite, with real tokens first in each mask row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from safetensors import SafetensorError, safe_open

from gouache.data.captions import caption_variants
from gouache.store.reading import parse_json, regular_file
from gouache.data.imagefolder import CaptionedImages, read_records
from gouache.data.shards import is_shard_spec, read_samples, shards_folder
from gouache.errors import GouacheError
from gouache.model.text import PromptEmbedding, TextEncoder
from gouache.store.files import check_output_file
from gouache.store.tensors import save_tensors

__all__ = ["CaptionTable", "CaptionCache", "EMBEDDINGS_FILE", "save_prompt_embeddings",
           "load_prompt_embeddings", "check_embeddings", "embed_dataset", "dataset_captions"]

EMBEDDINGS_FILE = "prompt_embeddings.safetensors"


def _model_of(encoder: TextEncoder) -> tuple[str | None, int | None]:
    return getattr(encoder, "name", None), getattr(encoder, "max_length", None)


def save_prompt_embeddings(path: Path, captions: Sequence[str], emb: PromptEmbedding, *,
                           text_model: str, max_length: int) -> Path:
    """Write ``captions``' embeddings (rows in that order) atomically to ``path``."""
    path = Path(path)
    tensors = {"tokens": emb.tokens.half().contiguous(), "mask": emb.mask.bool().contiguous(),
               "pooled": emb.pooled.float().contiguous()}
    meta = {"captions": json.dumps(list(captions), ensure_ascii=False), "text_model": text_model,
            "max_length": str(max_length)}
    save_tensors(tensors, path, metadata=meta)  # shared with the data: the usual permissions
    return path


def load_prompt_embeddings(path: Path, encoder: TextEncoder) -> tuple[list[str], PromptEmbedding] | None:
    """The stored captions and embeddings, or None when the file is absent or made by another
    text model or token limit than ``encoder``'s."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return None
    regular_file(path, "prompt embeddings file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if (meta.get("text_model"), meta.get("max_length")) != tuple(map(str, _model_of(encoder))):
                return None
            missing = [k for k in ("tokens", "mask", "pooled") if k not in f.keys()]
            if missing or "captions" not in meta:
                raise GouacheError(f"{path}: not a prompt embeddings file (no {', '.join(missing or ['captions'])})")
            captions = parse_json(meta["captions"], what=f"{path}: its captions", top=None)
            emb = PromptEmbedding(f.get_tensor("tokens"), f.get_tensor("mask"), f.get_tensor("pooled"))
    except (SafetensorError, OSError) as e:
        raise GouacheError(f"{path}: not a prompt embeddings file ({e})") from None
    check_embeddings(path, captions, emb, max_length=_model_of(encoder)[1], dim=getattr(encoder, "dim", None))
    return captions, emb


def check_embeddings(path: Path, captions: object, emb: PromptEmbedding, *, max_length: int | None,
                     dim: int | None) -> None:
    """Refuse a table that training could not use as it is: GouacheError naming ``path`` and the
    first problem (a shape, a dtype, NaN, captions that are not one text per row)."""
    tokens, mask, pooled = emb.tokens, emb.mask, emb.pooled
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        raise GouacheError(f"{path}: its captions must be a JSON list of texts")
    n = len(captions)
    longest = max_length or (tokens.shape[1] if tokens.dim() == 3 else 1)
    d = dim or (pooled.shape[-1] if pooled.dim() else 0)
    if not (tokens.dim() == 3 and tokens.shape[0] == n and 1 <= tokens.shape[1] <= longest
            and tokens.shape[2] == d and mask.shape == tokens.shape[:2] and pooled.shape == (n, d)):
        raise GouacheError(f"{path}: tokens {tuple(tokens.shape)}, mask {tuple(mask.shape)}, pooled "
                           f"{tuple(pooled.shape)}; expected ({n}, L, {d}) with L from 1 to {longest}, "
                           f"({n}, L) and ({n}, {d}) for its {n} captions")
    for name, t, dtype in (("tokens", tokens, torch.float16), ("mask", mask, torch.bool),
                           ("pooled", pooled, torch.float32)):
        if t.dtype != dtype:
            raise GouacheError(f"{path}: {name} is {str(t.dtype).removeprefix('torch.')}, expected "
                               f"{str(dtype).removeprefix('torch.')}")
    for name, t in (("tokens", tokens), ("pooled", pooled)):
        if not torch.isfinite(t).all():
            raise GouacheError(f"{path}: {name} holds NaN or infinite values")
    if not torch.equal(mask, torch.arange(mask.shape[1]) < mask.sum(1, keepdim=True)):
        raise GouacheError(f"{path}: mask rows must be True on the first tokens, then False")


def dataset_captions(data: Path | str) -> list[str]:
    """Every caption variant of an imagefolder or of shards (all splits): "" first, then sorted."""
    rows = ((s["row"] for s in read_samples(data)) if is_shard_spec(data)
            else read_records(Path(data), split=None))
    unique = {c for row in rows for c in caption_variants(row)[0]} - {""}
    return [""] + sorted(unique)


def embed_dataset(data: Path | str, encoder: TextEncoder, *, progress: bool = False) -> Path:
    """Encode every caption of ``data`` once and store them in ``DATA/prompt_embeddings.safetensors``."""
    folder = shards_folder(data) if is_shard_spec(data) else Path(data)
    captions = dataset_captions(data)
    check_output_file(folder / EMBEDDINGS_FILE, what="data embed: the embeddings file", overwrite=True)
    emb = encoder.encode_many(captions, progress=progress, token_dtype=torch.float16)  # stored so
    name, length = _model_of(encoder)
    return save_prompt_embeddings(folder / EMBEDDINGS_FILE, captions, emb,
                                  text_model=str(name), max_length=int(length or 0))


@dataclass
class CaptionTable:
    captions: list[str]  # unique captions; index 0 is "", the unconditional prompt
    emb: PromptEmbedding  # (U, L, D) token states (stored in fp16), mask, pooled
    variant_ids: torch.Tensor  # (N, K) long: the caption ids each image may be shown with
    cum_probs: torch.Tensor  # (N, K) float: cumulative probabilities of those variants

    @classmethod
    def build(cls, data: CaptionedImages, encoder: TextEncoder, *, progress: bool = False,
              folder: Path | None = None) -> "CaptionTable":
        """The table of ``data``'s captions: from ``folder/prompt_embeddings.safetensors`` when
        that file holds them all for this encoder, else encoded now."""
        unique = sorted({c for v in data.variants for c in v} - {""})
        captions = [""] + unique
        pos = {c: i for i, c in enumerate(captions)}
        k = max(len(v) for v in data.variants)
        ids = torch.zeros(len(data), k, dtype=torch.long)
        cum = torch.ones(len(data), k)
        for n, (vs, ps) in enumerate(zip(data.variants, data.probs)):
            ids[n, :len(vs)] = torch.tensor([pos[c] for c in vs])
            ids[n, len(vs):] = pos[vs[-1]]
            cum[n, :len(ps)] = torch.tensor(ps).cumsum(0)
        stored = load_prompt_embeddings(Path(folder) / EMBEDDINGS_FILE, encoder) if folder else None
        rows = {c: i for i, c in enumerate(stored[0])} if stored else {}
        if stored and all(c in rows for c in captions):
            emb = stored[1].index(torch.tensor([rows[c] for c in captions]))
        else:
            emb = encoder.encode_many(captions, progress=progress, token_dtype=torch.float16)
        emb = PromptEmbedding(emb.tokens.half(), emb.mask, emb.pooled)
        return cls(captions, emb, ids, cum)

    def draw(self, idx: torch.Tensor, *, generator: torch.Generator, dropout: float) -> torch.Tensor:
        """A caption id per image of ``idx``: a variant by its probability, "" with ``dropout``."""
        u = torch.rand(len(idx), generator=generator)
        k = (u[:, None] > self.cum_probs[idx]).sum(1).clamp(max=self.variant_ids.shape[1] - 1)
        ids = self.variant_ids[idx].gather(1, k[:, None]).squeeze(1)
        drop = torch.rand(len(idx), generator=generator) < dropout
        return ids.masked_fill(drop, 0)

    def cond(self, ids: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """The network's prompt inputs for caption ids, trimmed to the longest prompt among them."""
        ids = ids.to(self.emb.tokens.device)
        mask = self.emb.mask[ids]
        length = int(mask.sum(1).max())
        return {"tokens": self.emb.tokens[ids, :length].to(device).float(),
                "mask": mask[:, :length].to(device), "pooled": self.emb.pooled[ids].to(device)}


class CaptionCache:
    """Prompt embeddings by caption text, for streamed data whose captions are not known upfront.

    Starts from stored embeddings when given (see ``load_prompt_embeddings``);
    a caption not seen before is encoded once, in one batch with the other new
    captions of its call, and kept. ``ids`` and ``cond`` mirror ``CaptionTable``.
    """

    def __init__(self, encoder: TextEncoder,
                 stored: tuple[list[str], PromptEmbedding] | None = None) -> None:
        self.encoder = encoder
        self.index: dict[str, int] = {}
        self.tokens: list[torch.Tensor] = []  # per caption (length, D) fp16, no padding
        self.pooled: list[torch.Tensor] = []  # per caption (D,)
        if stored is not None:
            self._add(*stored)
        self.ids([""])

    def __len__(self) -> int:
        return len(self.tokens)

    def _add(self, captions: Sequence[str], emb: PromptEmbedding) -> None:
        lengths = emb.mask.sum(1).tolist()
        tokens = emb.tokens.half()
        for k, (caption, n) in enumerate(zip(captions, lengths)):
            if caption not in self.index:
                self.index[caption] = len(self.tokens)
                self.tokens.append(tokens[k, :int(n)])
                self.pooled.append(emb.pooled[k].float())

    def ids(self, captions: Sequence[str]) -> torch.Tensor:
        """The id of each caption, encoding the ones not seen before."""
        new = sorted({c for c in captions if c not in self.index})
        if new:
            self._add(new, self.encoder.encode_many(new))
        return torch.tensor([self.index[c] for c in captions], dtype=torch.long)

    def cond(self, ids: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """The network's prompt inputs for caption ids, padded to the longest prompt among them."""
        rows = [self.tokens[i] for i in ids.tolist()]
        lengths = torch.tensor([r.shape[0] for r in rows])
        tokens = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)  # (B, L, D)
        mask = torch.arange(tokens.shape[1])[None] < lengths[:, None]  # (B, L)
        pooled = torch.stack([self.pooled[i] for i in ids.tolist()])
        return {"tokens": tokens.to(device).float(), "mask": mask.to(device), "pooled": pooled.to(device)}
