"""Training data resident on the device: the images (uint8) and the prompt states live in the
GPU's memory, and a step moves only its indices there.

``ResidentSource`` draws exactly what ``MemorySource`` draws (the same indices and caption ids
from the same seeded data generator, on the CPU, where a draw of a batch costs microseconds),
so a run gives the same batches on either path and resumes exactly on both. What changes is
where the gathering happens: the indices travel to the device (pinned, without waiting), and
the images and prompt states are gathered there; nothing is read back to the host. The prompt
states are padded to the longest caption of the whole table, not of the batch, so every step
has the same shapes (a compiled network then never recompiles) and ``cond`` needs no host sync.
"""
from __future__ import annotations

import torch

from gouache.data.imagefolder import CaptionedImages
from gouache.data.prompts import CaptionTable
from gouache.data.sources import MemorySource

__all__ = ["ResidentSource", "resident_bytes", "fits_on"]


def resident_bytes(data: CaptionedImages, table: CaptionTable) -> int:
    """What the images and the trimmed prompt states take on the device, in bytes."""
    length = int(table.emb.mask.sum(1).max())
    u, _, d = table.emb.tokens.shape
    return (data.images.numel() * data.images.element_size() + u * length * (d * 2 + 1)
            + table.emb.pooled.numel() * 4 + table.variant_ids.numel() * 12)


def fits_on(device: torch.device, nbytes: int, *, share: float = 0.25) -> bool:
    """Whether ``nbytes`` take at most ``share`` of the device's free memory (CUDA only)."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= share * free


class ResidentSource:
    """``MemorySource``'s draws, gathered from copies of the images and prompt states on ``device``."""

    def __init__(self, memory: MemorySource, device: torch.device) -> None:
        self.memory, self.device = memory, device
        self.pin = device.type == "cuda"
        table = memory.table
        length = int(table.emb.mask.sum(1).max())  # the longest caption of all: fixed shapes
        self.images = memory.data.images.to(device)  # (N, 3, H, W) uint8
        self.tokens = table.emb.tokens[:, :length].to(device)  # (U, L, D) fp16
        self.mask = table.emb.mask[:, :length].to(device)  # (U, L) bool
        self.pooled = table.emb.pooled.float().to(device)  # (U, D)

    def draw(self, batch_size: int, *, generator: torch.Generator, dropout: float,
             step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        idx, ids = self.memory.indices(batch_size, generator=generator, dropout=dropout)
        both = torch.stack([idx, ids])  # (2, b): one copy to the device
        if self.pin:  # pinned memory: the copy is queued behind the running step, not waited for
            both = both.pin_memory()
        idx, ids = both.to(self.device, non_blocking=True)
        return self.images[idx], ids

    def cond(self, ids: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        ids = ids.to(self.device)
        return {"tokens": self.tokens[ids].float(), "mask": self.mask[ids], "pooled": self.pooled[ids]}
