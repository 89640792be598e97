"""Colour by hue: what colour a picture is, and a picture turned to another colour.

One vocabulary serves the colour augmentation of training (``data/recolour.py``), the
judge of the prompt-understanding suite (``evaluate/understanding.py``) and the shapes
testbed (``evaluate/shapes.py``): a named colour is a hue, and a pixel's colour is the
name of the nearest hue. Only saturated pixels have a colour: white, grey and black
(and the grey anti-aliased edge of a drawing on white) have none.

    dominant_colours(images)            # ["yellow", None, ...]: the commonest named hue of each
    rotate_hue(images, degrees, mask)   # hue rotation of the masked (saturated) pixels
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["HUES", "COLOUR_NAMES", "rgb_to_hsv", "hsv_to_rgb", "foreground", "saturated", "hue_names",
           "dominant_colours", "dominant_hue", "rotate_hue", "greyscale"]

# The named hues (degrees on the HSV wheel); a pixel takes the name of the nearest one.
# Set on the emoji artwork: its yellow is about 43 degrees (the Noto banana 36), its orange 28-34.
HUES: dict[str, float] = {"red": 0.0, "orange": 22.0, "yellow": 48.0, "green": 115.0, "blue": 215.0,
                          "purple": 280.0}
COLOUR_NAMES: tuple[str, ...] = tuple(HUES)
WHITE = 235  # a pixel whose every channel is at least this is background (emoji and shapes are on white)
MIN_SATURATION = 0.3  # below: grey, no colour
MIN_VALUE = 0.2  # below: black, no colour
MIN_COLOURED = 0.15  # a picture whose coloured pixels are fewer than this share of its foreground has no colour


def rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(..., 3, H, W) floats in [0, 1] -> hue in degrees [0, 360), saturation, value: each (..., H, W)."""
    r, g, b = x.unbind(-3)
    v, _ = x.max(-3)
    c = v - x.min(-3).values  # chroma
    safe = torch.where(c > 0, c, torch.ones_like(c))
    h = torch.where(v == r, ((g - b) / safe) % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(c > 0, h * 60.0, torch.zeros_like(h))
    s = torch.where(v > 0, c / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    return h % 360.0, s, v


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The inverse of ``rgb_to_hsv``: (..., H, W) x 3 -> (..., 3, H, W) in [0, 1]."""
    def f(n: float) -> torch.Tensor:
        k = (n + h / 60.0) % 6
        return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)

    return torch.stack([f(5), f(3), f(1)], dim=-3)


def foreground(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N, H, W) bool: the pixels that are not white background."""
    return images.min(1).values < WHITE


def saturated(s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The pixels that have a colour (neither grey, nor white, nor black)."""
    return (s >= MIN_SATURATION) & (v >= MIN_VALUE)


def hue_names(h: torch.Tensor) -> torch.Tensor:
    """Index into ``COLOUR_NAMES`` of the nearest named hue, per pixel."""
    centres = torch.tensor(list(HUES.values()), dtype=h.dtype, device=h.device)
    d = (h[..., None] - centres).abs() % 360
    return torch.minimum(d, 360 - d).argmin(-1)


def _coloured(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue, the coloured-pixel mask and the foreground mask of uint8 images."""
    h, s, v = rgb_to_hsv(images.float() / 255)
    fg = foreground(images)
    return h, saturated(s, v) & fg, fg


def dominant_colours(images: torch.Tensor) -> list[str | None]:
    """The commonest named hue among each picture's coloured foreground pixels; None when
    fewer than ``MIN_COLOURED`` of its foreground pixels have a colour (grey, black, empty)."""
    h, mask, fg = _coloured(images)
    names = hue_names(h)
    out: list[str | None] = []
    for n in range(len(images)):
        count = int(mask[n].sum())
        if count == 0 or count < MIN_COLOURED * int(fg[n].sum()):
            out.append(None)
            continue
        hist = torch.bincount(names[n][mask[n]], minlength=len(HUES))
        out.append(COLOUR_NAMES[int(hist.argmax())])
    return out


def dominant_hue(images: torch.Tensor) -> list[tuple[str, float, float, int] | None]:
    """Per picture: (name, circular mean hue of that name's pixels, their share of the coloured
    pixels, their count), or None as in ``dominant_colours``."""
    h, mask, fg = _coloured(images)
    names = hue_names(h)
    out: list[tuple[str, float, float, int] | None] = []
    for n, name in enumerate(dominant_colours(images)):
        if name is None:
            out.append(None)
            continue
        k = COLOUR_NAMES.index(name)
        sel = mask[n] & (names[n] == k)
        rad = torch.deg2rad(h[n][sel])
        mean = float(torch.rad2deg(torch.atan2(rad.sin().mean(), rad.cos().mean()))) % 360
        count = int(sel.sum())
        out.append((name, mean, count / max(1, int(mask[n].sum())), count))
    return out


def rotate_hue(images: torch.Tensor, degrees: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Turn the hue of each picture's coloured pixels by its ``degrees``; white, grey and black
    pixels stay as they are. (N, 3, H, W) uint8 -> the same."""
    x = images.float() / 255
    h, s, v = rgb_to_hsv(x)
    turn = torch.as_tensor(degrees, dtype=h.dtype).view(-1, 1, 1)
    mask = saturated(s, v)
    rgb = hsv_to_rgb(torch.where(mask, (h + turn) % 360, h), s, v)
    out = torch.where(mask[:, None], rgb, x)
    return (out * 255).round().clamp(0, 255).to(torch.uint8)


def greyscale(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> its luma (ITU-R BT.601) in all three channels, uint8."""
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    y = (images.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    return y.expand(-1, 3, -1, -1).contiguous()
