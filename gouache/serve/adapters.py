"""The adapters a server offers: those it was started with (``gouache serve --lora FILE[:SCALE]``).

The page and the API name an adapter by a short name the server gives it (its run folder's or
file's name), never by a path: a request cannot make the server read a file. Every adapter
sits on the network unmerged; before each batch the worker sets the chosen one to the asked
scale and every other to 0, which leaves the base's output bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from gouache.errors import GouacheError
from gouache.store.adapters import parse_lora_spec, read_adapter

__all__ = ["AdapterChoice", "adapter_choices", "adapter_scales", "check_adapters"]


@dataclass(frozen=True)
class AdapterChoice:
    name: str  # what the page shows and a request sends
    key: str  # the adapter's name on the pipeline's network
    default_scale: float  # the scale it was given at start-up


def _label(path: Path) -> str:
    """``runs/mine/checkpoints/step-00000300/adapter.safetensors`` -> ``mine``; ``cat.safetensors`` -> ``cat``."""
    if path.stem != "adapter":
        return path.stem
    folder = path.parent
    return folder.parent.parent.name if folder.parent.name == "checkpoints" else folder.name


def adapter_choices(pipeline) -> dict[str, AdapterChoice]:
    """The pipeline's adapters by the name a request uses (a repeated name gets -2, -3...)."""
    choices: dict[str, AdapterChoice] = {}
    for key, loaded in getattr(pipeline, "adapters", {}).items():
        label = _label(Path(loaded.path)) or key
        name, k = label, 2
        while name in choices:
            name, k = f"{label}-{k}", k + 1
        choices[name] = AdapterChoice(name=name, key=key, default_scale=loaded.scale)
    return choices


def adapter_scales(choices: dict[str, AdapterChoice], chosen: str | None,
                   scale: float | None) -> tuple[tuple[str, float], ...]:
    """The scale of every adapter on the network for one job: ``chosen`` (one of ``choices``)
    at ``scale``, every other at 0."""
    return tuple((c.key, float(scale) if c.name == chosen and scale is not None else 0.0)
                 for c in choices.values())


def check_adapters(specs: Sequence[str]) -> None:
    """Read each adapter ``gouache serve --lora FILE[:SCALE]`` names, before the model loads and the
    server listens: a missing or damaged file, or a tensor with a NaN or an infinity, is a GouacheError."""
    for spec in specs:
        path, _ = parse_lora_spec(spec)
        _, tensors = read_adapter(path)
        bad = next((key for key, t in tensors.items() if not torch.isfinite(t).all()), None)
        if bad is not None:
            raise GouacheError(f"adapter {path}: {bad} holds values that are not finite (NaN or infinity)")
