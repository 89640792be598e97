"""Emoji names from emojibase: normal forms, concept keys, slugs, loading."""
from __future__ import annotations

import json

from gouache.data.build.emoji_names import (
    NAMES_FILES,
    concept_of,
    load_names,
    normalize_hexcode,
    slug,
)


def test_normalize_hexcode() -> None:
    assert normalize_hexcode("1f441-fe0f-200d-1f5e8-FE0F") == "1F441-200D-1F5E8"
    assert normalize_hexcode("2764-FE0F") == normalize_hexcode("2764") == "2764"
    assert normalize_hexcode("1f44b-1f3fd") == "1F44B-1F3FD"


def test_concept_folds_skin_tones_and_gender_forms() -> None:
    assert concept_of("1F44B-1F3FD") == concept_of("1F44B") == "1F44B"
    technologist = "1F9D1-200D-1F4BB"
    for form in ("1F468-200D-1F4BB", "1F469-1F3FD-200D-1F4BB", technologist):
        assert concept_of(form) == technologist
    assert concept_of("1F3C3-200D-2640-FE0F") == concept_of("1F3C3-1F3FF-200D-2642") == "1F3C3"
    family = "1F468-200D-1F469-200D-1F467"  # a family is not a form of one person
    assert concept_of(family) == family
    assert concept_of("1F1EF-1F1F5") == "1F1EF-1F1F5"


def test_slug_matches_iconify_names() -> None:
    assert slug("flag: Japan") == "flag-japan"
    assert slug("man’s shoe") == "mans-shoe"
    assert slug("A button (blood type)") == "a-button-blood-type"


def test_load_names_gives_every_name() -> None:
    data = [{"label": "Pizza", "hexcode": "1F355", "tags": ["cheese", "slice"], "group": 4, "subgroup": 44},
            {"label": "waving hand", "hexcode": "1F44B", "tags": ["hi"], "group": 1, "subgroup": 16,
             "skins": [{"label": "waving hand: dark skin tone", "hexcode": "1F44B-1F3FF"}]}]
    files = {
        NAMES_FILES[0]: json.dumps(data).encode(),
        NAMES_FILES[1]: json.dumps({"groups": {"1": "people-body", "4": "food-drink"},
                                    "subgroups": {"16": "hand-fingers-open", "44": "food-prepared"}}).encode(),
        NAMES_FILES[2]: json.dumps({"1F355": "SLICE OF PIZZA", "1F44B": "WAVING HAND SIGN",
                                    "1F44B-1F3FF": "WAVING HAND SIGN, EMOJI MODIFIER FITZPATRICK TYPE-6"}).encode(),
        NAMES_FILES[3]: json.dumps({"1F355": "pizza", "1F44B": ["wave", "waving_hand"],
                                    "1F44B-1F3FF": "wave_tone5"}).encode(),
        NAMES_FILES[4]: json.dumps({"1F355": "pizza", "1F44B": "wave"}).encode(),
    }
    names = load_names(files)
    pizza = names["1F355"]
    assert (pizza.label, pizza.name, pizza.tags) == ("pizza", "slice of pizza", ("cheese", "slice"))
    assert (pizza.group, pizza.subgroup, pizza.shortcodes) == ("food-drink", "food-prepared", ("pizza",))
    dark = names["1F44B-1F3FF"]
    assert dark.name == "waving hand sign" and dark.tags == ("hi",) and dark.base == "1F44B"
    assert dark.group == "people-body" and dark.shortcodes == ("wave_tone5",)
    assert names["1F44B"].shortcodes == ("wave", "waving_hand")
