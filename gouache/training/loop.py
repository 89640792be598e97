"""The run loop that training, LoRA tuning and distillation share.

    while step < steps:
        loss = run.step()                  one optimiser step; its loss stays on the device
        log_every steps                    a row of log.csv (the losses read back: the one host sync)
        eval_every steps                   the held-out loss
        checkpoint_every steps             a checkpoint, before the grid: a failed grid costs no weights
        sample_every steps                 a sample grid
    until the last step, the time budget (``max_minutes``, with the cool-down fitted into it:
    ``lr_schedule.TimeBudget``) or Ctrl-C / SIGTERM (``StopSignal``), each with a checkpoint.

What differs between runs, the loss, what trains and what a checkpoint holds, is the ``Run``
(``train.Trainer``, ``distill.Distiller``): its ``step`` and its weights' ``write_weights`` and
``read_weights``. A checkpoint is those weights plus what every run has: AdamW's moments, the
generators (``gen``) and the step, so that a resumed run repeats an uninterrupted one.

With several processes (``distributed.py``) every rank runs the loop; rank 0 (``lead``) alone
writes the log, checkpoints and grids, and the ranks decide together when to stop.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Protocol

import torch
from tqdm.auto import tqdm

from gouache import distributed as dist
from gouache.errors import GouacheError
from gouache.store.checkpoint import (
    clear_partial_checkpoints,
    load_train_state,
    run_step,
    save_run_state,
)
from gouache.store.files import Inputs, check_output_folder, write_json
from gouache.store.latest import read_latest
from gouache.store.lock import LOCK_FILE, locked, refuse_if_locked
from gouache.store.reading import MB, read_json
from gouache.training.log import StopSignal, TrainLog
from gouache.training.lr_schedule import Schedule, TimeBudget, lr_at
from gouache.training.prior import PRIOR_FILE

__all__ = ["Run", "RunConfig", "RunResult", "run_loop", "save", "resume", "check_run_folder", "claim_run",
           "open_run", "run_generators"]


class RunConfig(Schedule, Protocol):
    """The recipe fields the loop reads (``TrainConfig`` and ``DistillConfig`` have them)."""

    out: str  # the run folder
    batch_size: int
    grad_clip: float
    log_every: int
    checkpoint_every: int
    keep_checkpoints: int
    sample_every: int

    def to_dict(self) -> dict: ...


class Run(Protocol):
    """One run's trained state, as the loop drives it."""

    cfg: RunConfig
    step_no: int  # optimiser steps done
    opt: torch.optim.Optimizer
    gen: dict[str, torch.Generator]  # every random draw comes from these: saved, so a resume repeats

    def step(self) -> torch.Tensor:
        """One optimiser step; its loss as a tensor on the device (not read back), NaN where not finite."""
        ...

    def write_weights(self, folder: Path) -> None:
        """Write what a checkpoint holds of this run's networks into ``folder``."""
        ...

    def read_weights(self, folder: Path) -> None:
        """Load what ``write_weights`` wrote (refusing a checkpoint of another run)."""
        ...


@dataclass
class RunResult:
    run: Path  # the run folder
    step: int  # the last step done
    losses: list[float]  # the loss of every step of this call (read back at each log row)
    images_per_second: float
    stopped: bool = False  # ended early by Ctrl-C or SIGTERM (a checkpoint was written)


def run_generators(seed: int, device: torch.device) -> dict[str, torch.Generator]:
    """A run's ``gen``: the data's draws on the CPU, the noise's on the device."""
    return {"data": torch.Generator().manual_seed(seed), "noise": torch.Generator(device).manual_seed(seed + 1)}


def save(run: Run) -> Path:
    """A checkpoint, ``out/checkpoints/step-N``: the run's weights, AdamW, the generators and the step."""
    cfg = run.cfg
    return save_run_state(Path(cfg.out), step=run.step_no, weights=run.write_weights, optimizer=run.opt,
                          generators=run.gen, train_config=cfg.to_dict(), keep=cfg.keep_checkpoints)


def resume(run: Run, folder: Path) -> None:
    """Continue from a checkpoint folder: the weights, then AdamW, the generators and the step."""
    run.read_weights(folder)
    run.step_no = load_train_state(folder, run.opt, run.gen)


def check_run_folder(cfg: RunConfig, config_file: str, *, resume: Path | None, inputs: Inputs = ()) -> None:
    """Before any work: the run folder ``cfg.out`` is new or empty, the run that ``resume``
    continues, or a start of this command's that saved no checkpoint (``config_file`` in it);
    a run already there is continued only with --resume. ``inputs``: what the run reads."""
    out = Path(cfg.out)
    refuse_if_locked(out)  # a run another process trains into: said first, before its files are read
    here = resume is not None and out.resolve() in (Path(resume).resolve(), *Path(resume).resolve().parents)
    step = None if here else run_step(out)
    if step is not None:
        kind = _kind_in(out)
        hint = (f"continue it with --resume {out}, or " if kind == _kind(config_file, getattr(cfg, "lora", 0))
                else "")
        raise GouacheError(f"the run folder {out} holds {kind} at step {step}; {hint}name another folder")
    check_output_folder(out, what="the run folder", inputs=inputs if not here else (),
                        own=lambda folder: here or _unstarted(folder, config_file))


def claim_run(cfg: RunConfig, *, lead: bool = True) -> ContextManager:
    """The run folder's lock (``store/lock.py``), held by the process that writes it (``lead``)
    while it trains: a second process is refused at once."""
    return locked(cfg.out) if lead else nullcontext()


def _kind(config_file: str, lora: int) -> str:
    return "a distillation run" if config_file == "distill_config.json" else "a LoRA run" if lora else "a training run"


def _kind_in(folder: Path) -> str:
    """What ran in ``folder``, read from its recipe."""
    for name in ("distill_config.json", "train_config.json"):
        try:
            recipe = read_json(folder / name, what="the run's recipe", limit=MB)
        except GouacheError:  # missing or spoiled: the other, or "a run"
            continue
        return _kind(name, recipe.get("lora", 0) if isinstance(recipe, dict) else 0)
    return "a run"


def _unstarted(folder: Path, config_file: str) -> bool:
    """Whether ``folder`` holds only what a run of ``config_file`` writes before its first checkpoint."""
    names = {p.name for p in folder.iterdir()}
    return names <= {config_file, "log.csv", "samples", "checkpoints", PRIOR_FILE, LOCK_FILE} and (
        config_file in names or names <= {LOCK_FILE})


def open_run(cfg: RunConfig, config_file: str, *, step: int) -> TrainLog:
    """The run folder made ready (a save cut short by a crash cleared, the recipe written as
    ``config_file``); its log, rows past ``step`` dropped."""
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    clear_partial_checkpoints(run)
    write_json(cfg.to_dict(), run / config_file)
    return TrainLog(run / "log.csv", step=step)


def run_loop(run: Run, *, log: TrainLog | None, sample: Callable[[Path], None] | None = None,
             heldout: Callable[[], float] | None = None, eval_every: int = 0, lead: bool = True,
             progress: bool = True, desc: str = "training") -> RunResult:
    """Step ``run`` to ``cfg.steps``. ``sample(path)`` paints a grid; ``heldout()`` measures the
    held-out loss every ``eval_every`` steps. ``lead`` (rank 0) writes the log, samples and
    checkpoints; ``log`` is None on the other ranks."""
    cfg = run.cfg
    losses: list[float] = []
    pending: list[torch.Tensor] = []  # the losses of the steps since the last read-back, on the device
    start, seen, stopped, out_of_time = time.perf_counter(), 0, False, False
    bar = tqdm(total=cfg.steps, initial=run.step_no, desc=desc, unit="step", disable=not progress)
    budget = TimeBudget(cfg, run.step_no)
    with bar, StopSignal() as stop:  # an error ends the bar's line before it is printed
        while run.step_no < cfg.steps:
            pending.append(run.step())  # queued on the device: nothing here waits for it
            seen += cfg.batch_size
            step = run.step_no
            elapsed = time.perf_counter() - start
            scheduled = any(_due(step, n) for n in (cfg.checkpoint_every, cfg.sample_every, eval_every))
            logs = _due(step, cfg.log_every)
            # the shared decisions: every step in one process; with several, each is a collective
            # that waits for the device, so every _DECIDE_EVERY steps and wherever the loop writes
            if not dist.is_distributed() or _due(step, _DECIDE_EVERY) or scheduled or logs or step == cfg.steps:
                # rank 0's clock decides for all (a rank shortening alone would hang the others)
                if budget.open(step) and budget.update(step, dist.broadcast_float(elapsed)):
                    if bar.total == budget.planned and progress:
                        tqdm.write(f"time budget: about {cfg.steps} of {budget.planned} steps fit in "
                                   f"{cfg.max_minutes:g} minutes at this pace; the cool-down is shortened to match")
                    bar.total = cfg.steps
                out_of_time = cfg.max_minutes > 0 and dist.any_rank(elapsed > 60 * cfg.max_minutes)  # unanimous
                stopped = dist.any_rank(stop.requested)
            ips = seen / elapsed
            bar.update(1)
            last = step == cfg.steps or out_of_time
            # rank 0's slow work below: every rank knows when it happens, and waits for it
            writes = last or stopped or scheduled
            if writes or logs:  # the one host sync: the losses so far, checked before anything is saved
                losses += _read_back(run, pending)
                pending.clear()
                bar.set_postfix(loss=f"{losses[-1]:.4f}", img_s=f"{ips:.1f}")
            if lead and not stopped:
                if logs or last:
                    recent = losses[-cfg.log_every:]
                    log.write(step=step, loss=sum(recent) / len(recent), lr=lr_at(step - 1, cfg),
                              images_per_second=ips)
                if heldout is not None and (_due(step, eval_every) or last):
                    log.write(step=step, heldout_loss=heldout())
            if lead and (_due(step, cfg.checkpoint_every) or last or stopped):
                save(run)  # before the grid: a failure there must not cost the step's weights
            grid = sample is not None and cfg.sample_every > 0 and (_due(step, cfg.sample_every) or last)
            if lead and not stopped and grid:
                sample(Path(cfg.out) / "samples" / f"step-{step:08d}.png")
            if writes:
                dist.barrier()
            if out_of_time or stopped:
                break
    bar.close()
    return RunResult(Path(cfg.out), run.step_no, losses, seen / max(1e-9, time.perf_counter() - start),
                     stopped=stopped)


def _read_back(run: Run, pending: list[torch.Tensor]) -> list[float]:
    """The pending steps' losses as numbers, averaged over ranks (the same on every rank):
    one copy from the device. A non-finite one stops the run before anything of it is saved."""
    values = dist.mean(torch.stack(pending)).tolist() if pending else []
    first = run.step_no - len(values) + 1  # the step of values[0]
    for k, loss in enumerate(values):
        if not math.isfinite(loss):
            raise GouacheError(_diverged(run.cfg, first + k, loss))
    return values


def _diverged(cfg: RunConfig, step: int, loss: float) -> str:
    """What to tell the user when the run has diverged at ``step``; nothing since the last
    read-back is saved, so the last checkpoint is from before that step."""
    try:
        latest = read_latest(cfg.out)
    except GouacheError:  # a latest.txt it cannot follow: the run's own message matters more
        latest = None
    kept = (f"the last checkpoint, {latest.relative_to(cfg.out)}, is kept" if latest is not None
            else "no checkpoint was written")
    return (f"training diverged at step {step}: the loss (or its gradient) is {loss}; {kept}. "
            f"Lower lr (now {cfg.lr:g}) or grad_clip (now {cfg.grad_clip:g}), or raise warmup "
            f"(now {cfg.warmup})")


_DECIDE_EVERY = 10  # steps between the shared decisions (time, stop) of several processes


def _due(step: int, every: int) -> bool:
    """Whether a task done every ``every`` steps (0 = never) falls on ``step``."""
    return every > 0 and step % every == 0
