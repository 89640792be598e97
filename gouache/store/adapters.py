"""Adapter files: ``NAME.safetensors`` (tensors ``<module>.down`` and ``<module>.up``) and
``NAME.json`` (``AdapterInfo``: rank, alpha, and the base model's name and weights fingerprint,
``fingerprint.py``), so that loading an adapter onto other weights is refused, naming its base.
The layer itself is ``gouache.model.lora``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from gouache.checks import at_least, check_fields, non_blank, positive
from gouache.errors import GouacheError
from gouache.model.lora import (
    FORMAT,
    LoraSpec,
    adapter_tensors,
    add_adapter,
    load_adapter_tensors,
    set_scale,
)
from gouache.store.files import write_json
from gouache.store.fingerprint import fingerprint_matches, weights_fingerprint
from gouache.store.tensors import save_tensors

__all__ = ["AdapterInfo", "save_adapter", "read_adapter", "find_adapter", "apply_adapters", "parse_lora_spec"]


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter file is, saved beside it as JSON."""

    rank: int  # the inner width of every A and B
    alpha: float  # the update is scaled by alpha / rank
    convs: bool  # whether the ResBlocks' convolutions have adapters too (always the attention projections)
    base_model: str  # the base model's folder name, e.g. "emoji64"
    base_sha256: str  # the base's ``weights_fingerprint`` (older files: the sha256 of its ema.safetensors):
    # the adapter only fits those weights
    format: str = FORMAT  # this file layout's version

    def __post_init__(self) -> None:
        check_fields(self, {"rank": (at_least(1), "at least 1"), "alpha": (positive, "above 0"),
                            "base_model": (non_blank, "a name"),
                            "base_sha256": (lambda s: len(s) == 64, "64 hex digits"),
                            "format": (lambda f: f == FORMAT, FORMAT)}, what="adapter config")


def save_adapter(net: nn.Module, name: str, info: AdapterInfo, path: Path) -> Path:
    """Write adapter ``name`` to ``path`` (.safetensors) and its info to the .json beside it."""
    path = Path(path)
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in adapter_tensors(net, name).items()}
    save_tensors(tensors, path, metadata={"format": FORMAT})
    write_json(asdict(info), path.with_suffix(".json"))
    return path


def find_adapter(path: Path | str) -> Path:
    """An adapter file, or a folder holding ``adapter.safetensors``, or a run folder (its latest)."""
    path = Path(path)
    if path.is_dir():
        latest = path / "latest.txt"
        folder = path / latest.read_text().strip() if latest.exists() else path
        path = folder / "adapter.safetensors"
    if not path.is_file():
        raise GouacheError(f"no such adapter: {path} (an .safetensors file with its .json beside it, "
                           "or a LoRA run folder)")
    return path


def read_adapter(path: Path | str) -> tuple[AdapterInfo, dict[str, torch.Tensor]]:
    """An adapter's info and tensors; a missing or damaged file is a one-line error naming it."""
    from gouache.store.tensors import read_tensors

    path = find_adapter(path)
    meta = path.with_suffix(".json")
    try:
        info = AdapterInfo(**json.loads(meta.read_text()))
    except FileNotFoundError:
        raise GouacheError(f"{meta} is missing: an adapter needs its .json beside it") from None
    except (json.JSONDecodeError, TypeError) as e:
        raise GouacheError(f"{meta}: not a gouache adapter config ({e})") from None
    return info, read_tensors(path)


def parse_lora_spec(spec: LoraSpec) -> tuple[Path, float]:
    """``FILE`` or ``FILE:SCALE`` (scale 1 when not given), or a (file, scale) pair."""
    if isinstance(spec, tuple):
        path, scale = Path(spec[0]), spec[1]
    else:
        text = str(spec)
        head, sep, tail = text.rpartition(":")
        try:
            path, scale = (Path(head), float(tail)) if sep and head else (Path(text), 1.0)
        except ValueError:
            path, scale = Path(text), 1.0
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not -10 <= scale <= 10:
        raise GouacheError(f"--lora {spec}: the scale must be a number from -10 to 10, got {scale!r}")
    return path, float(scale)


def apply_adapters(net: nn.Module, base_folder: Path, specs: Sequence[LoraSpec]) -> list[str]:
    """Load each adapter (``FILE[:SCALE]``) onto ``net``, whose weights are ``base_folder``'s;
    an adapter made for other weights is refused. Returns the adapters' names on ``net``."""
    names, ours = [], None
    for k, spec in enumerate(specs):
        path, scale = parse_lora_spec(spec)
        info, tensors = read_adapter(path)
        ours = ours or weights_fingerprint(base_folder)
        if not fingerprint_matches(info.base_sha256, base_folder, ours):
            raise GouacheError(f"adapter {path} was made for base model {info.base_model!r} (weights "
                               f"{info.base_sha256[:12]}), not for {base_folder} (weights {ours[:12]}); "
                               f"load it with --model pointing at {info.base_model}")
        name = f"lora{k}"
        add_adapter(net, name, rank=info.rank, alpha=info.alpha, convs=info.convs)
        load_adapter_tensors(net, name, tensors, what=str(path))
        set_scale(net, name, scale)
        names.append(name)
    return names

