"""The forward process: how much noise, and how it is added.

gouache uses the formulation of Karras et al., "Elucidating the Design Space of
Diffusion-Based Generative Models" (EDM, NeurIPS 2022). A noisy image at noise
level ``sigma`` is

    x_sigma = x_0 + sigma * n,    n ~ N(0, I),

with images scaled to [-1, 1] (so the data standard deviation is about 0.5).
``sigma`` runs from "a little" (0.002) to "pure noise" (80: the image is then
invisible under noise 160 times its standard deviation).

Training draws ``ln(sigma) ~ N(P_mean, P_std^2)`` (EDM Table 1). Sampling walks a
decreasing list of sigmas that ends in 0; two lists are offered:

* ``karras_sigmas``: EDM eq. 5, for the fast solvers (10-25 steps);
* ``ddpm_sigmas``: the linear-beta schedule of Ho et al., "Denoising Diffusion
  Probabilistic Models" (2020), re-expressed as sigmas: a VP sample
  ``sqrt(a_t) x_0 + sqrt(1 - a_t) n`` divided by ``sqrt(a_t)`` is ``x_0 + sigma_t n``
  with ``sigma_t = sqrt((1 - a_t) / a_t)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gouache.checks import check_fields, positive

__all__ = [
    "NoiseSchedule",
    "add_noise",
    "karras_sigmas",
    "ddpm_sigmas",
]


@dataclass(frozen=True)
class NoiseSchedule:
    """Noise levels for training and the ends of the sampling range."""

    sigma_min: float = 0.002  # least noise a sampler starts its last step from
    sigma_max: float = 80.0  # "pure noise": where sampling starts
    sigma_data: float = 0.5  # standard deviation of the images in [-1, 1]
    p_mean: float = -1.2  # mean of ln(sigma) during training (EDM)
    p_std: float = 1.2  # standard deviation of ln(sigma) during training (EDM)

    def __post_init__(self) -> None:
        above_0 = (positive, "above 0")
        check_fields(self, {"sigma_min": above_0, "sigma_data": above_0, "p_std": above_0,
                            "sigma_max": (lambda v: v > self.sigma_min, "above sigma_min")},
                     what="noise schedule")

    def sample_training_sigmas(self, n: int, *, generator: torch.Generator | None = None,
                               device: torch.device | str = "cpu") -> torch.Tensor:
        """Draw one noise level per image: ln(sigma) ~ N(p_mean, p_std^2)."""
        z = torch.randn(n, generator=generator, device=device)
        return (self.p_mean + self.p_std * z).exp()


def add_noise(x0: torch.Tensor, sigma: torch.Tensor | float, noise: torch.Tensor) -> torch.Tensor:
    """The forward process: ``x0 + sigma * noise``, one sigma per image (or one for all)."""
    sigma = torch.as_tensor(sigma, dtype=x0.dtype, device=x0.device)
    if sigma.ndim == 1:
        sigma = sigma.view(-1, *([1] * (x0.ndim - 1)))  # (B, 1, 1, 1)
    return x0 + sigma * noise


def karras_sigmas(n: int, *, sigma_min: float = 0.002, sigma_max: float = 80.0,
                  rho: float = 7.0) -> torch.Tensor:
    """EDM eq. 5: ``n`` sigmas spaced evenly in sigma^(1/rho), then a final 0 (n + 1 values)."""
    if n < 1:
        raise ValueError(f"number of steps must be at least 1, got {n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float()


def ddpm_sigmas(n: int, *, num_train_steps: int = 1000, beta_start: float = 1e-4,
                beta_end: float = 0.02) -> torch.Tensor:
    """The DDPM linear-beta schedule at ``n`` evenly strided timesteps, as sigmas, then 0.

    Its largest sigma is about 157, twice EDM's sigma_max: pure noise either way, and
    the preconditioning keeps the network's input at unit variance there too.
    """
    if n < 1:
        raise ValueError(f"number of steps must be at least 1, got {n}")
    betas = torch.linspace(beta_start, beta_end, num_train_steps, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, dim=0)
    # Timesteps T-1, ..., 0 with an even stride (the "trailing" spacing keeps t = T-1).
    t = torch.linspace(num_train_steps - 1, 0, n, dtype=torch.float64).round().long()
    sigmas = ((1 - alpha_bar[t]) / alpha_bar[t]).sqrt()
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float()


def log_sigma_grid(n: int, *, sigma_min: float = 0.002, sigma_max: float = 80.0) -> torch.Tensor:
    """``n`` sigmas spaced evenly in log space: fixed levels for held-out losses and strips."""
    return torch.logspace(math.log10(sigma_min), math.log10(sigma_max), n)
