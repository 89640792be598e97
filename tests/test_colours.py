"""gouache.colours: hue naming, dominant colour, hue rotation, greyscale."""
from __future__ import annotations

import pytest
import torch

from gouache.colours import (
    COLOUR_NAMES,
    HUES,
    dominant_colours,
    dominant_hue,
    greyscale,
    hsv_to_rgb,
    rgb_to_hsv,
    rotate_hue,
)
from gouache.data.build.shapes import COLOURS


def _disc(colour: tuple[int, int, int], size: int = 24) -> torch.Tensor:
    """A filled disc of ``colour`` on white, (3, size, size) uint8."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    inside = (x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 3) ** 2
    img = torch.full((3, size, size), 255, dtype=torch.uint8)
    img[:, inside] = torch.tensor(colour, dtype=torch.uint8)[:, None]
    return img


def test_hsv_round_trip():
    x = torch.rand(2, 3, 5, 7)
    h, s, v = rgb_to_hsv(x)
    assert h.min() >= 0 and h.max() < 360
    assert torch.allclose(hsv_to_rgb(h, s, v), x, atol=1e-5)
    assert rgb_to_hsv(torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1))[0].item() == pytest.approx(120)


def test_dominant_colour_of_the_shapes_palette_and_of_grey():
    images = torch.stack([_disc(c) for c in COLOURS.values()] + [_disc((128, 128, 128)), _disc((255, 255, 255))])
    assert dominant_colours(images) == list(COLOURS) + [None, None]


def test_rotate_hue_names_the_new_colour_and_keeps_white_and_grey():
    red = _disc(COLOURS["red"])
    red[:, :3, :3] = 100  # a grey corner
    for name in COLOUR_NAMES:
        hue = dominant_hue(red[None])[0]
        turned = rotate_hue(red[None], [HUES[name] - hue[1]])
        assert dominant_colours(turned) == [name]
        assert torch.equal(turned[0, :, :3, :3], red[:, :3, :3])  # grey stays grey
        assert torch.equal(turned[0, :, -1, -1], red[:, -1, -1])  # white stays white


def test_greyscale_is_luma_in_three_channels():
    g = greyscale(_disc(COLOURS["blue"])[None])
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])
    assert g[0, 0, 12, 12].item() == round(0.299 * 30 + 0.587 * 60 + 0.114 * 220)
