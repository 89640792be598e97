"""``gouache generate`` and ``gouache noise``: parse, call ``gouache.api``, print the paths."""
from __future__ import annotations

import argparse
from pathlib import Path

from gouache.cli.arguments import (
    HELP,
    add_lora_argument,
    add_sampling_arguments,
    sampling_options,
)

__all__ = ["add_generate", "add_noise"]


def add_generate(sub) -> None:
    p = sub.add_parser("generate", formatter_class=HELP, help="paint pictures from a prompt",
                       description="Start from pure noise and denoise step by step, steered by the prompt.")
    p.add_argument("prompt", help='what to paint, e.g. "red apple"')
    p.add_argument("--model", default=None, help="model or run folder (default: the shipped emoji model)")
    add_lora_argument(p)
    p.add_argument("-n", "--num-images", type=int, default=1, help="pictures to make")
    add_sampling_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="image k uses seed+k: same seed, same picture")
    p.add_argument("--out", type=Path, default=Path("out"),
                   help="a folder for the PNGs, or a file name ending in .png (then NAME-1.png, ...)")
    p.add_argument("--trajectory", type=Path, default=None, help="also write the step-by-step strip here")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files already there (without it: a folder's taken names get -2, -3, ...; "
                        "a named .png file that exists is refused)")
    p.add_argument("--image", type=Path, default=None,
                   help="start from this picture instead of pure noise (image-to-image; any size)")
    p.add_argument("--strength", type=float, default=None,
                   help="with --image: how far to noise it, 0 (keep it) to 1 (from pure noise); "
                        "default 0.75, or 1 with --mask")
    p.add_argument("--mask", type=Path, default=None,
                   help="with --image: repaint only where this picture is white (inpainting)")
    p.add_argument("--scale", type=int, default=1, help="enlarge saved pictures this many times (nearest)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_generate)


def _generate(a: argparse.Namespace) -> None:
    from gouache.api import generate

    paths = generate(a.prompt, sampling_options(a), model=a.model, num_images=a.num_images, seed=a.seed,
                     out=a.out, trajectory=a.trajectory, image=a.image, mask=a.mask, strength=a.strength,
                     scale=a.scale, device=a.device, lora=a.lora, overwrite=a.overwrite)
    for path in paths:
        print(path)


def add_noise(sub) -> None:
    p = sub.add_parser("noise", formatter_class=HELP, help="draw the forward noising strip of an image",
                       description="Clean, noisier, noisier, pure noise: what training does to an image.")
    p.add_argument("image", type=Path)
    p.add_argument("--out", type=Path, default=Path("out/noise_strip.png"))
    p.add_argument("--size", type=int, default=64, help="resize and centre-crop to this side")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_noise)


def _noise(a: argparse.Namespace) -> None:
    from gouache.api import noise_strip_file

    print(noise_strip_file(a.image, out=a.out, size=a.size, seed=a.seed, overwrite=a.overwrite))
