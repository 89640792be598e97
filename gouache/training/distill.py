"""``gouache distill TEACHER --data DIR``: a few-step student from a trained model.

The student starts as a copy of the teacher and is trained by consistency distillation
with the teacher's guidance folded in (``consistency.py``: Song et al. 2023, LCM), on the
teacher's own kind of data (images noised to a point on the ODE trajectory: the pictures
only place the trajectories, the teacher decides where they go). Four networks:

    teacher   the trained model, frozen; queried guided (conditional and unconditional)
    student   f_theta, trained by AdamW
    target    f_theta-, the EMA of the student that the loss aims at (Song et al.'s mu)
    ema       a slower EMA of the student: what is saved and sampled, as in training

A checkpoint folder is a student model folder (``student.py``: config.json,
ema.safetensors, student.json) plus model.safetensors, target.safetensors and the
optimiser and generators, so that a resumed run repeats an uninterrupted one. The loop
around the steps (logs, checkpoints, sample grids, time limit) is training's (``loop.py``).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from gouache.checks import at_least, between, check_fields, non_blank, positive
from gouache.data.batches import batch_source
from gouache.data.imagefolder import load_imagefolder
from gouache.data.prompts import CaptionTable
from gouache.data.sources import BatchSource
from gouache.device import pick_device
from gouache.errors import GouacheError
from gouache.images import grid
from gouache.model.config import ModelConfig
from gouache.model.denoiser import Denoiser
from gouache.model.text import PromptEmbedding, TextEncoder
from gouache.sampling.guidance import guided
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.store.checkpoint import check_weights, load_network, load_weights, resolve_model_dir, text_model_of
from gouache.store.files import save_png, write_json
from gouache.store.fingerprint import weights_fingerprint
from gouache.store.student import (
    INFO_FILE,
    StudentInfo,
    read_student_info,
    refuse_bare_student,
    student_folder,
)
from gouache.store.tensors import contiguous, save_tensors
from gouache.store.train_state import check_train_state
from gouache.training import loop
from gouache.training.config import read_recipe
from gouache.training.consistency import SOLVERS, ConsistencyLoss, boundaries
from gouache.training.ema import lerp_weights, update_ema
from gouache.training.loop import RunResult, open_run, run_generators, run_loop
from gouache.training.lr_schedule import lr_at

__all__ = ["DistillConfig", "distill", "load_distill_config"]

SAMPLE_STEPS = (1, 2, 4)  # the rows of a run's sample grids


@dataclass(frozen=True)
class DistillConfig:
    """A distillation run. The defaults are what distilled the shipped model's student
    (configs/distill-emoji64.toml says so too)."""

    teacher: str = ""  # the trained model (model or run folder)
    # start the student from another student's weights (a model folder with student/, a student
    # or a distillation run) instead of the teacher's: a student of an earlier version of the
    # teacher has learnt most of the few-step mapping already; "" = the teacher's weights
    init: str = ""
    data: str = ""  # an imagefolder like the teacher's training data
    out: str = "runs/distill"  # the run folder
    split: str = "train"
    steps: int = 1000  # optimiser steps
    max_minutes: float = 0.0  # stop after this wall time, with a checkpoint (0 = no limit)
    batch_size: int = 16
    lr: float = 1e-4  # AdamW; constant after the warm-up
    warmup: int = 50
    grad_clip: float = 1.0
    guidance: float = 3.0  # the teacher's guidance folded into the student
    intervals: int = 40  # N, the discretisation's number of noise levels
    solver: str = "heun"  # the teacher's ODE step: heun (2 guided calls) or euler (1)
    target_decay: float = 0.95  # mu, the target network's EMA of the student
    ema_decay: float = 0.999  # the saved student's EMA (ramped up early, as in training)
    teacher_bf16: bool = True  # the teacher's calls in bfloat16 (no gradient; about 2x faster on a CPU)
    seed: int = 0
    log_every: int = 25
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    sample_every: int = 250  # steps between sample grids at 1, 2 and 4 steps (0 = never)
    sample_prompts: tuple[str, ...] = ("red apple", "green banana", "rocket", "smiling cat", "yellow star",
                                       "blue heart")
    device: str = "auto"

    def __post_init__(self) -> None:
        above_0 = (positive, "above 0")
        count = (at_least(0), "0 or more")
        check_fields(self, {
            "teacher": (non_blank, "a model or run folder"), "data": (non_blank, "an imagefolder"),
            "steps": (at_least(1), "1 or more"), "max_minutes": count, "batch_size": (at_least(1), "1 or more"),
            "lr": (between(1e-8, 1), "in (0, 1]"), "warmup": count, "grad_clip": above_0,
            "guidance": (between(0, 50), "from 0 to 50"), "intervals": (at_least(2), "2 or more"),
            "solver": (lambda v: v in SOLVERS, f"one of {', '.join(SOLVERS)}"),
            "target_decay": (between(0, 1), "from 0 to 1"), "ema_decay": (between(0, 1), "from 0 to 1"),
            "log_every": (at_least(1), "1 or more"), "checkpoint_every": (at_least(1), "1 or more"),
            "keep_checkpoints": (at_least(1), "1 or more"), "sample_every": count,
        }, what="distillation option")

    @property
    def cooldown(self) -> int:
        """No cool-down: the rate stays at ``lr`` after the warm-up (``lr_schedule.lr_at``)."""
        return 0

    def to_dict(self) -> dict:
        return asdict(self)


def load_distill_config(path: Path | None, **overrides) -> DistillConfig:
    """A TOML recipe (or the defaults), then the command line's overrides."""
    d = read_recipe(path)
    d.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(d) - {f.name for f in dataclasses.fields(DistillConfig)}
    if unknown:
        raise GouacheError(f"unknown distillation option(s): {', '.join(sorted(unknown))}")
    if isinstance(d.get("sample_prompts"), list):
        d["sample_prompts"] = tuple(d["sample_prompts"])
    return DistillConfig(**d)


class Distiller:
    """The four networks, the data and the optimiser of one run; ``step`` does one step (``loop.Run``)."""

    def __init__(self, cfg: DistillConfig, teacher: torch.nn.Module, model: ModelConfig, source: BatchSource,
                 info: StudentInfo, device: torch.device) -> None:
        self.cfg, self.model, self.source, self.info, self.device = cfg, model, source, info, device
        sd = model.schedule.sigma_data
        self.teacher = Denoiser(teacher.requires_grad_(False), sigma_data=sd).to(device).eval()
        student = copy.deepcopy(teacher).requires_grad_(True).train()
        self.student = Denoiser(student, sigma_data=sd).to(device)
        self.target = copy.deepcopy(self.student).requires_grad_(False).eval()
        self.ema = copy.deepcopy(self.student).requires_grad_(False).eval()
        self.opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=0.0, fused=True)
        self.gen = run_generators(cfg.seed, device)
        self.loss = ConsistencyLoss(boundaries(cfg.intervals, model.schedule.sigma_min, model.schedule.sigma_max),
                                    cfg.solver)
        self.step_no = 0

    def _teacher_bf16(self, x: torch.Tensor, sigma: torch.Tensor, **cond: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.cfg.teacher_bf16):
            return self.teacher(x, sigma, **cond)

    def step(self) -> torch.Tensor:
        cfg = self.cfg
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step_no, cfg)
        images, ids = self.source.draw(cfg.batch_size, generator=self.gen["data"], dropout=0.0)
        x0 = images.to(self.device).float() / 127.5 - 1  # (B, 3, H, W) in [-1, 1]
        # the "" prompts (caption id 0), then the captions: one lookup, one padded length
        both = PromptEmbedding(**self.source.cond(torch.cat([torch.zeros_like(ids), ids]), self.device))
        uncond, cond = both.index(slice(0, len(ids))), both.index(slice(len(ids), None))
        guided_teacher = guided(self._teacher_bf16, cond, uncond, cfg.guidance)  # classifier-free, at w
        prompt = cond.as_cond()
        losses = self.loss(x0, guided_teacher, lambda x, s: self.student(x, s, **prompt),
                           lambda x, s: self.target(x, s, **prompt), generator=self.gen["noise"])
        loss = losses.mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        lerp_weights(self.target, self.student, cfg.target_decay)  # Song et al.: theta- <- mu theta- + (1 - mu) theta
        update_ema(self.ema, self.student, self.step_no, cfg.ema_decay)
        self.step_no += 1
        return loss.detach()

    def write_weights(self, folder: Path) -> None:
        """A student model folder (config, EMA, student.json) plus the trained and target weights."""
        write_json(self.model.to_dict(), folder / "config.json")
        write_json(asdict(dataclasses.replace(self.info, step=self.step_no)), folder / INFO_FILE)
        for name, net in (("ema", self.ema), ("model", self.student), ("target", self.target)):
            save_tensors(contiguous(net.net.state_dict()), folder / f"{name}.safetensors")

    def read_weights(self, folder: Path) -> None:
        _same_teacher(folder, self.info)
        for name, net in zip(WEIGHTS, (self.ema, self.student, self.target)):
            load_weights(net.net, folder / f"{name}.safetensors")

    def start_from(self, folder: Path) -> None:
        """The student, its target and its EMA all start from the student weights in ``folder``."""
        for net in (self.student, self.target, self.ema):
            load_weights(net.net, folder / "ema.safetensors")

    def sample_grid(self, text_encoder: TextEncoder, path: Path) -> None:
        """The sample prompts at 1, 2 and 4 steps, a row each."""
        pipe = Pipeline(self.teacher.net, text_encoder, self.model, self.device,
                        student=(self.ema.net, self.info))
        prompts, images = list(self.cfg.sample_prompts), []
        for steps in SAMPLE_STEPS:
            options = SamplingOptions("consistency", steps, guidance=self.cfg.guidance)
            images += pipe.generate(prompts, options, seed=0, progress=False).images
        labels = [f"{p} ({s})" for s in SAMPLE_STEPS for p in prompts]
        save_png(grid(images, cols=len(prompts), labels=labels, scale=2), path)


WEIGHTS = ("ema", "model", "target")  # a checkpoint's student networks, each NAME.safetensors


def _same_teacher(folder: Path, info: StudentInfo) -> None:
    """Refuse a checkpoint distilled from another teacher than ``info``'s."""
    theirs = read_student_info(folder)
    if theirs.teacher_sha256 != info.teacher_sha256:
        raise GouacheError(f"--resume {folder}: distilled from another teacher ({theirs.teacher}); "
                           "give the same teacher")


def _start_weights(init: str, teacher: torch.nn.Module) -> Path:
    """The student folder ``init`` names, its weights checked to fit the teacher's network."""
    folder = student_folder(init)
    check_weights(teacher, folder / "ema.safetensors", values=True)
    return folder


def _check_checkpoint(folder: Path, teacher: torch.nn.Module, info: StudentInfo, seed: int,
                      device: torch.device) -> None:
    """The checkpoint to resume, checked whole before the data loads: its teacher, its students'
    weights (the teacher's network, every value finite) and its optimiser state."""
    _same_teacher(folder, info)
    for name in WEIGHTS:
        check_weights(teacher, folder / f"{name}.safetensors", values=True)
    check_train_state(folder, list(teacher.parameters()), run_generators(seed, device))


def distill(cfg: DistillConfig, *, resume: Path | None = None, progress: bool = True,
            text_encoder: TextEncoder | None = None) -> RunResult:
    """Distill ``cfg.teacher`` into a few-step student in ``cfg.out``; return the run's summary."""
    loop.check_run_folder(cfg, "distill_config.json", resume=resume,
                          inputs=[("the teacher", cfg.teacher), ("the --data", cfg.data), ("the --resume run", resume)])
    teacher_dir = resolve_model_dir(cfg.teacher)
    refuse_bare_student(teacher_dir)
    if resume is not None:
        resolve_model_dir(resume)  # refused before the data loads
    device = pick_device(cfg.device)
    teacher, model = load_network(teacher_dir)
    info = StudentInfo(guidance=cfg.guidance, teacher=Path(cfg.teacher).resolve().name,
                       teacher_sha256=weights_fingerprint(teacher_dir), solver=cfg.solver, intervals=cfg.intervals)
    if resume is not None:
        _check_checkpoint(resolve_model_dir(resume), teacher, info, cfg.seed, device)  # before the lock and the data
    start = _start_weights(cfg.init, teacher) if cfg.init and resume is None else None
    with loop.claim_run(cfg):  # one process at a time writes the run folder
        text_encoder = text_encoder or TextEncoder(text_model_of(teacher_dir, model),
                                                   max_length=model.text_max_length)
        data = load_imagefolder(Path(cfg.data), size=model.unet.image_size, split=cfg.split, progress=progress)
        table = CaptionTable.build(data, text_encoder, progress=progress, folder=Path(cfg.data))
        d = Distiller(cfg, teacher, model, batch_source(data, table, device), info, device)
        if resume is not None:
            loop.resume(d, resolve_model_dir(resume))
        elif start is not None:
            d.start_from(start)
        log = open_run(cfg, "distill_config.json", step=d.step_no)
        return run_loop(d, log=log, sample=lambda path: d.sample_grid(text_encoder, path), progress=progress,
                        desc="distilling")
