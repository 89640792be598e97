"""Draw a contact sheet of random captioned images from an imagefolder dataset.

Usage::

    python examples/contact_sheet.py data-build/emoji64 data-build/contact_sheet.png --n 64
    python examples/contact_sheet.py data-build/emoji128 docs/images/emoji_styles.png --by-style

Each cell shows the image (scaled to 128 px, nearest-neighbour) with its caption
wrapped underneath, so you can check at a glance that captions match pictures.
``--by-style`` draws one row per art style and the same ``--n`` (12) emoji in
every row, drawn at random among those every style has, to compare the styles.
The rows are read by the reader training uses (``read_records``).
"""

from __future__ import annotations

import argparse
import random
import textwrap
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from gouache.data.imagefolder import read_records

CELL_W, IMAGE_PX, LINES, LINE_H = 168, 128, 3, 12


def load_rows(root: Path, split: str | None) -> list[dict]:
    """The folder's rows, optionally only those of one split."""
    return read_records(root, split=split)


def draw_cell(root: Path, row: dict, font: ImageFont.ImageFont) -> Image.Image:
    """One tile: the picture and its caption (with the style, if any) below it."""
    cell = Image.new("RGB", (CELL_W, IMAGE_PX + 6 + LINES * LINE_H), "white")
    with Image.open(row["path"]) as im:
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


def style_sheet(root: Path, out: Path, *, n: int = 12, seed: int = 0) -> Path:
    """One row per style, the same ``n`` emoji (by code sequence) in every row; the labels
    head the columns, the style names start the rows."""
    rows = read_records(Path(root), split=None)
    by_code: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        by_code[r["codepoints"]][r["style"]] = r
    styles = list(dict.fromkeys(r["style"] for r in sorted(rows, key=lambda r: r["style"])))
    most = max(len(v) for v in by_code.values())
    codes = random.Random(seed).sample(sorted(c for c, v in by_code.items() if len(v) == most),
                                       min(n, sum(len(v) == most for v in by_code.values())))
    font, head_w, head_h, pad = ImageFont.load_default(), 96, 3 * LINE_H + 6, 2
    sheet = Image.new("RGB", (head_w + len(codes) * (IMAGE_PX + pad), head_h + len(styles) * (IMAGE_PX + pad)),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for j, code in enumerate(codes):
        label = next(iter(by_code[code].values()))["label"]
        for i, line in enumerate(textwrap.wrap(label, width=20)[:LINES]):
            draw.text((head_w + j * (IMAGE_PX + pad) + 2, 2 + i * LINE_H), line, fill="black", font=font)
    for i, style in enumerate(styles):
        y = head_h + i * (IMAGE_PX + pad)
        draw.text((4, y + IMAGE_PX // 2 - 6), style, fill="black", font=font)
        for j, code in enumerate(codes):
            row = by_code[code].get(style)
            x = head_w + j * (IMAGE_PX + pad)
            if row is None:
                draw.rectangle((x, y, x + IMAGE_PX - 1, y + IMAGE_PX - 1), fill=(230, 230, 230))
                continue
            with Image.open(row["path"]) as im:
                sheet.paste(im.convert("RGB").resize((IMAGE_PX, IMAGE_PX), Image.Resampling.NEAREST), (x, y))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out


def main() -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--n", type=int, default=None, help="pictures (default 64), or emoji with --by-style (12)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train")
    p.add_argument("--by-style", action="store_true", help="one row per style, the same emoji in each")
    a = p.parse_args()
    if a.by_style:
        print(style_sheet(a.root, a.out, n=a.n or 12, seed=a.seed))
    else:
        print(contact_sheet(a.root, a.out, n=a.n or 64, seed=a.seed, split=a.split or None))


if __name__ == "__main__":
    main()
