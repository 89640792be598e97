"""Training low-rank adapters on a frozen model: ``gouache train --lora RANK --init MODEL``.

The base network gets the ``--init`` model's EMA weights (what sampling uses) and is
frozen: requires_grad False, so none of it is in the optimiser. One adapter (``lora.py``)
is added on the attention projections and the ResBlocks' convolutions; only it trains,
and the run's EMA copy averages only it. A checkpoint folder holds

    adapter.safetensors, adapter.json   the EMA adapter: what ``--lora`` loads
    adapter_raw.safetensors (+ .json)   the trained adapter, for resuming
    train.safetensors, state.json       AdamW's moments, the generators, the step (as any run)

so that a resumed run repeats an uninterrupted one. The model's config is the base's.
With prior preservation (``prior.py``) the run folder also holds ``prior.safetensors``,
the base's own pictures that every step trains on beside the new ones.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from gouache.errors import GouacheError
from gouache.model.config import ModelConfig
from gouache.model.lora import adapter_tensors, add_adapter, load_adapter_tensors
from gouache.store.adapters import AdapterInfo, check_adapter_file, read_adapter, read_adapter_info, save_adapter
from gouache.store.checkpoint import check_model_folder, load_weights, read_model_config, resolve_model_dir
from gouache.store.fingerprint import fingerprint_matches, weights_fingerprint
from gouache.training.config import TrainConfig

__all__ = ["LoRARun", "ADAPTER"]

ADAPTER = "tuned"  # the trained adapter's name on the network


class LoRARun:
    """The adapter side of a run: the base it sits on, and how its checkpoints are written."""

    def __init__(self, cfg: TrainConfig) -> None:
        if not cfg.init:
            raise GouacheError("--lora needs --init MODEL: the trained model the adapters sit on "
                               "(e.g. gouache/models/emoji64)")
        self.base = resolve_model_dir(cfg.init)
        check_model_folder(self.base, values=True)  # its config and weights, before they are hashed
        name = Path(cfg.init).resolve().name
        self.info = AdapterInfo(rank=cfg.lora, alpha=float(cfg.lora_alpha or cfg.lora), convs=cfg.lora_convs,
                                base_model=name, base_sha256=weights_fingerprint(self.base))

    def model_config(self) -> ModelConfig:
        """The run's model: the base's network, schedule and prompt encoder."""
        return read_model_config(self.base)

    def prepare(self, net: torch.nn.Module, *, load: bool = True) -> None:
        """Base weights in (``load``), everything frozen, then the (trainable) adapter added."""
        if load:
            load_weights(net, self.base / "ema.safetensors")
        net.requires_grad_(False)
        add_adapter(net, ADAPTER, rank=self.info.rank, alpha=self.info.alpha, convs=self.info.convs)

    def write_weights(self, folder: Path, *, net: torch.nn.Module, ema: torch.nn.Module) -> None:
        """A checkpoint's weights: the EMA adapter (what ``--lora`` loads) and the trained one."""
        save_adapter(ema, ADAPTER, self.info, folder / "adapter.safetensors")
        save_adapter(net, ADAPTER, self.info, folder / "adapter_raw.safetensors")

    def check_weights(self, folder: Path, net: torch.nn.Module) -> None:
        """A checkpoint's adapters checked against this run's, on ``net`` (prepared, never loaded):
        their records, the names and shapes in their headers, then their values."""
        for path in (folder / "adapter_raw.safetensors", folder / "adapter.safetensors"):
            self._check_info(folder, read_adapter_info(path))
            check_adapter_file(path, adapter_tensors(net, ADAPTER))
            read_adapter(path)  # small: its values read, each finite

    def read_weights(self, folder: Path, *, net: torch.nn.Module, ema: torch.nn.Module) -> None:
        """A checkpoint's adapters onto ``net`` and ``ema``, refused unless they are this run's."""
        for path, module in ((folder / "adapter_raw.safetensors", net), (folder / "adapter.safetensors", ema)):
            info, tensors = read_adapter(path)
            self._check_info(folder, info)
            load_adapter_tensors(module, ADAPTER, tensors, what=str(path))

    def _check_info(self, folder: Path, info: AdapterInfo) -> None:
        if not self._same_run(info):
            raise GouacheError(f"--resume {folder}: its adapter (rank {info.rank}, base {info.base_model} "
                               f"{info.base_sha256[:12]}) is not this run's (rank {self.info.rank}, base "
                               f"{self.info.base_model} {self.info.base_sha256[:12]}): give the same "
                               "--lora and --init")

    def _same_run(self, info: AdapterInfo) -> bool:
        """Whether a checkpoint's adapter record is this run's: the same shape and the same base
        (a run started before there was one fingerprint recorded its base's file hash)."""
        ours = dataclasses.replace(self.info, base_sha256=info.base_sha256)
        return info == ours and fingerprint_matches(info.base_sha256, self.base, self.info.base_sha256)
