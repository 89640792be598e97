"""A small captioned set of coloured shapes: the sanity check that the prompt steers.

"red circle", "blue square", "green triangle", ...: each caption names a colour
and a shape, drawn at a random position and size on white. A model that paints
the right shape in the right colour for each caption has learned to listen.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw
from tqdm.auto import tqdm

__all__ = ["COLOURS", "SHAPES", "build_shapes_dataset"]

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220), "yellow": (240, 200, 0),
}
SHAPES = ("circle", "square", "triangle")


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


def build_shapes_dataset(out: Path, *, size: int = 32, per_caption: int = 64, seed: int = 0,
                         progress: bool = True) -> int:
    """Write ``per_caption`` images for each colour x shape caption; return the count."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    jobs = [(c, s, k) for c in COLOURS for s in SHAPES for k in range(per_caption)]
    for colour, shape, k in tqdm(jobs, desc="drawing shapes", unit="img", disable=not progress):
        name = f"images/{colour}_{shape}_{k:03d}.png"
        _draw(shape, COLOURS[colour], size, rng).save(out / name)
        rows.append({"file_name": name, "text": f"{colour} {shape}"})
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    return len(rows)
