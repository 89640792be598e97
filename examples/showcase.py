"""The README's showcase grid: the ten showcase prompts, several seeds each.

    python examples/showcase.py --out docs/images/ten_prompts.png
    python examples/showcase.py --model runs/emoji64-cpu --seeds 4 --out /tmp/grid.png

Columns are prompts; each row is one seed (seeds 0, 1, ...), so no picture is chosen
by hand. Defaults are those of `gouache generate`: sampler auto (the shipped model's few-step
student, 4 steps; `--sampler dpmpp_2m` for the 20-step teacher), guidance 3.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from gouache.cli.arguments import add_sampling_arguments, sampling_options
from gouache.data.emoji_prompts import DEFAULT_SAMPLE_PROMPTS
from gouache.images import grid
from gouache.sampling.pipeline import Pipeline
from gouache.store.files import save_png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model or run folder (default: the shipped model)")
    ap.add_argument("--seeds", type=int, default=2, help="rows: one seed each")
    add_sampling_arguments(ap)
    ap.add_argument("--scale", type=int, default=2, help="enlarge each picture (nearest)")
    ap.add_argument("--out", type=Path, default=Path("out/ten_prompts.png"))
    a = ap.parse_args()

    pipe = Pipeline.load(a.model, device="cpu")
    prompts = list(DEFAULT_SAMPLE_PROMPTS)
    options = sampling_options(a)
    rows = [pipe.generate(prompts, options, seeds=[seed] * len(prompts), progress=False).images
            for seed in range(a.seeds)]
    images = [img for row in rows for img in row]  # row-major: seed 0's ten, then seed 1's
    labels = [f"{p} ({seed})" for seed in range(a.seeds) for p in prompts]
    print(save_png(grid(images, cols=len(prompts), labels=labels, scale=a.scale), a.out))


if __name__ == "__main__":
    main()
