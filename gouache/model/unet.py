"""The denoiser network: a text-conditioned U-Net.

The network is the raw F of EDM (see ``denoiser.py``): it takes a scaled noisy
image, the noise level ``c_noise`` and the prompt, and returns a tensor the
shape of the image. It knows nothing of sigmas or preconditioning.

Layout (Ho et al. 2020; Rombach et al. 2022 for the text conditioning):

    pixel-unshuffle stem (optional: 64x64x3 -> 32x32x12, so every layer runs at
    a quarter of the positions) -> conv -> [ResBlock x N (+ attention)] per
    level, downsampling between levels -> middle -> mirrored up path with skip
    connections -> conv -> pixel-shuffle back to full resolution.

Conditioning: Fourier features of ``c_noise`` -> MLP -> embedding, plus a
projection of the pooled prompt embedding; every ResBlock reads that embedding
as a scale and shift of its second group norm. Attention blocks do
self-attention over positions and cross-attention from positions to the
prompt's per-token states, with the padding mask applied.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from gouache.checks import at_least, between, check_fields
from gouache.errors import GouacheError

__all__ = ["UNetConfig", "UNet", "PRESETS", "parameter_count", "activation_bytes", "check_cost",
           "MAX_PARAMETERS", "MAX_ACTIVATION_BYTES"]


def _splits_into_heads(channels: int, head_dim: int) -> bool:
    """Whether ``Attention`` can split ``channels`` into its heads (of about ``head_dim`` each)."""
    return channels % max(1, channels // head_dim) == 0


@dataclass(frozen=True)
class UNetConfig:
    image_size: int = 64  # side of the square RGB images the network paints
    in_channels: int = 3  # image channels
    patch: int = 2  # pixel-unshuffle factor of the stem (1 = work at full resolution)
    channels: tuple[int, ...] = (64, 128, 160)  # width of each level, from the top
    blocks_per_level: int = 2  # ResBlocks per level on the way down (one more on the way up)
    attn_levels: tuple[int, ...] = (1, 2)  # levels (0 = top) that get self- and cross-attention
    head_dim: int = 32  # channels per attention head
    text_dim: int = 384  # width of the prompt encoder's token states
    emb_dim: int = 256  # width of the noise/prompt embedding
    groups: int = 32  # group-norm groups (divides every width)
    dropout: float = 0.0  # dropout inside ResBlocks

    def __post_init__(self) -> None:
        one_up = (at_least(1), "at least 1")
        check_fields(self, {
            "image_size": one_up, "in_channels": one_up, "patch": one_up, "blocks_per_level": one_up,
            "head_dim": one_up, "text_dim": one_up, "emb_dim": one_up, "groups": one_up,
            "channels": (lambda c: len(c) > 0 and all(w >= 1 and w % self.groups == 0 for w in c),
                         f"widths that divide into groups={self.groups}"),
            "attn_levels": (lambda a: all(0 <= k < len(self.channels) and _splits_into_heads(self.channels[k], self.head_dim)
                                          for k in a), "levels that exist, whose widths split evenly into heads"),
            "dropout": (between(0.0, 0.99), "from 0 to 0.99"),
        }, what="network config")
        if self.image_size % self.divisor:
            raise GouacheError(f"network config: image_size {self.image_size} is not divisible by "
                               f"{self.divisor} (patch {self.patch} x 2^{len(self.channels) - 1} levels)")
        check_cost(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        for key in ("channels", "attn_levels"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def divisor(self) -> int:
        """The image side must be a multiple of this."""
        return self.patch * 2 ** (len(self.channels) - 1)


MAX_PARAMETERS = 1_000_000_000  # 4 GB of float32 weights: over 50 times the largest preset
MAX_ACTIVATION_BYTES = 8 << 30  # of one picture's forward pass (the presets need under 20 MB)


def parameter_count(cfg: UNetConfig) -> int:
    """The parameters ``UNet(cfg)`` holds, counted from the config alone (nothing is built)."""
    e, t, ch, b = cfg.emb_dim, cfg.text_dim, cfg.channels, cfg.blocks_per_level

    def linear(i: int, o: int) -> int:
        return i * o + o

    def conv(i: int, o: int, k: int = 3) -> int:
        return i * o * k * k + o

    def res(i: int, o: int) -> int:  # two group norms, two convolutions, the embedding's scale and shift
        return 2 * i + conv(i, o) + linear(e, 2 * o) + 2 * o + conv(o, o) + (conv(i, o, 1) if i != o else 0)

    def attn(c: int) -> int:  # a group norm, qkv and its projection; a layer norm, q, kv and its projection
        return 2 * c + linear(c, 3 * c) + linear(c, c) + 2 * c + linear(c, c) + linear(t, 2 * c) + linear(c, c)

    n = linear(t, e) + 2 * linear(e, e) + conv(cfg.in_channels * cfg.patch ** 2, ch[0])
    prev = ch[0]
    for i, c in enumerate(ch):  # down: b blocks, then a strided convolution
        n += res(prev, c) + (b - 1) * res(c, c) + b * attn(c) * (i in cfg.attn_levels)
        n += conv(c, c) if i < len(ch) - 1 else 0
        prev = c
    n += 2 * res(ch[-1], ch[-1]) + 2 * attn(ch[-1])  # middle
    for i, c in reversed(list(enumerate(ch))):  # up: b + 1 blocks, each reading a skip
        skip = ch[max(i - 1, 0)]  # the last one: the level above's downsampled skip, or the stem's
        n += res(prev + c, c) + (b - 1) * res(2 * c, c) + res(c + skip, c)
        n += (b + 1) * attn(c) * (i in cfg.attn_levels) + (conv(c, c) if i > 0 else 0)
        prev = c
    return n + 2 * ch[0] + conv(ch[0], cfg.in_channels * cfg.patch ** 2)


def activation_bytes(cfg: UNetConfig) -> int:
    """About the float32 activations of one picture's forward pass, from the config alone: the
    skips and working tensors of every level, and the largest self-attention matrix."""
    side = cfg.image_size // cfg.patch
    positions = [(side >> i) ** 2 for i in range(len(cfg.channels))]
    maps = sum(p * c * (2 * cfg.blocks_per_level + 3) for p, c in zip(positions, cfg.channels))
    scores = max([max(1, cfg.channels[i] // cfg.head_dim) * positions[i] ** 2 for i in cfg.attn_levels]
                 + [max(1, cfg.channels[-1] // cfg.head_dim) * positions[-1] ** 2])  # the middle's
    return 4 * (maps + scores)


def check_cost(cfg: UNetConfig) -> None:
    """Refuse a network that would not fit: its parameters, or one picture's activations."""
    n = parameter_count(cfg)
    if n > MAX_PARAMETERS:
        raise GouacheError(f"network config: {n:,} parameters ({4 * n / 2**30:,.1f} GiB of float32 weights), "
                           f"more than the {MAX_PARAMETERS:,} gouache builds")
    act = activation_bytes(cfg)
    if act > MAX_ACTIVATION_BYTES:
        raise GouacheError(f"network config: one {cfg.image_size} px picture would need about "
                           f"{act / 2**30:,.1f} GiB of activations, more than {MAX_ACTIVATION_BYTES >> 30} GiB")


PRESETS: dict[str, UNetConfig] = {
    # For tests: a few thousand parameters, runs in milliseconds.
    "tiny": UNetConfig(image_size=16, patch=1, channels=(16, 32), blocks_per_level=1,
                       attn_levels=(1,), head_dim=16, emb_dim=32, groups=8),
    # Small and quick on a CPU: the shapes sanity run (32x32).
    "small": UNetConfig(image_size=32, patch=1, channels=(32, 64, 128), blocks_per_level=1,
                        attn_levels=(1, 2), head_dim=32, emb_dim=128, groups=16),
    # The default 64x64 model: at most 4 GFLOP per image forward (11.3M parameters, 3.7), for a GPU.
    "base": UNetConfig(),
    # 64x64 trainable on a CPU: a 4x4 pixel-unshuffle stem, so the network works at
    # 16x16, 8x8 and 4x4 (18.7M parameters, 2.1 GFLOP; about 2.4x the training throughput of "base").
    "cpu64": UNetConfig(patch=4, channels=(128, 192, 256), blocks_per_level=1,
                        attn_levels=(0, 1, 2), head_dim=32, emb_dim=256, groups=32),
}


class FourierEmbedding(nn.Module):
    """Random Fourier features of a scalar (Tancik et al. 2020), as in EDM's NCSN++."""

    def __init__(self, dim: int, scale: float = 16.0) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.randn(dim // 2) * scale)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * c[:, None] * self.freqs[None]  # (B, dim/2)
        return torch.cat([angles.cos(), angles.sin()], dim=1)  # (B, dim)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the embedding as scale and shift of the second norm."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Self-attention over positions, then cross-attention to the prompt's tokens."""

    def __init__(self, channels: int, text_dim: int, head_dim: int, groups: int) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)  # channels must split evenly: UNetConfig checks it
        self.norm_self = nn.GroupNorm(groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj_self = nn.Linear(channels, channels)
        self.norm_cross = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(text_dim, 2 * channels)
        self.proj_cross = nn.Linear(channels, channels)
        for proj in (self.proj_self, self.proj_cross):  # start as the identity
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, c = t.shape
        return t.view(b, n, self.heads, c // self.heads).transpose(1, 2)  # (B, heads, N, head_dim)

    def _merge(self, t: torch.Tensor) -> torch.Tensor:
        b, h, n, d = t.shape
        return t.transpose(1, 2).reshape(b, n, h * d)  # (B, N, C)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        h = self.norm_self(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        q, k, v = (self._split(t) for t in self.qkv(h).chunk(3, dim=-1))
        h = self._merge(F.scaled_dot_product_attention(q, k, v))
        y = x.flatten(2).transpose(1, 2) + self.proj_self(h)  # (B, HW, C)

        q = self._split(self.q(self.norm_cross(y)))
        k, v = (self._split(t) for t in self.kv(tokens.to(y.dtype)).chunk(2, dim=-1))
        keep = mask[:, None, None, :]  # (B, 1, 1, L): True where a real token is
        h = self._merge(F.scaled_dot_product_attention(q, k, v, attn_mask=keep))
        y = y + self.proj_cross(h)
        return y.transpose(1, 2).reshape(b, c, hgt, wid)


class Level(nn.Module):
    """ResBlocks at one resolution, each optionally followed by attention."""

    def __init__(self, c_ins: list[int], c_out: int, cfg: UNetConfig, attn: bool) -> None:
        super().__init__()
        self.res = nn.ModuleList(ResBlock(c, c_out, cfg.emb_dim, cfg.groups, cfg.dropout) for c in c_ins)
        self.attn = nn.ModuleList(
            Attention(c_out, cfg.text_dim, cfg.head_dim, cfg.groups) if attn else nn.Identity()
            for _ in c_ins)


class UNet(nn.Module):
    """F(x, c_noise, tokens, mask, pooled) -> tensor shaped like x."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.grad_checkpointing = False  # see ``set_grad_checkpointing``
        ch, p = cfg.channels, cfg.patch
        self.noise_embed = FourierEmbedding(cfg.emb_dim)
        self.text_embed = nn.Linear(cfg.text_dim, cfg.emb_dim)
        self.emb_mlp = nn.Sequential(nn.Linear(cfg.emb_dim, cfg.emb_dim), nn.SiLU(),
                                     nn.Linear(cfg.emb_dim, cfg.emb_dim))
        self.stem = nn.Conv2d(cfg.in_channels * p * p, ch[0], 3, padding=1)

        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips = [ch[0]]
        c_prev = ch[0]
        for i, c in enumerate(ch):
            c_ins = [c_prev] + [c] * (cfg.blocks_per_level - 1)
            self.down.append(Level(c_ins, c, cfg, attn=i in cfg.attn_levels))
            skips += [c] * cfg.blocks_per_level
            c_prev = c
            if i < len(ch) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)

        self.mid = Level([ch[-1], ch[-1]], ch[-1], cfg, attn=True)

        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, c in reversed(list(enumerate(ch))):
            c_ins = []
            for _ in range(cfg.blocks_per_level + 1):
                c_ins.append(c_prev + skips.pop())
                c_prev = c
            self.up.append(Level(c_ins, c, cfg, attn=i in cfg.attn_levels))
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))

        self.out_norm = nn.GroupNorm(cfg.groups, ch[0])
        self.out = nn.Conv2d(ch[0], cfg.in_channels * p * p, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, *, tokens: torch.Tensor,
                mask: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        emb = self.noise_embed(c_noise) + self.text_embed(pooled.to(x.dtype))
        emb = self.emb_mlp(emb)  # (B, emb_dim)

        h = self.stem(F.pixel_unshuffle(x, self.cfg.patch))  # (B, C0, H/p, W/p)
        skips = [h]
        for i, level in enumerate(self.down):
            for res, attn in zip(level.res, level.attn):
                h = self._block(res, attn, h, emb, tokens, mask)
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)

        for res, attn in zip(self.mid.res, self.mid.attn):
            h = self._block(res, attn, h, emb, tokens, mask)

        for i, level in enumerate(self.up):
            for res, attn in zip(level.res, level.attn):
                h = self._block(res, attn, torch.cat([h, skips.pop()], dim=1), emb, tokens, mask)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))

        h = self.out(F.silu(self.out_norm(h)))
        return F.pixel_shuffle(h, self.cfg.patch)  # (B, 3, H, W)

    def set_grad_checkpointing(self, enabled: bool = True) -> "UNet":
        """Recompute each ResBlock's and attention block's activations in the backward pass.

        Only while training with gradients on: the forward pass keeps just the
        blocks' inputs, trading about one extra forward pass for memory. The
        gradients are the same as without it.
        """
        self.grad_checkpointing = bool(enabled)
        return self

    def _block(self, res: ResBlock, attn: nn.Module, h: torch.Tensor, emb: torch.Tensor,
               tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        has_attn = isinstance(attn, Attention)
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            h = checkpoint(res, h, emb, use_reentrant=False)
            return checkpoint(attn, h, tokens, mask, use_reentrant=False) if has_attn else h
        h = res(h, emb)
        return attn(h, tokens, mask) if has_attn else h


def count_flops(net: UNet, *, batch: int = 1, tokens: int = 16) -> int:
    """Forward FLOPs per call, counted by PyTorch's FlopCounterMode (2 per multiply-add).

    Counted on the meta device: there attention decomposes into two counted matmuls,
    whereas the CPU's fused attention kernel has no FLOP formula and would count as 0.
    """
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    cfg = net.cfg
    meta = copy.deepcopy(net).to("meta")
    x = torch.zeros(batch, cfg.in_channels, cfg.image_size, cfg.image_size, device="meta")
    cond = dict(tokens=torch.zeros(batch, tokens, cfg.text_dim, device="meta"),
                mask=torch.ones(batch, tokens, dtype=torch.bool, device="meta"),
                pooled=torch.zeros(batch, cfg.text_dim, device="meta"))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(x, torch.zeros(batch, device="meta"), **cond)
    return counter.get_total_flops()
