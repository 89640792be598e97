"""Build the emoji text-to-image dataset (imagefolder layout) with one call.

Artwork comes from the ``emoji-datasource-google`` (Noto, Apache-2.0) and
``emoji-datasource-twitter`` (Twemoji, CC-BY 4.0) npm packages; captions are the
CLDR labels shipped in ``emojibase-data`` (MIT). Packages are fetched with
``npm pack`` into a cache folder and read straight from their tarballs.

Output layout::

    out/images/<style>/<codepoints>.png   RGB, composited on white
    out/metadata.jsonl                    one caption row per image
    out/LICENSES.md                       attribution for every source
    out/manifest.json                     versions, counts, split, checksum

Regenerate the test fixture with::

    python -m gouache.data.emoji tests/fixtures/emoji --only 1F34E,... --test 1F44B,1F355
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from tqdm import tqdm

from ..images import load_rgb

STYLES = ("google", "twitter")
PACKAGES = {
    "emoji-datasource-google": "16.0.0",
    "emoji-datasource-twitter": "16.0.0",
    "emojibase-data": "17.0.0",
}
STYLE_PACKAGES = {"google": "emoji-datasource-google", "twitter": "emoji-datasource-twitter"}
LABELS_PACKAGE = "emojibase-data"
SOURCE_SIZE = 64
NPM_MISSING = "npm is needed to fetch emoji artwork: apt-get install npm (or install Node.js)"

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


def normalize_hexcode(hexcode: str) -> str:
    """Upper-case a dash-separated hexcode and drop ``FE0F`` variation selectors."""
    parts = [p.strip().upper() for p in hexcode.split("-")]
    return "-".join(p for p in parts if p and p != "FE0F")


# The README's showcase prompts (red apple, watermelon, banana, grinning face, cat face,
# rocket, pizza, sun, red heart, christmas tree, green apple, cat) always train: the
# shipped model is shown painting them, so none of them may be held out.
SHOWCASE = frozenset({"1F34E", "1F349", "1F34C", "1F600", "1F431", "1F680", "1F355", "2600",
                      "2764", "1F384", "1F34F", "1F408"})


def split_for(base: str, seed: int = 0, test_fraction: float = 0.05) -> str:
    """Return "test" or "train" for a base emoji, from a stable hash of (seed, base).

    Showcase emoji (``SHOWCASE``) are always "train".
    """
    if normalize_hexcode(base) in SHOWCASE:
        return "train"
    digest = hashlib.sha256(f"{seed}:{normalize_hexcode(base)}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


# ----------------------------------------------------------------------------- fetching


def fetch_package(name: str, version: str, cache_dir: Path) -> Path:
    """Return the cached tarball of ``name@version``, running ``npm pack`` if it is absent."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{name}-{version}.tgz"
    if target.is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(NPM_MISSING)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        proc = subprocess.run(
            [npm, "pack", f"{name}@{version}"], cwd=tmp, capture_output=True, text=True
        )
        made = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or len(made) != 1:
            raise RuntimeError(f"npm pack {name}@{version} failed:\n{proc.stderr.strip()}")
        os.replace(made[0], target)
    return target


def fetch_all(cache_dir: Path, names: Iterable[str], progress: bool) -> dict[str, Path]:
    """Fetch every named package (at its pinned version) with a progress bar."""
    names = list(names)
    bar = tqdm(names, desc="npm pack", unit="pkg", disable=not progress)
    return {name: fetch_package(name, PACKAGES[name], cache_dir) for name in bar}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ----------------------------------------------------------------------------- reading


def read_tar_members(tarball: Path, wanted: Sequence[str] = (), prefix: str | None = None,
                     progress: bool = False) -> dict[str, bytes]:
    """Read members named in ``wanted`` or starting with ``prefix`` in one streaming pass."""
    wanted_set, found = set(wanted), {}
    with tarfile.open(tarball, "r:gz") as tf, tqdm(
        desc=f"read {tarball.name}", unit="file", disable=not progress
    ) as bar:
        for member in tf:
            name = member.name
            if member.isfile() and (name in wanted_set or (prefix and name.startswith(prefix))):
                found[name] = tf.extractfile(member).read()
                bar.update()
    missing = wanted_set - found.keys()
    if missing:
        raise RuntimeError(f"{tarball.name} lacks {sorted(missing)}")
    return found


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
    """List the pictures a style has, skin-tone variants included, base emoji first."""
    flag = f"has_img_{style}"
    images = []
    for entry in emoji_json:
        base = normalize_hexcode(entry["unified"])
        variants = [entry, *(entry.get("skin_variations") or {}).values()]
        for item in variants:
            if item.get(flag):
                images.append(EmojiImage(item["unified"].upper(), base, item["image"]))
    return images


# ----------------------------------------------------------------------------- writing


def convert_png(data: bytes, size: int = SOURCE_SIZE) -> bytes:
    """Composite an RGBA emoji onto white, resize to ``size`` and encode as a bare PNG."""
    rgb = load_rgb(io.BytesIO(data), size)
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")  # fresh image: no text, time or ICC chunks
    return buf.getvalue()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` unless the file already holds exactly these bytes; True if written."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def remove_stale_images(images_dir: Path, keep: set[Path]) -> int:
    """Delete PNGs under ``images_dir`` that this build did not produce; return how many."""
    stale = [p for p in images_dir.rglob("*.png") if p not in keep] if images_dir.is_dir() else []
    for path in stale:
        path.unlink()
    return len(stale)


def licenses_markdown() -> str:
    """The LICENSES.md text: one section per source package."""
    lines = ["# Licences and attribution", "",
             "This dataset is built from the following npm packages.", ""]
    for name, version in PACKAGES.items():
        title, attribution = LICENSES[name]
        lines += [f"## {name}@{version}", "", f"- {title}", f"- {attribution}", ""]
    lines += [CHANGES_NOTE, ""]
    return "\n".join(lines)


def dumps_line(row: dict[str, Any]) -> str:
    """Canonical one-line JSON (sorted keys, UTF-8 kept)."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


# ----------------------------------------------------------------------------- building


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


def _build(out: Path, *, size: int, styles: Sequence[str], cache_dir: Path | None,
           test_fraction: float, seed: int, limit: int | None, progress: bool,
           only: Sequence[str] | None = None, test_bases: Sequence[str] | None = None) -> dict:
    """Shared build: ``only`` keeps listed code sequences, ``test_bases`` forces the split."""
    unknown = [s for s in styles if s not in STYLES]
    if unknown or not styles:
        raise ValueError(f"styles must be a non-empty subset of {STYLES}, got {list(styles)}")
    out, cache = Path(out), Path(cache_dir or Path.home() / ".cache" / "gouache" / "npm")
    tarballs = fetch_all(cache, [LABELS_PACKAGE, *(STYLE_PACKAGES[s] for s in styles)], progress)
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
            write_if_changed(out / row["file_name"], convert_png(files[prefix + img.image], size))
            rows.append(row)
    if unlabelled:
        print(f"skipped {len(unlabelled)} images with no label or file: {sorted(unlabelled)[:20]}")

    rows.sort(key=lambda r: r["file_name"])
    remove_stale_images(out / "images", {out / r["file_name"] for r in rows})
    metadata = "".join(dumps_line(r) + "\n" for r in rows).encode("utf-8")
    write_if_changed(out / "metadata.jsonl", metadata)
    write_if_changed(out / "LICENSES.md", licenses_markdown().encode("utf-8"))
    subset = None if keep is None and forced is None else {
        "only": sorted(keep or []), "test": sorted(forced or [])}
    manifest = make_manifest(rows, tarballs, size=size, seed=seed, test_fraction=test_fraction,
                             styles=styles, skipped=sorted(unlabelled), subset=subset,
                             metadata_sha256=hashlib.sha256(metadata).hexdigest())
    text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    write_if_changed(out / "manifest.json", text.encode("utf-8"))
    return manifest


def make_manifest(rows: list[dict[str, Any]], tarballs: dict[str, Path], *, size: int, seed: int,
                  test_fraction: float, styles: Sequence[str], skipped: list[str],
                  subset: dict[str, list[str]] | None, metadata_sha256: str) -> dict[str, Any]:
    """Summarise a build: versions, settings, counts, held-out emoji, metadata checksum."""
    per_style = {s: dict(Counter(r["split"] for r in rows if r["style"] == s)) for s in styles}
    held_out = sorted({r["base"] for r in rows if r["split"] == "test"})
    return {
        "packages": {name: PACKAGES[name] for name in tarballs},
        "tarball_sha256": {name: file_sha256(path) for name, path in tarballs.items()},
        "size": size,
        "seed": seed,
        "test_fraction": test_fraction,
        "styles": list(styles),
        "images": len(rows),
        "counts": {"per_style": per_style, "per_split": dict(Counter(r["split"] for r in rows))},
        "emoji": len({r["base"] for r in rows}),
        "held_out_count": len(held_out),
        "held_out": held_out,
        "skipped": skipped,
        "subset": subset,
        "metadata_sha256": metadata_sha256,
    }


def build_emoji_dataset(out: Path, *, size: int = 64, styles: Sequence[str] = STYLES,
                        cache_dir: Path | None = None, test_fraction: float = 0.05, seed: int = 0,
                        limit: int | None = None, progress: bool = True) -> dict:
    """Build the folder; return the manifest dict (also written as out/manifest.json).

    ``limit`` keeps only the first N pictures of each style (for quick trials).
    """
    return _build(out, size=size, styles=styles, cache_dir=cache_dir,
                  test_fraction=test_fraction, seed=seed, limit=limit, progress=progress)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m gouache.data.emoji OUT [--only HEX,..] [--test HEX,..]``."""
    p = argparse.ArgumentParser(description="Build the emoji imagefolder dataset.")
    p.add_argument("out", type=Path)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--styles", default=",".join(STYLES))
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--test-fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--only", default=None, help="comma-separated code sequences to keep")
    p.add_argument("--test", default=None, help="comma-separated base emoji forced to test")
    a = p.parse_args(argv)
    manifest = _build(a.out, size=a.size, styles=a.styles.split(","), cache_dir=a.cache_dir,
                      test_fraction=a.test_fraction, seed=a.seed, limit=a.limit, progress=True,
                      only=a.only.split(",") if a.only else None,
                      test_bases=a.test.split(",") if a.test is not None else None)
    print(json.dumps(manifest["counts"], sort_keys=True))


if __name__ == "__main__":
    main()
