"""Prior preservation for a LoRA run (Ruiz et al. 2023, "DreamBooth", section 3.3).

Tuned on a few pictures of one new thing, an adapter drifts everything the base painted
towards it. DreamBooth's remedy: before tuning, the frozen base paints pictures of its own
for prompts of its own kind, and every step trains on them beside the new pictures,

    loss = mean over the new pictures + weight x mean over the base's own pictures,

so the adapter is asked to leave the base's answers to those prompts as they were. The
base's pictures are painted once, from a fixed seed (picture k from seed + k, prompt k
cycling through the prompts), and cached in the run folder (``prior.safetensors``, keyed by
the base's weights, the prompts, the count, the steps and the seed), so a resumed run trains
on the same pictures. In a recipe: ``lora_prior = 64``, ``lora_prior_weight = 1.0``,
``lora_prior_prompts = [...]`` (``data.emoji_prompts.PRIOR_PROMPTS`` when not given).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from gouache import distributed as dist
from gouache.checks import at_least, between, check_fields
from gouache.data.imagefolder import CaptionedImages
from gouache.errors import GouacheError
from gouache.images import to_uint8
from gouache.model.text import TextEncoder
from gouache.sampling.options import SamplingOptions
from gouache.store.fingerprint import weights_fingerprint
from gouache.store.tensors import save_tensors

__all__ = ["PriorOptions", "paint_prior", "with_prior", "prior_loss_weights", "PRIOR_FILE"]

PRIOR_FILE = "prior.safetensors"  # in the run folder


@dataclass(frozen=True)
class PriorOptions:
    """What the base paints before tuning, and how much it weighs; validated when made."""

    count: int = 0  # the base's own pictures (0 = no prior preservation)
    weight: float = 1.0  # the prior loss's weight beside the new pictures' (DreamBooth's lambda)
    prompts: tuple[str, ...] = ()  # what the base paints: prompt k % len(prompts) for picture k
    steps: int = 16  # DPM-Solver++(2M) steps, guidance 3 (the sampling defaults)
    seed: int = 0  # picture k from seed + k

    def __post_init__(self) -> None:
        check_fields(self, {"count": (between(0, 10_000), "from 0 (off) to 10000"),
                            "weight": (at_least(0), "at least 0"),
                            "prompts": (lambda ps: all(p.strip() for p in ps) and (ps or not self.count),
                                        "prompts that are not blank (at least one when count > 0)"),
                            "steps": (between(1, 200), "from 1 to 200")}, what="prior option")

    @classmethod
    def from_config(cls, cfg) -> "PriorOptions":
        """From a ``TrainConfig``'s ``lora_prior``, ``lora_prior_weight``, ``lora_prior_prompts`` and seed."""
        return cls(count=cfg.lora_prior, weight=float(cfg.lora_prior_weight),
                   prompts=tuple(cfg.lora_prior_prompts), seed=cfg.seed)


def paint_prior(base: Path, options: PriorOptions, *, encoder: TextEncoder, device: torch.device,
                cache: Path, progress: bool = False, base_sha256: str | None = None) -> CaptionedImages:
    """The base model's own pictures, ``options.count`` of them: read from ``cache`` when it
    holds exactly these, else painted (in batches of 16) and written there. ``base_sha256``:
    the base's ``weights_fingerprint`` when the caller has it, not hashed again."""
    from gouache.sampling.pipeline import (
        Pipeline,  # the pipeline is for sampling; imported only when painting
    )

    prompts = [options.prompts[k % len(options.prompts)] for k in range(options.count)]
    key = json.dumps({"base_sha256": base_sha256 or weights_fingerprint(base), **asdict(options), "prompts": prompts},
                     sort_keys=True)
    images = _cached(cache, key)
    if images is None:
        pipe = Pipeline.load(base, device=str(device), text_encoder=encoder)
        result = pipe.generate(prompts, SamplingOptions(steps=options.steps), seed=options.seed,
                               batch_size=16, progress=progress)
        images = to_uint8(result.final).cpu().contiguous()  # (N, 3, H, W)
        if dist.is_main():
            cache.parent.mkdir(parents=True, exist_ok=True)
            save_tensors({"images": images}, cache, metadata={"key": key})
    return CaptionedImages(images=images, variants=[[p] for p in prompts], probs=[[1.0]] * len(prompts),
                           records=[{"text": p, "prior": True} for p in prompts])


def _cached(path: Path, key: str) -> torch.Tensor | None:
    """The cached pictures when ``path`` holds the ones ``key`` describes."""
    if not path.is_file():
        return None
    try:
        with safe_open(path, framework="pt") as f:
            if (f.metadata() or {}).get("key") != key:
                return None
            return f.get_tensor("images")
    except Exception:  # damaged or foreign: paint them again
        return None


def with_prior(data: CaptionedImages, prior: CaptionedImages) -> CaptionedImages:
    """The new pictures followed by the base's own (``sources.PriorSource`` tells them apart by place)."""
    if data.images.shape[1:] != prior.images.shape[1:]:
        raise GouacheError(f"the base paints {tuple(prior.images.shape[1:])} pictures, the data is "
                           f"{tuple(data.images.shape[1:])}")
    return CaptionedImages(images=torch.cat([data.images, prior.images]), variants=data.variants + prior.variants,
                           probs=data.probs + prior.probs, records=data.records + prior.records)


def prior_loss_weights(batch_size: int, weight: float) -> torch.Tensor:
    """Per row of a ``sources.PriorSource`` batch, (2 batch_size,): summed with the rows' losses they give
    the new pictures' mean loss plus ``weight`` x the base pictures' mean loss."""
    return torch.cat([torch.full((batch_size,), 1.0 / batch_size), torch.full((batch_size,), weight / batch_size)])
