"""The caption policy: which captions a training image may be shown with, and how often.

``caption_variants(row)`` turns one metadata.jsonl row into a list of captions
and their probabilities. Training encodes every caption of the dataset once
(``prompts.CaptionTable``) and, at every step, draws one caption per image from
its list with the run's data generator, then replaces about 10% by "" (caption
dropout, for guidance): seeded, so a run and its resume see the same captions.

Three kinds of row:

* a row with ``keywords`` (the emoji set, version 2: ``gouache data emoji``):
  the names of the emoji, through ``EMOJI_POLICY`` below;
* a row with ``label`` and ``style`` but no ``keywords`` (the 64 px PNG emoji set
  of version 6): ``CAPTION_TEMPLATES``, as the shipped model was trained;
* any other row: its ``text``, always.

``EMOJI_POLICY``, each template with its weight; a template is left out when a
row lacks what it needs (or it would repeat the label), and the weights of the
rest are scaled to sum to 1:

==============================  ======  ========================================
template                        weight  example (pizza, Noto)
==============================  ======  ========================================
``{label}``                     0.25    pizza
``{name}``                      0.10    slice of pizza (Unicode character name)
``an emoji of {label}``         0.10    an emoji of pizza
``{label}, {kw1}, {kw2}``       0.15    pizza, cheese, pepperoni (CLDR keywords)
``{keyword}``                   0.10    cheese; pepperoni; ... (each keyword alone,
                                        the weight shared between them)
``{label} in {style} style``    0.10    pizza in noto style
``a {style} emoji of {name}``   0.05    a noto emoji of slice of pizza
``{annotation}``                0.05    the artwork set's own name for the icon
``{shortcode}``                 0.05    an emojibase/GitHub shortcode, spaced
``{kw1} {label}``               0.05    cheese pizza
==============================  ======  ========================================

The keywords are the row's keywords that are not words of its label, in an order
fixed by a hash of the code sequence: the same row always gets the same ones, and
different emoji get different ones. A keyword alone ("puppy" for dog face) is how
people ask for a thing they do not know the label of.

The default style. A row with ``"style_in_caption": true`` (``gouache data emoji
--default-styles``) names its style in every caption: a caption that does not say
it already gets ", {style} style" ("pizza, cheese, pepperoni, openmoji style").
A prompt that names no style then means the default styles' pictures, not a blend
of all of them.
"""
from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["caption_variants", "CAPTION_TEMPLATES", "EMOJI_POLICY", "emoji_captions"]

# (template, probability): version 6's draw, for rows with a label and a style.
CAPTION_TEMPLATES: tuple[tuple[str, float], ...] = (
    ("{label}", 0.6),
    ("{label}, {style} style", 0.2),
    ("an emoji of {label}", 0.2),
)
EMOJI_POLICY: tuple[tuple[str, float], ...] = (
    ("{label}", 0.25),
    ("{name}", 0.10),
    ("an emoji of {label}", 0.10),
    ("{label}, {kw1}, {kw2}", 0.15),
    ("{keyword}", 0.10),
    ("{label} in {style} style", 0.10),
    ("a {style} emoji of {name}", 0.05),
    ("{annotation}", 0.05),
    ("{shortcode}", 0.05),
    ("{kw1} {label}", 0.05),
)


def _keywords(row: dict[str, Any]) -> list[str]:
    """The row's keywords that are not words of its label, in a fixed per-emoji order."""
    label_words = set(row["label"].replace(":", " ").replace(",", " ").split())
    kws = [k.lower() for k in row.get("keywords") or () if k and k.lower() not in label_words]
    key = row.get("codepoints", row["label"])

    def rank(k: str) -> bytes:
        return hashlib.sha256(f"{key}:{k}".encode()).digest()

    return sorted(dict.fromkeys(kws), key=rank)


def _shortcode(row: dict[str, Any]) -> str:
    """The first shortcode, spaced, that is not the label and names no skin tone."""
    for code in row.get("shortcodes") or ():
        text = code.replace("_", " ").replace("-", " ").strip().lower()
        if text and "tone" not in text and not any(c.isdigit() for c in text):
            return text
    return ""


def _fill(template: str, fields: dict[str, str], keywords: list[str]) -> list[str]:
    """The captions one template makes of a row: none when a field it needs is missing
    or would only repeat the label; one per keyword for ``{keyword}``."""
    if template == "{keyword}":
        return keywords
    needed = [f for f in fields if "{" + f + "}" in template]
    if any(not fields[f] for f in needed):
        return []
    if any(f in ("name", "annotation", "shortcode") and fields[f] == fields["label"] for f in needed):
        return []
    return [template.format(**fields)]


def emoji_captions(row: dict[str, Any]) -> tuple[list[str], list[float]]:
    """The captions of one emoji row under ``EMOJI_POLICY``, and their probabilities."""
    kws = _keywords(row)
    style = row.get("style_title") or row.get("style", "")
    fields = {"label": row["label"], "name": row.get("name") or "", "style": style,
              "annotation": row.get("annotation") or "", "shortcode": _shortcode(row),
              "kw1": kws[0] if kws else "", "kw2": kws[1] if len(kws) > 1 else ""}
    named = bool(row.get("style_in_caption")) and bool(style)
    chosen: dict[str, float] = {}
    for template, weight in EMOJI_POLICY:
        captions = _fill(template, fields, kws)
        for caption in captions:
            if named and f"{style} style" not in caption and f"a {style} emoji" not in caption:
                caption = f"{caption}, {style} style"
            chosen[caption] = chosen.get(caption, 0.0) + weight / len(captions)
    total = sum(chosen.values())
    return list(chosen), [w / total for w in chosen.values()]


def caption_variants(record: dict[str, Any]) -> tuple[list[str], list[float]]:
    """The captions one row may be trained with, and their probabilities."""
    if record.get("keywords") is not None and record.get("label"):
        return emoji_captions(record)
    label, style = record.get("label"), record.get("style")
    if label and style:
        return ([t.format(label=label, style=style) for t, _ in CAPTION_TEMPLATES],
                [p for _, p in CAPTION_TEMPLATES])
    return [record["text"]], [1.0]
