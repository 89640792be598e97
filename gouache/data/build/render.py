"""SVG to pixels: the one place that renders vector artwork.

The renderer is resvg (through the ``resvg-py`` wheel): a complete SVG 1.1
renderer (gradients, masks, clip paths, filters) with no system libraries,
whose output depends only on the SVG and the size. Nothing else in gouache reads
SVG: the dataset builders hand markup to ``render_svg`` and get a PNG back.
"""
from __future__ import annotations

import io

import resvg_py
from PIL import Image

from gouache.errors import GouacheError

__all__ = ["render_svg", "RENDERER"]

RENDERER = f"resvg {resvg_py.__resvg_version__} (resvg-py {resvg_py.__version__})"


def render_svg(svg: str, size: int) -> bytes:
    """Render SVG markup to a ``size`` x ``size`` RGB PNG, composited on white.

    The SVG's viewBox is scaled to fill the square (give it a square viewBox to
    keep its proportions). The PNG carries no text, time or colour-profile
    chunks, so the same SVG and size give the same bytes.
    """
    try:
        png = resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size, background="#ffffff",
                                    skip_system_fonts=True)
    except ValueError as e:
        raise GouacheError(f"cannot render SVG: {e}") from None
    with Image.open(io.BytesIO(bytes(png))) as im:
        rgba = im.convert("RGBA")
    if rgba.size != (size, size):
        raise GouacheError(f"renderer gave {rgba.size[0]}x{rgba.size[1]} pixels, asked {size}x{size}")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    out = io.BytesIO()
    Image.alpha_composite(white, rgba).convert("RGB").save(out, format="PNG")
    return out.getvalue()
