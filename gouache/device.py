"""Which device to run on: one choice for training, sampling, evaluation and every rank."""
from __future__ import annotations

import os

import torch

from gouache.errors import GouacheError

__all__ = ["pick_device"]


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: a GPU when CUDA is there, else the CPU; or ``cpu``, ``cuda``, ``cuda:N``.

    Under torchrun a plain ``cuda`` (or ``auto`` on a GPU machine) is the rank's own GPU,
    ``LOCAL_RANK``, made the current one.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise GouacheError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise GouacheError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise GouacheError(f"device {name!r}: no CUDA GPU is usable here (or torch is a CPU build); "
                               "use --device cpu")
        if dev.index is None and "LOCAL_RANK" in os.environ:
            dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        if dev.index is not None:
            if dev.index >= torch.cuda.device_count():
                raise GouacheError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
            torch.cuda.set_device(dev)
    return dev
