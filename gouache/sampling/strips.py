"""The pictures of the process: the forward noising strip and the reverse trajectory.

A noisy image x0 + sigma n has values far outside [-1, 1]; each is shown as the
variance-preserving image x / sqrt(1 + sigma^2) that DDPM would hold at the
same noise level (Ho et al. 2020), so "pure noise" looks like noise, not white.
"""
from __future__ import annotations

import torch
from PIL import Image

from gouache.images import labelled_strip, to_pil, to_tensor
from gouache.model.schedule import add_noise
from gouache.sampling.pipeline import Generation

__all__ = ["noise_strip", "trajectory_strip", "evenly_spaced_steps", "FORWARD_SIGMAS"]

FORWARD_SIGMAS = (0.0, 0.1, 0.3, 1.0, 3.0, 80.0)  # clean ... pure noise


def visible(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A noisy image as the VP image at the same noise level."""
    return x / (1 + sigma ** 2) ** 0.5


def noise_strip(image: Image.Image, *, sigmas: tuple[float, ...] = FORWARD_SIGMAS, seed: int = 0) -> Image.Image:
    """Clean, noisier, noisier, ..., pure noise: the forward process on one image."""
    x0 = to_tensor(image)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    frames = [to_pil(visible(add_noise(x0, s, noise), s)) for s in sigmas]
    return labelled_strip([frames], [f"sigma={s:g}" for s in sigmas])


def evenly_spaced_steps(steps: int, n: int = 5) -> list[int]:
    """``n`` step indices from the first to the last, evenly spaced."""
    n = min(n, steps)
    return sorted({round(k * (steps - 1) / max(1, n - 1)) for k in range(n)})


def trajectory_strip(gen: Generation, *, index: int = 0) -> Image.Image:
    """Image ``index`` of a generation: the noisy image and the predicted clean image at
    each recorded step, then the final picture. A generation that started from a picture
    shows both halves: that picture first, then (the first step's noisy image) the picture
    noised to the start level, then the denoising."""
    noisy = [to_pil(visible(f.x[index], f.sigma)) for f in gen.frames] + [gen.images[index]]
    clean = [to_pil(f.denoised[index]) for f in gen.frames] + [gen.images[index]]
    labels = [f"step {f.step + 1} s={f.sigma:.2g}" for f in gen.frames] + ["final"]
    if gen.source is not None:
        start = to_pil(gen.source)
        noisy, clean, labels = [start] + noisy, [start] + clean, ["start picture"] + labels
    return labelled_strip([noisy, clean], labels, row_names=["noisy image", "predicted clean"])
