"""Start from a picture: image-to-image and inpainting, for every sampler.

Image-to-image is SDEdit (Meng et al., "SDEdit: Guided Image Synthesis and Editing with
Stochastic Differential Equations", 2022): noise the picture by the forward process to the
noise level ``strength`` of the way along the sampler's schedule, x = x0 + sigma_start n,
and run the rest of the schedule from there. strength 1 runs the whole schedule from pure
noise, as plain generation does (at sigma_max the picture is lost in the noise); strength 0
returns the picture.

Inpainting replaces the model's prediction of the clean picture by the picture itself
wherever the mask keeps it: the imputation of Song et al., "Score-Based Generative
Modeling through Stochastic Differential Equations" (2021), appendix I.2, done on the
denoiser. Every sampler moves x towards the prediction, so the kept pixels then follow
x0 + sigma n exactly along the way (for the ODE solvers; DDPM draws them from the same
distribution), the network sees them at every step and paints the masked region to fit,
and a final paste makes the kept pixels exactly the picture's. RePaint (Lugmayr et al.
2022) adds resampling steps on top of this; they are not needed for these small pictures.

The samplers never learn of it: ``keep_known`` wraps ``model(x, sigma) -> denoised``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from gouache.errors import GouacheError
from gouache.images import fit, load_rgb, read_picture, to_tensor

__all__ = ["StartPicture", "DEFAULT_STRENGTH", "check_start", "resolve_strength", "steps_to_run"]

DEFAULT_STRENGTH = 0.75  # image-to-image without a mask: keeps the layout, repaints the rest
Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Picture = Image.Image | str | Path


@dataclass(frozen=True)
class StartPicture:
    """The picture to start from, what of it to repaint, and how strongly."""

    image: torch.Tensor  # (3, H, W) in [-1, 1]
    mask: torch.Tensor | None  # (1, H, W): 1 = repaint, 0 = keep; None: repaint everywhere
    strength: float  # share of the schedule to run, from its end: 1 = from pure noise

    @classmethod
    def load(cls, image: Picture, *, size: int, mask: Picture | None = None,
             strength: float | None = None) -> "StartPicture":
        """Convert like a training image (on white, resized, centre-cropped); a mask is
        white where to repaint. ``strength`` defaults to 1 with a mask (the masked region
        from pure noise) and to ``DEFAULT_STRENGTH`` without one."""
        strength = resolve_strength(strength, masked=mask is not None)
        picture = _rgb(image)
        keep = None if mask is None else _picture(mask, "mask")
        if keep is not None and keep.size != picture.size:  # stretched alone, it would repaint elsewhere
            raise GouacheError(f"the mask{_named(mask)} is {keep.width}x{keep.height} pixels and the picture"
                               f"{_named(image)} {picture.width}x{picture.height}: a mask must be its picture's size")
        return cls(to_tensor(fit(picture, size)), None if keep is None else _mask(keep, size), strength)

    def sigmas(self, sigmas: torch.Tensor) -> torch.Tensor:
        """The last ``strength`` of the schedule, still ending in 0."""
        steps = len(sigmas) - 1
        return sigmas[steps - steps_to_run(steps, self.strength):]

    def noised(self, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The start: the picture at noise level ``sigma`` (``noise``: (B, 3, H, W), unit).
        At the top of the schedule, pure noise: the same start as plain generation."""
        if self.strength == 1:
            return noise * sigma
        return self.image.to(noise) + sigma * noise  # the forward process, x = x0 + sigma n

    def keep_known(self, model: Model) -> Model:
        """``model`` whose prediction is the picture wherever the mask keeps it."""
        if self.mask is None:
            return model

        def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return self.paste(model(x, sigma))

        return denoise

    def paste(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W): the picture's own pixels wherever the mask keeps them."""
        if self.mask is None:
            return x
        mask = self.mask.to(x)
        return mask * x + (1 - mask) * self.image.to(x)


def check_start(image: object, mask: object, strength: object, *,
                names: tuple[str, str, str] = ("image", "mask", "strength")) -> None:
    """Refuse a mask or a strength without a picture to start from (``names``: what the
    caller calls the three, e.g. the command line's --image, --mask, --strength)."""
    if image is None and (mask is not None or strength is not None):
        raise GouacheError(f"{names[1]} and {names[2]} need {names[0]}, the picture to start from")


def resolve_strength(strength: float | None, *, masked: bool) -> float:
    """The strength asked, checked; by default 1 with a mask, ``DEFAULT_STRENGTH`` without."""
    if strength is None:
        return 1.0 if masked else DEFAULT_STRENGTH
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise GouacheError(f"strength must be a number from 0 to 1, got {strength!r}")
    return float(strength)


def steps_to_run(steps: int, strength: float) -> int:
    """How many of a schedule's ``steps`` a start at ``strength`` runs."""
    return round(steps * strength)


def _rgb(image: Picture) -> Image.Image:
    """The picture on white, at its own size."""
    if isinstance(image, Image.Image):
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return load_rgb(Path(image))


def _picture(picture: Picture, what: str) -> Image.Image:
    return picture if isinstance(picture, Image.Image) else read_picture(Path(picture), what=what)


def _named(picture: Picture) -> str:
    return "" if isinstance(picture, Image.Image) else f" {picture}"


def _mask(mask: Image.Image, size: int) -> torch.Tensor:
    """White (or opaque white strokes on a transparent layer) = repaint: (1, size, size) of 0/1."""
    rgba = mask.convert("RGBA")
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    grey = fit(Image.alpha_composite(black, rgba).convert("L"), size)
    return torch.from_numpy((np.asarray(grey) >= 128).astype(np.float32))[None]
