"""The preconditioned denoiser: ``D(x, sigma, **cond) -> denoised``.

Karras et al., "Elucidating the Design Space of Diffusion-Based Generative
Models" (EDM, 2022), section 5 and Table 1. The raw network F sees a
unit-variance input and predicts a unit-variance target; the wrapper turns that
into an estimate of the clean image:

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))

    c_skip  = sigma_data^2 / (sigma^2 + sigma_data^2)
    c_out   = sigma * sigma_data / sqrt(sigma^2 + sigma_data^2)
    c_in    = 1 / sqrt(sigma^2 + sigma_data^2)
    c_noise = ln(sigma) / 4

At a tiny sigma c_skip -> 1 and c_out -> 0, so D returns its input; at a large
sigma D is the network's own guess of the image.

The training loss is EDM's: lambda(sigma) ||D(x0 + sigma n; sigma) - x0||^2 with
lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2, which makes the
network's effective target unit-variance at every noise level.
"""
from __future__ import annotations

import torch
from torch import nn

from gouache.model.schedule import add_noise

__all__ = ["Denoiser"]


def _per_image(sigma: torch.Tensor, ndim: int) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1) so that it broadcasts over an image batch."""
    return sigma.view(-1, *([1] * (ndim - 1)))


class Denoiser(nn.Module):
    """Wraps a raw network ``net(x, c_noise, **cond)`` with EDM preconditioning."""

    def __init__(self, net: nn.Module, *, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.net = net
        self.sigma_data = sigma_data

    def scalings(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """c_skip, c_out, c_in, c_noise for each sigma (EDM Table 1)."""
        sd2 = self.sigma_data ** 2
        c_skip = sd2 / (sigma ** 2 + sd2)
        c_out = sigma * self.sigma_data / (sigma ** 2 + sd2).sqrt()
        c_in = 1 / (sigma ** 2 + sd2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, **cond: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).expand(x.shape[0])
        c_skip, c_out, c_in, c_noise = (_per_image(c, x.ndim) for c in self.scalings(sigma))
        f = self.net((c_in * x).to(x.dtype), c_noise.flatten(), **cond)
        return c_skip * x + c_out * f.float()

    def loss(self, x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor,
             **cond: torch.Tensor) -> torch.Tensor:
        """EDM-weighted denoising loss, one value per image, shape (B,)."""
        denoised = self(add_noise(x0, sigma, noise), sigma, **cond)
        weight = (sigma ** 2 + self.sigma_data ** 2) / (sigma * self.sigma_data) ** 2
        return weight * (denoised - x0).pow(2).flatten(1).mean(1)
