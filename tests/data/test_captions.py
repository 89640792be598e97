"""The caption policy: what each row may be called, deterministic, drawn under a seed."""
from __future__ import annotations

import pytest
import torch

from gouache.data.captions import CAPTION_TEMPLATES, EMOJI_POLICY, caption_variants
from gouache.data.imagefolder import load_imagefolder, read_records
from gouache.data.prompts import CaptionTable

PIZZA = {"text": "pizza", "label": "pizza", "name": "slice of pizza", "style": "noto", "style_title": "noto",
         "keywords": ["cheese", "food", "hungry", "pepperoni", "slice", "pizza"], "shortcodes": ["pizza"],
         "annotation": "pizza", "codepoints": "1F355"}


def test_emoji_rows_get_the_policy_and_its_names() -> None:
    caps, probs = caption_variants(PIZZA)
    assert sum(probs) == pytest.approx(1.0) and len(set(caps)) == len(caps)
    assert caps[:3] == ["pizza", "slice of pizza", "an emoji of pizza"]
    assert "pizza in noto style" in caps and "a noto emoji of slice of pizza" in caps
    listed = [c for c in caps if c.startswith("pizza, ")]
    assert len(listed) == 1 and "pizza" not in listed[0].split(", ")[1:]  # keywords, not the label
    assert "pizza" not in caps[1:] and caps.count("pizza") == 1  # annotation/shortcode repeat it: merged
    assert dict(zip(caps, probs))["pizza"] == pytest.approx(0.25 / sum(w for t, w in EMOJI_POLICY
                                                                      if t not in ("{annotation}", "{shortcode}")))
    assert caption_variants(dict(PIZZA)) == (caps, probs)  # a pure function of the row


def test_each_keyword_alone_is_a_caption_sharing_one_weight() -> None:
    caps, probs = caption_variants(PIZZA)
    alone = {c: p for c, p in zip(caps, probs) if c in ("cheese", "food", "hungry", "pepperoni", "slice")}
    assert len(alone) == 5  # every keyword but the label's own word
    total = sum(w for t, w in EMOJI_POLICY if t not in ("{annotation}", "{shortcode}"))
    assert sum(alone.values()) == pytest.approx(0.10 / total)
    assert len(set(alone.values())) == 1


def test_a_row_outside_the_default_styles_names_its_style_in_every_caption() -> None:
    plain, plain_probs = caption_variants(PIZZA)
    caps, probs = caption_variants({**PIZZA, "style": "openmoji", "style_title": "openmoji",
                                    "style_in_caption": True})
    assert all("openmoji style" in c or "a openmoji emoji" in c for c in caps)
    assert "pizza, openmoji style" in caps and "pizza in openmoji style" in caps
    assert "cheese, openmoji style" in caps and "slice of pizza, openmoji style" in caps
    assert len(caps) == len(plain) and probs == pytest.approx(plain_probs)  # the same draw, style named
    assert caption_variants({**PIZZA, "style_in_caption": False}) == (plain, plain_probs)


def test_templates_without_their_fields_are_left_out() -> None:
    bare = {"text": "x ray", "label": "x ray", "keywords": [], "style": "noto", "codepoints": "1"}
    caps, probs = caption_variants(bare)
    assert caps == ["x ray", "an emoji of x ray", "x ray in noto style"]
    assert sum(probs) == pytest.approx(1.0)


def test_version_6_rows_and_plain_rows_keep_their_captions() -> None:
    caps, probs = caption_variants({"text": "red apple", "label": "red apple", "style": "google"})
    assert caps == ["red apple", "red apple, google style", "an emoji of red apple"]
    assert probs == [p for _, p in CAPTION_TEMPLATES]
    assert caption_variants({"text": "a dog"}) == (["a dog"], [1.0])


def test_every_fixture_emoji_has_at_least_four_captions(emoji_svg_fixture) -> None:
    per_code: dict[str, set[str]] = {}
    for row in read_records(emoji_svg_fixture, split=None):
        per_code.setdefault(row["codepoints"], set()).update(caption_variants(row)[0])
    assert min(map(len, per_code.values())) >= 4


def test_the_draw_is_deterministic_under_a_seed(emoji_svg_fixture, text_encoder) -> None:
    data = load_imagefolder(emoji_svg_fixture, size=16, progress=False)
    table = CaptionTable.build(data, text_encoder)
    idx = torch.arange(len(data)).repeat(50)

    def draw(seed: int) -> list[str]:
        ids = table.draw(idx, generator=torch.Generator().manual_seed(seed), dropout=0.1)
        return [table.captions[i] for i in ids.tolist()]

    first = draw(0)
    assert first == draw(0) and first != draw(1)
    assert first.count("") / len(first) == pytest.approx(0.1, abs=0.02)  # the caption dropout stays
    shown = [c for c, k in zip(first, idx.tolist()) if k == 0 and c]
    variants = data.variants[0]
    assert set(shown) <= set(variants) and len(set(shown)) >= 4  # real variety, from the policy only
