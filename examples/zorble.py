"""Draw the "zorble" set: a made-up badge that the shipped emoji model never saw.

A zorble is a hexagon with a thick dark rim, filled with bands of two colours, with a
white dot in the middle. This draws 16 of them (4 colour pairs x 4 variations of size,
tilt and band count) as an imagefolder with captions such as "a red and yellow zorble
badge". No picture has blue in it, so "a blue and white zorble badge" asks for something
the adapter never saw: the worked example of docs/lora.md.

    python examples/zorble.py --out data-build/zorble
"""
from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "yellow": (245, 200, 20), "green": (40, 170, 70), "white": (250, 250, 250),
           "purple": (140, 60, 190), "orange": (250, 140, 30), "blue": (40, 80, 220)}
PAIRS = [("red", "yellow"), ("green", "white"), ("purple", "orange"), ("red", "white")]  # never blue
RIM = (35, 35, 60)


def draw_zorble(first: str, second: str, *, size: int, rng: random.Random) -> Image.Image:
    """One zorble, drawn 4x larger and downsampled for smooth edges."""
    s = size * 4
    img = Image.new("RGB", (s, s), "white")
    radius = s * rng.uniform(0.36, 0.44)
    cx, cy = s / 2 + rng.uniform(-0.04, 0.04) * s, s / 2 + rng.uniform(-0.04, 0.04) * s
    tilt = rng.uniform(-0.25, 0.25)
    hexagon = [(cx + radius * math.cos(tilt + k * math.pi / 3), cy + radius * math.sin(tilt + k * math.pi / 3))
               for k in range(6)]
    bands = rng.choice([4, 5, 6])
    fill = Image.new("RGB", (s, s), COLOURS[first])
    draw = ImageDraw.Draw(fill)
    height = 2 * radius / bands
    for b in range(1, bands, 2):  # every other band in the second colour
        top = cy - radius + b * height
        draw.rectangle((0, top, s, top + height), fill=COLOURS[second])
    mask = Image.new("L", (s, s), 0)
    ImageDraw.Draw(mask).polygon(hexagon, fill=255)
    img.paste(fill, mask=mask)
    draw = ImageDraw.Draw(img)
    draw.polygon(hexagon, outline=RIM, width=max(4, int(s * 0.05)))
    dot = radius * 0.22
    draw.ellipse((cx - dot, cy - dot, cx + dot, cy + dot), fill="white", outline=RIM, width=max(3, int(s * 0.025)))
    return img.resize((size, size), Image.LANCZOS)


def build(out: Path, *, size: int = 64, per_pair: int = 4, seed: int = 0) -> int:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for first, second in PAIRS:
        for k in range(per_pair):
            name = f"zorble-{first}-{second}-{k}.png"
            draw_zorble(first, second, size=size, rng=rng).save(out / name)
            rows.append({"file_name": name, "text": f"a {first} and {second} zorble badge"})
    with open(out / "metadata.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return len(rows)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(f"drew {build(a.out, size=a.size, seed=a.seed)} zorbles in {a.out}")
