"""A BERT encoder in plain PyTorch, for the prompt encoder's start-up time.

Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding" (2019): token + position + segment embeddings, then
post-LayerNorm blocks of self-attention and a GELU MLP. all-MiniLM-L6-v2 is
such a model (6 layers, 384 wide).

Why not transformers' ``BertModel``: importing its modelling stack costs about
2.2 s on a 2-core CPU, nearly half of the time budget of ``gouache generate``;
this file imports in milliseconds and reads the same safetensors weights
(``tests/test_text.py`` checks that both give the same states). The
tokenizer is the ``tokenizers`` library's own, read from ``tokenizer.json``.
Any other architecture goes through transformers (see ``text.py``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from gouache.model.noinit import no_initial_weights

__all__ = ["BertConfig", "BertEncoder", "BertTokenizer", "is_plain_bert"]


@dataclass(frozen=True)
class BertConfig:
    """The fields of a transformers ``config.json`` that the forward pass needs."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path: Path) -> "BertConfig":
        d = json.loads(Path(path).read_text())
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def is_plain_bert(folder: Path) -> bool:
    """Whether ``folder`` holds a BERT this module can run: absolute positions, GELU, safetensors."""
    folder = Path(folder)
    try:
        d = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (d.get("model_type") == "bert" and d.get("hidden_act", "gelu") == "gelu"
            and d.get("position_embedding_type", "absolute") == "absolute"
            and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file())


class BertTokenizer:
    """WordPiece via ``tokenizers``: [CLS] prompt [SEP], padded to the batch's longest."""

    def __init__(self, path: Path, *, max_length: int) -> None:
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(path))
        self.tok.enable_truncation(max_length)  # tokenizer.json's own settings pad to 128
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, both ``(B, L)``."""
        enc = self.tok.encode_batch(prompts)
        ids = torch.tensor([e.ids for e in enc])
        mask = torch.tensor([e.attention_mask for e in enc])
        return ids, mask


class _Embeddings(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        # one segment: every token has type 0
        x = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class _Dense(nn.Module):
    """Linear, then (optionally) the residual and a LayerNorm: BERT's "output" sublayers."""

    def __init__(self, d_in: int, d_out: int, eps: float | None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(d_out, eps=eps)


class _Attention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.heads = c.num_attention_heads
        self.self = nn.Module()
        self.self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.output = _Dense(c.hidden_size, c.hidden_size, c.layer_norm_eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, heads, L, D / heads)
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(self.self.query(x)), split(self.self.key(x)), split(self.self.value(x))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        a = a.transpose(1, 2).reshape(b, n, d)  # (B, heads, L, d) -> (B, L, D)
        return self.output.LayerNorm(x + self.output.dense(a))


class _Layer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Dense(c.hidden_size, c.intermediate_size)
        self.output = _Dense(c.intermediate_size, c.hidden_size, c.layer_norm_eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, keep)
        h = F.gelu(self.intermediate.dense(x))  # exact (erf) GELU, as BERT's "gelu"
        return self.output.LayerNorm(x + self.output.dense(h))


class BertEncoder(nn.Module):
    """``(ids, mask) -> last hidden states (B, L, D)``; parameter names match transformers'."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.config = c
        self.embeddings = _Embeddings(c)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))

    @classmethod
    def from_folder(cls, folder: Path) -> "BertEncoder":
        from safetensors.torch import load_file

        folder = Path(folder)
        with no_initial_weights():  # every weight is loaded next (strict)
            model = cls(BertConfig.from_json(folder / "config.json"))
        sd = load_file(folder / "model.safetensors")
        sd = {k.removeprefix("bert."): v for k, v in sd.items()}
        # the pooler (a next-sentence head) and position_ids buffers are not used
        sd = {k: v for k, v in sd.items() if not k.startswith("pooler.") and not k.endswith("position_ids")}
        model.load_state_dict(sd, strict=True, assign=True)
        return model

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.bool()[:, None, None, :]  # (B, 1, 1, L): padding is never attended to
        x = self.embeddings(ids)
        for layer in self.encoder.layer:
            x = layer(x, keep)
        return x
