"""The training network under ``torch.compile``, falling back to eager when compiling fails.

``TrainConfig.compile`` names a mode; "auto" compiles on CUDA, where fewer and fused kernels
more than double the images/s of the small networks (benchmarks/README.md), and stays eager on
the CPU, where compiling takes minutes and gains little. Compiling happens at the first call,
so a failure (a missing compiler, an operator the backend cannot lower) surfaces in the first
step: ``CompiledNet`` then prints one line, runs eagerly from then on, and the caller redoes
the step. The network itself is never replaced, so its state dict keeps its keys.
"""
from __future__ import annotations

import sys

import torch
from torch import nn

__all__ = ["compile_mode", "CompiledNet"]


def compile_mode(setting: str, device: torch.device) -> str | None:
    """torch.compile's mode for a ``TrainConfig.compile`` setting on ``device``; None = eager."""
    if setting == "auto":
        return "default" if device.type == "cuda" else None
    return None if setting == "off" else setting


class CompiledNet:
    """``net`` compiled in ``mode`` (None: eager), with an eager fallback; called as ``net``.

    Static shapes (``dynamic=False``): a new batch shape recompiles; inductor's dynamic-shape
    path failed on this network on the CPU (torch 2.13) once a second shape arrived.
    """

    def __init__(self, net: nn.Module, mode: str | None, *, quiet: bool = False) -> None:
        self.net, self.mode, self.quiet = net, mode, quiet
        self.compiled = None
        self.tried = False  # whether a step has run compiled (and so compiled it): set by the caller
        if mode is not None:
            try:
                self.compiled = torch.compile(net, mode=mode, dynamic=False)
            except Exception as e:  # noqa: BLE001 - any failure of the compiler means: eager
                self.fall_back(e)

    @property
    def active(self) -> bool:
        """Whether calls go through the compiled network."""
        return self.compiled is not None

    def fall_back(self, error: BaseException) -> None:
        """Run eagerly from now on, saying so in one line."""
        self.compiled = None
        if not self.quiet:
            first = (str(error).strip().splitlines() or [""])[0][:200]
            print(f"warning: torch.compile (mode {self.mode}) failed, training eagerly: "
                  f"{type(error).__name__}: {first}", file=sys.stderr, flush=True)

    def begin_step(self) -> None:
        """Call before each training step: CUDA graphs (reduce-overhead) then know that the
        previous step's outputs are no longer needed."""
        if self.compiled is not None and self.mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()

    def __call__(self, *args, **kwargs):
        # "is not None", never "or": truth-testing a module asks for its len()
        return (self.compiled if self.compiled is not None else self.net)(*args, **kwargs)
