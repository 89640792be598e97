import json

import pytest
import torch

from gouache.data.imagefolder import (
    CAPTION_TEMPLATES,
    balanced_weights,
    caption_variants,
    load_imagefolder,
    read_records,
)
from gouache.data.prompts import CaptionTable
from gouache.errors import GouacheError


def test_caption_templates_for_emoji_rows():
    caps, probs = caption_variants({"text": "red apple", "label": "red apple", "style": "google"})
    assert caps == ["red apple", "red apple, google style", "an emoji of red apple"]
    assert sum(probs) == pytest.approx(1.0) and len(probs) == len(CAPTION_TEMPLATES)
    assert caption_variants({"text": "a dog"}) == (["a dog"], [1.0])


def test_split_selects_rows(emoji_fixture):
    train = read_records(emoji_fixture, split="train")
    test = read_records(emoji_fixture, split="test")
    assert len(train) == 30 and len(test) == 6
    assert not {r["label"] for r in train} & {r["label"] for r in test}


def test_load_composites_and_resizes(emoji_fixture):
    data = load_imagefolder(emoji_fixture, size=32, progress=False)
    assert data.images.shape == (30, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.images[:, :, 0, 0].float().mean() > 240  # corners: transparency became white


def test_sidecar_captions(tmp_path, emoji_fixture):
    src = next((emoji_fixture / "images" / "google").glob("*.png"))
    (tmp_path / "apple.png").write_bytes(src.read_bytes())
    (tmp_path / "apple.txt").write_text("a red apple\n")
    data = load_imagefolder(tmp_path, size=16, progress=False)
    assert data.captions == ["a red apple"]


def test_metadata_errors_name_the_line(tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "x"}\n{oops\n')
    with pytest.raises(GouacheError, match="metadata.jsonl:2: not valid JSON"):
        read_records(tmp_path)
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": ""}) + "\n")
    with pytest.raises(GouacheError, match="a.png: image has no caption"):
        read_records(tmp_path)
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "b.png", "text": "x"}) + "\n")
    with pytest.raises(GouacheError, match="b.png: listed in metadata.jsonl but missing"):
        load_imagefolder(tmp_path, size=16, progress=False)


def test_caption_table_draws_variants_and_dropout(emoji_fixture, text_encoder):
    data = load_imagefolder(emoji_fixture, size=16, progress=False)
    table = CaptionTable.build(data, text_encoder)
    assert table.captions[0] == "" and len(set(table.captions)) == len(table.captions)
    g = torch.Generator().manual_seed(0)
    idx = torch.zeros(20_000, dtype=torch.long)  # image 0, many times
    ids = table.draw(idx, generator=g, dropout=0.1)
    shown = [table.captions[i] for i in ids.tolist()]
    label = data.records[0]["label"]
    assert shown.count("") / len(shown) == pytest.approx(0.1, abs=0.01)
    assert shown.count(label) / len(shown) == pytest.approx(0.9 * 0.6, abs=0.015)
    assert shown.count(f"an emoji of {label}") / len(shown) == pytest.approx(0.9 * 0.2, abs=0.015)
    cond = table.cond(ids[:4], torch.device("cpu"))
    assert cond["tokens"].dtype == torch.float32 and cond["mask"].shape == cond["tokens"].shape[:2]


def test_balanced_weights_give_each_group_one_share():
    rows = [{"base": "hand"}] * 5 + [{"base": "apple"}, {"base": "apple"}, {}]
    w = balanced_weights(rows, "base")
    assert w.shape == (8,) and float(w.sum()) == pytest.approx(1.0)
    assert float(w[:5].sum()) == pytest.approx(1 / 3)  # five skin tones of one hand: one share
    assert float(w[5:7].sum()) == pytest.approx(1 / 3) and float(w[7]) == pytest.approx(1 / 3)
    with pytest.raises(GouacheError, match="cannot balance by 'group'"):
        balanced_weights(rows, "group")
