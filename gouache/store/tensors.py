"""safetensors files: the one place gouache reads and writes tensors on disk (never pickles)."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from gouache.errors import GouacheError
from gouache.store.files import replacing

__all__ = ["save_tensors", "read_tensors", "contiguous"]


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, *, metadata: dict[str, str] | None = None) -> None:
    """A safetensors file, written atomically (``files.replacing``) with the permissions any new
    file gets. Serialised in memory and written by Python, so that a full disk is its errno."""
    data = save(tensors, metadata=metadata)
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a missing or damaged file is a one-line error naming it."""
    try:
        return load_file(path)
    except FileNotFoundError:
        raise GouacheError(f"{path} is missing") from None
    except (SafetensorError, OSError) as e:
        raise GouacheError(f"{path}: not a readable safetensors file ({e})") from None


def contiguous(sd: dict[str, torch.Tensor], dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Tensors ready to save: detached, on the CPU, contiguous, floats cast to ``dtype`` if given."""
    out = {}
    for k, v in sd.items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous()
    return out
