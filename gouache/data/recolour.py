"""Colour augmentation with caption rewriting: a banana turned green is captioned "green banana".

A model trained on captions alone learns strings: "banana" is a yellow picture, and
"green banana" a green blob. Recolouring teaches the colour word as a word: with
probability ``prob`` a training image's coloured pixels are turned round the hue wheel
(``colours.rotate_hue``) so that its dominant colour becomes another one of the
vocabulary, and its caption names that colour: a colour word already in the caption
is replaced ("red circle" -> "green circle"), else the colour goes before the thing
("banana" -> "green banana", "an emoji of banana" -> "an emoji of green banana").

An image is left as it is when it has no dominant colour (grey, black, many colours, or
coloured only in a small part),
when its caption names a colour that is not its dominant one ("white flower"), when the
turned picture's dominant colour is not the one asked, or when the new caption is one
of ``never`` (a testbed's held-out combinations, so that the augmentation does not
paint them itself). The draws come from the training's data generator, for the
global batch, so a run stays reproducible and resumes exactly.

In a recipe (``TrainConfig``): ``recolour = 0.3``, ``recolour_colours = [...]``,
``recolour_never = ["green triangle"]``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch

from gouache import distributed as dist
from gouache.colours import (
    COLOUR_NAMES,
    HUES,
    dominant_colours,
    dominant_hue,
    foreground,
    rotate_hue,
)
from gouache.data.prompts import CaptionCache
from gouache.errors import GouacheError
from gouache.model.text import TextEncoder

__all__ = ["RecolourOptions", "rewrite_caption", "recolour_batch", "RecolourSource", "COLOUR_WORDS"]

# Words that name a colour: a caption with one of these says what colour its picture is.
# ("skin": "light skin tone" says the hand is not blue.)
COLOUR_WORDS = frozenset(COLOUR_NAMES) | {"pink", "brown", "black", "white", "grey", "gray", "violet", "gold",
                                          "golden", "silver", "cyan", "magenta", "beige", "turquoise", "skin"}
MIN_SHARE = 0.5  # the dominant colour's share of the coloured pixels (a rainbow has none)
MIN_FOREGROUND = 0.35  # the dominant colour's share of the foreground (a grey camera's blue lens is not it)
# A leading phrase that the colour goes after: "an emoji of banana" -> "an emoji of green banana".
_LEAD = re.compile(r"^((?:an? |the )?(?:(?:emoji|picture|photo|drawing|painting|icon) of )?)(.*)$")


@dataclass(frozen=True)
class RecolourOptions:
    """The augmentation's settings, validated once (``from_config``)."""

    prob: float = 0.0  # share of training images recoloured (0 = off)
    colours: tuple[str, ...] = COLOUR_NAMES  # the colours an image may be turned to
    never: tuple[str, ...] = ()  # captions the augmentation must never produce

    def __post_init__(self) -> None:
        if not 0.0 <= self.prob <= 1.0:
            raise GouacheError(f"recolour must be a probability in [0, 1], got {self.prob}")
        unknown = [c for c in self.colours if c not in HUES]
        if unknown:
            raise GouacheError(f"recolour_colours: unknown colour(s) {', '.join(unknown)}; "
                               f"choose from {', '.join(COLOUR_NAMES)}")
        if self.prob > 0 and len(set(self.colours)) < 2:
            raise GouacheError("recolour_colours needs at least two colours")

    @classmethod
    def from_config(cls, cfg) -> "RecolourOptions":
        """From a ``TrainConfig``'s ``recolour``, ``recolour_colours`` and ``recolour_never``."""
        return cls(prob=float(cfg.recolour), colours=tuple(str(c).lower() for c in cfg.recolour_colours),
                   never=tuple(_normal(c) for c in cfg.recolour_never))


def _normal(caption: str) -> str:
    return " ".join(caption.lower().split())


def rewrite_caption(caption: str, old: str, new: str) -> str | None:
    """``caption`` of a picture whose dominant colour ``old`` became ``new``; None when the
    caption names another colour than ``old`` (it would lie) or is empty."""
    if not caption.strip():
        return None
    words = re.findall(r"[a-z]+", caption.lower())
    named = {w for w in words if w in COLOUR_WORDS}
    if named:
        if named != {old}:
            return None
        return re.sub(rf"\b{old}\b", new, caption, flags=re.IGNORECASE)
    lead, rest = _LEAD.match(caption).groups()
    if lead.lower() in ("a ", "an "):
        lead = "an " if new[0] in "aeiou" else "a "
    return f"{lead}{new} {rest}"


def recolour_batch(images: torch.Tensor, captions: Sequence[str], options: RecolourOptions, *,
                   chosen: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """Recolour the images where ``chosen`` (N,) bool, each to colour index ``targets`` (N,)
    of ``options.colours`` (the next one if that is its colour already), and rewrite their
    captions; an image that cannot be recoloured honestly stays as it was."""
    images, captions = images.clone(), list(captions)
    picks = [k for k in range(len(images)) if chosen[k]]
    if not picks:
        return images, captions
    found = dominant_hue(images[picks])
    fg = foreground(images[picks]).flatten(1).sum(1).tolist()
    turns, keep = [], []
    for k, hue, fg_count in zip(picks, found, fg):
        if hue is None or hue[2] < MIN_SHARE or hue[3] < MIN_FOREGROUND * fg_count:
            continue
        name, mean = hue[:2]
        colours = [c for c in options.colours if c != name]
        new = colours[int(targets[k]) % len(colours)]
        turns.append(HUES[new] - mean)
        keep.append((k, name, new))
    if not keep:
        return images, captions
    turned = rotate_hue(images[[k for k, _, _ in keep]], turns)
    for (k, old, new), picture, now in zip(keep, turned, dominant_colours(turned)):
        text = captions[k]
        caption = rewrite_caption(text, old, new) if text else ""
        if now != new or caption is None or _normal(caption) in options.never:
            continue
        images[k], captions[k] = picture, caption
    return images, captions


class RecolourSource:
    """A batch source whose images are recoloured (with their captions) after the inner
    source drew them. The inner source must hold its images in memory (``MemorySource``);
    new captions are encoded once each and kept (``CaptionCache``)."""

    def __init__(self, inner, options: RecolourOptions, encoder: TextEncoder) -> None:
        table = getattr(inner, "table", None)
        if table is None:
            raise GouacheError("recolour needs the images in memory (an imagefolder), not streamed shards")
        self.inner, self.options, self.texts = inner, options, table.captions
        self.captions = CaptionCache(encoder, (table.captions, table.emb))

    def draw(self, batch_size: int, *, generator: torch.Generator, dropout: float,
             step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        images, ids = self.inner.draw(batch_size, generator=generator, dropout=dropout, step=step)
        chosen = dist.shard(torch.rand(batch_size, generator=generator) < self.options.prob)
        targets = dist.shard(torch.randint(len(self.options.colours), (batch_size,), generator=generator))
        images, captions = recolour_batch(images, [self.texts[i] for i in ids.tolist()], self.options,
                                          chosen=chosen, targets=targets)
        return images, self.captions.ids(captions)

    def cond(self, ids: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        return self.captions.cond(ids, device)
