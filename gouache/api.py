"""What three commands do beyond one library call, as Python functions: write pictures to
files (``gouache generate``: ``generate``; ``gouache noise``: ``noise_strip_file``) and write a
model folder, with its few-step student if asked (``gouache export``: ``export``).

The other commands each make one library call:

    gouache train     gouache.training.train.train (``gouache.train``) on a TrainConfig
    gouache distill   gouache.training.distill.distill
    gouache eval      gouache.evaluate.evaluate; the suites evaluate.understanding, evaluate.shapes
    gouache data      gouache.data.build.emoji.build_emoji_dataset, data.build.shapes.build_shapes_dataset,
                      data.check.check_dataset, data.shards.write_shards, data.prompts.embed_dataset
    gouache serve     gouache.serve.app.create_app around a loaded ``Pipeline``
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from gouache.errors import GouacheError
from gouache.images import grid, load_rgb
from gouache.model.lora import LoraSpec
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline, check_prompts, check_seeds
from gouache.sampling.start import check_start, resolve_strength, steps_to_run
from gouache.sampling.strips import evenly_spaced_steps, noise_strip, trajectory_strip
from gouache.store.adapters import parse_lora_spec
from gouache.store.checkpoint import check_export_folder, default_model_dir, export_model
from gouache.store.files import Inputs, check_output_file, check_output_folder, replacing_folder, save_png
from gouache.store.student import check_student, copy_student

__all__ = ["generate", "noise_strip_file", "export"]


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return "-".join(filter(None, keep.split("-")))[:60] or "image"


MAX_IMAGES_PER_CALL = 10_000  # pictures per call; they are written as they are painted
MAX_SCALE = 16  # enlargement of the saved pictures (a 64 px picture becomes 1024 px)
GRID_IMAGES = 100  # the grid shows the first this many pictures


def generate(prompt: str, options: SamplingOptions = SamplingOptions(), *, model: str | Path | None = None,
             num_images: int = 1, seed: int = 0, out: Path = Path("out"), trajectory: Path | None = None,
             image: Path | None = None, mask: Path | None = None, strength: float | None = None,
             scale: int = 1, device: str = "auto", pipeline: Pipeline | None = None,
             batch_size: int = 16, lora: Sequence[LoraSpec] = (), overwrite: bool = False) -> list[Path]:
    """Generate and save, one PNG per image as each batch finishes, plus a grid when there
    are several; return the paths. ``out`` ending in .png names the first picture's file
    (then OUT-1.png, ..., OUT-grid.png; refused where one exists, unless ``overwrite``);
    otherwise it is a folder of PROMPT-seedN.png files (a name already taken gets -2, -3, ...,
    unless ``overwrite``). ``lora``: adapters to load on ``model`` (FILE[:SCALE])."""
    check_prompts([prompt], num_images)  # everything before any loading
    if num_images > MAX_IMAGES_PER_CALL:
        raise GouacheError(f"at most {MAX_IMAGES_PER_CALL} pictures a call, got {num_images}")
    check_seeds([seed, seed + num_images - 1])
    if not 1 <= scale <= MAX_SCALE:
        raise GouacheError(f"--scale must be from 1 to {MAX_SCALE}, got {scale}")
    check_start(image, mask, strength, names=("--image", "--mask", "--strength"))
    inputs = [("the --image", image), ("the --mask", mask), ("the --model", model or default_model_dir()),
              *_lora_inputs(lora)]
    pictures, sheet = _names(Path(out), _slug(prompt), range(seed, seed + num_images), inputs, overwrite)
    if trajectory is not None:
        outputs = [("a picture of --out", p) for p in pictures + [sheet]]
        trajectory = check_output_file(trajectory, what="--trajectory", inputs=inputs + outputs, overwrite=overwrite)
    pipe = pipeline or Pipeline.load(model, device=device, lora=lora)
    options = pipe.resolve(options)  # "auto" named: the student's few steps, or the diffusion model's
    steps = options.steps if image is None else steps_to_run(
        options.steps, resolve_strength(strength, masked=mask is not None))
    paths, shown = [], []
    for first in range(0, num_images, batch_size):
        seeds = list(range(seed + first, seed + min(num_images, first + batch_size)))
        record = evenly_spaced_steps(steps, 5) if trajectory is not None and first == 0 else ()
        result = pipe.generate(prompt, options, num_images=len(seeds), seeds=seeds, image=image, mask=mask,
                               strength=strength, record=record, batch_size=batch_size)
        for k, img in enumerate(result.images, start=first):
            big = img.resize((img.width * scale, img.height * scale), 0) if scale > 1 else img
            paths.append(save_png(big, pictures[k]))
        shown += result.images[:GRID_IMAGES - len(shown)]
        if first == 0 and trajectory is not None:
            strip = save_png(trajectory_strip(result), trajectory)
    if num_images > 1:
        paths.append(save_png(grid(shown, scale=scale), sheet))
    if trajectory is not None:
        paths.append(strip)
    return paths


def _names(out: Path, stem: str, seeds: range, inputs: Inputs, overwrite: bool) -> tuple[list[Path], Path | None]:
    """Where each picture goes, and the grid (None for one picture): ``out`` a .png file or a folder."""
    many = len(seeds) > 1
    if out.suffix.lower() == ".png":
        pictures = [out] + [out.with_name(f"{out.stem}-{k}.png") for k in range(1, len(seeds))]
        sheet = out.with_name(f"{out.stem}-grid.png") if many else None
        for k, path in enumerate(pictures + [sheet] if many else pictures):
            what = "--out" if k == 0 else f"--out {out.name}'s {'grid' if path == sheet else 'picture'}"
            check_output_file(path, what=what, inputs=inputs, overwrite=overwrite)
        return pictures, sheet
    check_output_folder(out, inputs=inputs, empty=False)
    taken: set[Path] = set()

    def free(name: str) -> Path:
        path, n = out / f"{name}.png", 1
        while not overwrite and (path in taken or path.exists() or path.is_symlink()):
            n += 1
            path = out / f"{name}-{n}.png"
        taken.add(path)
        return check_output_file(path, inputs=inputs, overwrite=True)

    return [free(f"{stem}-seed{s}") for s in seeds], free(f"{stem}-grid") if many else None


def _lora_inputs(specs: Sequence[LoraSpec], flag: str = "--lora") -> Inputs:
    return [(f"the {flag} adapter", parse_lora_spec(spec)[0]) for spec in specs]


MAX_SIZE = 1024  # side of the noising strip's pictures


def noise_strip_file(image: Path, *, out: Path, size: int = 64, seed: int = 0, overwrite: bool = False) -> Path:
    """Write the forward noising strip of one image file (refused where a file is, unless ``overwrite``)."""
    if not 8 <= size <= MAX_SIZE:
        raise GouacheError(f"--size must be from 8 to {MAX_SIZE}, got {size}")
    check_seeds([seed])
    out = check_output_file(out, inputs=[("the image", image)], overwrite=overwrite)
    return save_png(noise_strip(load_rgb(image, size), seed=seed), out)


def export(runs: Path | str | Sequence[Path | str], out: Path | str, *, fp32: bool = False,
           merge_lora: Sequence[LoraSpec] = (), student: Path | str | None = None, overwrite: bool = False) -> Path:
    """Write the model folder ``out`` from the EMA weights of ``runs`` (averaged if several;
    float16 unless ``fp32``), with the adapters ``merge_lora`` merged in, and the few-step
    student of the distillation run ``student`` beside them (refused, before anything is
    written, unless it was distilled from these weights). The folder is written beside ``out``
    and renamed into place: a folder already there is replaced only with ``overwrite``."""
    runs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    dtype = torch.float32 if fp32 else torch.float16
    if student is not None and (len(runs) > 1 or merge_lora):
        raise GouacheError("--student joins a student to the one model it was distilled from: name one "
                           "model, without --merge-lora")
    check_export_folder(out, [("the exported folder", run) for run in runs] + [("the --student run", student)]
                        + _lora_inputs(merge_lora, "--merge-lora"), overwrite=overwrite)
    found = None if student is None else check_student(runs[0], student)
    with replacing_folder(out) as folder:
        export_model(runs, folder, dtype=dtype, lora=merge_lora)
        if found is not None:
            copy_student(folder, *found, dtype=dtype)
    return Path(out)

