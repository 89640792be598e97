"""Tests for the version-1 (64 px PNG) emoji builder, against the committed fixture.

The fixture was made with the real builder (see ``gouache/data/emoji_png.py``)::

    gouache data emoji --source png --out tests/fixtures/emoji --test 1F44B,1F355 \
        --only 1F34E,1F349,1F34C,1F600,1F431,1F680,1F44B,1F44B-1F3FD,1F355,2764-FE0F,\
1F1EF-1F1F5,1F436,1F333,2600-FE0F,1F697,1F3B8,1F4DA,1F525
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from gouache.data.build import emoji_png as emoji
from gouache.data.build.emoji import build_emoji_dataset
from gouache.data.build.emoji_names import normalize_hexcode
from gouache.data.build.emoji_png import PNG_STYLES as STYLES
from gouache.data.build.emoji_png import (
    convert_png,
    list_images,
    load_labels,
    metadata_row,
)
from gouache.data.build.emoji_split import split_for
from gouache.errors import GouacheError

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "emoji"
KEYS = {"file_name", "text", "label", "tags", "style", "group", "subgroup", "codepoints",
        "base", "split"}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    lines = (FIXTURE / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_metadata_fields_match_files(rows: list[dict]) -> None:
    assert len(rows) == 36
    assert [r["file_name"] for r in rows] == sorted(r["file_name"] for r in rows)
    for r in rows:
        assert set(r) == KEYS
        assert r["style"] in STYLES and r["split"] in {"train", "test"}
        assert r["text"] == r["label"] == r["label"].lower() and r["text"]
        assert r["file_name"] == f"images/{r['style']}/{r['codepoints'].lower()}.png"
        assert normalize_hexcode(r["codepoints"]).startswith(r["base"])
        assert isinstance(r["tags"], list) and r["group"] and r["subgroup"]
        with Image.open(FIXTURE / r["file_name"]) as im:
            assert (im.size, im.mode) == ((64, 64), "RGB")
    pngs = {p.relative_to(FIXTURE).as_posix() for p in FIXTURE.rglob("*.png")}
    assert pngs == {r["file_name"] for r in rows}


def test_known_captions(rows: list[dict]) -> None:
    texts = {r["text"] for r in rows}
    for caption in ("red apple", "watermelon", "banana", "grinning face", "cat face", "rocket",
                    "waving hand: medium skin tone", "red heart", "flag: japan"):
        assert caption in texts
    apple = next(r for r in rows if r["codepoints"] == "1F34E")
    assert (apple["group"], apple["subgroup"]) == ("food-drink", "food-fruit")


def test_test_split_covers_every_style_and_skin_tone(rows: list[dict]) -> None:
    by_base: dict[str, set] = defaultdict(set)
    styles: dict[str, set] = defaultdict(set)
    for r in rows:
        by_base[r["base"]].add(r["split"])
        styles[r["base"]].add(r["style"])
    assert all(len(splits) == 1 for splits in by_base.values())
    assert {b for b, s in by_base.items() if s == {"test"}} == {"1F44B", "1F355"}
    assert all(s == set(STYLES) for s in styles.values())
    assert {r["split"] for r in rows if r["codepoints"] == "1F44B-1F3FD"} == {"test"}


def test_manifest_agrees_with_metadata(rows: list[dict]) -> None:
    manifest = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))
    digest = hashlib.sha256((FIXTURE / "metadata.jsonl").read_bytes()).hexdigest()
    assert manifest["metadata_sha256"] == digest
    assert manifest["packages"] == emoji.PACKAGES
    assert manifest["counts"]["per_split"] == {"train": 30, "test": 6}
    assert manifest["counts"]["per_style"]["google"] == {"train": 15, "test": 3}
    assert manifest["held_out"] == ["1F355", "1F44B"] and manifest["held_out_count"] == 2


def test_licenses_name_every_source() -> None:
    text = (FIXTURE / "LICENSES.md").read_text(encoding="utf-8")
    for needle in ("Apache", "Google", "CC-BY 4.0", "Twitter Inc. and other contributors",
                   "https://creativecommons.org/licenses/by/4.0/", "MIT", "Miles Johnson",
                   *(f"{n}@{v}" for n, v in emoji.PACKAGES.items())):
        assert needle in text
    assert text == emoji.licenses_markdown()


def test_load_labels_matches_skins_and_groups() -> None:
    data = [{"label": "waving hand", "hexcode": "1F44B", "tags": ["hi"], "group": 1,
             "subgroup": 16, "skins": [{"label": "waving hand: dark skin tone",
                                        "hexcode": "1F44B-1F3FF", "group": 1, "subgroup": 16}]},
            {"label": "red heart", "hexcode": "2764-FE0F", "group": 0, "subgroup": 12}]
    groups = {"groups": {"0": "smileys-emotion", "1": "people-body"},
              "subgroups": {"12": "heart", "16": "hand-fingers-open"}}
    labels = load_labels(data, groups)
    dark = labels[normalize_hexcode("1f44b-1f3ff")]
    assert dark.label == "waving hand: dark skin tone" and dark.tags == ("hi",)
    assert (dark.group, dark.subgroup) == ("people-body", "hand-fingers-open")
    heart = labels[normalize_hexcode("2764")]
    assert heart.label == "red heart" and heart.tags == ()
    images = list_images([{"unified": "2764-FE0F", "image": "2764-fe0f.png",
                           "has_img_google": True, "has_img_twitter": False}], "google")
    row = metadata_row(images[0], labels[normalize_hexcode(images[0].codepoints)], "google",
                       "train")
    assert row["file_name"] == "images/google/2764-fe0f.png" and row["base"] == "2764"


def test_list_images_includes_skin_variants_with_their_base() -> None:
    entry = {"unified": "1F44B", "image": "1f44b.png", "has_img_google": True,
             "has_img_twitter": True, "skin_variations": {
                 "1F3FB": {"unified": "1F44B-1F3FB", "image": "1f44b-1f3fb.png",
                           "has_img_google": True, "has_img_twitter": False}}}
    google = list_images([entry], "google")
    assert [i.codepoints for i in google] == ["1F44B", "1F44B-1F3FB"]
    assert {i.base for i in google} == {"1F44B"}
    assert [i.codepoints for i in list_images([entry], "twitter")] == ["1F44B"]


def test_split_is_deterministic_and_about_five_percent() -> None:
    codes = [f"1F{i:03X}-{i * 7 % 4096:04X}" for i in range(2000)]
    first = [split_for(c, 0, 0.05) for c in codes]
    assert first == [split_for(c, 0, 0.05) for c in codes]
    assert 70 <= first.count("test") <= 130
    assert first != [split_for(c, 1, 0.05) for c in codes]
    assert split_for("2764-fe0f", 3) == split_for("2764", 3)
    assert all(split_for(c, 0, 0.0) == "train" for c in codes[:50])


def test_convert_png_composites_on_white_and_is_deterministic() -> None:
    src = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    src.paste((255, 0, 0, 255), (16, 16, 48, 48))
    buf = io.BytesIO()
    src.save(buf, format="PNG")
    out = convert_png(buf.getvalue())
    assert out == convert_png(buf.getvalue())
    with Image.open(io.BytesIO(out)) as im:
        assert im.mode == "RGB" and im.getpixel((0, 0)) == (255, 255, 255)
        assert im.getpixel((32, 32)) == (255, 0, 0) and not im.info.get("icc_profile")
    with Image.open(io.BytesIO(convert_png(buf.getvalue(), size=32))) as small:
        assert small.size == (32, 32)


def test_unknown_style_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(GouacheError, match="google, twitter"):
        build_emoji_dataset(tmp_path, source="png", styles=("apple",), cache_dir=tmp_path, progress=False)
