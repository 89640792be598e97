"""safetensors files: the one place gouache reads and writes tensors on disk (never pickles)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from gouache.errors import GouacheError
from gouache.store.files import replacing
from gouache.store.reading import MissingFile, TensorSpec, safetensors_header

__all__ = ["save_tensors", "read_tensors", "check_tensors", "check_finite", "contiguous"]


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, *, metadata: dict[str, str] | None = None,
                 shared: bool = False) -> None:
    """A safetensors file, written atomically (``files.replacing``, ``shared`` for a cache) with
    the permissions any new file gets. Serialised in memory and written by Python, so that a full
    disk is its errno."""
    data = save(tensors, metadata=metadata)
    with replacing(path, shared=shared) as tmp:
        tmp.write_bytes(data)


def read_tensors(path: Path, *, what: str = "tensors", names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors (``names``: only these), its header checked first
    (``reading.safetensors_header``); a missing or damaged file is a one-line error naming it."""
    try:
        found, _ = safetensors_header(path, what=what)
    except MissingFile:
        raise GouacheError(f"{path} is missing") from None
    try:
        if names is not None:
            with safe_open(str(path), framework="pt") as f:
                return {name: f.get_tensor(name) for name in names if name in found}
        return load_file(path)
    except (SafetensorError, OSError) as e:
        raise GouacheError(f"{path}: not a readable safetensors file ({e})") from None


def check_tensors(path: Path, found: Mapping[str, TensorSpec], expected: Mapping[str, TensorSpec], *,
                  what: str, any_float: bool = False) -> None:
    """Refuse the file ``path`` unless the tensors its header declares (``found``) are the
    ``expected`` ones: the same names, shapes and dtypes (``any_float``: any float dtype where a
    float is expected, as weights saved in float16 are read into float32)."""
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        e_g = f"e.g. {(missing or extra)[0]}"
        raise GouacheError(f"{path}: {what} of another model shape: {len(missing)} missing, {len(extra)} "
                           f"unexpected ({e_g})")
    for name, want in expected.items():
        have = found[name]
        if have.shape != want.shape:
            raise GouacheError(f"{path}: {what} of another model shape: {name} is {tuple(have.shape)}, "
                               f"{tuple(want.shape)} expected")
        floats = any_float and have.dtype.is_floating_point and want.dtype.is_floating_point
        if have.dtype != want.dtype and not floats:
            raise GouacheError(f"{path}: {name} is {have.dtype}, {want.dtype} expected")


def check_finite(path: Path, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` (read from ``path``), once every float value in them is finite: a NaN or an
    infinity in a weight paints black pictures without a word."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise GouacheError(f"{path}: {name} holds values that are not finite (NaN or infinity)")
    return tensors


def contiguous(sd: dict[str, torch.Tensor], dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Tensors ready to save: detached, on the CPU, contiguous, floats cast to ``dtype`` if given."""
    out = {}
    for k, v in sd.items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous()
    return out
