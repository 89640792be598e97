"""Images in and out: tensors in [-1, 1] <-> PIL, grids, and the noising/denoising strips."""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from gouache.errors import GouacheError, raise_if_disk_full

__all__ = ["load_rgb", "to_tensor", "to_uint8_tensor", "to_pil", "grid", "labelled_strip", "save_png"]


def load_rgb(path: Path | BinaryIO, size: int | None = None, *, name: str | None = None) -> Image.Image:
    """Open an image, composite transparency on white, resize and centre-crop to ``size``.

    ``name`` says in errors where an in-memory file came from (default: ``path``).
    """
    try:
        with Image.open(path) as im:
            im.load()
            img = im.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        reason = str(e).replace(repr(path), "").strip() if name else e  # PIL names the BytesIO object
        raise GouacheError(f"cannot read image {name or path}: {reason}") from None
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


def save_png(img: Image.Image, path: Path) -> Path:
    """Write a PNG atomically (temp file, then rename), creating the folder; a full disk is one
    GouacheError line and leaves the previous file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(tmp, format="PNG")
        tmp.replace(path)
    except OSError as e:
        raise_if_disk_full(e, path)
        raise
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; left only by a failure
    return path
