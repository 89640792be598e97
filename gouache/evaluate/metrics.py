"""The numbers: FID, KID, prompt fidelity and memorisation, all in Inception feature space.

* FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge
  to a Local Nash Equilibrium"): the Frechet distance between Gaussians fitted to
  the real and the generated features. Biased upwards at small N: compare only
  numbers measured with the same number of images.
* KID (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased squared MMD
  with a cubic polynomial kernel, averaged over random subsets; its mean does not
  depend on N, so small evaluations are comparable with large ones.
* Prompt fidelity: is the real image nearest to a generated one (L2 in feature
  space) an image of the prompt? top-1 and top-5 over all real images.
* Memorisation: the distance to the nearest training image relative to the typical
  real-to-real nearest-neighbour distance; a ratio < 0.5 is a near-copy.

FID and KID are computed by torchmetrics with the feature network as custom
extractor; features already computed go through it unchanged (see ``ImageFeatures``).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import torch

from gouache.errors import GouacheError
from gouache.evaluate.features import ImageFeatures

__all__ = ["fid", "kid", "nearest", "fidelity", "typical_nn_distance", "memorisation", "same_value",
           "NEAR_COPY"]

NEAR_COPY = 0.5  # a generated image closer than this fraction of the typical real-real distance


def _torchmetrics():
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError:
        raise GouacheError("evaluation needs torchmetrics: pip install torchmetrics scipy") from None
    return FrechetInceptionDistance, KernelInceptionDistance


def fid(real: torch.Tensor, fake: torch.Tensor, extractor: ImageFeatures) -> float:
    """FID (Heusel et al. 2017) between two sets of features (N, D); needs N >= 2 each."""
    if len(real) < 2 or len(fake) < 2:
        raise GouacheError("FID needs at least 2 real and 2 generated images")
    fid_cls, _ = _torchmetrics()
    metric = fid_cls(feature=extractor)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return max(float(metric.compute()), 0.0)  # rounding can make identical sets a hair negative


def kid(real: torch.Tensor, fake: torch.Tensor, extractor: ImageFeatures, *, subsets: int = 100,
        subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): mean and std over ``subsets`` random subsets."""
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise GouacheError("KID needs at least 2 real and 2 generated images")
    _, kid_cls = _torchmetrics()
    with warnings.catch_warnings():  # "will save all extracted features": we pass them in ourselves
        warnings.simplefilter("ignore", UserWarning)
        metric = kid_cls(feature=extractor, subsets=subsets, subset_size=size)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):  # the subsets are drawn from the global generator
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def nearest(query: torch.Tensor, ref: torch.Tensor, k: int = 5,
            exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest reference rows of each query row by L2 distance: (distances, indices).

    ``exclude`` (Q, R) bool removes pairs from the ranking (e.g. an image itself,
    or images of the same style); an excluded pair is never returned unless fewer
    than ``k`` references remain, then its distance is inf.
    """
    d = torch.cdist(query.double(), ref.double())  # (Q, R)
    if exclude is not None:
        d = d.masked_fill(exclude, float("inf"))
    k = min(k, ref.shape[0])
    dist, idx = d.topk(k, dim=1, largest=False)  # ascending
    return dist, idx


def fidelity(query: torch.Tensor, prompts: Sequence[str], ref: torch.Tensor, ref_labels: Sequence[str],
             *, exclude: torch.Tensor | None = None, k: int = 5) -> dict[str, float]:
    """Share of queries whose nearest real image (top-1), or any of the ``k`` nearest (top-k), has the prompt as label."""
    if len(query) == 0:
        return {"top1": float("nan"), f"top{k}": float("nan")}
    dist, idx = nearest(query, ref, k, exclude)
    hit = torch.tensor([[ref_labels[j] == p and d < float("inf") for j, d in zip(row, drow)]
                        for p, row, drow in zip(prompts, idx.tolist(), dist.tolist())])  # (Q, k)
    return {"top1": float(hit[:, 0].float().mean()), f"top{k}": float(hit.any(1).float().mean())}


def same_value(a: Sequence[str], b: Sequence[str]) -> torch.Tensor:
    """(len(a), len(b)) bool: a[i] == b[j]."""
    names = {s: n for n, s in enumerate(sorted(set(a) | set(b)))}
    ta = torch.tensor([names[s] for s in a])
    tb = torch.tensor([names[s] for s in b])
    return ta[:, None] == tb[None, :]


def typical_nn_distance(test: torch.Tensor, test_styles: Sequence[str], train: torch.Tensor,
                        train_styles: Sequence[str]) -> float:
    """Median distance from a real held-out image to its nearest real training image of the same style."""
    other = ~same_value(test_styles, train_styles)
    dist, _ = nearest(test, train, 1, other)
    finite = dist[:, 0][dist[:, 0].isfinite()]
    if len(finite) == 0:
        raise GouacheError("no held-out image has a training image of its style to compare with")
    return float(finite.quantile(0.5))


def memorisation(fake: torch.Tensor, train: torch.Tensor, typical: float) -> dict[str, float]:
    """Nearest-training-image distance / typical real NN distance: share of near-copies and median ratio."""
    dist, _ = nearest(fake, train, 1)
    ratio = dist[:, 0] / max(typical, 1e-12)
    return {"near_copy_share": float((ratio < NEAR_COPY).float().mean()),
            "median_nn_ratio": float(ratio.quantile(0.5))}
