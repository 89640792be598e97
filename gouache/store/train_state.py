"""Reading a run's training state back: ``state.json`` (the step, AdamW's hyper-parameters,
the recipe) and ``train.safetensors`` (AdamW's moments and the generators' states).

Everything is checked against the optimiser and the generators it goes into before any of it
is loaded: every tensor's name, shape and dtype (a moment of the wrong shape would train on
silently, or crash the fused AdamW step), every field of ``state.json``. A checkpoint of
another run, another network or another optimiser is one line naming the file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch

from gouache.errors import GouacheError
from gouache.store.reading import MB, MissingFile, TensorSpec, read_json, safetensors_header
from gouache.store.tensors import check_tensors, read_tensors

__all__ = ["RunState", "read_run_state", "check_train_state", "load_train_state", "STATE_FILE", "TRAIN_FILE"]

STATE_FILE = "state.json"
TRAIN_FILE = "train.safetensors"
_MOMENTS = ("exp_avg", "exp_avg_sq")  # AdamW's per-parameter state beside its step count
_SAME = ("amsgrad", "maximize", "differentiable", "capturable")  # flags that change the state or the step


@dataclass(frozen=True)
class RunState:
    """``state.json``: where a run stopped."""

    step: int  # optimiser steps done
    param_groups: list[dict]  # AdamW's hyper-parameters, as ``Optimizer.state_dict`` gives them
    train_config: dict  # the run's recipe


def read_run_state(folder: Path) -> RunState:
    """A checkpoint's ``state.json``, each field checked for its type."""
    path = Path(folder) / STATE_FILE
    try:
        d = read_json(path, what="run state", limit=MB)
    except MissingFile:
        raise GouacheError(f"{path} is missing: a checkpoint to resume needs its {STATE_FILE}") from None
    step, groups, config = d.get("step"), d.get("param_groups"), d.get("train_config")
    if type(step) is not int or not 0 <= step < 2**62:
        raise GouacheError(f"{path}: step must be a whole number of 0 or more, got {step!r}")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise GouacheError(f"{path}: param_groups must be a list of objects, got {_short(groups)}")
    if not isinstance(config, dict):
        raise GouacheError(f"{path}: train_config must be an object, got {_short(config)}")
    return RunState(step, groups, config)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected_tensors(params: Sequence[torch.Tensor], generators: Mapping[str, torch.Generator]
                      ) -> dict[str, TensorSpec]:
    """What ``train.safetensors`` holds for AdamW on ``params`` and for these generators: for
    parameter i (numbered as ``Optimizer.state_dict`` numbers them) its step count and moments,
    and each generator's state."""
    specs: dict[str, TensorSpec] = {}
    for i, p in enumerate(params):
        specs[f"state.{i}.step"] = TensorSpec(torch.float32, ())
        for name in _MOMENTS:
            specs[f"state.{i}.{name}"] = TensorSpec(p.dtype, tuple(p.shape))
    for name, g in generators.items():
        specs[f"rng.{name}"] = TensorSpec(torch.uint8, tuple(g.get_state().shape))
    return specs


def _check_groups(path: Path, theirs: list[dict], ours: list[dict]) -> None:
    """``state.json``'s param_groups against the optimiser's own: as many groups, the same
    parameters, and each hyper-parameter of the same kind."""
    if len(theirs) != len(ours):
        raise GouacheError(f"{path}: {len(theirs)} parameter groups, this run's optimiser has {len(ours)}")
    for k, (t, o) in enumerate(zip(theirs, ours)):
        if set(t) != set(o):
            key = sorted(set(t) ^ set(o))[0]
            raise GouacheError(f"{path}: parameter group {k} {'lacks' if key in o else 'has an unknown'} {key!r}")
        if t["params"] != o["params"]:
            raise GouacheError(f"{path}: parameter group {k} holds {_count(t['params'])} parameters, this run's "
                               f"optimiser {len(o['params'])}: the state of another network")
        for key, value in o.items():
            if not _same_kind(t[key], value) or (key in _SAME and t[key] != value):
                raise GouacheError(f"{path}: parameter group {k}: {key} must be like {value!r}, got {_short(t[key])}")


def _count(params) -> str:
    return str(len(params)) if isinstance(params, list) else "no list of"


def _same_kind(theirs, ours) -> bool:
    if isinstance(ours, bool) or ours is None:  # flags torch may leave unset (None)
        return theirs is None or isinstance(theirs, bool)
    if isinstance(ours, (int, float)):
        return isinstance(theirs, (int, float)) and not isinstance(theirs, bool) and math.isfinite(theirs)
    if isinstance(ours, (list, tuple)):
        return isinstance(theirs, list) and len(theirs) == len(ours) and all(map(_same_kind, theirs, ours))
    return type(theirs) is type(ours)


def check_train_state(folder: Path, params: Sequence[torch.Tensor], generators: Mapping[str, torch.Generator],
                      *, optimizer: torch.optim.Optimizer | None = None) -> RunState:
    """A checkpoint's ``state.json`` and ``train.safetensors``, checked (nothing loaded) against
    AdamW on ``params`` (in the optimiser's order; ``optimizer``: that AdamW, when made) and the
    run's ``generators``: every tensor's name, shape and dtype, every hyper-parameter's kind."""
    folder = Path(folder)
    state = read_run_state(folder)
    ours = optimizer or torch.optim.AdamW(params)  # made for its groups' keys: no step is taken
    _check_groups(folder / STATE_FILE, state.param_groups, ours.state_dict()["param_groups"])
    path = folder / TRAIN_FILE
    try:
        found, _ = safetensors_header(path, what="training state")
    except MissingFile:
        raise GouacheError(f"{path} is missing: a checkpoint to resume needs its {TRAIN_FILE}") from None
    check_tensors(path, found, _expected_tensors(params, generators), what="optimizer state", any_float=True)
    states = read_tensors(path, what="training state", names=[f"rng.{name}" for name in generators])
    for name, g in generators.items():  # each state tried on a generator of its own kind
        _set_state(torch.Generator(g.device), states[f"rng.{name}"], path, name)
    return state


def _set_state(g: torch.Generator, state: torch.Tensor, path: Path, name: str) -> None:
    try:
        g.set_state(state)
    except RuntimeError as e:
        raise GouacheError(f"{path}: rng.{name} is not a state of this generator ({e})".splitlines()[0]) from None


def load_train_state(folder: Path, optimizer: torch.optim.Optimizer,
                     generators: dict[str, torch.Generator]) -> int:
    """Restore AdamW and the generators from a checkpoint, once all of it is checked; return its step."""
    folder = Path(folder)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = check_train_state(folder, params, generators, optimizer=optimizer)
    path = folder / TRAIN_FILE
    tensors = read_tensors(path, what="training state")
    opt_state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("state."):
            _, i, name = key.split(".", 2)
            opt_state.setdefault(int(i), {})[name] = v
    optimizer.load_state_dict({"state": opt_state, "param_groups": state.param_groups})
    for name, g in generators.items():
        _set_state(g, tensors[f"rng.{name}"], path, name)
    return state.step
