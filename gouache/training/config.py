"""How a run trains a model: ``TrainConfig``, read from a TOML recipe.

A training recipe is a TOML file whose keys are the fields of ``TrainConfig``;
its ``[model]`` table names a preset of ``unet.PRESETS`` and may override any
``UNetConfig`` field, its ``[schedule]`` table any ``NoiseSchedule`` field:

    steps = 20000
    batch_size = 64
    [model]
    preset = "base"
    channels = [64, 128, 192]
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gouache.checks import Rule, at_least, between, check_fields, non_blank, positive
from gouache.data.emoji_prompts import DEFAULT_SAMPLE_PROMPTS, PRIOR_PROMPTS
from gouache.errors import GouacheError
from gouache.model.config import ModelConfig, model_config_from_table
from gouache.store.reading import MB, MissingFile, read_toml

__all__ = ["ModelConfig", "TrainConfig", "load_train_config"]

# torch.compile of the network: "auto" compiles on CUDA and runs eagerly elsewhere (on a 2-core CPU
# compiling costs minutes and gains little, benchmarks/README.md); the others are torch.compile's modes
COMPILE_MODES = ("auto", "off", "default", "reduce-overhead", "max-autotune")
# the training images and prompt states in the device's memory: "auto" on CUDA when they fit
RESIDENT_MODES = ("auto", "on", "off")

_ONE_UP, _ZERO_UP = (at_least(1), "at least 1"), (at_least(0), "at least 0 (0 = never)")
_TRAIN_RULES: dict[str, Rule] = {
    "out": (non_blank, "a folder"), "split": (non_blank, "a split name"),
    "steps": _ONE_UP, "batch_size": _ONE_UP, "grad_accum": _ONE_UP, "log_every": _ONE_UP,
    "checkpoint_every": _ONE_UP, "keep_checkpoints": _ONE_UP, "sample_steps": (between(1, 1000), "from 1 to 1000"),
    "warmup": (at_least(0), "at least 0"), "cooldown": (at_least(0), "at least 0"),
    "sample_every": _ZERO_UP, "eval_every": _ZERO_UP, "num_workers": (at_least(0), "at least 0"),
    "max_minutes": (at_least(0), "at least 0 (0 = no limit)"),
    # above 1 AdamW's steps are larger than the weights themselves: the loss turns to NaN at once
    "lr": (lambda v: 0 < v <= 1, "above 0 and at most 1 (usual: 1e-4 to 1e-3)"),
    "weight_decay": (between(0, 1), "from 0 to 1"),
    "grad_clip": (positive, "above 0 (the largest gradient norm; usual: 1.0)"),
    "ema_decay": (lambda v: 0 <= v < 1, "from 0 up to (not including) 1, e.g. 0.999"),
    "caption_dropout": (lambda v: 0 <= v < 1, "from 0 up to (not including) 1, e.g. 0.1"),
    "seed": (between(0, 2**63 - 1), "from 0 to 2^63 - 1"),
    "sample_prompts": (lambda ps: all(p.strip() for p in ps), "prompts that are not blank"),
    "lora": (between(0, 256), "from 0 (off) to 256 (usual: 4 to 16)"),
    "lora_alpha": (at_least(0), "at least 0 (0 = the rank)"),
    "compile": (lambda v: v in COMPILE_MODES, " or ".join(f'"{m}"' for m in COMPILE_MODES)),
    "resident_data": (lambda v: v in RESIDENT_MODES, " or ".join(f'"{m}"' for m in RESIDENT_MODES)),
    "lora_prior": (between(0, 10_000), "from 0 (off) to 10000 pictures"),
    "lora_prior_weight": (at_least(0), "at least 0 (usual: 1)"),
    "lora_prior_prompts": (lambda ps: all(p.strip() for p in ps), "prompts that are not blank"),
}

# What a LoRA run (`lora` > 0) uses for the options its recipe and command line leave out: 60 steps
# of 8 new pictures and 8 of the base's own (prior preservation, 64 painted first), with a cool-down
# over the last fifth, at most 10 minutes. Chosen by measurement on the zorble example (docs/lora.md): 60
# such steps keep the showcase prompts' KID within 8% of the base's and their fidelity at the base's,
# and still paint the new subject; 120 steps, or 120 without the prior, do not keep the base
# (docs/lora.md). A step with the prior costs about twice one without.
LORA_DEFAULTS: dict = {
    "out": "runs/lora", "steps": 60, "batch_size": 8, "lr": 2e-3, "warmup": 20,
    "weight_decay": 0.0, "ema_decay": 0.98, "max_minutes": 10.0, "log_every": 10,
    "checkpoint_every": 50, "sample_every": 100_000, "eval_every": 0, "lora_prior": 64,
}


@dataclass
class TrainConfig:
    """A training run: the data, the model, the optimiser and the bookkeeping."""

    data: str = ""  # an imagefolder (metadata.jsonl or sidecar .txt captions)
    out: str = "runs/gouache"  # the run folder: checkpoints, samples, log.csv
    model: ModelConfig = field(default_factory=ModelConfig)  # what is trained
    split: str = "train"  # which rows of metadata.jsonl to train on
    # draw images so that each value of this metadata.jsonl column is equally likely
    # ("base": each emoji once, whatever its number of skin tones); "" = every image equally
    balance_by: str = ""
    init: str = ""  # start from these weights (a model or run folder): fine-tuning; "" = random
    # train only low-rank adapters of this rank on the frozen `init` model (0 = train every weight);
    # see model/lora.py and lora_run.py; the run's model config is then init's
    lora: int = 0
    lora_alpha: float = 0.0  # the adapters' update is scaled by lora_alpha / lora (0 = alpha = rank: scale 1)
    lora_convs: bool = True  # adapters on the ResBlocks' 3x3 convolutions too, not only the attention
    # prior preservation (prior.py): the frozen base first paints this many pictures of
    # lora_prior_prompts, and each step trains on as many of them as of the new pictures (0 = off)
    lora_prior: int = 0
    lora_prior_weight: float = 1.0  # the base pictures' loss weight beside the new pictures' (DreamBooth: 1)
    lora_prior_prompts: tuple[str, ...] = PRIOR_PROMPTS  # what the base paints, cycled
    steps: int = 10_000  # optimiser steps
    batch_size: int = 32  # images per optimiser step (all processes together)
    grad_accum: int = 1  # micro-batches per step: same result, less memory
    lr: float = 5e-4  # AdamW peak learning rate
    warmup: int = 500  # linear warm-up steps
    cooldown: int = 0  # linear decay of the LR to 0 over the last this many of `steps` (0 = none)
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    grad_clip: float = 1.0  # clip the global gradient norm to this
    ema_decay: float = 0.999  # EMA of the weights (ramped up early: min(decay, (1+n)/(10+n)))
    caption_dropout: float = 0.1  # share of captions replaced by "" (classifier-free guidance)
    # colour augmentation with caption rewriting (data/recolour.py): share of images turned to another
    # colour of recolour_colours and captioned with it; captions in recolour_never are never produced
    recolour: float = 0.0
    recolour_colours: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple")
    recolour_never: tuple[str, ...] = ()
    seed: int = 0  # the whole run's randomness
    max_minutes: float = 0.0  # stop after this wall time (0 = no limit), with a checkpoint;
    # with a cooldown, `steps` shrinks to what fits in it (training/lr_schedule.TimeBudget)
    log_every: int = 50  # steps between log.csv rows
    checkpoint_every: int = 1000  # steps between checkpoints
    keep_checkpoints: int = 2  # older checkpoints are deleted
    sample_every: int = 1000  # steps between sample grids (0 = never)
    sample_prompts: tuple[str, ...] = DEFAULT_SAMPLE_PROMPTS  # the fixed grid of prompts
    sample_steps: int = 20  # DPM-Solver++(2M) steps for the grids
    eval_every: int = 1000  # steps between held-out denoising losses (needs a test split)
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1"...
    bf16: bool = True  # bf16 autocast on CUDA (ignored on the CPU)
    # bf16 autocast on the CPU too: about 1.25x the images/s on a CPU with bf16 instructions
    # (AVX512-BF16 or AMX); much slower on one without, or with other work on the cores: off by default
    cpu_bf16: bool = False
    # torch.compile the network (COMPILE_MODES): "auto" = on CUDA in the default mode, elsewhere not;
    # a failure to compile falls back to eager with a warning
    compile: str = "auto"
    # the images (uint8) and prompt states kept on the device and drawn there (RESIDENT_MODES):
    # "auto" = on CUDA when they fit in a quarter of its free memory; "on" also on the CPU
    resident_data: str = "auto"
    channels_last: bool = False  # channels-last memory format
    grad_checkpointing: bool = False  # recompute activations in the backward pass to save memory
    num_workers: int = 0  # dataloader workers for streamed (sharded) data

    def __post_init__(self) -> None:
        check_fields(self, _TRAIN_RULES, what="training option")
        if self.cooldown > self.steps:
            raise GouacheError(f"training option: cooldown ({self.cooldown}) must not exceed steps ({self.steps})")
        if self.lora and not self.init:
            raise GouacheError("training option: lora needs init, the trained model the adapters sit on "
                               "(--init gouache/models/emoji64)")
        if self.lora_prior and not self.lora:
            raise GouacheError("training option: lora_prior needs lora (prior preservation keeps a LoRA's base)")
        if self.lora_prior and not self.lora_prior_prompts:
            raise GouacheError("training option: lora_prior_prompts is empty; name what the base should paint")
        if self.sample_every and not self.sample_prompts:
            raise GouacheError("training option: sample_prompts is empty; name a prompt or set sample_every = 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        model = d.pop("model", None)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise GouacheError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        if isinstance(d.get("compile"), bool):  # recipes and runs from before the modes
            d["compile"] = "default" if d["compile"] else "off"
        for name in ("sample_prompts", "recolour_colours", "recolour_never", "lora_prior_prompts"):
            if isinstance(d.get(name), list):  # TOML and JSON have lists, the config tuples
                d[name] = tuple(d[name])
        cfg = cls(**d)
        if model is not None:
            cfg.model = model if isinstance(model, ModelConfig) else ModelConfig.from_dict(model)
        return cfg


def read_recipe(path: Path | None) -> dict:
    """A TOML recipe's table ({} for none); a missing or malformed file is a one-line error."""
    if path is None:
        return {}
    try:
        return read_toml(path, what="config file", limit=MB)  # a regular file, UTF-8, at most 1 MB
    except MissingFile:
        raise GouacheError(f"no such config file: {path}") from None


def load_train_config(path: Path | None, **overrides) -> TrainConfig:
    """A TOML recipe (or the defaults), then the command line's overrides."""
    d = read_recipe(path)
    model = model_config_from_table(d.pop("model", {}))
    d.update({k: v for k, v in overrides.items() if v is not None})
    if d.get("lora"):  # a LoRA run: its own defaults where nothing was said
        d = LORA_DEFAULTS | d
        d.setdefault("cooldown", d["steps"] // 5)  # the last fifth, as long as the run is
    cfg = TrainConfig.from_dict(d)
    cfg.model = model
    return cfg
