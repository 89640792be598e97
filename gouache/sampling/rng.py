"""Per-sample randomness: image k of a batch is the same picture whatever the batch size.

As in EDM's ``StackedRandomGenerator``: one ``torch.Generator`` per sample, seeded
``seed + k``, so that the noise of sample k never depends on its neighbours.
"""
from __future__ import annotations

import torch

__all__ = ["PerSampleNoise"]


class PerSampleNoise:
    """Unit Gaussian noise drawn sample by sample from ``seed + k`` generators."""

    def __init__(self, seeds: list[int], *, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        # Draw on the CPU so that a seed gives the same picture on every device.
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        """(len(seeds), *shape) unit noise."""
        return torch.stack([torch.randn(shape, generator=g) for g in self.generators]).to(self.device)

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        if like.shape[0] != len(self.generators):
            raise ValueError(f"batch of {like.shape[0]} but {len(self.generators)} generators")
        return self.randn(tuple(like.shape[1:])).to(like.dtype)
