"""A picture in a request (a start picture or a mask): base64 or a ``data:`` URL, decoded with bounds.

What can be checked before decoding is checked first: the data URL's form and media type, the
byte size, the format and the pixel count read from the header (a 13000x13000 PNG of a few
hundred bytes is refused without unpacking it). Then a PNG's chunk checksums are checked and the
whole picture is decoded, so that a corrupt chunk or a truncated file is refused here (the request's
answer names the field) and never reaches the worker.
"""
from __future__ import annotations

import base64
import binascii
import io
import zlib

from PIL import Image

__all__ = ["decode_picture", "MAX_PICTURE_BYTES", "MAX_PICTURE_PIXELS", "MAX_PICTURE_SIDE", "MEDIA_TYPES"]

MAX_PICTURE_BYTES = 90_000  # a file's size once base64-decoded (the page sends the model's size, a few kB)
MAX_PICTURE_PIXELS = 4096 * 4096  # read from the header, before decoding (as gouache.images reads files)
MAX_PICTURE_SIDE = 1024  # pixels a side: the server's own, stricter policy (a start picture is resized anyway)
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}  # PIL's format -> media type
MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK"}  # 8 bits a channel (16-bit grey is refused)


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
    try:
        im = Image.open(io.BytesIO(data), formats=list(MEDIA_TYPES))  # reads the header only
    except Image.DecompressionBombError:
        raise ValueError(f"more than {MAX_PICTURE_PIXELS} pixels") from None
    except Exception:  # PIL raises UnidentifiedImageError, SyntaxError, ValueError... for what it cannot read
        raise ValueError("cannot read picture: not a PNG, JPEG or WebP file") from None
    with im:
        _check_header(im, declared)
        try:
            if im.format == "PNG":
                _check_png_chunks(data)
            im.load()
            return im.convert("RGBA")
        except Exception as e:  # a corrupt chunk, a truncated file: OSError, SyntaxError, ValueError, zlib.error
            raise ValueError(f"cannot read picture: {e}") from None


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


def _check_png_chunks(data: bytes) -> None:
    """Every chunk's CRC, which PIL checks for some chunks only (not the pixels' IDAT)."""
    pos = 8  # after the signature; each chunk: length (4), type (4), data, CRC of type and data (4)
    while pos + 12 <= len(data):
        end = pos + 8 + int.from_bytes(data[pos:pos + 4], "big")
        if end + 4 > len(data):
            return  # truncated: decoding says so
        kind = data[pos + 4:pos + 8]
        if zlib.crc32(data[pos + 4:end]) != int.from_bytes(data[end:end + 4], "big"):
            raise ValueError(f"the CRC of chunk {kind.decode('latin-1')!r} does not match: the file is damaged")
        if kind == b"IEND":
            return
        pos = end + 4


def _check_header(im: Image.Image, declared: str | None) -> None:
    """What the header says, before a pixel is decoded: type, size, frames, mode."""
    if declared is not None and declared != MEDIA_TYPES[im.format]:
        raise ValueError(f"the data URL says {declared}, but this is a {im.format} file")
    width, height = im.size
    if width * height > MAX_PICTURE_PIXELS:
        raise ValueError(f"{width}x{height} is more than {MAX_PICTURE_PIXELS} pixels")
    if max(width, height) > MAX_PICTURE_SIDE:
        raise ValueError(f"{width}x{height}: at most {MAX_PICTURE_SIDE} pixels a side")
    if getattr(im, "n_frames", 1) > 1:
        raise ValueError("an animated picture: send one frame")
    if im.mode not in MODES:
        raise ValueError(f"mode {im.mode} is not accepted: 8 bits a channel (grey, palette, RGB or RGBA)")
