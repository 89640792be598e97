"""Build the emoji text-to-image dataset (imagefolder layout) with one call: ``gouache data emoji``.

Version 2 (``source="svg"``, the default) renders the vector artwork of nine
art styles (``emoji_styles.STYLES``: Iconify JSON sets on npm) at 64, 128 or
256 px, and names every picture many ways (``emoji_names``): the CLDR label,
the Unicode name, CLDR keywords, shortcodes, the style's own name for the icon,
the style. Training turns those into captions through ``captions.py``.
``source="png"`` builds version 1 of the set, the 64 px PNGs the shipped model
was trained on (``emoji_png``).

Output layout::

    out/images/<style>/<codepoints>.png   RGB, composited on white
    out/metadata.jsonl                    one row per image (names, style, split)
    out/LICENSES.md                       attribution for every source
    out/manifest.json                     versions, counts, split, caption statistics, checksum

Rendered pictures are cached by the sha256 of (renderer, size, SVG markup) in
``~/.cache/gouache/render``, so a second build only copies them.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm import tqdm

from gouache.data.build.emoji_names import (
    NAMES_FILES,
    EmojiNames,
    check_hexcode,
    concept_of,
    load_names,
    normalize_hexcode,
)
from gouache.data.build.emoji_split import split_for
from gouache.data.build.emoji_styles import (
    ICON_FILES,
    REFERENCE_PACKAGES,
    STYLE_NAMES,
    STYLES,
    Style,
    match_icons,
    name_index,
    read_set,
)
from gouache.data.build.iconify import icon_svg, resolve
from gouache.data.build.npm import (
    default_cache,
    fetch_all,
    package_licence,
    read_tar_members,
)
from gouache.data.build.render import RENDERER, render_svg
from gouache.data.build.writing import finish_build, inside_out, is_build, write_if_changed
from gouache.data.captions import caption_variants
from gouache.errors import GouacheError
from gouache.store.files import check_output_folder, replacing

__all__ = ["build_emoji_dataset", "SIZES", "NAMES_PACKAGE", "licenses_markdown", "caption_summary",
           "DEFAULT_STYLES"]

SIZES = (64, 128, 256)
MAX_JOBS = 64  # rendering processes
NAMES_PACKAGE = ("emojibase-data", "17.0.0")
DEFAULT_STYLES = STYLE_NAMES  # every style's licence allows sharing a model trained on it
NAMES_ATTRIBUTION = ("Names, keywords, groups and shortcodes from emojibase-data, Copyright Miles "
                     "Johnson, MIT License; the labels and keywords are the English Unicode CLDR "
                     "emoji annotations, the names the Unicode character names.")
CHANGES_NOTE = ("Changes made: the SVG artwork was rendered with {renderer} into a square of the "
                "requested size (a box that is not square is padded on its short side), composited "
                "onto white and stored as RGB PNG.")


@dataclass(frozen=True)
class Picture:
    """One (emoji, style) picture to make."""

    style: Style
    code: str  # normalised code sequence
    icon: str  # the icon's name in its set
    svg: str


def licenses_markdown(styles: Sequence[Style]) -> str:
    """The LICENSES.md text: the names' source, then one section per style."""
    lines = ["# Licences and attribution", "", "This dataset is built from the following npm "
             "packages.", "", f"## {NAMES_PACKAGE[0]}@{NAMES_PACKAGE[1]}", "",
             "- MIT", f"- {NAMES_ATTRIBUTION}", ""]
    for s in styles:
        flag = " (share-alike)" if s.share_alike else ""
        lines += [f"## {s.key}: {s.package}@{s.version}", "", f"- {s.licence}{flag}",
                  f"- {s.attribution}", ""]
    shared = [s.key for s in styles if s.share_alike]
    if shared:
        lines += [f"Share-alike styles in this build: {', '.join(shared)}. A model trained on them "
                  "is arguably an adaptation of their artwork: share it under the same licence, or "
                  "build without them (--styles).", ""]
    lines += [CHANGES_NOTE.format(renderer=RENDERER), ""]
    return "\n".join(lines)


def _styles(keys: Sequence[str] | None) -> list[Style]:
    keys = list(DEFAULT_STYLES if keys is None else keys)
    unknown = [k for k in keys if k not in STYLE_NAMES]
    if unknown or not keys:
        raise GouacheError(f"unknown style(s) {', '.join(unknown) or '(none given)'}; "
                           f"choose from {', '.join(STYLE_NAMES)}")
    return [s for s in STYLES if s.key in keys]  # table order, whatever order was asked


def _default_styles(keys: Sequence[str] | None, chosen: Sequence[Style]) -> set[str]:
    """The default styles asked for, each one of the build's styles (none: every style is default)."""
    if not keys:
        return set()
    built = {s.key for s in chosen}
    unknown = [k for k in keys if k not in built]
    if unknown:
        raise GouacheError(f"default style(s) {', '.join(unknown)} not among the styles built "
                           f"({', '.join(sorted(built))})")
    return set(keys)


def _pictures(styles: list[Style], tarballs: dict[str, Path], names: dict[str, EmojiNames],
              keep: set[str] | None) -> list[Picture]:
    """Every picture the styles have of an emoji emojibase names, licences checked."""
    index: dict[str, str] | None = None
    pictures = []
    for style in styles:
        files = read_tar_members(tarballs[style.package], ICON_FILES)
        declared = package_licence(files["package/package.json"])
        if declared != style.licence:
            raise GouacheError(f"{style.package}@{style.version} declares licence {declared!r}, "
                               f"not {style.licence!r}: check it before building with it")
        icon_set, chars = read_set(files)
        if chars is None and index is None:
            refs = [read_set(read_tar_members(tarballs[p], ICON_FILES))[1] or {}
                    for p in REFERENCE_PACKAGES]
            index = name_index(refs, names)
        for code, icon in sorted(match_icons(style, icon_set, chars, index or {}, names).items()):
            if keep is not None and code not in keep:
                continue
            box = resolve(icon_set, icon)
            if box is not None:
                pictures.append(Picture(style, code, icon, icon_svg(box)))
    return pictures


def _render_key(svg: str, size: int) -> str:
    return hashlib.sha256(f"{RENDERER}\n{size}\n{svg}".encode()).hexdigest()


def _render(job: tuple[str, int]) -> bytes:
    return render_svg(*job)


def render_all(pictures: list[Picture], size: int, cache: Path, *, jobs: int,
               progress: bool) -> list[bytes]:
    """The PNG of every picture: from the render cache, else rendered (in ``jobs`` processes)
    and cached."""
    paths = [cache / str(size) / key[:2] / f"{key}.png"
             for key in (_render_key(p.svg, size) for p in pictures)]
    todo = [k for k, path in enumerate(paths) if not path.is_file()]
    work = [(pictures[k].svg, size) for k in todo]
    bar = tqdm(total=len(todo), desc=f"render {size}px", unit="img", disable=not progress)
    if todo:
        with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
            for k, png in zip(todo, pool.map(_render, work, chunksize=16)):
                paths[k].parent.mkdir(parents=True, exist_ok=True)
                with replacing(paths[k], shared=True) as tmp:  # parallel builds share the cache
                    tmp.write_bytes(png)
                bar.update()
    bar.close()
    return [path.read_bytes() for path in paths]


def metadata_row(pic: Picture, n: EmojiNames, split: str) -> dict[str, Any]:
    """The metadata.jsonl row of one picture: every name it has."""
    annotation = pic.icon.replace("-", " ")
    return {
        "file_name": f"images/{pic.style.key}/{pic.code.lower()}.png",
        "text": n.label,
        "label": n.label,
        "name": n.name,
        "keywords": list(n.tags),
        "shortcodes": list(n.shortcodes),
        "annotation": annotation,
        "style": pic.style.key,
        "style_title": pic.style.title,
        "group": n.group,
        "subgroup": n.subgroup,
        "codepoints": pic.code,
        "base": concept_of(pic.code),
        "split": split,
    }


def caption_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Distinct captions per emoji (code sequence, all styles) and per picture, the number of
    distinct captions in all, and a histogram of caption lengths in words as [words, share]
    pairs (each picture's captions weighted by the probability the policy gives them)."""
    per_code: dict[str, set[str]] = defaultdict(set)
    lengths: Counter[int] = Counter()
    per_picture = 0
    for r in rows:
        variants, probs = caption_variants(r)
        per_code[r["codepoints"]].update(variants)
        per_picture += len(variants)
        for caption, p in zip(variants, probs):
            lengths[len(caption.split())] += p
    total = sum(lengths.values()) or 1.0
    return {
        "distinct_captions": len(set().union(*per_code.values())) if per_code else 0,
        "captions_per_emoji": round(sum(map(len, per_code.values())) / max(1, len(per_code)), 2),
        "captions_per_picture": round(per_picture / max(1, len(rows)), 2),
        "length_words_share": [[k, round(v / total, 4)] for k, v in sorted(lengths.items())],
    }


def format_summary(manifest: dict[str, Any], seconds: float) -> str:
    """What a build prints: images per style and split, emoji, captions, a length histogram."""
    lines = [f"{'style':<12} {'train':>6} {'test':>6}"]
    for style, c in manifest["counts"]["per_style"].items():
        lines.append(f"{style:<12} {c.get('train', 0):>6} {c.get('test', 0):>6}")
    split = manifest["counts"]["per_split"]
    lines.append(f"{'all':<12} {split.get('train', 0):>6} {split.get('test', 0):>6}")
    lines.append(f"emoji (each with all its variants): {manifest['emoji']}, held out "
                 f"{manifest['held_out_count']} ({manifest['held_out_count'] / max(1, manifest['emoji']):.1%})")
    cap = manifest.get("captions")
    if cap:
        lines.append(f"captions: {cap['distinct_captions']} distinct, {cap['captions_per_emoji']} per "
                     f"emoji, {cap['captions_per_picture']} per picture; length in words:")
        for words, share in cap["length_words_share"]:
            lines.append(f"  {words:>2} {'#' * round(share * 100):<40} {share:.1%}")
    shared = manifest.get("share_alike") or []
    if shared:
        lines.append(f"share-alike styles included: {', '.join(shared)} (see LICENSES.md)")
    lines.append(f"built in {seconds:.1f} s")
    return "\n".join(lines)


def build_emoji_dataset(out: Path, *, size: int | None = None, styles: Sequence[str] | None = None,
                        source: str = "svg", cache_dir: Path | None = None,
                        render_cache: Path | None = None, test_fraction: float = 0.05,
                        seed: int = 0, only: Sequence[str] | None = None,
                        test: Sequence[str] | None = None, jobs: int | None = None,
                        progress: bool = True, pins: Mapping[str, str] | None = None,
                        overwrite: bool = False,
                        default_styles: Sequence[str] | None = None) -> dict[str, Any]:
    """Build the folder; return the manifest (also written as out/manifest.json), with the
    printable summary under ``"summary"`` (not written: it holds the build time).

    ``out`` is new, empty or an earlier build (updated in place: pictures it no longer lists
    are deleted); any other folder is refused before anything is fetched, unless ``overwrite``.

    ``only`` keeps the listed code sequences; ``test`` holds out exactly the listed emoji
    (by base/concept key) instead of the seeded draw (both for making test fixtures).
    ``pins``: the tarballs' checksums, NAME@VERSION -> sha512 (default ``npm.PINNED``).
    ``default_styles``: the styles a prompt without a style name means; the rows of every
    other style name their style in all their captions (``"style_in_caption"``, captions.py).
    """
    start = time.perf_counter()
    out, cache = Path(out), Path(cache_dir or default_cache())
    check_output_folder(out, overwrite=overwrite, own=is_build)
    if not 0.0 <= test_fraction < 1.0:
        raise GouacheError(f"test fraction must be in [0, 1), got {test_fraction}")
    if jobs is not None and not 1 <= jobs <= MAX_JOBS:
        raise GouacheError(f"--jobs must be from 1 to {MAX_JOBS}, got {jobs}")
    only = None if only is None else [check_hexcode(h.strip(), source="--only") for h in only]
    test = None if test is None else [check_hexcode(h.strip(), source="--test") for h in test]
    if source == "png":
        if default_styles:
            raise GouacheError("--default-styles is for the svg source (the png set has its own captions)")
        from gouache.data.build.emoji_png import build_png_dataset
        manifest = build_png_dataset(out, size=size or 64, cache_dir=cache, seed=seed,
                                     test_fraction=test_fraction, only=only, test_bases=test,
                                     progress=progress, pins=pins, **({"styles": styles} if styles else {}))
        return {**manifest, "summary": format_summary(manifest, time.perf_counter() - start)}
    if source != "svg":
        raise GouacheError(f"unknown source {source!r}: svg (version 2) or png (version 1, 64 px)")
    size = size or 128
    if size not in SIZES:
        raise GouacheError(f"size must be one of {', '.join(map(str, SIZES))}, got {size}")
    chosen = _styles(styles)
    defaults = _default_styles(default_styles, chosen)
    packages = {NAMES_PACKAGE[0]: NAMES_PACKAGE[1], **{s.package: s.version for s in chosen}}
    if any(s.by_name for s in chosen):
        packages.update(REFERENCE_PACKAGES)
    tarballs = fetch_all(packages, cache, progress=progress, pins=pins)
    names = load_names(read_tar_members(tarballs[NAMES_PACKAGE[0]], NAMES_FILES))
    keep = {normalize_hexcode(h) for h in only} if only else None
    forced = {concept_of(h) for h in test} if test is not None else None
    pictures = _pictures(chosen, tarballs, names, keep)
    pngs = render_all(pictures, size, Path(render_cache or cache.parent / "render"),
                      jobs=jobs or min(4, os.cpu_count() or 1), progress=progress)
    rows = []
    for pic, png in zip(pictures, pngs):
        key = concept_of(pic.code)
        split = (("test" if key in forced else "train") if forced is not None
                 else split_for(key, seed, test_fraction))
        row = metadata_row(pic, names[pic.code], split)
        if defaults and pic.style.key not in defaults:
            row["style_in_caption"] = True
        write_if_changed(inside_out(out, row["file_name"]), png)
        rows.append(row)
    if not rows:
        raise GouacheError("no pictures to build: the styles have none of the emoji asked for (--only)")
    subset = None if keep is None and forced is None else {
        "only": sorted(keep or []), "test": sorted(forced or [])}
    settings = {"source": "svg", "size": size, "seed": seed, "test_fraction": test_fraction,
                "styles": [s.key for s in chosen], "subset": subset, "renderer": RENDERER,
                **({"default_styles": sorted(defaults)} if defaults else {})}
    extra = {"licences": {s.key: s.licence for s in chosen},
             "share_alike": [s.key for s in chosen if s.share_alike],
             "captions": caption_summary(rows)}
    manifest = finish_build(out, rows, tarballs, packages=packages, settings=settings,
                            licenses=licenses_markdown(chosen), extra=extra)
    return {**manifest, "summary": format_summary(manifest, time.perf_counter() - start)}
