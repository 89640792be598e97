"""Run an evaluation: generate, measure against the real images, write report.json and plots.

    from gouache.evaluate import evaluate, format_report
    report = evaluate("runs/emoji64-cpu", "data/emoji64", num_images=200, references=True)
    print(format_report(report))

Rows of the report: ``model`` (the checkpoint's pictures), and with
``references=True`` a ``ceiling`` (real pictures scored as if generated: what a
perfect model would reach at this N) and a ``floor`` (clipped Gaussian noise).
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..checkpoint import resolve_model_dir
from ..data.imagefolder import CaptionedImages, load_imagefolder, read_records
from ..errors import GouacheError
from ..images import grid, save_png, to_pil, to_uint8
from ..pipeline import Pipeline, default_model_dir
from . import metrics
from .features import ImageFeatures, InceptionV3TF, cached_features, metadata_checksum

__all__ = ["evaluate", "format_report", "EvalContext", "RealSet"]


@dataclass
class RealSet:
    """Features of real images with each image's label and style."""

    features: torch.Tensor  # (N, D)
    labels: list[str]
    styles: list[str]

    @staticmethod
    def cat(parts: Sequence["RealSet"]) -> "RealSet":
        return RealSet(torch.cat([p.features for p in parts]), [x for p in parts for x in p.labels],
                       [x for p in parts for x in p.styles])


@dataclass
class EvalContext:
    """Everything a set of generated features is measured against."""

    extractor: ImageFeatures
    split: RealSet  # the evaluation split: FID/KID reference
    everything: RealSet  # all real images (every split and style): fidelity reference
    train: RealSet | None  # memorisation reference
    typical: float | None  # median real held-out -> nearest same-style train distance
    seed: int = 0

    def score(self, feats: torch.Tensor, prompts: Sequence[str], *, fid: bool = True) -> dict:
        """FID, KID, fidelity and memorisation of one set of features."""
        out: dict = {"count": len(feats)}
        if fid:
            out["fid"] = metrics.fid(self.split.features, feats, self.extractor)
        out["kid_mean"], out["kid_std"] = metrics.kid(self.split.features, feats, self.extractor, seed=self.seed)
        out |= metrics.fidelity(feats, prompts, self.everything.features, self.everything.labels)
        if self.train is not None and self.typical is not None:
            out |= metrics.memorisation(feats, self.train.features, self.typical)
        return out


def _label(row: dict) -> str:
    return str(row.get("label") or row["text"])


def load_context(data: Path, split: str, size: int, extractor: ImageFeatures, *, seed: int = 0,
                 cache_dir: Path | None = None, batch_size: int = 16, progress: bool = True,
                 split_images: torch.Tensor | None = None) -> EvalContext:
    """Real features of every split of ``data`` (cached), organised for scoring."""
    rows = read_records(data, split=None)
    names = sorted({r.get("split", "train") for r in rows}, key=lambda s: (s != "train", s))
    if split not in names:
        raise GouacheError(f"{data} has no {split!r} split (it has: {', '.join(names)})")
    sets = {}
    for name in names:
        part = [r for r in rows if r.get("split", "train") == name]
        feats = cached_features(data, name, size, extractor, cache_dir=cache_dir, batch_size=batch_size,
                                progress=progress, images=split_images if name == split else None)
        sets[name] = RealSet(feats, [_label(r) for r in part], [str(r.get("style") or "") for r in part])
    train = sets.get("train")
    typical = None
    if train is not None and split != "train":
        held = sets[split]
        typical = metrics.typical_nn_distance(held.features, held.styles, train.features, train.styles)
    return EvalContext(extractor, sets[split], RealSet.cat(list(sets.values())), train, typical, seed)


def eval_prompts(split_labels: Sequence[str], n: int, *, seed: int = 0,
                 prompts_file: Path | None = None) -> list[str]:
    """``n`` prompts: the split's distinct labels (or the file's lines) in a seeded order, cycled."""
    if prompts_file is not None:
        try:
            pool = [ln.strip() for ln in Path(prompts_file).read_text(encoding="utf-8").splitlines()]
        except OSError as e:
            raise GouacheError(f"cannot read the prompts file {prompts_file}: {e}") from None
        pool = [p for p in pool if p]
        if not pool:
            raise GouacheError(f"{prompts_file} holds no prompts (one a line)")
    else:
        pool = sorted(set(split_labels))
        random.Random(seed).shuffle(pool)
    return [pool[k % len(pool)] for k in range(n)]


def generate_images(pipe: Pipeline, prompts: Sequence[str], *, sampler: str, steps: int | None,
                    guidance: float, seed: int, batch_size: int, progress: bool = True) -> torch.Tensor:
    """Paint one image per prompt (image k from seed + k): (N, 3, H, W) uint8."""
    result = pipe.generate(list(prompts), num_images=1, sampler=sampler, steps=steps, guidance=guidance,
                           seed=seed, batch_size=batch_size, progress=progress)
    return to_uint8(result.final)


def noise_images(n: int, size: int, seed: int) -> torch.Tensor:
    """The floor: Gaussian noise clipped to [-1, 1], as uint8 images (N, 3, size, size)."""
    g = torch.Generator().manual_seed(seed)
    return to_uint8(torch.randn(n, 3, size, size, generator=g).clamp(-1, 1))


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
    """The fixed held-out denoising loss (``gouache.validation.HeldOut``): per sigma and mean."""
    from ..validation import HeldOut

    held = HeldOut(data, pipe.text_encoder, pipe.device, sigma_data=pipe.config.schedule.sigma_data)
    per = held.per_sigma(pipe.denoiser.net)
    return {"per_sigma": {f"{s:.4g}": v for s, v in per.items()}, "mean": sum(per.values()) / len(per)}


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _model_info(folder: Path) -> dict:
    """The checkpoint's folder, the sha256 of its EMA weights and, in a run, its training step."""
    ema = folder / "ema.safetensors"
    if not ema.exists():
        raise GouacheError(f"{ema} is missing")
    info: dict = {"folder": str(folder), "ema_sha256": _sha256(ema)}
    try:
        info["step"] = int(json.loads((folder / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return info


def _clean(x):
    """JSON-safe: NaN/inf -> None, recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _device(device: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def evaluate(model: Path | str | None, data: Path | str, *, split: str = "test", num_images: int = 200,
             prompts: Path | None = None, seed: int = 0, sampler: str = "dpmpp_2m", steps: int | None = None,
             guidance: float = 3.0, out: Path | str | None = Path("eval"), references: bool = False,
             sweep_steps: bool = False, sweep_guidance: bool = False, sweep_images: int = 50,
             batch_size: int = 16, device: str = "auto", heldout: bool = True,
             pipeline: Pipeline | None = None, extractor: ImageFeatures | None = None,
             cache_dir: Path | None = None, progress: bool = True) -> dict:
    """Generate ``num_images`` pictures and measure them against the real images of ``data``.

    Returns the report (also written to ``out/report.json`` with PNG plots unless
    ``out`` is None). ``pipeline`` and ``extractor`` may be given to reuse loaded
    networks (tests pass a cheap extractor).
    """
    from ..samplers import SAMPLERS

    start = time.time()
    data = Path(data)
    if sampler not in SAMPLERS:
        raise GouacheError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    if num_images < 2:
        raise GouacheError(f"evaluation needs at least 2 images (FID and KID compare sets), got {num_images}")
    folder = resolve_model_dir(model if model is not None else default_model_dir())
    model_info = _model_info(folder)  # now: a training run may prune this checkpoint later
    dev = _device(device)
    pipe = pipeline or Pipeline.load(folder, device=dev)
    extractor = extractor or InceptionV3TF(dev)
    size = pipe.image_size
    split_data = load_imagefolder(data, size=size, split=split, progress=progress)
    ctx = load_context(data, split, size, extractor, seed=seed, cache_dir=cache_dir, batch_size=batch_size,
                       progress=progress, split_images=split_data.images)
    prompt_list = eval_prompts([_label(r) for r in split_data.records], num_images, seed=seed,
                               prompts_file=prompts)
    images = generate_images(pipe, prompt_list, sampler=sampler, steps=steps, guidance=guidance, seed=seed,
                             batch_size=batch_size, progress=progress)
    feats = extractor.extract(images, batch_size=batch_size, progress=progress, desc="inception: generated")
    row = ctx.score(feats, prompt_list)
    if heldout:
        row["heldout_loss"] = heldout_loss(pipe, split_data)

    report: dict = {
        "model": model_info,
        "data": {"folder": str(data), "metadata_sha256": metadata_checksum(data)},
        "split": split, "sampler": sampler, "steps": steps or SAMPLERS[sampler][2], "guidance": guidance,
        "seed": seed, "feature_network": extractor.name, "image_size": size,
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
    if sweep_steps or sweep_guidance:
        from .sweeps import run_sweeps

        report["sweeps"], plots = run_sweeps(
            pipe, ctx, prompt_list[:sweep_images], out=Path(out) if out is not None else None,
            steps_sweep=sweep_steps, guidance_sweep=sweep_guidance, sampler=sampler, steps=steps,
            guidance=guidance, seed=seed, batch_size=batch_size, progress=progress)
    report["seconds"] = round(time.time() - start, 1)
    report = _clean(report)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        pics = [to_pil(img.float() / 127.5 - 1) for img in images[:32]]
        plots.append(str(save_png(grid(pics, labels=prompt_list[:32], scale=2), out / "samples.png")))
        report["plots"] = plots
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_report(report: dict) -> str:
    """A small table for the terminal: one row per scored set."""
    rows = [("model", report["metrics"])]
    rows += [(name, r) for name, r in (report.get("references") or {}).items()]
    head = f"{'':8} {'N':>5} {'FID':>8} {'KID x1e3':>15} {'top-1':>6} {'top-5':>6} {'copies':>6} {'NN ratio':>8}"
    lines = [f"{report['model']['folder']}  ({report['sampler']}, {report['steps']} steps, "
             f"guidance {report['guidance']}, split {report['split']})", head]
    for name, r in rows:
        kid = "-" if r.get("kid_mean") is None else f"{1e3 * r['kid_mean']:.2f} ± {1e3 * r['kid_std']:.2f}"
        lines.append(f"{name:8} {_fmt(r.get('count'), 'd'):>5} {_fmt(r.get('fid'), '.2f'):>8} {kid:>15} "
                     f"{_fmt(r.get('top1'), '.3f'):>6} {_fmt(r.get('top5'), '.3f'):>6} "
                     f"{_fmt(r.get('near_copy_share'), '.3f'):>6} {_fmt(r.get('median_nn_ratio'), '.3f'):>8}")
    loss = report["metrics"].get("heldout_loss")
    if loss:
        lines.append(f"held-out denoising loss: {loss['mean']:.4f} (mean over {len(loss['per_sigma'])} sigmas)")
    return "\n".join(lines)
