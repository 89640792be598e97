"""The SVG renderer: real pixels from a tiny SVG, composited on white, byte-stable."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from gouache.data.build.render import render_svg
from gouache.errors import GouacheError

HALF_RED = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
            '<rect x="0" y="0" width="8" height="16" fill="#ff0000"/>'
            '<circle cx="12" cy="8" r="2" fill="#0000ff" fill-opacity="0.5"/></svg>')


def test_tiny_svg_renders_on_white_at_the_size_asked() -> None:
    png = render_svg(HALF_RED, 32)
    with Image.open(io.BytesIO(png)) as im:
        assert im.size == (32, 32) and im.mode == "RGB" and not im.info.get("icc_profile")
        assert im.getpixel((4, 16)) == (255, 0, 0)  # the rect, scaled 2x
        assert im.getpixel((30, 2)) == (255, 255, 255)  # transparent -> white, not black
        r, g, b = im.getpixel((24, 16))  # half-transparent blue over white
        assert b == 255 and 120 <= r <= 135 and r == g
    assert render_svg(HALF_RED, 32) == png  # same markup and size, same bytes
    with Image.open(io.BytesIO(render_svg(HALF_RED, 64))) as big:
        assert big.size == (64, 64) and big.getpixel((8, 32)) == (255, 0, 0)


def test_gradients_and_groups_render() -> None:
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><defs><linearGradient id="g">'
           '<stop offset="0" stop-color="#000"/><stop offset="1" stop-color="#fff"/></linearGradient>'
           '</defs><g transform="translate(0 0)"><rect width="10" height="10" fill="url(#g)"/></g></svg>')
    with Image.open(io.BytesIO(render_svg(svg, 20))) as im:
        left, right = im.getpixel((1, 10))[0], im.getpixel((18, 10))[0]
        assert left < 40 and right > 215


def test_broken_svg_is_a_gouache_error() -> None:
    with pytest.raises(GouacheError, match="cannot render SVG"):
        render_svg("<svg", 16)
