"""Draw a contact sheet of random captioned images from an imagefolder dataset.

Usage::

    python examples/contact_sheet.py data-build/emoji64 data-build/contact_sheet.png --n 64

Each cell shows the image (scaled up 2x, nearest-neighbour) with its caption
wrapped underneath, so you can check at a glance that captions match pictures.
"""

from __future__ import annotations

import argparse
import json
import random
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

CELL_W, IMAGE_PX, LINES, LINE_H = 168, 128, 3, 12


def load_rows(root: Path, split: str | None) -> list[dict]:
    """Rows of root/metadata.jsonl, optionally only those of one split."""
    with open(root / "metadata.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if split is None or r.get("split") == split]


def draw_cell(root: Path, row: dict, font: ImageFont.ImageFont) -> Image.Image:
    """One tile: the picture and its caption (with the style, if any) below it."""
    cell = Image.new("RGB", (CELL_W, IMAGE_PX + 6 + LINES * LINE_H), "white")
    with Image.open(root / row["file_name"]) as im:
        pic = im.convert("RGB").resize((IMAGE_PX, IMAGE_PX), Image.Resampling.NEAREST)
    cell.paste(pic, ((CELL_W - IMAGE_PX) // 2, 2))
    caption = row["text"] + (f" [{row['style']}]" if row.get("style") else "")
    draw = ImageDraw.Draw(cell)
    for i, line in enumerate(textwrap.wrap(caption, width=26)[:LINES]):
        draw.text((4, IMAGE_PX + 4 + i * LINE_H), line, fill="black", font=font)
    return cell


def contact_sheet(root: Path, out: Path, *, n: int = 64, seed: int = 0,
                  split: str | None = "train", columns: int = 8) -> Path:
    """Save a grid of ``n`` random images with captions to ``out``; return ``out``."""
    rows = load_rows(Path(root), split)
    picked = random.Random(seed).sample(rows, min(n, len(rows)))
    font = ImageFont.load_default()
    cells = [draw_cell(Path(root), r, font) for r in picked]
    w, h = cells[0].size
    sheet = Image.new("RGB", (columns * w, -(-len(cells) // columns) * h), (230, 230, 230))
    for i, cell in enumerate(cells):
        sheet.paste(cell, ((i % columns) * w, (i // columns) * h))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def main() -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train")
    a = p.parse_args()
    print(contact_sheet(a.root, a.out, n=a.n, seed=a.seed, split=a.split or None))


if __name__ == "__main__":
    main()
