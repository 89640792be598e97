"""The names of every emoji, from ``emojibase-data`` (MIT): what each code sequence is called.

For each code sequence (skin-tone variants included): the CLDR label ("waving
hand: medium skin tone"), the Unicode character name ("slice of pizza" for the
label "pizza"), the CLDR keywords as emojibase tags, the shortcodes (emojibase
and GitHub sets), the group and subgroup, and the emoji it belongs to.

Code sequences are compared in one normal form (``normalize_hexcode``): upper
case, ``FE0F`` variation selectors dropped, so ``2764-fe0f`` and ``2764`` are the
same red heart in every artwork set; a package's code sequence that is not hex code
points joined by dashes is refused (``check_hexcode``), since it names files. ``concept_of`` folds the variants of one
emoji (skin tones, and the man/woman/person forms of a role) into one key: the
held-out split is drawn over those keys, so no variant of a held-out emoji is
trained on.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gouache.errors import GouacheError

__all__ = ["EmojiNames", "normalize_hexcode", "check_hexcode", "concept_of", "load_names", "slug",
           "NAMES_FILES"]

DATA, GROUPS, UNICODE = "package/en/data.json", "package/meta/groups.json", "package/meta/unicode-names.json"
SHORTCODES = ("package/en/shortcodes/emojibase.json", "package/en/shortcodes/github.json")
NAMES_FILES = (DATA, GROUPS, UNICODE, *SHORTCODES)  # what ``load_names`` reads from the tarball

SKIN_TONES = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}
GENDER_SIGNS = {"2640", "2642"}  # female and male sign, after a ZWJ: "woman running"
ADULTS = {"1F468", "1F469"}  # man, woman: "man technologist" is a form of 1F9D1 "technologist"
PERSON = "1F9D1"
ZWJ = "200D"
HEXCODE = re.compile(r"[0-9A-F]{1,6}(-[0-9A-F]{1,6}){0,15}")  # code points in hex: "1F44B-1F3FD"


@dataclass(frozen=True)
class EmojiNames:
    """Everything that names one code sequence."""

    hexcode: str  # normalised code sequence
    label: str  # CLDR label, lower case: "waving hand: medium skin tone"
    name: str  # Unicode character name, lower case ("" for sequences without one)
    tags: tuple[str, ...]  # CLDR keywords (emojibase tags), of the emoji's base form
    shortcodes: tuple[str, ...]  # emojibase and GitHub shortcodes, no colons
    group: str
    subgroup: str
    base: str  # normalised code sequence of the base form (skin tones folded)


def normalize_hexcode(hexcode: str) -> str:
    """Upper-case a dash-separated hexcode and drop ``FE0F`` variation selectors."""
    parts = [p.strip().upper() for p in hexcode.replace("_", "-").split("-")]
    return "-".join(p for p in parts if p and p != "FE0F")


def check_hexcode(value: Any, *, source: str) -> str:
    """``value`` upper-cased when it is a code sequence in hex ("1f44b-1f3fd"), else a
    GouacheError naming ``source``: the builders make file names of it."""
    if not isinstance(value, str) or not HEXCODE.fullmatch(value.upper()):
        raise GouacheError(f"{source}: {str(value)[:60]!r} is not a code sequence in hex (like 1F44B-1F3FD)")
    return value.upper()


def concept_of(hexcode: str) -> str:
    """The one key of every variant of an emoji: skin tones dropped, a role's man and woman
    forms mapped to its person form ("1F469-1F3FD-200D-1F4BB" -> "1F9D1-200D-1F4BB"),
    "woman running" and "man running" to "person running" ("1F3C3")."""
    parts = [p for p in normalize_hexcode(hexcode).split("-") if p not in SKIN_TONES]
    if len(parts) >= 3 and parts[-2] == ZWJ and parts[-1] in GENDER_SIGNS:
        parts = parts[:-2]
    if len(parts) == 3 and parts[0] in ADULTS and parts[1] == ZWJ:
        parts[0] = PERSON
    return "-".join(parts)


def slug(text: str) -> str:
    """Lower-case words joined by dashes, as Iconify names icons: "flag: Japan" -> "flag-japan"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("’", "").replace("'", "")).strip("-")


def _unicode_name(names: dict[str, str], hexcode: str) -> str:
    """The character name of a sequence, without the skin-tone modifier's words."""
    name = names.get(hexcode, "")
    return name.split(", EMOJI MODIFIER")[0].lower()


def _shortcodes(tables: list[dict[str, Any]], raw_hexcode: str) -> tuple[str, ...]:
    found: list[str] = []
    for table in tables:
        value = table.get(raw_hexcode, ())
        for code in [value] if isinstance(value, str) else value:
            if code not in found:
                found.append(code)
    return tuple(found)


def load_names(files: dict[str, bytes]) -> dict[str, EmojiNames]:
    """Map normalised hexcode -> names, for every emojibase emoji and skin-tone variant.

    ``files`` holds the members ``NAMES_FILES`` of the emojibase-data tarball.
    """
    data = json.loads(files[DATA])
    groups = json.loads(files[GROUPS])
    unicode_names = {normalize_hexcode(k): v for k, v in json.loads(files[UNICODE]).items()}
    shortcodes = [json.loads(files[f]) for f in SHORTCODES if f in files]
    group_names, subgroup_names = groups.get("groups", {}), groups.get("subgroups", {})

    def name_of(table: dict[str, str], value: Any) -> str:
        return "" if value is None else str(table.get(str(value), value))

    out: dict[str, EmojiNames] = {}
    for entry in data:
        tags = tuple(entry.get("tags", ()))
        base = normalize_hexcode(check_hexcode(entry["hexcode"], source=DATA))
        for item in [entry, *entry.get("skins", ())]:
            code = normalize_hexcode(check_hexcode(item["hexcode"], source=DATA))
            out[code] = EmojiNames(
                hexcode=code,
                label=item["label"].lower(),
                name=_unicode_name(unicode_names, code),
                tags=tags,
                shortcodes=_shortcodes(shortcodes, item["hexcode"]),
                group=name_of(group_names, item.get("group", entry.get("group"))),
                subgroup=name_of(subgroup_names, item.get("subgroup", entry.get("subgroup"))),
                base=base,
            )
    return out
