"""A picture in a request (a start picture or a mask): base64 or a ``data:`` URL, decoded with bounds.

What the server alone asks is checked first, before a pixel is decoded: the data URL's form and
media type, the byte size, the format and the size a side read from the header. Then
``gouache.images.read_picture`` reads it as it reads every picture (each PNG chunk's checksum,
the pixel count from the header, one frame, 8-bit samples, then the whole picture decoded), so
that a corrupt chunk or a truncated file is refused here (the request's answer names the field)
and never reaches the worker.
"""
from __future__ import annotations

import base64
import binascii
import io
import warnings

from PIL import Image

from gouache.errors import GouacheError
from gouache.images import read_picture

__all__ = ["decode_picture", "MAX_UPLOAD_BYTES", "MAX_UPLOAD_SIDE", "MEDIA_TYPES"]

MAX_UPLOAD_BYTES = 90_000  # a file's size once base64-decoded (the page sends the model's size, a few kB)
MAX_UPLOAD_SIDE = 1024  # pixels a side, read from the header: a start picture is resized to the model's anyway
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}  # PIL's format -> media type
UNREADABLE = "cannot read picture from the request"  # how read_picture starts its message, called as below


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
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"{len(data)} bytes, more than {MAX_UPLOAD_BYTES}")
    _check_header(data, declared)
    try:
        return read_picture(data, name="from the request", what="picture").convert("RGBA")
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
    """The format (as the data URL says, if it does) and the size a side, from the header alone."""
    try:
        with warnings.catch_warnings():  # PIL warns above 89 MP: the size is checked below instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(MEDIA_TYPES)) as im:  # reads the header only
                kind, (width, height) = im.format, im.size
    except Image.DecompressionBombError as e:
        raise ValueError(f"{UNREADABLE}: {e}") from None
    except Exception:  # PIL raises UnidentifiedImageError, SyntaxError, ValueError... for what it cannot read
        raise ValueError(f"{UNREADABLE}: not a PNG, JPEG or WebP file") from None
    if declared is not None and declared != MEDIA_TYPES[kind]:
        raise ValueError(f"the data URL says {declared}, but this is a {kind} file")
    if max(width, height) > MAX_UPLOAD_SIDE:
        raise ValueError(f"{width}x{height} pixels: at most {MAX_UPLOAD_SIDE} a side")
