"""Which weights a model folder holds: one fingerprint, recorded by what is made from them.

A few-step student records its teacher's (``StudentInfo.teacher_sha256``), an adapter its
base's (``AdapterInfo.base_sha256``), so that neither is joined to other weights; a LoRA
run keys its cache of the base's pictures on it.

The fingerprint is the sha256 of the EMA weights' values at float16, by name: a run and the
model folder exported from it (float16) share it, though their files differ.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from gouache.store.files import file_sha256
from gouache.store.tensors import read_tensors

__all__ = ["weights_fingerprint", "fingerprint_matches"]


def weights_fingerprint(model: Path) -> str:
    """sha256 of a model folder's EMA weights as float16 values, by name: the same for the run
    a model came from and for its exported (float16) model folder."""
    h = hashlib.sha256()
    tensors = read_tensors(Path(model) / "ema.safetensors")
    for name in sorted(tensors):
        t = tensors[name]
        t = t.to(torch.float16) if t.is_floating_point() else t
        h.update(name.encode() + str(t.dtype).encode() + t.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def fingerprint_matches(recorded: str, model: Path, fingerprint: str | None = None) -> bool:
    """Whether ``recorded`` names the weights of ``model`` (``fingerprint``: its
    ``weights_fingerprint``, if known). Adapter files written before there was one fingerprint
    recorded the sha256 of the base's ``ema.safetensors`` bytes instead: that is accepted too."""
    if recorded == (fingerprint or weights_fingerprint(model)):
        return True
    return recorded == file_sha256(Path(model) / "ema.safetensors")
