"""The image-to-image and inpainting pictures of the README and docs/generate.md, with the shipped model.

    python examples/start_from_picture.py --data data/emoji64 --out docs/images

1. A rough sketch drawn here (a red disc with a green stroke, wobbly on purpose) turned into
   "red apple" at strength 0.5, 0.7 and 0.9.
2. The shipped model's red apple with a mask over the fruit, repainted as "green apple".
3. Emoji of the held-out split (the model never saw them) in Google's style, repainted as
   "LABEL, twitter style" at strength 0.3, 0.45 and 0.6.

Every row is one seed (0, 1, ...): no picture is chosen by hand.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from PIL import Image, ImageDraw

from gouache.images import grid, load_rgb

from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.store.files import save_png

HELD_OUT = ("lemon", "chestnut", "guitar", "video game")  # in the test split of the emoji data
RESTYLE = (0.3, 0.45, 0.6)  # strengths for the held-out emoji, seed 0


def sketch(size: int = 256) -> Image.Image:
    """A child's apple: a lumpy red disc, a brown stalk and a green stroke for the leaf."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    c, r = size / 2, size * 0.33
    lumpy = [(c + r * (1 + 0.06 * math.sin(5 * t)) * math.cos(t), c + 12 + r * (1 + 0.06 * math.sin(3 * t)) * math.sin(t))
             for t in (2 * math.pi * k / 60 for k in range(60))]
    draw.polygon(lumpy, fill=(215, 40, 35))
    draw.line([(c, c - r + 10), (c + 6, c - r - 30)], fill=(110, 70, 30), width=9)
    draw.line([(c + 10, c - r - 10), (c + 70, c - r - 40)], fill=(40, 160, 50), width=18)
    return img


def fruit_mask(size: int = 64) -> Image.Image:
    """White over the apple's body, black elsewhere (the stalk and leaf are kept)."""
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse([size * 0.14, size * 0.26, size * 0.86, size * 0.95], fill=255)
    return mask


def held_out(data: Path, labels: tuple[str, ...]) -> list[tuple[str, Path]]:
    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines()]
    found = {r["label"]: data / r["file_name"] for r in rows
             if r.get("split") == "test" and r.get("style") == "google" and r["label"] in labels}
    return [(label, found[label]) for label in labels if label in found]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the emoji data set (for held-out emoji)")
    ap.add_argument("--out", type=Path, default=Path("out"))
    ap.add_argument("--seeds", type=int, default=2)
    a = ap.parse_args()
    pipe = Pipeline.load(device="cpu")
    opts = SamplingOptions()
    seeds = range(a.seeds)

    drawn = sketch()
    rows = [[drawn.resize((64, 64), Image.LANCZOS)]
            + [pipe.generate("red apple", opts, seed=s, image=drawn, strength=k, progress=False).images[0]
               for k in (0.5, 0.7, 0.9)] for s in seeds]
    labels = ["sketch", "strength 0.5", "0.7", "0.9"] * a.seeds
    print(save_png(grid([i for r in rows for i in r], cols=4, labels=labels, scale=3), a.out / "img2img_sketch.png"))

    apple = pipe.generate("red apple", opts, seed=0, progress=False).images[0]
    mask = fruit_mask()
    green = [pipe.generate("green apple", opts, seed=s, image=apple, mask=mask, progress=False).images[0]
             for s in range(2 * a.seeds)]
    labels = ["red apple", "mask"] + [f"seed {s}" for s in range(2 * a.seeds)]
    print(save_png(grid([apple, mask.convert("RGB")] + green, cols=2 + 2 * a.seeds, labels=labels, scale=3),
                   a.out / "inpaint_green_apple.png"))

    pictures, labels = [], []
    for label, path in held_out(a.data, HELD_OUT):
        source = load_rgb(path, 64)
        pictures += [source] + [pipe.generate(f"{label}, twitter style", opts, seed=0, image=source, strength=k,
                                              progress=False).images[0] for k in RESTYLE]
        labels += [f"{label} (google)"] + [f"twitter style, {k}" for k in RESTYLE]
    print(save_png(grid(pictures, cols=1 + len(RESTYLE), labels=labels, scale=3), a.out / "restyle_heldout.png"))


if __name__ == "__main__":
    main()
