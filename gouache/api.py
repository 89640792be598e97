"""The Python API behind every CLI command: each function does what its command does."""
from __future__ import annotations

from pathlib import Path

from .images import grid, load_rgb, save_png
from .options import SamplingOptions
from .pipeline import Pipeline, check_prompts
from .strips import evenly_spaced_steps, noise_strip, trajectory_strip

__all__ = ["generate", "noise_strip_file"]


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return "-".join(filter(None, keep.split("-")))[:60] or "image"


def generate(prompt: str, options: SamplingOptions = SamplingOptions(), *, model: str | Path | None = None,
             num_images: int = 1, seed: int = 0, out: Path = Path("out"), trajectory: Path | None = None,
             scale: int = 1, device: str = "auto", pipeline: Pipeline | None = None) -> list[Path]:
    """Generate and save: one PNG per image, plus a grid when there are several; return the paths."""
    check_prompts([prompt], num_images)  # before any loading
    pipe = pipeline or Pipeline.load(model, device=device)
    record = evenly_spaced_steps(options.steps, 5) if trajectory is not None else ()
    result = pipe.generate(prompt, options, num_images=num_images, seed=seed, record=record)
    stem = _slug(prompt)
    paths = []
    for img, s in zip(result.images, result.seeds):
        big = img.resize((img.width * scale, img.height * scale), 0) if scale > 1 else img
        paths.append(save_png(big, Path(out) / f"{stem}-seed{s}.png"))
    if num_images > 1:
        paths.append(save_png(grid(result.images, scale=scale), Path(out) / f"{stem}-grid.png"))
    if trajectory is not None:
        paths.append(save_png(trajectory_strip(result), trajectory))
    return paths


def noise_strip_file(image: Path, *, out: Path, size: int = 64, seed: int = 0) -> Path:
    """Write the forward noising strip of one image file."""
    return save_png(noise_strip(load_rgb(image, size), seed=seed), out)
