"""CPU speed of fine-tuning the shipped model (`base`, 64x64), option by option, interleaved.

Builds one ``Trainer`` per variant on the same pictures, all fine-tuning the same model with
the same seed, then times their optimiser steps in turn (A B C ... A B C ...), so that whatever
else the machine does falls on every variant alike. Each figure is the median over the rounds
of images / seconds of one step. Variants: float32 eager (the reference), bf16 autocast on the
CPU (``cpu_bf16``), channels-last, both, ``torch.compile`` (its first step, with the
compiling, is timed on its own), one thread instead of all, and other batch sizes.

Then the loss check: the float32 and bf16 trainers go on stepping in turn up to ``--loss-steps``
steps each. With the same seed they draw the same pictures, captions, noise levels and noise,
so their losses pair step by step, and the difference of the two runs can be set against the
step-to-step spread.

    python benchmarks/cpu_finetune_speed.py --data DATA --json cpu_finetune_speed.json

DATA: an emoji imagefolder (``gouache data emoji``); ``gouache data embed DATA`` first, or every
caption is encoded before the first step.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch

from gouache.data.imagefolder import load_imagefolder
from gouache.data.prompts import CaptionTable
from gouache.model.text import TextEncoder
from gouache.store.checkpoint import (
    default_model_dir,
    read_model_config,
    resolve_model_dir,
)
from gouache.training.config import load_train_config
from gouache.training.train import Trainer

# name: (recipe options, threads); the reference is the first
VARIANTS: dict[str, tuple[dict, int | None]] = {
    "fp32": ({}, None),
    "bf16": ({"cpu_bf16": True}, None),
    "channels-last": ({"channels_last": True}, None),
    "bf16 + channels-last": ({"cpu_bf16": True, "channels_last": True}, None),
    "bf16 + compile": ({"cpu_bf16": True, "compile": "default"}, None),
    "fp32 1 thread": ({}, 1),
    "bf16 1 thread": ({"cpu_bf16": True}, 1),
    "bf16 batch 16": ({"cpu_bf16": True, "batch_size": 16}, None),
    "bf16 batch 64": ({"cpu_bf16": True, "batch_size": 64}, None),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--init", type=Path, default=default_model_dir())
    p.add_argument("--batch", type=int, default=32, help="batch of every variant that names none")
    p.add_argument("--lr", type=float, default=3e-4, help="peak rate (warm-up over 500 steps)")
    p.add_argument("--rounds", type=int, default=5, help="timed steps of each variant, in turn")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps of each variant first")
    p.add_argument("--loss-steps", type=int, default=100, help="steps of fp32 and bf16 for the loss check (0: none)")
    p.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    threads = torch.get_num_threads()
    names = [n.strip() for n in a.only.split(",") if n.strip()] or list(VARIANTS)
    base = dict(data=str(a.data), init=str(a.init), batch_size=a.batch, device="cpu", out="unused",
                seed=0, compile="off", balance_by="base", lr=a.lr, warmup=500)
    cfgs = {n: load_train_config(None, **(base | VARIANTS[n][0])) for n in names}
    for cfg in cfgs.values():  # the shipped model's network and noise levels
        cfg.model = read_model_config(resolve_model_dir(a.init))
    any_cfg = next(iter(cfgs.values()))
    encoder = TextEncoder(any_cfg.model.text_model, max_length=any_cfg.model.text_max_length)
    data = load_imagefolder(a.data, size=any_cfg.model.unet.image_size, progress=False)
    table = CaptionTable.build(data, encoder, progress=False, folder=a.data)
    trainers = {}
    for n, cfg in cfgs.items():
        trainers[n] = Trainer(cfg, data, table, torch.device("cpu"))
        trainers[n].init_from(a.init)

    def step(n: str) -> tuple[float, float]:
        torch.set_num_threads(VARIANTS[n][1] or threads)
        t0 = time.perf_counter()
        loss = float(trainers[n].step())  # on the CPU the step is done when it returns
        return time.perf_counter() - t0, loss

    losses: dict[str, list[float]] = {n: [] for n in names}
    first: dict[str, float] = {}
    for n in names:  # warm-up; the first step of a compiled network compiles it
        for k in range(a.warmup):
            s, loss = step(n)
            losses[n].append(loss)
            if k == 0:
                first[n] = s
        print(f"warm-up {n}: first step {first.get(n, 0):.1f} s", flush=True)
    times: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    for r in range(a.rounds):
        for n in names:
            s, loss = step(n)
            times[n].append(s)
            losses[n].append(loss)
        print(f"round {r + 1}/{a.rounds}: " + ", ".join(f"{n} {cfgs[n].batch_size / times[n][-1]:.1f}"
                                                    for n in names), flush=True)
    speed_minutes = (time.perf_counter() - start) / 60
    ref = names[0]
    rows = []
    for n in names:
        ips = [cfgs[n].batch_size / s for s in times[n]]
        rows.append({"variant": n, "batch": cfgs[n].batch_size, "threads": VARIANTS[n][1] or threads,
                     "images_per_second": statistics.median(ips), "all": ips,
                     "seconds_per_step": statistics.median(times[n]), "first_step_seconds": first.get(n),
                     "compiled": trainers[n].runner.active})
    ref_ips = rows[0]["images_per_second"]
    print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, {threads} threads; "
          f"{a.rounds} interleaved rounds ({speed_minutes:.1f} min), medians\n")
    print(f"| variant | batch | threads | images/s | x {ref} | s / step | first step s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        fell = "compile" in row["variant"] and not row["compiled"]
        print(f"| {row['variant']}{' (fell back to eager)' if fell else ''} "
              f"| {row['batch']} | {row['threads']} | {row['images_per_second']:.2f} "
              f"| {row['images_per_second'] / ref_ips:.2f} | {row['seconds_per_step']:.2f} "
              f"| {row['first_step_seconds']:.1f} |")

    check = {}
    pair = [n for n in ("fp32", "bf16") if n in trainers]
    if a.loss_steps and len(pair) == 2:
        while min(len(losses[n]) for n in pair) < a.loss_steps:
            for n in pair:
                if len(losses[n]) < a.loss_steps:
                    losses[n].append(step(n)[1])
        f, b = (losses[n][:a.loss_steps] for n in pair)
        diff = [y - x for x, y in zip(f, b)]
        sd = statistics.stdev(diff)
        check = {"steps": a.loss_steps, "fp32_mean": statistics.mean(f), "bf16_mean": statistics.mean(b),
                 "mean_difference": statistics.mean(diff), "difference_se": sd / math.sqrt(len(diff)),
                 "difference_sd": sd, "step_to_step_sd_fp32": statistics.stdev(f),
                 "relative_difference_median": statistics.median(abs(d) / x for d, x in zip(diff, f)),
                 "fp32": f, "bf16": b}
        print(f"\nloss check, {a.loss_steps} steps each, same seed (paired): fp32 mean {check['fp32_mean']:.4f}, "
              f"bf16 mean {check['bf16_mean']:.4f}; bf16 - fp32 = {check['mean_difference']:+.4f} "
              f"± {check['difference_se']:.4f} (SE); per-step |diff| / loss, median "
              f"{check['relative_difference_median']:.3f}; step-to-step SD of the fp32 loss "
              f"{check['step_to_step_sd_fp32']:.4f}")
        block = max(1, a.loss_steps // 5)
        print("\n| steps | fp32 mean loss | bf16 mean loss |\n|---|---:|---:|")
        for k in range(0, a.loss_steps, block):
            print(f"| {k + 1}-{min(a.loss_steps, k + block)} | {statistics.mean(f[k:k + block]):.4f} "
                  f"| {statistics.mean(b[k:k + block]):.4f} |")
    if a.json:
        a.json.write_text(json.dumps({"threads": threads, "torch": torch.__version__, "rounds": a.rounds,
                                      "rows": rows, "loss_check": check}, indent=2) + "\n")


if __name__ == "__main__":
    main()
