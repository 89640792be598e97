"""The learning rate over a run: linear warm-up, a constant stretch, a linear cool-down to 0
(warmup-stable-decay), and the time budget that fits the cool-down into the minutes given."""
from __future__ import annotations

from typing import Protocol

__all__ = ["lr_at", "TimeBudget", "Schedule"]


class Schedule(Protocol):
    """A recipe's schedule fields (``TrainConfig``, ``DistillConfig``); a time budget changes
    ``steps`` and ``cooldown`` of a mutable one."""

    lr: float  # the peak rate
    warmup: int  # steps of linear warm-up
    steps: int  # optimiser steps
    cooldown: int  # the last steps, a linear decay to 0 (0 = none)
    max_minutes: float  # the time budget (0 = none)


def lr_at(step: int, cfg: Schedule) -> float:
    """Linear warm-up to ``cfg.lr``, constant, then (with ``cfg.cooldown``) a linear decay to 0
    over the last steps: the warmup-stable-decay schedule, so that a run at a constant rate
    can be resumed into a final cool-down without knowing its length in advance."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    cool = min(1.0, (cfg.steps - step) / cfg.cooldown) if cfg.cooldown > 0 else 1.0
    return cfg.lr * warm * max(0.0, cool)


class TimeBudget:
    """Fits the cool-down into ``max_minutes``: a run cut short by its time limit would stop
    at its peak rate and lose what the cool-down buys.

    Until the cool-down begins, each ``update`` measures the pace (checkpoints, samples
    and evaluations included; the first ``min_steps`` steps, with any compiling, left
    out) and sets ``steps`` to what fits in the time left, never more than planned, with
    ``margin`` of the time kept for the last checkpoint, and ``cooldown`` in proportion,
    so the rate reaches 0 as the time runs out. The checkpoints record the schedule
    (``state.json``); a run resumed with its recipe goes on with the recipe's ``steps``.
    """

    def __init__(self, cfg: Schedule, first_step: int, *, margin: float = 0.05, min_steps: int = 5) -> None:
        self.cfg, self.margin, self.min_steps = cfg, margin, min_steps
        self.planned, self.share = cfg.steps, cfg.cooldown / max(1, cfg.steps)
        self.first_step = first_step
        self.ref: tuple[int, float] | None = None  # (step, elapsed) where the pace is measured from

    def open(self, step: int) -> bool:
        """False once the schedule is fixed: no budget, no cool-down, or the cool-down has begun."""
        cfg = self.cfg
        return cfg.max_minutes > 0 and 0 < cfg.cooldown <= cfg.steps - step

    def update(self, step: int, elapsed: float) -> bool:
        """``step`` steps done, ``elapsed`` seconds since ``first_step``; True if changed."""
        if not self.open(step) or step - self.first_step < self.min_steps:
            return False
        if self.ref is None:
            self.ref = (step, elapsed)
            return False
        ref_step, ref_time = self.ref
        if step - ref_step < self.min_steps:
            return False
        pace = (elapsed - ref_time) / (step - ref_step)  # seconds a step
        left = (1 - self.margin) * 60 * self.cfg.max_minutes - elapsed
        steps = min(self.planned, step + max(1, int(left / pace)))
        if steps == self.cfg.steps:
            return False
        self.cfg.steps, self.cfg.cooldown = steps, max(1, round(self.share * steps))
        return True
