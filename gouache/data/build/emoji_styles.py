"""The art styles of the emoji dataset: one Iconify JSON npm package each, its licence,
and how its icons are matched to emoji code sequences.

A set that ships ``chars.json`` is matched by it (code points -> icon name). A
set without one is matched by icon name, against a fixed index: the names that
the reference sets (``REFERENCE_PACKAGES``) give each code sequence in their
``chars.json``, then the slugs of the emojibase labels and Unicode names (not
shortcodes, which collide: GitHub's "wave" is a hand); ``compact`` sets
(Firefox OS: "largebluecircle") compare names without dashes, ``numbered`` sets (Streamline: "bird-1", "bird-2") drop the
drawing number and keep the first drawing. The index never depends on which
styles a build selects, so adding a style changes no other style's pictures.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gouache.data.build.emoji_names import EmojiNames, normalize_hexcode, slug
from gouache.data.build.iconify import icon_names

__all__ = ["Style", "STYLES", "STYLE_NAMES", "REFERENCE_PACKAGES", "ICON_FILES", "name_index",
           "match_icons"]

ICON_FILES = ("package/icons.json", "package/chars.json", "package/package.json")


@dataclass(frozen=True)
class Style:
    """One art style: where its artwork comes from and under which licence."""

    key: str  # folder and ``style`` column: images/<key>/<codes>.png
    title: str  # how captions name it: "an apple in {title} style"
    package: str  # npm package with the Iconify JSON set
    version: str
    licence: str  # SPDX id; the build refuses a package whose package.json says otherwise
    attribution: str  # the notice LICENSES.md carries for it
    share_alike: bool = False  # a model trained on it is arguably an adaptation: same licence
    by_name: bool = False  # no chars.json: icons matched by name (needs REFERENCE_PACKAGES)
    compact: bool = False  # icon names without dashes ("largebluecircle")
    numbered: bool = False  # several numbered drawings per emoji ("bird-1"): keep the first


CC_BY = "https://creativecommons.org/licenses/by/4.0/"
STYLES: tuple[Style, ...] = (
    Style("noto", "noto", "@iconify-json/noto", "1.2.9", "Apache-2.0",
          "Noto Emoji, Copyright Google Inc., Apache License 2.0 "
          "(https://github.com/googlefonts/noto-emoji)."),
    Style("twemoji", "twemoji", "@iconify-json/twemoji", "1.2.5", "CC-BY-4.0",
          f"Twemoji, Copyright Twitter Inc. and other contributors, CC BY 4.0 ({CC_BY}) "
          "(https://github.com/jdecked/twemoji)."),
    Style("openmoji", "openmoji", "@iconify-json/openmoji", "1.2.29", "CC-BY-SA-4.0",
          "OpenMoji, the open-source emoji and icon project, HfG Schwaebisch Gmuend, CC BY-SA 4.0 "
          "(https://creativecommons.org/licenses/by-sa/4.0/) (https://openmoji.org). SHARE-ALIKE: "
          "adaptations must carry the same licence; leave it out with --styles if that does not suit.",
          share_alike=True),
    Style("fluent-flat", "fluent flat", "@iconify-json/fluent-emoji-flat", "1.2.6", "MIT",
          "Fluent Emoji (flat), Copyright Microsoft Corporation, MIT License "
          "(https://github.com/microsoft/fluentui-emoji)."),
    Style("fluent", "fluent 3d", "@iconify-json/fluent-emoji", "1.2.7", "MIT",
          "Fluent Emoji (colour), Copyright Microsoft Corporation, MIT License "
          "(https://github.com/microsoft/fluentui-emoji).", by_name=True),
    Style("emojione", "emojione", "@iconify-json/emojione", "1.2.3", "CC-BY-4.0",
          f"EmojiOne 2 artwork by Ranks.com / JoyPixels, as kept by the EmojiTwo project, CC BY 4.0 "
          f"({CC_BY}) (https://github.com/EmojiTwo/emojitwo).", by_name=True),
    Style("fxemoji", "firefox os", "@iconify-json/fxemoji", "1.2.2", "Apache-2.0",
          "Firefox OS Emoji, Copyright Mozilla, Apache License 2.0 (https://github.com/mozilla/fxemoji).",
          compact=True, by_name=True),
    Style("streamline", "streamline", "@iconify-json/streamline-emojis", "1.2.4", "CC-BY-4.0",
          f"Streamline Emojis by Webalys (streamlinehq.com), CC BY 4.0 ({CC_BY}) "
          "(https://github.com/webalys-hq/streamline-vectors).", numbered=True, by_name=True),
    Style("noto-blob", "noto blob", "@iconify-json/noto-v1", "1.2.5", "Apache-2.0",
          "Noto Emoji version 1 (the 'blob' designs), Copyright Google Inc., Apache License 2.0 "
          "(https://github.com/googlefonts/noto-emoji).", by_name=True),
)
STYLE_NAMES = tuple(s.key for s in STYLES)
# Sets whose chars.json names the icons of the sets without one (same naming scheme).
REFERENCE_PACKAGES = {"@iconify-json/noto": "1.2.9", "@iconify-json/fluent-emoji-flat": "1.2.6"}


def name_index(reference_chars: list[dict[str, str]], names: dict[str, EmojiNames]) -> dict[str, str]:
    """Icon name -> normalised code sequence; the first source to claim a name keeps it."""
    index: dict[str, str] = {}

    def add(key: str, code: str) -> None:
        if key and key not in index:
            index[key] = code

    for chars in reference_chars:
        for code, name in sorted(chars.items()):
            add(name, normalize_hexcode(code))
    for code, n in sorted(names.items()):
        for text in (n.label, n.name):  # not shortcodes: "wave" is a hand there, water elsewhere
            add(slug(text), code)
    return index


def _lookup(style: Style, name: str, index: dict[str, str], compact: dict[str, str]) -> str | None:
    if style.numbered:
        name = re.sub(r"-\d+$", "", name)
    if name.startswith("flag-for-"):  # EmojiOne: "flag-for-japan"
        name = "flag-" + name[len("flag-for-"):]
    code = index.get(name)
    if code is None and style.compact:
        code = compact.get(name.replace("-", ""))
    return code


def match_icons(style: Style, icon_set: dict[str, Any], chars: dict[str, str] | None,
                index: dict[str, str], names: dict[str, EmojiNames]) -> dict[str, str]:
    """Normalised code sequence -> icon name, for every icon of the set that names an
    emoji emojibase knows; one icon per code sequence (the first by name)."""
    found: dict[str, str] = {}
    if chars:
        for code, name in sorted(chars.items(), key=lambda kv: (kv[1], kv[0])):
            code = normalize_hexcode(code)
            if code in names:
                found.setdefault(code, name)
        return found
    compact: dict[str, str] = {}
    for key, code in sorted(index.items()):
        compact.setdefault(key.replace("-", ""), code)
    for name in icon_names(icon_set):
        code = _lookup(style, name, index, compact)
        if code is not None and code in names:
            found.setdefault(code, name)
    return found


def read_set(files: dict[str, bytes]) -> tuple[dict[str, Any], dict[str, str] | None]:
    """The icon set and its chars map (None when the package has none) from tarball members."""
    icons = json.loads(files["package/icons.json"])
    chars = json.loads(files["package/chars.json"]) if "package/chars.json" in files else None
    return icons, chars or None
