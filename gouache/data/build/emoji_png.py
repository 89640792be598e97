"""The 64 px emoji set of version 6, from pre-rendered PNGs (``gouache data emoji --source png``).

Artwork comes from the ``emoji-datasource-google`` (Noto, Apache-2.0) and
``emoji-datasource-twitter`` (Twemoji, CC-BY 4.0) npm packages; captions are the
CLDR labels shipped in ``emojibase-data`` (MIT). The shipped model was trained on
this build, and it stays byte-identical so that the model can be reproduced.
``tests/fixtures/emoji`` was made with it::

    gouache data emoji --source png --out tests/fixtures/emoji --test 1F44B,1F355 \\
        --only 1F34E,1F349,1F34C,1F600,1F431,1F680,1F44B,1F44B-1F3FD,1F355,2764-FE0F,\\
1F1EF-1F1F5,1F436,1F333,2600-FE0F,1F697,1F3B8,1F4DA,1F525
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm import tqdm

from gouache.data.build.emoji_names import check_hexcode, normalize_hexcode
from gouache.data.build.emoji_split import split_for
from gouache.data.build.npm import fetch_all, read_tar_members
from gouache.data.build.writing import finish_build, inside_out, write_if_changed
from gouache.errors import GouacheError
from gouache.images import load_rgb

__all__ = ["PNG_STYLES", "PACKAGES", "LICENSES", "EmojiLabel", "EmojiImage", "load_labels",
           "list_images", "convert_png", "metadata_row", "licenses_markdown", "build_png_dataset"]

PNG_STYLES = ("google", "twitter")
PACKAGES = {
    "emoji-datasource-google": "16.0.0",
    "emoji-datasource-twitter": "16.0.0",
    "emojibase-data": "17.0.0",
}
STYLE_PACKAGES = {"google": "emoji-datasource-google", "twitter": "emoji-datasource-twitter"}
LABELS_PACKAGE = "emojibase-data"
SOURCE_SIZE = 64

LICENSES = {
    "emoji-datasource-google": (
        "Noto Emoji artwork, Apache License 2.0",
        "Emoji images from Noto Emoji, Copyright Google Inc., licensed under the Apache License, "
        "Version 2.0 (https://www.apache.org/licenses/LICENSE-2.0). Packaged by emoji-datasource "
        "(MIT, Copyright Cal Henderson).",
    ),
    "emoji-datasource-twitter": (
        "Twemoji artwork, CC-BY 4.0",
        "Emoji images from Twemoji, Copyright Twitter Inc. and other contributors, licensed under "
        "CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/). Packaged by emoji-datasource "
        "(MIT, Copyright Cal Henderson).",
    ),
    "emojibase-data": (
        "Emojibase data, MIT",
        "Captions, tags and groups from emojibase-data, Copyright Miles Johnson, MIT License; "
        "the labels are the English Unicode CLDR emoji annotations.",
    ),
}
CHANGES_NOTE = (
    "Changes made: images were alpha-composited onto a white background, converted to RGB "
    "and, where the requested size differs from 64 px, resized with Lanczos filtering."
)


@dataclass(frozen=True)
class EmojiLabel:
    """Caption data for one emoji code sequence, from emojibase."""

    label: str
    tags: tuple[str, ...]
    group: str
    subgroup: str


@dataclass(frozen=True)
class EmojiImage:
    """One picture in an artwork package: its code sequence, base emoji and file name."""

    codepoints: str
    base: str
    image: str


def load_labels(data: list[dict[str, Any]], groups: dict[str, Any]) -> dict[str, EmojiLabel]:
    """Map normalised hexcode -> label, for every emojibase emoji and skin-tone variant."""
    group_names = groups.get("groups", {})
    subgroup_names = groups.get("subgroups", {})

    def name_of(table: dict[str, str], value: Any) -> str:
        return "" if value is None else str(table.get(str(value), value))

    labels: dict[str, EmojiLabel] = {}
    for entry in data:
        tags = tuple(entry.get("tags", ()))
        for item in [entry, *entry.get("skins", ())]:
            labels[normalize_hexcode(item["hexcode"])] = EmojiLabel(
                label=item["label"],
                tags=tags,
                group=name_of(group_names, item.get("group", entry.get("group"))),
                subgroup=name_of(subgroup_names, item.get("subgroup", entry.get("subgroup"))),
            )
    return labels


def list_images(emoji_json: list[dict[str, Any]], style: str) -> list[EmojiImage]:
    """List the pictures a style has, skin-tone variants included, base emoji first; a code
    sequence that is not hex code points is refused (it names a file)."""
    flag = f"has_img_{style}"
    images = []
    for entry in emoji_json:
        base = normalize_hexcode(check_hexcode(entry["unified"], source="package/emoji.json"))
        variants = [entry, *(entry.get("skin_variations") or {}).values()]
        for item in variants:
            if item.get(flag):
                code = check_hexcode(item["unified"], source="package/emoji.json")
                images.append(EmojiImage(code, base, item["image"]))
    return images


def convert_png(data: bytes, size: int = SOURCE_SIZE) -> bytes:
    """Composite an RGBA emoji onto white, resize to ``size`` and encode as a bare PNG."""
    rgb = load_rgb(io.BytesIO(data), size)
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")  # fresh image: no text, time or ICC chunks
    return buf.getvalue()


def licenses_markdown() -> str:
    """The LICENSES.md text: one section per source package."""
    lines = ["# Licences and attribution", "",
             "This dataset is built from the following npm packages.", ""]
    for name, version in PACKAGES.items():
        title, attribution = LICENSES[name]
        lines += [f"## {name}@{version}", "", f"- {title}", f"- {attribution}", ""]
    lines += [CHANGES_NOTE, ""]
    return "\n".join(lines)


def metadata_row(img: EmojiImage, label: EmojiLabel, style: str, split: str) -> dict[str, Any]:
    """The metadata.jsonl row for one (emoji, style) picture."""
    text = label.label.lower()
    return {
        "file_name": f"images/{style}/{img.codepoints.lower()}.png",
        "text": text,
        "label": text,
        "tags": list(label.tags),
        "style": style,
        "group": label.group,
        "subgroup": label.subgroup,
        "codepoints": img.codepoints,
        "base": img.base,
        "split": split,
    }


def build_png_dataset(out: Path, *, size: int = SOURCE_SIZE, styles: Sequence[str] = PNG_STYLES,
                      cache_dir: Path, test_fraction: float = 0.05, seed: int = 0,
                      limit: int | None = None, progress: bool = True,
                      only: Sequence[str] | None = None,
                      test_bases: Sequence[str] | None = None, pins: Mapping[str, str] | None = None) -> dict:
    """Build the version-6 folder; ``only`` keeps listed code sequences, ``test_bases`` forces
    the split, ``limit`` keeps the first N pictures of each style. Returns the manifest."""
    unknown = [s for s in styles if s not in PNG_STYLES]
    if unknown or not styles:
        raise GouacheError(f"--source png has the styles {', '.join(PNG_STYLES)}; got {list(styles)}")
    out = Path(out)
    wanted = [LABELS_PACKAGE, *(STYLE_PACKAGES[s] for s in styles)]
    tarballs = fetch_all({n: PACKAGES[n] for n in wanted}, cache_dir, progress=progress, pins=pins)
    base_json = read_tar_members(tarballs[LABELS_PACKAGE],
                                 ["package/en/data.json", "package/meta/groups.json"])
    labels = load_labels(json.loads(base_json["package/en/data.json"]),
                         json.loads(base_json["package/meta/groups.json"]))
    keep = {normalize_hexcode(h) for h in only} if only else None
    forced = {normalize_hexcode(h) for h in test_bases} if test_bases is not None else None

    rows: list[dict[str, Any]] = []
    unlabelled: set[str] = set()
    for style in styles:
        prefix = f"package/img/{style}/{SOURCE_SIZE}/"
        files = read_tar_members(tarballs[STYLE_PACKAGES[style]], ["package/emoji.json"],
                                 prefix=prefix, progress=progress)
        images = list_images(json.loads(files["package/emoji.json"]), style)
        if keep is not None:
            images = [i for i in images if normalize_hexcode(i.codepoints) in keep]
        images = images[:limit] if limit is not None else images
        for img in tqdm(images, desc=f"convert {style}", unit="img", disable=not progress):
            label = labels.get(normalize_hexcode(img.codepoints))
            if label is None or prefix + img.image not in files:
                unlabelled.add(img.codepoints)
                continue
            split = (("test" if img.base in forced else "train") if forced is not None
                     else split_for(img.base, seed, test_fraction))
            row = metadata_row(img, label, style, split)
            write_if_changed(inside_out(out, row["file_name"]), convert_png(files[prefix + img.image], size))
            rows.append(row)
    if not rows:
        raise GouacheError("no pictures to build: the styles have none of the emoji asked for (--only)")
    if unlabelled:
        print(f"skipped {len(unlabelled)} images with no label or file: {sorted(unlabelled)[:20]}")
    subset = None if keep is None and forced is None else {
        "only": sorted(keep or []), "test": sorted(forced or [])}
    settings = {"size": size, "seed": seed, "test_fraction": test_fraction, "styles": list(styles),
                "skipped": sorted(unlabelled), "subset": subset}
    return finish_build(out, rows, tarballs, packages=PACKAGES, settings=settings,
                        licenses=licenses_markdown())
