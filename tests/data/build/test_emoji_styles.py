"""The style table: every style's licence and attribution, and how icons are matched."""
from __future__ import annotations

from gouache.data.build.emoji import licenses_markdown
from gouache.data.build.emoji_names import EmojiNames
from gouache.data.build.emoji_styles import (
    REFERENCE_PACKAGES,
    STYLES,
    match_icons,
    name_index,
)

# Licences under which a trained model may be shared (share-alike ones with the same licence).
SHAREABLE = {"Apache-2.0": False, "MIT": False, "CC-BY-4.0": False, "CC-BY-SA-4.0": True}


def test_licence_table_is_complete() -> None:
    assert len({s.key for s in STYLES}) == len(STYLES) >= 8
    assert len({s.package for s in STYLES}) == len(STYLES)
    for s in STYLES:
        assert s.licence in SHAREABLE, f"{s.key}: licence {s.licence} is not known to allow sharing a model"
        assert s.share_alike == SHAREABLE[s.licence], s.key
        assert s.title and s.version.count(".") == 2
        assert "http" in s.attribution and len(s.attribution) > 40, s.key
        if s.licence.startswith("CC-BY"):
            assert "creativecommons.org" in s.attribution, s.key
    assert set(REFERENCE_PACKAGES) <= {s.package for s in STYLES if not s.by_name}
    assert {s.key for s in STYLES if s.by_name} == {"fluent", "emojione", "fxemoji", "streamline", "noto-blob"}
    assert {p: v for s in STYLES for p, v in [(s.package, s.version)] if p in REFERENCE_PACKAGES} == REFERENCE_PACKAGES


def test_licenses_md_names_every_style_and_flags_share_alike() -> None:
    text = licenses_markdown(STYLES)
    for s in STYLES:
        assert f"{s.package}@{s.version}" in text and s.attribution in text
    assert "emojibase-data@17.0.0" in text and "Miles Johnson" in text
    assert "Share-alike styles in this build: openmoji" in text and "resvg" in text
    plain = licenses_markdown([s for s in STYLES if not s.share_alike])
    assert "Share-alike" not in plain and "openmoji" not in plain


def _names(*items: tuple[str, str, str]) -> dict[str, EmojiNames]:
    return {code: EmojiNames(code, label, name, (), (), "", "", code) for code, label, name in items}


NAMES = _names(("1F30A", "water wave", "water wave"), ("1F44B", "waving hand", "waving hand sign"),
               ("1F535", "blue circle", "large blue circle"), ("1F426", "bird", "bird"),
               ("1F1EF-1F1F5", "flag: japan", "flag: japan"), ("2764", "red heart", "heavy black heart"))


def test_chars_maps_win_and_unknown_codes_are_dropped() -> None:
    style = next(s for s in STYLES if s.key == "noto")
    chars = {"2764-fe0f": "red-heart", "2764": "red-heart-old", "e000": "private-use", "1f426": "bird"}
    assert match_icons(style, {}, chars, {}, NAMES) == {"2764": "red-heart", "1F426": "bird"}


def test_names_match_by_label_unicode_name_compact_and_numbered_forms() -> None:
    index = name_index([{"1f44b": "waving-hand"}], NAMES)
    fx = next(s for s in STYLES if s.key == "fxemoji")
    icons = {"icons": {n: {"body": ""} for n in ("largebluecircle", "wave", "wavinghand", "junk")}}
    assert match_icons(fx, icons, None, index, NAMES) == {"1F535": "largebluecircle", "1F44B": "wavinghand"}
    streamline = next(s for s in STYLES if s.key == "streamline")
    icons = {"icons": {n: {"body": ""} for n in ("bird-2", "bird-1", "water-wave")}}
    assert match_icons(streamline, icons, None, index, NAMES) == {"1F426": "bird-1", "1F30A": "water-wave"}
    one = next(s for s in STYLES if s.key == "emojione")
    icons = {"icons": {"flag-for-japan": {"body": ""}, "heavy-black-heart": {"body": ""}}}
    assert match_icons(one, icons, None, index, NAMES) == {"1F1EF-1F1F5": "flag-for-japan",
                                                           "2764": "heavy-black-heart"}
