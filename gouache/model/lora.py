"""Low-rank adapters: teach a trained network a new subject with a few small matrices.

Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models": a frozen weight
W (out x in) is used as W + (alpha / rank) B A, where A (rank x in, "down") and B
(out x rank, "up") are the only weights trained. B starts at zero, so an adapter that
has not trained yet changes nothing. For a convolution, A is a convolution with the
base kernel's size, stride and padding into ``rank`` channels and B a 1x1 convolution
out of them, so B A is again one kernel of the base's shape.

Several adapters can sit on one network at once, each with its own scale, without
touching the base weights; ``merge`` folds them into the weights for good.

An adapter's files are read and written by ``gouache.store.adapters``.
This module knows nothing of training or of files.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Union

import torch
from torch import nn

from gouache.errors import GouacheError
from gouache.model.unet import Attention, ResBlock

__all__ = ["LoRALayer", "add_adapter", "adapter_tensors", "load_adapter_tensors", "set_scale", "merge",
           "LoraSpec", "FORMAT", "DEFAULT_RANK", "ATTENTION_PROJECTIONS", "RESBLOCK_CONVS"]

ATTENTION_PROJECTIONS = ("qkv", "proj_self", "q", "kv", "proj_cross")  # every linear of an Attention block
RESBLOCK_CONVS = ("conv1", "conv2")  # the 3x3 convolutions of a ResBlock
FORMAT = "gouache-lora-1"
DEFAULT_RANK = 8  # 2.4 MB of float32 adapters on the shipped `base` network, convolutions included
LoraSpec = Union[str, Path, tuple[Union[str, Path], float]]  # "FILE", "FILE:SCALE" or (FILE, SCALE)


class LoRALayer(nn.Module):
    """A Linear or Conv2d ``base`` plus named low-rank updates, each with its own scale."""

    def __init__(self, base: nn.Linear | nn.Conv2d) -> None:
        super().__init__()
        self.base = base
        self.down, self.up = nn.ModuleDict(), nn.ModuleDict()
        self.factors: dict[str, float] = {}  # adapter name -> alpha / rank
        self.scales: dict[str, float] = {}  # adapter name -> alpha / rank x the user's scale

    def add(self, name: str, rank: int, factor: float) -> None:
        """A new adapter: A as PyTorch initialises a layer (as peft does), B zero."""
        b = self.base
        if isinstance(b, nn.Conv2d):
            down: nn.Module = nn.Conv2d(b.in_channels, rank, b.kernel_size, b.stride, b.padding, b.dilation,
                                        bias=False)
            up: nn.Module = nn.Conv2d(rank, b.out_channels, 1, bias=False)
        else:
            down, up = nn.Linear(b.in_features, rank, bias=False), nn.Linear(rank, b.out_features, bias=False)
        nn.init.kaiming_uniform_(down.weight, a=math.sqrt(5))
        nn.init.zeros_(up.weight)
        w = b.weight
        self.down[name], self.up[name] = down.to(w.device, w.dtype), up.to(w.device, w.dtype)
        self.factors[name] = self.scales[name] = factor

    def delta(self, name: str) -> torch.Tensor:
        """B A shaped like the base weight (without the scale)."""
        a, b = self.down[name].weight, self.up[name].weight
        if a.dim() == 4:  # (rank, in, kh, kw) and (out, rank, 1, 1)
            return torch.einsum("or,rikl->oikl", b[:, :, 0, 0], a)
        return b @ a  # (out, rank) @ (rank, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        for name, scale in self.scales.items():
            if scale != 0:  # at scale 0 the output is the base's, bit for bit
                y = y + scale * self.up[name](self.down[name](x))
        return y


def _targets(net: nn.Module, convs: bool) -> Iterator[tuple[str, nn.Module, str]]:
    """(full name, parent, attribute) of every layer an adapter goes on: the attention
    projections, and with ``convs`` the ResBlocks' 3x3 convolutions."""
    for name, module in net.named_modules():
        attrs = ATTENTION_PROJECTIONS if isinstance(module, Attention) else \
            RESBLOCK_CONVS if convs and isinstance(module, ResBlock) else ()
        for attr in attrs:
            yield f"{name}.{attr}" if name else attr, module, attr


def add_adapter(net: nn.Module, name: str, *, rank: int, alpha: float, convs: bool = True) -> list[str]:
    """Put adapter ``name`` (scale alpha / rank) on the network's targets; return their names."""
    if rank < 1:
        raise GouacheError(f"adapter rank must be at least 1, got {rank}")
    names = []
    for full, parent, attr in list(_targets(net, convs)):
        layer = getattr(parent, attr)
        if not isinstance(layer, LoRALayer):
            layer = LoRALayer(layer)
            setattr(parent, attr, layer)
        if name in layer.scales:
            raise GouacheError(f"the network already has an adapter named {name!r}")
        layer.add(name, rank, alpha / rank)
        names.append(full)
    return names


def _layers(net: nn.Module) -> Iterator[tuple[str, LoRALayer]]:
    for full, module in net.named_modules():
        if isinstance(module, LoRALayer):
            yield full, module


def adapter_tensors(net: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """Adapter ``name``'s weights: ``<layer>.down`` and ``<layer>.up`` for each layer it is on."""
    out = {}
    for full, layer in _layers(net):
        if name in layer.scales:
            out[f"{full}.down"] = layer.down[name].weight
            out[f"{full}.up"] = layer.up[name].weight
    return out


def load_adapter_tensors(net: nn.Module, name: str, tensors: dict[str, torch.Tensor], *, what: str) -> None:
    """Copy saved weights into adapter ``name``; every tensor must find its place and shape."""
    own = adapter_tensors(net, name)
    if set(own) != set(tensors):
        extra, missing = sorted(set(tensors) - set(own)), sorted(set(own) - set(tensors))
        raise GouacheError(f"{what}: adapter of another network ({len(missing)} layers missing, "
                           f"{len(extra)} unknown, e.g. {(missing or extra)[0]})")
    with torch.no_grad():
        for key, t in tensors.items():
            if t.shape != own[key].shape:
                raise GouacheError(f"{what}: {key} is {tuple(t.shape)}, the network's is {tuple(own[key].shape)}")
            own[key].copy_(t)


def set_scale(net: nn.Module, name: str, scale: float) -> None:
    """Set adapter ``name``'s scale to ``scale`` x alpha / rank (0 turns it off)."""
    for _, layer in _layers(net):
        if name in layer.scales:
            layer.scales[name] = scale * layer.factors[name]


@torch.no_grad()
def merge(net: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight, W += scale B A, and remove the wrappers."""
    for full, layer in list(_layers(net)):
        w = layer.base.weight
        for name, scale in layer.scales.items():
            w += (scale * layer.delta(name).float()).to(w.dtype)
        parent = net.get_submodule(full.rpartition(".")[0]) if "." in full else net
        setattr(parent, full.rpartition(".")[2], layer.base)
    return net
