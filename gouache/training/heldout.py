"""The held-out denoising loss: compare checkpoints without sampling.

The same held-out images, the same noise and the same fixed noise levels for
every checkpoint, so that two numbers differ only because the weights do.
"""
from __future__ import annotations

from pathlib import Path

import torch

from gouache.data.imagefolder import CaptionedImages, load_imagefolder
from gouache.errors import GouacheError
from gouache.model.denoiser import Denoiser
from gouache.model.schedule import log_sigma_grid
from gouache.model.text import TextEncoder
from gouache.training.config import TrainConfig

__all__ = ["HeldOut", "HELDOUT_SIGMAS"]

HELDOUT_SIGMAS = log_sigma_grid(8, sigma_min=0.02, sigma_max=40.0)  # fixed noise levels
HELDOUT_SEED = 12345


class HeldOut:
    """Fixed images, captions, sigmas and noise; ``loss(net)`` is one comparable number."""

    def __init__(self, data: CaptionedImages, encoder: TextEncoder, device: torch.device, *,
                 sigma_data: float = 0.5, max_images: int = 128) -> None:
        g = torch.Generator().manual_seed(HELDOUT_SEED)
        keep = torch.randperm(len(data), generator=g)[:max_images].sort().values
        self.x0 = (data.images[keep].float() / 127.5 - 1).to(device)
        captions = [data.captions[i] for i in keep.tolist()]
        self.cond = encoder(captions).to(device).as_cond()
        self.noise = torch.randn((len(HELDOUT_SIGMAS), *self.x0.shape), generator=g).to(device)
        self.sigma_data = sigma_data
        self.device = device

    @classmethod
    def from_folder(cls, cfg: TrainConfig, encoder: TextEncoder, device: torch.device) -> "HeldOut | None":
        """The test split of the training folder, or None when it has none."""
        if not cfg.data or not Path(cfg.data).is_dir():
            return None
        try:
            data = load_imagefolder(Path(cfg.data), size=cfg.model.unet.image_size, split="test",
                                    progress=False)
        except GouacheError:
            return None
        return cls(data, encoder, device, sigma_data=cfg.model.schedule.sigma_data)

    @torch.no_grad()
    def per_sigma(self, net: torch.nn.Module) -> dict[float, float]:
        denoiser = Denoiser(net, sigma_data=self.sigma_data)
        out = {}
        for sigma, noise in zip(HELDOUT_SIGMAS.tolist(), self.noise):
            s = torch.full((len(self.x0),), sigma, device=self.device)
            out[sigma] = float(denoiser.loss(self.x0, noise, s, **self.cond).mean())
        return out

    def loss(self, net: torch.nn.Module) -> float:
        """The mean EDM-weighted loss over the fixed sigmas."""
        values = self.per_sigma(net)
        return sum(values.values()) / len(values)
