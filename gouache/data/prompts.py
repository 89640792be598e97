"""Prompt embeddings computed once per unique caption, then looked up by id.

Training never runs the text encoder in its loop: before the first step every
caption variant of the dataset (and "", the unconditional prompt) is encoded
once, and a step only indexes that table.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..text import PromptEmbedding, TextEncoder
from .imagefolder import CaptionedImages

__all__ = ["CaptionTable"]


@dataclass
class CaptionTable:
    captions: list[str]  # unique captions; index 0 is "", the unconditional prompt
    emb: PromptEmbedding  # (U, L, D) token states (stored in fp16), mask, pooled
    variant_ids: torch.Tensor  # (N, K) long: the caption ids each image may be shown with
    cum_probs: torch.Tensor  # (N, K) float: cumulative probabilities of those variants

    @classmethod
    def build(cls, data: CaptionedImages, encoder: TextEncoder, *, progress: bool = False) -> "CaptionTable":
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
        emb = encoder.encode_unique(captions, progress=progress)
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
