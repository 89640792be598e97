"""Images in and out: tensors in [-1, 1] <-> PIL, grids, and the noising/denoising strips."""
from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from gouache.errors import GouacheError

__all__ = ["read_picture", "MAX_PIXELS", "load_rgb", "to_tensor", "to_uint8_tensor", "to_pil", "grid",
           "labelled_strip"]


MAX_SIDE = 4096
MAX_PIXELS = MAX_SIDE * MAX_SIDE  # width x height of a picture gouache reads: 16.8 MP (PIL's own: 179 MP)
MAX_PICTURE_BYTES = 256 * 2**20  # a picture file's size on disk
MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"}  # 8-bit samples
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_picture(source: Path | BinaryIO | bytes, *, name: str | None = None, what: str = "image") -> Image.Image:
    """Decode one still picture, checked before it is decoded: a regular file of at most
    ``MAX_PICTURE_BYTES``, every PNG chunk whole, a header of 1 to ``MAX_PIXELS`` pixels, one
    frame, 8-bit samples. Returns it in its own mode; every problem is a GouacheError naming
    ``name`` (default: the path): "cannot read image x.png: 13000x13000 pixels (169.0 MP), over ...".
    """
    where = name or (str(source) if isinstance(source, (str, Path)) else "(in memory)")
    buf = None
    try:
        buf = io.BytesIO(_picture_bytes(source))
        _check_png(buf.getvalue())
        with warnings.catch_warnings():  # PIL warns above 89 MP: the size is checked below instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(buf) as im:
                _check_header(im)
                im.load()
                return im.copy()
    except Image.DecompressionBombError:
        reason = f"more than {2 * Image.MAX_IMAGE_PIXELS} pixels, over gouache's limit of {_limit()}"
    except _Unreadable as e:
        reason = str(e)
    except Exception as e:  # PIL parses untrusted bytes and raises many types for broken ones
        reason = str(e).replace(repr(buf), "").strip() or type(e).__name__  # PIL names the buffer
    raise GouacheError(f"cannot read {what} {where}: {reason}")


class _Unreadable(Exception):
    """Why a picture is refused, before PIL decodes it."""


def _limit() -> str:
    return f"{MAX_SIDE}x{MAX_SIDE} ({MAX_PIXELS / 1e6:.1f} MP)"


def _picture_bytes(source: Path | BinaryIO | bytes) -> bytes:
    """The bytes of a regular file, a file object or bytes, at most ``MAX_PICTURE_BYTES``."""
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, (str, Path)):
        try:
            info = os.stat(source)  # a FIFO would block the read, a device would never end
            if not stat.S_ISREG(info.st_mode):
                raise _Unreadable("not a regular file")
            if info.st_size > MAX_PICTURE_BYTES:
                raise _Unreadable(f"{info.st_size} bytes, over gouache's limit of {MAX_PICTURE_BYTES // 2**20} MiB")
            with open(source, "rb") as f:
                data = f.read(MAX_PICTURE_BYTES + 1)
        except FileNotFoundError:
            raise _Unreadable("no such file") from None
        except OSError as e:
            raise _Unreadable(e.strerror or str(e)) from None
    else:
        data = source.read(MAX_PICTURE_BYTES + 1)
    if len(data) > MAX_PICTURE_BYTES:
        raise _Unreadable(f"over gouache's limit of {MAX_PICTURE_BYTES // 2**20} MiB")
    if not data:
        raise _Unreadable("an empty file")
    return data


def _check_png(data: bytes) -> None:
    """Every chunk of a PNG present and matching its CRC (PIL checks only some of them)."""
    if not data.startswith(PNG_SIGNATURE):
        return
    pos = len(PNG_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise _Unreadable(f"truncated PNG (no IEND chunk; the file ends at byte {len(data)})")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 8 + length + 4
        name = kind.decode("latin-1")
        if end > len(data):
            raise _Unreadable(f"truncated PNG (chunk {name!r} at byte {pos} runs past the end)")
        body, crc = data[pos + 4:end - 4], struct.unpack(">I", data[end - 4:end])[0]
        if zlib.crc32(body) != crc:
            raise _Unreadable(f"corrupt PNG chunk {name!r} at byte {pos} (its CRC does not match)")
        if kind == b"IHDR" and length >= 8 and 0 in struct.unpack(">II", body[4:12]):
            raise _Unreadable("{}x{} pixels, an empty picture".format(*struct.unpack(">II", body[4:12])))
        if kind == b"IEND":
            return
        pos = end


def _check_header(im: Image.Image) -> None:
    """Size, frames and mode, from the header: nothing is decoded yet."""
    w, h = im.size
    if w < 1 or h < 1:
        raise _Unreadable(f"{w}x{h} pixels, an empty picture")
    if w * h > MAX_PIXELS:
        raise _Unreadable(f"{w}x{h} pixels ({w * h / 1e6:.1f} MP), over gouache's limit of {_limit()}; "
                          "shrink it first")
    if getattr(im, "is_animated", False):
        raise _Unreadable(f"an animation of {getattr(im, 'n_frames', '?')} frames; give one still picture")
    if im.mode not in MODES:
        raise _Unreadable(f"pixel mode {im.mode} (16-bit or float samples); save it with 8-bit RGB or grey")


def load_rgb(path: Path | BinaryIO, size: int | None = None, *, name: str | None = None) -> Image.Image:
    """Open an image (``read_picture``'s checks), composite transparency on white, resize and
    centre-crop to ``size``.

    ``name`` says in errors where an in-memory file came from (default: ``path``).
    """
    img = read_picture(path, name=name).convert("RGBA")
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    img = Image.alpha_composite(white, img).convert("RGB")
    return img if size is None else fit(img, size)


def fit(img: Image.Image, size: int) -> Image.Image:
    """Resize the short side to ``size`` (Lanczos) and centre-crop to a square."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.LANCZOS)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> (3, H, W) uint8."""
    arr = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy())  # (H, W, 3)
    return arr.permute(2, 0, 1).contiguous()


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> (3, H, W) float in [-1, 1]."""
    return to_uint8_tensor(img).float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) in [-1, 1] -> uint8 in [0, 255], clipped."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_pil(x: torch.Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1] -> PIL RGB."""
    return Image.fromarray(to_uint8(x).permute(1, 2, 0).numpy())  # (H, W, 3)


def grid(images: list[Image.Image], *, cols: int | None = None, pad: int = 2,
         labels: list[str] | None = None, scale: int = 1) -> Image.Image:
    """Tile images in rows on white, optionally with a caption under each."""
    if not images:
        raise ValueError("no images to tile")
    cols = cols or min(len(images), 8)
    rows = -(-len(images) // cols)
    w, h = images[0].size
    w, h = w * scale, h * scale
    label_h = 14 if labels else 0
    sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + pad + label_h) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        x, y = pad + c * (w + pad), pad + r * (h + pad + label_h)
        sheet.paste(img.resize((w, h), Image.NEAREST), (x, y))
        if labels:
            draw.text((x + 1, y + h + 1), _fit_text(draw, labels[k], w, font), fill="black", font=font)
    return sheet


def _fit_text(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    """Shorten ``text`` with an ellipsis until it fits in ``width`` pixels."""
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def labelled_strip(rows: list[list[Image.Image]], labels: list[str], *, row_names: list[str] | None = None,
                   scale: int = 2) -> Image.Image:
    """Rows of images side by side, each column captioned (e.g. "sigma=2.5"), rows named at left."""
    cols = len(rows[0])
    flat = [img for row in rows for img in row]
    sheet = grid(flat, cols=cols, pad=4, labels=labels * len(rows), scale=scale)
    if not row_names:
        return sheet
    margin = 90
    out = Image.new("RGB", (sheet.width + margin, sheet.height), "white")
    out.paste(sheet, (margin, 0))
    draw = ImageDraw.Draw(out)
    row_h = sheet.height // len(rows)
    for r, name in enumerate(row_names):
        draw.text((4, r * row_h + row_h // 2 - 6), name, fill="black", font=ImageFont.load_default())
    return out
