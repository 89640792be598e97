"""Iconify JSON icons as SVG documents: aliases, flips, non-square boxes."""
from __future__ import annotations

import io

from PIL import Image

from gouache.data.build.iconify import icon_names, icon_svg, resolve
from gouache.data.build.render import render_svg

SET = {
    "width": 16, "height": 16,
    "icons": {
        "left-red": {"body": '<rect width="8" height="16" fill="#f00"/>'},
        "wide": {"body": '<rect width="36" height="24" fill="#00f"/>', "width": 36, "height": 24},
        "old": {"body": "<g/>", "hidden": True},
    },
    "aliases": {"right-red": {"parent": "left-red", "hFlip": True},
                "right-red-again": {"parent": "right-red"},
                "twice-flipped": {"parent": "right-red", "hFlip": True}},
}


def pixel(svg: str, xy: tuple[int, int], size: int = 32) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(render_svg(svg, size))) as im:
        return im.getpixel(xy)


def test_aliases_fold_their_flips() -> None:
    assert resolve(SET, "missing") is None
    assert resolve(SET, "right-red-again").h_flip and not resolve(SET, "twice-flipped").h_flip
    plain, flipped = icon_svg(resolve(SET, "left-red")), icon_svg(resolve(SET, "right-red-again"))
    assert pixel(plain, (4, 16)) == (255, 0, 0) and pixel(plain, (28, 16)) == (255, 255, 255)
    assert pixel(flipped, (4, 16)) == (255, 255, 255) and pixel(flipped, (28, 16)) == (255, 0, 0)


def test_a_wide_box_is_padded_to_a_square_not_stretched() -> None:
    svg = icon_svg(resolve(SET, "wide"))
    assert 'viewBox="0 -6 36 36"' in svg
    assert pixel(svg, (18, 2), 36) == (255, 255, 255)  # the padding above
    assert pixel(svg, (18, 18), 36) == (0, 0, 255)


def test_hidden_icons_are_left_out_of_the_names() -> None:
    assert icon_names(SET) == ["left-red", "right-red", "right-red-again", "twice-flipped", "wide"]
    assert "old" in icon_names(SET, hidden=True)
