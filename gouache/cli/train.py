"""``gouache train`` and ``gouache distill``: parse, run, print the run's summary."""
from __future__ import annotations

import argparse
from pathlib import Path

from gouache.cli.arguments import HELP
from gouache.errors import GouacheError

__all__ = ["add_train", "add_distill"]

TRAIN_OVERRIDES = ("data", "out", "steps", "batch_size", "lr", "seed", "max_minutes", "sample_every",
                   "checkpoint_every", "grad_accum", "num_workers", "device", "grad_checkpointing", "init",
                   "balance_by", "lora", "compile", "resident_data", "lora_prior", "lora_prior_weight")
DISTILL_OVERRIDES = ("teacher", "data", "out", "init", "steps", "batch_size", "lr", "seed", "max_minutes", "guidance",
                     "sample_every", "checkpoint_every", "device")


def add_train(sub) -> None:
    from gouache.model.lora import DEFAULT_RANK
    from gouache.training.config import COMPILE_MODES, RESIDENT_MODES

    p = sub.add_parser("train", formatter_class=HELP, help="train a model on a folder of captioned images",
                       description="Supervised denoising of image+caption pairs. Options given here "
                                   "override the --config recipe (a TOML file).")
    p.add_argument("--data", default=None, help="imagefolder (metadata.jsonl or NAME.txt captions), "
                   'or WebDataset shards: "DIR/{000000..000099}.tar" or a folder of .tar files')
    p.add_argument("--config", type=Path, default=None, help="TOML recipe (see configs/)")
    p.add_argument("--out", default=None, help="run folder (default runs/gouache)")
    p.add_argument("--resume", type=Path, default=None, help="continue the run in this folder")
    p.add_argument("--init", default=None, help="fine-tune: start from this model's weights (e.g. "
                   "gouache/models/emoji64), with the same [model] preset")
    p.add_argument("--lora", type=int, nargs="?", const=DEFAULT_RANK, default=None, metavar="RANK",
                   help=f"train only low-rank adapters of this rank (alone: {DEFAULT_RANK}) on the frozen --init "
                        "model; the other options' defaults then fit about 10 minutes on a CPU (see docs/lora.md)")
    p.add_argument("--prior", type=int, default=None, metavar="N", dest="lora_prior",
                   help="with --lora: the base first paints N pictures of its own (lora_prior_prompts) and "
                        "each step trains on them beside yours, so it forgets less (DreamBooth); 0 = off "
                        "(LoRA default: 64)")
    p.add_argument("--prior-weight", type=float, default=None, dest="lora_prior_weight", metavar="W",
                   help="with --prior: the weight of the base's pictures' loss beside yours (default: 1)")
    for name, kind in (("steps", int), ("batch-size", int), ("lr", float), ("seed", int),
                       ("max-minutes", float), ("sample-every", int), ("checkpoint-every", int),
                       ("grad-accum", int), ("num-workers", int)):
        p.add_argument(f"--{name}", type=kind, default=None, help="override the recipe")
    p.add_argument("--balance-by", default=None, metavar="COLUMN",
                   help="draw each value of this metadata.jsonl column equally often (emoji: base)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda")
    p.add_argument("--grad-checkpointing", action="store_true", default=None,
                   help="recompute activations to save memory")
    p.add_argument("--compile", default=None, choices=COMPILE_MODES,
                   help="torch.compile the network (auto: on CUDA; off: eager)")
    p.add_argument("--resident-data", default=None, choices=RESIDENT_MODES,
                   help="keep the images and prompt states in the device's memory (auto: on CUDA when they fit)")
    p.set_defaults(func=_train)


def _train(a: argparse.Namespace) -> None:
    from gouache.distributed import is_main
    from gouache.training.config import load_train_config
    from gouache.training.train import train

    over = {k: getattr(a, k) for k in TRAIN_OVERRIDES}
    if a.resume is not None and over["out"] is None:
        over["out"] = str(a.resume)
    cfg = load_train_config(a.config, **over)
    if not cfg.data:
        raise GouacheError("say which data to train on: --data FOLDER (or data = ... in --config)")
    result = train(cfg, resume=a.resume)
    if is_main():  # under torchrun, one line for the run, not one per process
        print(f"trained to step {result.step} at {result.images_per_second:.1f} images/s; run folder {result.run}")
        if result.stopped:
            print(f"stopped early with a checkpoint; continue with: gouache train --resume {result.run} "
                  "(and the same --config/--data)")


def add_distill(sub) -> None:
    p = sub.add_parser("distill", formatter_class=HELP, help="distill a model into a few-step student",
                       description="Consistency distillation with the guidance folded in (Song et al. 2023; "
                                   "LCM): a student that paints in 1 to 4 network calls. Join it to its "
                                   "teacher with: gouache export TEACHER --student RUN --out MODEL.")
    p.add_argument("teacher", help="the trained model (model or run folder)")
    p.add_argument("--data", default=None, help="an imagefolder like the teacher's training data")
    p.add_argument("--config", type=Path, default=None, help="TOML recipe (see configs/distill-emoji64.toml)")
    p.add_argument("--out", default=None, help="run folder (default runs/distill)")
    p.add_argument("--resume", type=Path, default=None, help="continue the run in this folder")
    p.add_argument("--init", default=None, metavar="STUDENT",
                   help="start from this student's weights (a model folder with student/, or a distill run), "
                        "not the teacher's")
    for name, kind in (("steps", int), ("batch-size", int), ("lr", float), ("seed", int), ("max-minutes", float),
                       ("guidance", float), ("sample-every", int), ("checkpoint-every", int)):
        p.add_argument(f"--{name}", type=kind, default=None, help="override the recipe")
    p.add_argument("--device", default=None, help="auto, cpu, cuda")
    p.set_defaults(func=_distill)


def _distill(a: argparse.Namespace) -> None:
    from gouache.training.distill import distill, load_distill_config

    over = {k: getattr(a, k) for k in DISTILL_OVERRIDES}
    if a.resume is not None and over["out"] is None:
        over["out"] = str(a.resume)
    result = distill(load_distill_config(a.config, **over), resume=a.resume)
    print(f"distilled to step {result.step} at {result.images_per_second:.1f} images/s; run folder {result.run}")
    if result.stopped:
        print(f"stopped early with a checkpoint; continue with: gouache distill {a.teacher} --resume {result.run}")
