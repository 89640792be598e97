"""Lint a captioned image folder before training on it.

The folder is read by the one reader training uses (``imagefolder.scan_folder``:
ROOT/metadata.jsonl, or a NAME.txt beside each image), so every problem that
would make ``gouache train`` refuse the folder is an error here, each naming
its file; things worth a look (duplicates, images no row lists, orphan
captions) are warnings. Rows with the emoji set's fields (``keywords``,
``style``) are summarised too: pictures per style, and the captions the
caption policy draws from (``captions.py``).
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from gouache.data.captions import caption_variants
from gouache.data.imagefolder import find_images, scan_folder
from gouache.errors import GouacheError
from gouache.images import read_picture

SHOWN = 20  # how many errors/warnings format() lists before summarising the rest


@dataclass
class CheckReport:
    """What check_dataset found: errors, warnings and summary statistics."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when there are no errors."""
        return not self.errors

    def format(self) -> str:
        """Human-readable multi-line summary ending with "N errors, M warnings"."""
        s = self.stats
        lines = [f"dataset: {s.get('root', '?')}", f"images: {s.get('images', 0)}"]
        for key, title in (("resolutions", "resolutions"), ("modes", "modes"), ("splits", "splits"),
                           ("styles", "styles"), ("caption_sources", "captions from")):
            if s.get(key):
                lines.append(f"{title}: " + ", ".join(f"{k} x{v}" for k, v in s[key].items()))
        if s.get("caption_words"):
            w = s["caption_words"]
            lines.append(f"caption words: min {w['min']}, median {w['median']:g}, max {w['max']}")
        if s.get("captions"):
            c = s["captions"]
            per_emoji = f", {c['per_emoji']:g} per emoji" if "per_emoji" in c else ""
            lines.append(f"caption policy: {c['distinct']} distinct captions, {c['per_image']:g} per "
                         f"image{per_emoji}")
        if s.get("duplicate_groups"):
            lines.append(f"duplicate groups: {s['duplicate_groups']} "
                         f"({s['duplicate_images']} images)")
        for title, items in (("error", self.errors), ("warning", self.warnings)):
            lines += [f"{title}: {item}" for item in items[:SHOWN]]
            if len(items) > SHOWN:
                lines.append(f"... and {len(items) - SHOWN} more {title}s")
        lines.append(f"{len(self.errors)} errors, {len(self.warnings)} warnings")
        return "\n".join(lines)


def inspect_image(path: Path, *, name: str | None = None) -> tuple[str, str, str] | str:
    """Return (resolution, mode, sha256) for an image training would read, else why not
    (``images.read_picture``'s checks, naming the file as ``name``)."""
    try:
        im = read_picture(path, name=name)
    except GouacheError as e:
        return str(e)
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return f"{im.width}x{im.height}", im.mode, digest


def word_stats(captions: list[str]) -> dict[str, float]:
    """Min, median and max caption length in words."""
    counts = [len(c.split()) for c in captions]
    return {"min": min(counts), "median": statistics.median(counts), "max": max(counts)}


def duplicate_groups(hashes: dict[Path, str]) -> list[list[Path]]:
    """Groups of two or more files with identical bytes."""
    by_hash: dict[str, list[Path]] = defaultdict(list)
    for path, digest in hashes.items():
        by_hash[digest].append(path)
    return sorted((sorted(g) for g in by_hash.values() if len(g) > 1), key=lambda g: g[0])


def caption_stats(rows: list[dict]) -> dict:
    """Captions the policy draws from: distinct strings, per image, and per emoji when the rows
    carry ``codepoints``."""
    per_image, distinct = [], set()
    per_code: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        variants = caption_variants(row)[0]
        per_image.append(len(variants))
        distinct.update(variants)
        if "codepoints" in row:
            per_code[str(row["codepoints"])].update(variants)
    stats = {"distinct": len(distinct), "per_image": round(statistics.mean(per_image), 2)}
    if per_code:
        stats["per_emoji"] = round(statistics.mean(map(len, per_code.values())), 2)
    return stats


def check_dataset(root: Path, *, progress: bool = True) -> CheckReport:
    """Lint an image folder: captions, readability, resolutions, duplicates and splits."""
    root = Path(root)
    if not root.is_dir():  # nothing to lint: a mistake in the command, not in the data
        raise GouacheError(f"no such data folder: {root}")
    report = CheckReport(stats={"root": str(root), "images": 0})
    scan = scan_folder(root)
    report.errors += [_relative(e, root) for e in scan.errors]
    report.warnings += [_relative(w, root) for w in scan.warnings]
    if not root.is_dir():
        return report
    images = find_images(root)
    rows = scan.rows
    resolutions, modes, splits, styles = Counter(), Counter(), Counter(), Counter()
    hashes: dict[Path, str] = {}
    for row in tqdm(rows, desc="check", unit="img", disable=not progress):
        path = Path(row["path"])
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        info = inspect_image(path, name=str(rel))
        if isinstance(info, str):
            report.errors.append(info)
        else:
            resolutions[info[0]] += 1
            modes[info[1]] += 1
            hashes[rel] = info[2]
        if "split" in row:
            splits[str(row["split"])] += 1
        if "style" in row:
            styles[str(row["style"])] += 1

    have_images = {p.with_suffix("") for p in images}
    for txt in sorted(root.rglob("*.txt")):
        if txt.with_suffix("") not in have_images:
            report.warnings.append(f"{txt.relative_to(root)}: caption file with no image")

    dups = duplicate_groups(hashes)
    for group in dups:
        report.warnings.append("identical images: " + ", ".join(str(p) for p in group))
    captions = [r["text"] for r in rows]
    report.stats.update({
        "images": len(images),
        "resolutions": dict(resolutions.most_common()),
        "modes": dict(modes.most_common()),
        "caption_sources": {scan.source: len(rows)} if rows else {},
        "captioned": len(rows),
        "caption_words": word_stats(captions) if captions else None,
        "captions": caption_stats(rows) if rows else None,
        "splits": dict(sorted(splits.items())),
        "styles": dict(sorted(styles.items())),
        "duplicate_groups": len(dups),
        "duplicate_images": sum(len(g) for g in dups),
    })
    return report


def _relative(message: str, root: Path) -> str:
    """A reader's message with the folder's own path shortened away."""
    return message.replace(f"{root}/", "")
