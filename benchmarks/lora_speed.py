"""Training speed of a LoRA against a full fine-tune, interleaved in one process.

On a machine shared with other work, wall times of two runs made one after the other
say more about the neighbours than about the runs. This builds the trainers on the
same pictures and base model (the shipped one by default), then alternates rounds of a
few optimiser steps of each, and reports the median seconds per step and their ratios.

    python benchmarks/lora_speed.py --data data-build/zorble
    python benchmarks/lora_speed.py --data data-build/zorble --prior 64 --prior-cache runs/zorble-prior/prior.safetensors
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from gouache.data.imagefolder import load_imagefolder
from gouache.data.prompts import CaptionTable
from gouache.model.text import TextEncoder
from gouache.store.checkpoint import default_model_dir
from gouache.training.config import load_train_config
from gouache.training.lora_run import LoRARun
from gouache.training.prior import PriorOptions, paint_prior, with_prior
from gouache.training.train import Trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--init", type=Path, default=default_model_dir())
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=3, help="steps of each per round")
    p.add_argument("--prior", type=int, default=0, metavar="N",
                   help="also a LoRA with prior preservation on N of the base's pictures")
    p.add_argument("--prior-cache", type=Path, default=Path("runs/bench-prior.safetensors"),
                   help="where those pictures are (a LoRA run's prior.safetensors, when it has the same N)")
    a = p.parse_args()
    common = dict(data=str(a.data), init=str(a.init), batch_size=8, device="cpu", out="unused")
    lora = load_train_config(None, lora=8, lora_prior=0, **common)
    full = load_train_config(None, lr=lora.lr, **common)
    full.model = lora.model = LoRARun(lora).model_config()
    encoder = TextEncoder(lora.model.text_model, max_length=lora.model.text_max_length)
    data = load_imagefolder(a.data, size=lora.model.unet.image_size, progress=False)
    table = CaptionTable.build(data, encoder, progress=False)
    trainers = {"lora": Trainer(lora, data, table, torch.device("cpu")),
                "full": Trainer(full, data, table, torch.device("cpu"))}
    if a.prior:  # the new pictures and as many of the base's in every step
        prior = load_train_config(None, lora=8, lora_prior=a.prior, **common)
        prior.model = lora.model
        mixed = with_prior(data, paint_prior(a.init, PriorOptions.from_config(prior), encoder=encoder,
                                             device=torch.device("cpu"), cache=a.prior_cache))
        trainers["prior"] = Trainer(prior, mixed, CaptionTable.build(mixed, encoder, progress=False),
                                    torch.device("cpu"), prior=a.prior)
    trainers["full"].init_from(a.init)
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for k, t in trainers.items():  # one warm-up step each
        t.step()
    for _ in range(a.rounds):
        for k, t in trainers.items():
            start = time.perf_counter()
            for _ in range(a.steps):
                t.step()
            times[k].append((time.perf_counter() - start) / a.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, t in trainers.items():
        n = sum(p.numel() for p in t.net.parameters() if p.requires_grad)
        print(f"{k}: {med[k]:.2f} s/step (median of {a.rounds} rounds of {a.steps}), {n:,} trained weights")
    print(f"lora / full time per step: {med['lora'] / med['full']:.2f}")
    if "prior" in med:
        print(f"lora with prior / lora time per step: {med['prior'] / med['lora']:.2f}")


if __name__ == "__main__":
    main()
