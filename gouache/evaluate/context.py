"""What generated pictures are measured against, and how they are made: the real images'
features by split (``load_context``), the prompts (``eval_prompts``), the pictures
(``generate_images``) and the floor's noise (``noise_images``). Shared by the report and
the sweeps.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from gouache.data.imagefolder import read_records
from gouache.errors import GouacheError
from gouache.evaluate import metrics
from gouache.evaluate.features import ImageFeatures, cached_features
from gouache.images import fit, to_uint8, to_uint8_tensor
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline, check_seeds
from gouache.store.files import check_output_folder

__all__ = ["RealSet", "EvalContext", "row_label", "load_context", "check_run", "check_count", "read_prompts",
           "eval_prompts", "generate_images", "fit_images", "noise_images", "MAX_BATCH", "MAX_SUITE_SEEDS"]

MAX_BATCH = 1024  # pictures a batch, for sampling and for the Inception network
MAX_SUITE_SEEDS = 1000  # pictures a suite paints of each of its prompts


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
    size: int = 0  # the side, in pixels, the real images are scored at (0: as loaded)

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


def row_label(row: dict) -> str:
    """A metadata row's label: what a prompt for its image says."""
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
        sets[name] = RealSet(feats, [row_label(r) for r in part], [str(r.get("style") or "") for r in part])
    train = sets.get("train")
    typical = None
    if train is not None and split != "train":
        held = sets[split]
        typical = metrics.typical_nn_distance(held.features, held.styles, train.features, train.styles)
    return EvalContext(extractor, sets[split], RealSet.cat(list(sets.values())), train, typical, seed, size)


def check_count(value: object, lo: int, hi: int, *, what: str) -> None:
    """Refuse ``value`` unless it is a whole number from ``lo`` to ``hi``; ``what`` names it."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise GouacheError(f"{what} must be a whole number from {lo} to {hi}, got {value!r}")


def check_run(*, seed: int, count: int, batch_size: int, out: Path | str | None) -> None:
    """Refuse, before anything loads, what an evaluation painting ``count`` pictures cannot run
    with: a batch size out of range, a seed (``seed`` to ``seed + count - 1``) that a generator
    cannot take, an ``out`` folder it could not write its report in."""
    check_count(batch_size, 1, MAX_BATCH, what="the batch size")
    check_seeds([seed, seed + count - 1])
    if out is not None:
        check_output_folder(out, empty=False)  # an earlier report in it is replaced


def read_prompts(path: Path | str) -> list[str]:
    """The prompts of a file, one a line (blank lines skipped)."""
    try:
        pool = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise GouacheError(f"cannot read the prompts file {path}: {e}") from None
    pool = [p for p in pool if p]
    if not pool:
        raise GouacheError(f"{path} holds no prompts (one a line)")
    return pool


def eval_prompts(split_labels: Sequence[str], n: int, *, seed: int = 0,
                 prompts_file: Path | None = None) -> list[str]:
    """``n`` prompts: the split's distinct labels (or the file's lines) in a seeded order, cycled."""
    if prompts_file is not None:
        pool = read_prompts(prompts_file)
    else:
        pool = sorted(set(split_labels))
        random.Random(seed).shuffle(pool)
    return [pool[k % len(pool)] for k in range(n)]


def generate_images(pipe: Pipeline, prompts: Sequence[str], options: SamplingOptions, *, seed: int,
                    batch_size: int, progress: bool = True, size: int = 0) -> torch.Tensor:
    """Paint one image per prompt (image k from seed + k): (N, 3, H, W) uint8, resized to
    ``size`` x ``size`` as the real images are read (``fit_images``) unless ``size`` is 0 or
    the model's own."""
    result = pipe.generate(list(prompts), options, num_images=1, seed=seed, batch_size=batch_size,
                           progress=progress)
    images = to_uint8(result.final)  # (N, 3, H, W)
    return fit_images(images, size) if size else images


def fit_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> (N, 3, size, size) uint8 through ``images.fit`` (Lanczos), the
    resize real images get when a folder is loaded at ``size``: a 128 px model's pictures
    scored against 64 px references meet them at the references' own scale."""
    if images.shape[-2:] == (size, size):
        return images
    pil = (Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images)  # (H, W, 3) each
    return torch.stack([to_uint8_tensor(fit(im, size)) for im in pil])


def noise_images(n: int, size: int, seed: int) -> torch.Tensor:
    """The floor: Gaussian noise clipped to [-1, 1], as uint8 images (N, 3, size, size)."""
    g = torch.Generator().manual_seed(seed)
    return to_uint8(torch.randn(n, 3, size, size, generator=g).clamp(-1, 1))
