"""Two denoisers split by noise level: an experiment behind the model card's "layout expert".

eDiff-I (Balaji et al., "eDiff-I: Text-to-Image Diffusion Models with an Ensemble of Expert
Denoisers", 2022) samples with one network at high noise, where the layout is decided, and
another at low noise. Here the high-noise expert is a fine-tune of the base model
(configs/emoji64-cpu-layout.toml); the pair is one ``net(x, c_noise, **cond)`` to the
pipeline, so the samplers see nothing new.

    python scripts/expert_pair.py grid --expert runs/emoji64-cpu-layout --out /tmp/pair.png
    python scripts/expert_pair.py eval --expert runs/emoji64-cpu-layout --data data/emoji64 --out /tmp/ev
    python scripts/expert_pair.py guess --data data/emoji64 gouache/models/emoji64 runs/emoji64-cpu-layout

``guess`` prints each model's error of its clean-image guess from noisy training pictures,
per sigma, beside the floor a perfect memoriser reaches at high noise (the mean image of
the picture's label) and the mean of all images.
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import torch

from gouache.checkpoint import load_network
from gouache.config import DEFAULT_SAMPLE_PROMPTS
from gouache.data.imagefolder import load_imagefolder
from gouache.denoiser import Denoiser
from gouache.images import grid, save_png
from gouache.pipeline import Pipeline, default_model_dir
from gouache.text import TextEncoder

GUESS_SIGMAS = (80.0, 40.0, 20.0, 10.0, 5.0, 2.5, 1.0)


class ExpertPair(torch.nn.Module):
    """``high`` where sigma > ``switch``, ``low`` elsewhere (per image)."""

    def __init__(self, low: torch.nn.Module, high: torch.nn.Module, switch: float) -> None:
        super().__init__()
        self.low, self.high = low, high
        self.c_switch = math.log(switch) / 4  # the networks see c_noise = ln(sigma) / 4 (EDM)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, **cond: torch.Tensor) -> torch.Tensor:
        high = c_noise > self.c_switch  # (B,)
        if high.all():  # a sampler's batch shares one sigma: one network per step
            return self.high(x, c_noise, **cond)
        if not high.any():
            return self.low(x, c_noise, **cond)
        return torch.where(high.view(-1, 1, 1, 1), self.high(x, c_noise, **cond), self.low(x, c_noise, **cond))


def pair_pipeline(base: Path | str, expert: Path | str, switch: float) -> Pipeline:
    low, config = load_network(base)
    net = ExpertPair(low, load_network(expert)[0], switch)
    return Pipeline(net, TextEncoder(config.text_model, max_length=config.text_max_length), config, "cpu")


@torch.inference_mode()
def guess_errors(models: list[str], data: Path, n: int = 128, seed: int = 0) -> None:
    train = load_imagefolder(data, size=64, split="train", progress=False)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(train.records):
        by_label[row["label"]].append(i)
    images = train.images.float() / 127.5 - 1  # (N, 3, 64, 64) in [-1, 1]
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(train), generator=g)[:n].tolist()
    x0 = images[keep]  # (n, 3, 64, 64)
    labels = [train.records[i]["label"] for i in keep]
    label_mean = torch.stack([images[by_label[lab]].mean(0) for lab in labels])
    noise = torch.randn((len(GUESS_SIGMAS), *x0.shape), generator=g)
    print("sigma".ljust(24) + "".join(f"{s:>8g}" for s in GUESS_SIGMAS))
    all_mean = float(((images.mean(0) - x0) ** 2).mean())
    print("mean of all images".ljust(24) + f"{all_mean:8.4f}" * len(GUESS_SIGMAS))
    print("mean of the label".ljust(24) + f"{float(((label_mean - x0) ** 2).mean()):8.4f}" * len(GUESS_SIGMAS))
    conds: dict[tuple[str, int], dict[str, torch.Tensor]] = {}  # one encoding per prompt encoder
    for model in models:
        net, config = load_network(model)
        key = (config.text_model, config.text_max_length)
        if key not in conds:
            conds[key] = TextEncoder(key[0], max_length=key[1])(labels).as_cond()
        cond = conds[key]
        denoiser = Denoiser(net, sigma_data=config.schedule.sigma_data).eval()
        errors = [float(((denoiser(x0 + s * e, torch.full((n,), s), **cond) - x0) ** 2).mean())
                  for s, e in zip(GUESS_SIGMAS, noise)]
        print(str(model)[-24:].ljust(24) + "".join(f"{v:8.4f}" for v in errors))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("grid", "eval", "guess"))
    ap.add_argument("models", nargs="*", help="guess: the models to compare")
    ap.add_argument("--base", default=str(default_model_dir()), help="the low-noise model")
    ap.add_argument("--expert", help="the high-noise model (grid, eval)")
    ap.add_argument("--switch", type=float, default=5.0, help="sigma above which the expert denoises")
    ap.add_argument("--data", type=Path, default=Path("data/emoji64"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--num-images", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("out/expert_pair"))
    a = ap.parse_intermixed_args()
    if a.what == "guess":
        return guess_errors(a.models or [a.base], a.data)
    if not a.expert:
        ap.error(f"{a.what} needs --expert")
    pipe = pair_pipeline(a.base, a.expert, a.switch)
    if a.what == "grid":
        prompts = list(DEFAULT_SAMPLE_PROMPTS)
        images = [img for s in range(a.seeds)
                  for img in pipe.generate(prompts, seeds=[s] * len(prompts), progress=False).images]
        labels = [f"{p} ({s})" for s in range(a.seeds) for p in prompts]
        print(save_png(grid(images, cols=len(prompts), labels=labels, scale=2), a.out))
    else:
        from gouache.evaluate.report import evaluate, format_report

        print(format_report(evaluate(a.base, a.data, split=a.split, num_images=a.num_images, heldout=False,
                                     pipeline=pipe, out=a.out, device="cpu", progress=False)))


if __name__ == "__main__":
    main()
