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
from gouache.store.files import check_output_folder, save_png
from gouache.store.reading import MB, read_json

__all__ = ["COLOURS", "SHAPES", "SHAPES_FILE", "build_shapes_dataset", "parse_holdout", "read_shapes_info"]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220), "yellow": (240, 200, 0),
}
SHAPES = ("circle", "square", "triangle")
SHAPES_FILE = "shapes.json"  # what the folder holds: colours, shapes, held-out captions
SIZES = (8, 1024)  # smallest and largest side of a picture (drawn 4x larger, then downsampled)
MAX_PER_CAPTION = 10_000  # pictures of one caption


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
    if not path.exists() and not path.is_symlink():
        return {"colours": list(COLOURS), "shapes": list(SHAPES), "holdout": []}
    info = read_json(path, what=SHAPES_FILE, limit=MB, top=None)
    if not isinstance(info, dict) or not all(
            isinstance(info.get(k), list) and all(isinstance(x, str) for x in info[k])
            for k in ("colours", "shapes", "holdout")):
        raise GouacheError(f"{path}: must be a JSON object with lists of texts colours, shapes and holdout")
    return info


def build_shapes_dataset(out: Path, *, size: int = 32, per_caption: int = 64, seed: int = 0,
                         holdout: Sequence[str] = (), progress: bool = True, overwrite: bool = False) -> int:
    """Write ``per_caption`` images for each colour x shape caption but the ``holdout`` ones;
    return the count. ``out`` is new, empty or an earlier shapes folder; any other folder is
    refused unless ``overwrite``."""
    if not SIZES[0] <= size <= SIZES[1]:
        raise GouacheError(f"--size must be from {SIZES[0]} to {SIZES[1]} pixels, got {size}")
    if not 1 <= per_caption <= MAX_PER_CAPTION:
        raise GouacheError(f"--per-caption must be from 1 to {MAX_PER_CAPTION}, got {per_caption}")
    out = Path(out)
    held = set(parse_holdout(holdout))
    if len(held) == len(COLOURS) * len(SHAPES):
        raise GouacheError("--holdout holds out every caption: the data set would be empty")
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
