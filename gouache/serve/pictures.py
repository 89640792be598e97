"""A picture in a request (a start picture or a mask): base64 or a ``data:`` URL, decoded with bounds.

What the request form allows is checked here: the data URL's form and media type, the byte size,
the format and the side read from the header (a 13000x13000 PNG of a few hundred bytes is refused
without unpacking it). The picture itself is then read by ``gouache.images.read_picture``, the one
picture reader (PNG chunk checksums, pixel count, frames, mode, a whole decode), so that a corrupt
chunk or a truncated file is refused here (the answer names the field) and never reaches the worker.
"""
from __future__ import annotations

import base64
import binascii
import io

from PIL import Image

from gouache.errors import GouacheError
from gouache.images import read_picture

__all__ = ["decode_picture", "MAX_PICTURE_BYTES", "MAX_PICTURE_SIDE", "MEDIA_TYPES"]

MAX_PICTURE_BYTES = 90_000  # a file's size once base64-decoded (the page sends the model's size, a few kB)
MAX_PICTURE_SIDE = 1024  # pixels a side: the server's own, stricter policy (a start picture is resized anyway)
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}  # PIL's format -> media type


def decode_picture(text: str) -> Image.Image:
    """A base64 PNG, JPEG or WebP (a ``data:image/...;base64,`` prefix allowed) as an RGBA picture,
    fully decoded; anything else is a ValueError saying what is wrong."""
    declared, payload = _split_data_url(text)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"not base64 ({e})") from None
    if not data:
        raise ValueError("empty: a base64 PNG, JPEG or WebP expected")
    if len(data) > MAX_PICTURE_BYTES:
        raise ValueError(f"{len(data)} bytes, more than {MAX_PICTURE_BYTES}")
    _check_header(data, declared)
    try:
        return read_picture(data, name="", what="picture").convert("RGBA")
    except GouacheError as e:
        raise ValueError(str(e)) from None


def _split_data_url(text: str) -> tuple[str | None, str]:
    """``data:image/png;base64,AAAA`` -> ("image/png", "AAAA"); plain base64 -> (None, text)."""
    if not text.startswith("data:"):
        return None, text
    header, comma, payload = text[5:].partition(",")
    if not comma:
        raise ValueError("a data: URL needs a comma before its data (data:image/png;base64,...)")
    media_type, _, encoding = header.partition(";")
    if encoding != "base64":
        raise ValueError("a data: URL must be base64 (data:image/png;base64,...)")
    if media_type not in MEDIA_TYPES.values():
        raise ValueError(f"media type {media_type or 'none'!r}: one of {', '.join(MEDIA_TYPES.values())} expected")
    return media_type, payload


def _check_header(data: bytes, declared: str | None) -> None:
    """The request's own rules, from the header before a pixel is decoded: format and side."""
    try:
        with Image.open(io.BytesIO(data), formats=list(MEDIA_TYPES)) as im:  # reads the header only
            kind, (width, height) = im.format, im.size
    except Image.DecompressionBombError:
        raise ValueError(f"more than {2 * Image.MAX_IMAGE_PIXELS} pixels a picture") from None
    except Exception:  # PIL raises UnidentifiedImageError, SyntaxError, ValueError... for what it cannot read
        raise ValueError("cannot read picture: not a PNG, JPEG or WebP file") from None
    if declared is not None and declared != MEDIA_TYPES[kind]:
        raise ValueError(f"the data URL says {declared}, but this is a {kind} file")
    if max(width, height) > MAX_PICTURE_SIDE:
        raise ValueError(f"{width}x{height}: at most {MAX_PICTURE_SIDE} pixels a side")
