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

from gouache.checks import between, check_fields, non_blank
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
from gouache.store.latest import read_latest
from gouache.store.reading import MissingFile, TensorSpec, read_record, regular_file, safetensors_header
from gouache.store.tensors import check_finite, check_tensors, read_tensors, save_tensors

__all__ = ["AdapterInfo", "save_adapter", "read_adapter", "read_adapter_info", "check_adapter_file", "find_adapter",
           "apply_adapters", "parse_lora_spec", "MAX_RANK"]


MAX_RANK = 256  # as the command line's --lora
MAX_ALPHA = 4096.0  # the update's scale alpha / rank stays at most 4096
_HEX = frozenset("0123456789abcdef")


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
        check_fields(self, {"rank": (between(1, MAX_RANK), f"at least 1 and at most {MAX_RANK}"),
                            "alpha": (lambda a: 0 < a <= MAX_ALPHA, f"above 0 and at most {MAX_ALPHA}"),
                            "base_model": (non_blank, "a name"),
                            "base_sha256": (lambda s: len(s) == 64 and all(c in _HEX for c in s), "64 hex digits"),
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
        path = (read_latest(path) or path) / "adapter.safetensors"
    if path.exists():
        regular_file(path, "adapter")  # a named pipe or a device is said as such
    else:
        raise GouacheError(f"no such adapter: {path} (an .safetensors file with its .json beside it, "
                           "or a LoRA run folder)")
    return path


def read_adapter(path: Path | str) -> tuple[AdapterInfo, dict[str, torch.Tensor]]:
    """An adapter's info and tensors; a missing or damaged file is a one-line error naming it.
    The info's fields are typed and bounded; every tensor is a float tensor of finite values
    (their shapes are checked against the network they go on: ``lora.load_adapter_tensors``)."""
    path = find_adapter(path)
    return read_adapter_info(path), _read_adapter_tensors(path)


def read_adapter_info(path: Path) -> AdapterInfo:
    """The info (``NAME.json``) of the adapter file ``path``, each field typed and bounded."""
    return read_record(Path(path).with_suffix(".json"), AdapterInfo, what="adapter config",
                       missing="an adapter needs its .json beside it", kind="a gouache adapter config")


def check_adapter_file(path: Path, own: dict[str, torch.Tensor] | None = None) -> None:
    """Refuse the adapter file ``path`` unless its header declares float tensors, and with ``own``
    (the adapter's tensors on a network) the same names and shapes; nothing else is read."""
    try:
        found, _ = safetensors_header(path, what="adapter")
    except MissingFile:
        raise GouacheError(f"{path} is missing") from None
    if own is not None:
        expected = {k: TensorSpec(v.dtype, tuple(v.shape)) for k, v in own.items()}
        check_tensors(path, found, expected, what="adapter", any_float=True)
    for name, spec in found.items():
        if not spec.dtype.is_floating_point:
            raise GouacheError(f"{path}: {name} is {spec.dtype}, not a float tensor")


def _read_adapter_tensors(path: Path, own: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The adapter file's tensors, once ``check_adapter_file`` passes; every value finite."""
    check_adapter_file(path, own)
    return check_finite(path, read_tensors(path, what="adapter"))


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
        file = find_adapter(path)
        info = read_adapter_info(file)
        ours = ours or weights_fingerprint(base_folder)
        if not fingerprint_matches(info.base_sha256, base_folder, ours):
            raise GouacheError(f"adapter {path} was made for base model {info.base_model!r} (weights "
                               f"{info.base_sha256[:12]}), not for {base_folder} (weights {ours[:12]}); "
                               f"load it with --model pointing at {info.base_model}")
        name = f"lora{k}"
        add_adapter(net, name, rank=info.rank, alpha=info.alpha, convs=info.convs)
        tensors = _read_adapter_tensors(file, adapter_tensors(net, name))  # shapes checked before reading
        load_adapter_tensors(net, name, tensors, what=str(file))
        set_scale(net, name, scale)
        names.append(name)
    return names

