"""Classifier-free guidance (Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022).

    D_guided = D(x | uncond) + w (D(x | cond) - D(x | uncond))

``uncond`` is the empty prompt (or the negative prompt). The two predictions
come from one batched call of the network. With w = 1 the guided model is the
conditional model itself, and the unconditional half is not computed.
"""
from __future__ import annotations

from typing import Callable

import torch

from gouache.model.text import PromptEmbedding

__all__ = ["guided"]

Denoise = Callable[..., torch.Tensor]


def guided(denoiser: Denoise, cond: PromptEmbedding, uncond: PromptEmbedding | None,
           scale: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Bind the prompts and the guidance scale: returns ``model(x, sigma) -> denoised``.
    ``uncond`` may be None only with ``scale`` 1, which never uses it. ``sigma`` is one level
    for the batch (0-d) or one per image, (B,) (distillation's teacher)."""
    if scale == 1.0:
        return lambda x, sigma: denoiser(x, sigma, **cond.as_cond())
    if uncond is None:
        raise ValueError(f"guidance at scale {scale} needs the unconditional prompt")
    both = PromptEmbedding.cat([uncond, cond]).as_cond()

    def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigmas = sigma if sigma.ndim == 0 else torch.cat([sigma, sigma])
        d_uncond, d_cond = denoiser(torch.cat([x, x]), sigmas, **both).chunk(2)
        return d_uncond + scale * (d_cond - d_uncond)

    return model
