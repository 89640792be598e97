"""Run an evaluation: generate, measure against the real images, write report.json and plots.

    from gouache.evaluate import evaluate, format_report
    report = evaluate("runs/emoji64-cpu", "data/emoji64", num_images=200, references=True)
    print(format_report(report))

Rows of the report: ``model`` (the checkpoint's pictures), and with
``references=True`` a ``ceiling`` (real pictures scored as if generated: what a
perfect model would reach at this N) and a ``floor`` (clipped Gaussian noise).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gouache.data.imagefolder import CaptionedImages, load_imagefolder
from gouache.device import pick_device
from gouache.errors import GouacheError
from gouache.evaluate import metrics
from gouache.evaluate.context import (
    EvalContext,
    check_count,
    check_run,
    eval_prompts,
    generate_images,
    load_context,
    noise_images,
    read_prompts,
    row_label,
)
from gouache.evaluate.features import ImageFeatures, InceptionV3TF, metadata_checksum
from gouache.evaluate.sweeps import run_sweeps
from gouache.images import grid, to_pil
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.store.checkpoint import (
    checkpoint_record,
    default_model_dir,
    resolve_model_dir,
)
from gouache.store.files import json_safe, save_png
from gouache.training.heldout import HeldOut

__all__ = ["evaluate", "format_report", "Sweeps", "MAX_IMAGES"]

MAX_IMAGES = 100_000  # pictures one evaluation paints (FID is usually reported at 50,000)


@dataclass(frozen=True)
class Sweeps:
    """Which sweeps to run (see ``sweeps.py``) and with how many pictures each point."""

    steps: bool = False  # KID and top-1 against steps 5..100 for every sampler
    guidance: bool = False  # KID and top-1 against guidance 1..8
    images: int = 50  # pictures per sweep point

    @property
    def any(self) -> bool:
        return self.steps or self.guidance


def ceiling(ctx: EvalContext, n: int) -> dict:
    """Real images scored as if generated.

    FID/KID: ``n`` random training images against the split. Fidelity: each held-out
    image ranked against the real images of the other style(s) only. Memorisation:
    held-out images against the training images.
    """
    out: dict = {}
    if ctx.train is not None:
        g = torch.Generator().manual_seed(ctx.seed)
        pick = torch.randperm(len(ctx.train.features), generator=g)[:n]
        feats = ctx.train.features[pick]
        out["count"] = len(feats)
        out["fid"] = metrics.fid(ctx.split.features, feats, ctx.extractor)
        out["kid_mean"], out["kid_std"] = metrics.kid(ctx.split.features, feats, ctx.extractor, seed=ctx.seed)
    held, every = ctx.split, ctx.everything
    exclude = metrics.same_value(held.styles, every.styles)  # rank against other styles only
    if (~exclude).any():
        out |= metrics.fidelity(held.features, held.labels, every.features, every.labels, exclude=exclude)
        out["fidelity_count"] = len(held.features)
    if ctx.train is not None and ctx.typical is not None:
        out |= metrics.memorisation(held.features, ctx.train.features, ctx.typical)
    return out


def heldout_loss(pipe: Pipeline, data: CaptionedImages) -> dict:
    """The fixed held-out denoising loss (``gouache.training.heldout.HeldOut``): per sigma and mean."""
    held = HeldOut(data, pipe.text_encoder, pipe.device, sigma_data=pipe.config.schedule.sigma_data)
    per = held.per_sigma(pipe.denoiser.net)
    return {"per_sigma": {f"{s:.4g}": v for s, v in per.items()}, "mean": sum(per.values()) / len(per)}


def evaluate(model: Path | str | None, data: Path | str, options: SamplingOptions = SamplingOptions(), *,
             split: str = "test", num_images: int = 200, prompts: Path | None = None, seed: int = 0,
             out: Path | str | None = Path("eval"), references: bool = False, sweeps: Sweeps = Sweeps(),
             batch_size: int = 16, device: str = "auto", heldout: bool = True, score_size: int | None = None,
             pipeline: Pipeline | None = None, extractor: ImageFeatures | None = None,
             cache_dir: Path | None = None, progress: bool = True) -> dict:
    """Generate ``num_images`` pictures and measure them against the real images of ``data``.

    ``score_size`` scores at that side in pixels instead of the model's: the real images are
    read at it, and the pictures resized to it as they are (so a 128 px model can be set beside
    a 64 px one on the same 64 px references); the held-out loss, which needs the model's own
    size, is then left out. Returns the report (also written to ``out/report.json`` with PNG
    plots unless ``out`` is None). ``pipeline`` and ``extractor`` may be given to reuse loaded
    networks (tests pass a cheap extractor).
    """
    start = time.time()
    data = Path(data)
    _check_arguments(num_images, sweeps, score_size)  # every argument before any loading
    check_run(seed=seed, count=num_images, batch_size=batch_size, out=out)
    if prompts is not None:
        read_prompts(prompts)
    folder = resolve_model_dir(model if model is not None else default_model_dir())
    model_info = checkpoint_record(folder)  # now: a training run may prune this checkpoint later
    dev = pick_device(device)
    pipe = pipeline or Pipeline.load(folder, device=dev)
    options = pipe.resolve(options)  # "auto" named, for the report
    extractor = extractor or InceptionV3TF(dev)
    size = score_size or pipe.image_size
    heldout = heldout and size == pipe.image_size  # a loss on resized references measures the resize
    split_data = load_imagefolder(data, size=size, split=split, progress=progress)
    ctx = load_context(data, split, size, extractor, seed=seed, cache_dir=cache_dir, batch_size=batch_size,
                       progress=progress, split_images=split_data.images)
    prompt_list = eval_prompts([row_label(r) for r in split_data.records], num_images, seed=seed,
                               prompts_file=prompts)
    images = generate_images(pipe, prompt_list, options, seed=seed, batch_size=batch_size, progress=progress,
                             size=size)
    feats = extractor.extract(images, batch_size=batch_size, progress=progress, desc="inception: generated")
    row = ctx.score(feats, prompt_list)
    if heldout:
        row["heldout_loss"] = heldout_loss(pipe, split_data)

    report: dict = {
        "model": model_info,
        "data": {"folder": str(data), "metadata_sha256": metadata_checksum(data)},
        "split": split, "sampler": options.sampler, "steps": options.steps, "guidance": options.guidance,
        "seed": seed, "feature_network": extractor.name, "image_size": size, "model_image_size": pipe.image_size,
        "counts": {"generated": len(feats), "real_split": len(ctx.split.features),
                   "real_train": len(ctx.train.features) if ctx.train is not None else 0,
                   "real_all": len(ctx.everything.features)},
        "prompts": "file " + str(prompts) if prompts else f"labels of the {split} split",
        "typical_nn_distance": ctx.typical,
        "metrics": row,
    }
    if references:
        noise = extractor.extract(noise_images(num_images, size, seed), batch_size=batch_size,
                                  progress=progress, desc="inception: noise")
        report["references"] = {"ceiling": ceiling(ctx, num_images), "floor": ctx.score(noise, prompt_list)}
    plots: list[str] = []
    if sweeps.any:
        report["sweeps"], plots = run_sweeps(
            pipe, ctx, prompt_list[:sweeps.images], options, out=Path(out) if out is not None else None,
            steps_sweep=sweeps.steps, guidance_sweep=sweeps.guidance, seed=seed, batch_size=batch_size,
            progress=progress)
    report["seconds"] = round(time.time() - start, 1)
    report = json_safe(report)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        pics = [to_pil(img.float() / 127.5 - 1) for img in images[:32]]
        plots.append(str(save_png(grid(pics, labels=prompt_list[:32], scale=2), out / "samples.png")))
        report["plots"] = plots
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _check_arguments(num_images: int, sweeps: Sweeps, score_size: int | None) -> None:
    if isinstance(num_images, int) and num_images < 2:
        raise GouacheError(f"evaluation needs at least 2 images (FID and KID compare sets), got {num_images}")
    check_count(num_images, 2, MAX_IMAGES, what="the number of images")
    if sweeps.any:
        check_count(sweeps.images, 2, MAX_IMAGES, what="the pictures per sweep point")
    if score_size is not None:
        check_count(score_size, 8, 1024, what="the scoring size in pixels")


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_report(report: dict) -> str:
    """A small table for the terminal: one row per scored set."""
    rows = [("model", report["metrics"])]
    rows += [(name, r) for name, r in (report.get("references") or {}).items()]
    head = f"{'':8} {'N':>5} {'FID':>8} {'KID x1e3':>15} {'top-1':>6} {'top-5':>6} {'copies':>6} {'NN ratio':>8}"
    scored = report["image_size"]
    at = "" if scored == report.get("model_image_size", scored) else f", scored at {scored} px"
    lines = [f"{report['model']['folder']}  ({report['sampler']}, {report['steps']} steps, "
             f"guidance {report['guidance']}, split {report['split']}{at})", head]
    for name, r in rows:
        kid = "-" if r.get("kid_mean") is None else f"{1e3 * r['kid_mean']:.2f} ± {1e3 * r['kid_std']:.2f}"
        lines.append(f"{name:8} {_fmt(r.get('count'), 'd'):>5} {_fmt(r.get('fid'), '.2f'):>8} {kid:>15} "
                     f"{_fmt(r.get('top1'), '.3f'):>6} {_fmt(r.get('top5'), '.3f'):>6} "
                     f"{_fmt(r.get('near_copy_share'), '.3f'):>6} {_fmt(r.get('median_nn_ratio'), '.3f'):>8}")
    loss = report["metrics"].get("heldout_loss")
    if loss:
        lines.append(f"held-out denoising loss: {loss['mean']:.4f} (mean over {len(loss['per_sigma'])} sigmas)")
    return "\n".join(lines)
