"""A small captioned set of coloured shapes: the sanity check that the prompt steers.

"red circle", "blue square", "green triangle", ...: each caption names a colour
and a shape, drawn at a random position and size on white. A model that paints
the right shape in the right colour for each caption has learned to listen.

``holdout`` combinations (e.g. "green triangle") are never drawn: whether a model
paints them anyway is the test of composition (``gouache eval --suite shapes``).
The folder's ``shapes.json`` records the colours, shapes and held-out captions.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from gouache.data.build.writing import write_if_changed
from gouache.errors import GouacheError
from gouache.images import save_png
from gouache.store.files import check_output_folder

__all__ = ["COLOURS", "SHAPES", "SHAPES_FILE", "build_shapes_dataset", "parse_holdout", "read_shapes_info"]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220), "yellow": (240, 200, 0),
}
SHAPES = ("circle", "square", "triangle")
SHAPES_FILE = "shapes.json"  # what the folder holds: colours, shapes, held-out captions


def _draw(shape: str, colour: tuple[int, int, int], size: int, rng: random.Random) -> Image.Image:
    img = Image.new("RGB", (size * 4, size * 4), "white")  # drawn 4x larger, then downsampled
    draw = ImageDraw.Draw(img)
    s = size * 4
    r = rng.uniform(0.22, 0.36) * s
    cx, cy = rng.uniform(r + 2, s - r - 2), rng.uniform(r + 2, s - r - 2)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "square":
        draw.rectangle((cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85), fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=colour)
    return img.resize((size, size), Image.LANCZOS)


def parse_holdout(text: str | Sequence[str]) -> tuple[str, ...]:
    """ "green triangle,blue circle" (or a list) -> the held-out captions, each a colour and a shape."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        caption = " ".join(item.lower().split())
        if not caption:
            continue
        colour, _, shape = caption.partition(" ")
        if colour not in COLOURS or shape not in SHAPES:
            raise GouacheError(f"--holdout {item.strip()!r}: not a colour and a shape "
                               f"(colours: {', '.join(COLOURS)}; shapes: {', '.join(SHAPES)})")
        out.append(caption)
    return tuple(dict.fromkeys(out))


def read_shapes_info(folder: Path) -> dict:
    """The folder's ``shapes.json`` (colours, shapes, holdout); the defaults for an older folder."""
    path = Path(folder) / SHAPES_FILE
    if not path.is_file():
        return {"colours": list(COLOURS), "shapes": list(SHAPES), "holdout": []}
    return json.loads(path.read_text(encoding="utf-8"))


def build_shapes_dataset(out: Path, *, size: int = 32, per_caption: int = 64, seed: int = 0,
                         holdout: Sequence[str] = (), progress: bool = True, overwrite: bool = False) -> int:
    """Write ``per_caption`` images for each colour x shape caption but the ``holdout`` ones;
    return the count. ``out`` is new, empty or an earlier shapes folder; any other folder is
    refused unless ``overwrite``."""
    out = Path(out)
    held = set(parse_holdout(holdout))
    check_output_folder(out, overwrite=overwrite, own=lambda folder: (folder / SHAPES_FILE).is_file())
    rng = random.Random(seed)
    rows = []
    jobs = [(c, s, k) for c in COLOURS for s in SHAPES for k in range(per_caption) if f"{c} {s}" not in held]
    for colour, shape, k in tqdm(jobs, desc="drawing shapes", unit="img", disable=not progress):
        name = f"images/{colour}_{shape}_{k:03d}.png"
        save_png(_draw(shape, COLOURS[colour], size, rng), out / name)
        rows.append({"file_name": name, "text": f"{colour} {shape}"})
    write_if_changed(out / "metadata.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
    info = {"colours": list(COLOURS), "shapes": list(SHAPES), "holdout": sorted(held)}
    write_if_changed(out / SHAPES_FILE, (json.dumps(info, indent=2) + "\n").encode())
    return len(rows)
