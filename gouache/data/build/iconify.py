"""Icons of an Iconify JSON set (``@iconify-json/*`` npm packages) as standalone SVG markup.

An Iconify set is one ``icons.json``: ``icons`` maps a name to the inner markup
of an SVG (``body``) and its box (``left``, ``top``, ``width``, ``height``,
defaulting to the set's), ``aliases`` maps a name to a ``parent`` plus optional
transforms (``hFlip``, ``vFlip``, ``rotate`` in quarter turns). Sets of emoji
often add ``chars.json``: code points (``1f44b-1f3fd``) -> icon name. See
https://iconify.design/docs/types/iconify-json.html.

This module only assembles documents from those fields; it never reads the
markup inside a body (rendering is ``render.py``'s job).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gouache.errors import GouacheError

__all__ = ["IconBox", "resolve", "icon_svg", "icon_names"]

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
MAX_ALIAS_DEPTH = 8


@dataclass(frozen=True)
class IconBox:
    """One icon with its alias transforms folded in."""

    body: str
    left: float
    top: float
    width: float
    height: float
    h_flip: bool = False
    v_flip: bool = False
    rotate: int = 0  # quarter turns, clockwise


def resolve(icon_set: dict[str, Any], name: str) -> IconBox | None:
    """The icon ``name`` (an icon or an alias of one), or None when the set lacks it."""
    icons, aliases = icon_set.get("icons", {}), icon_set.get("aliases", {})
    h_flip = v_flip = False
    rotate = 0
    for _ in range(MAX_ALIAS_DEPTH):
        entry = icons.get(name) or aliases.get(name)
        if entry is None:
            return None
        h_flip ^= bool(entry.get("hFlip", False))
        v_flip ^= bool(entry.get("vFlip", False))
        rotate += int(entry.get("rotate", 0))
        if name in icons:
            def box(key: str, default: float) -> float:
                return float(entry.get(key, icon_set.get(key, default)))
            return IconBox(entry["body"], box("left", 0), box("top", 0), box("width", 16),
                           box("height", 16), h_flip, v_flip, rotate % 4)
        name = entry.get("parent", "")
    raise GouacheError(f"alias chain too long or circular at {name!r}")


def _num(x: float) -> str:
    return f"{x:g}"


def icon_svg(icon: IconBox) -> str:
    """A standalone SVG document of ``icon`` with a square viewBox centred on its box.

    A box that is not square (Twemoji's flags are 36x25) is padded on its short
    side, so that a square render keeps the artwork's proportions.
    """
    side = max(icon.width, icon.height)
    left = icon.left - (side - icon.width) / 2
    top = icon.top - (side - icon.height) / 2
    cx, cy = icon.left + icon.width / 2, icon.top + icon.height / 2
    transforms = []
    if icon.rotate:
        transforms.append(f"rotate({icon.rotate * 90} {_num(cx)} {_num(cy)})")
    if icon.h_flip:  # x -> 2 cx - x
        transforms.append(f"translate({_num(2 * cx)} 0) scale(-1 1)")
    if icon.v_flip:  # y -> 2 cy - y
        transforms.append(f"translate(0 {_num(2 * cy)}) scale(1 -1)")
    body = icon.body
    if transforms:
        body = f'<g transform="{" ".join(transforms)}">{body}</g>'
    return (f'<svg xmlns="{SVG_NS}" xmlns:xlink="{XLINK_NS}" '
            f'viewBox="{_num(left)} {_num(top)} {_num(side)} {_num(side)}">{body}</svg>')


def icon_names(icon_set: dict[str, Any], *, hidden: bool = False) -> list[str]:
    """Every icon and alias name of a set, sorted; ``hidden`` ones (kept by Iconify only
    for old links) are left out unless asked for."""
    icons, aliases = icon_set.get("icons", {}), icon_set.get("aliases", {})

    def shown(name: str) -> bool:
        entry = icons.get(name) or aliases.get(name) or {}
        return hidden or not entry.get("hidden", False)

    return sorted(n for n in (*icons, *aliases) if shown(n))
