"""Lint a captioned image folder before training on it.

Two caption conventions are understood, and may be mixed:

* ``metadata.jsonl`` files (Hugging Face imagefolder style) whose rows hold
  ``file_name`` (relative to the jsonl's folder) and ``text``;
* sidecar captions: ``NAME.txt`` next to ``NAME.png``.

Problems that would break or silently spoil training are errors (each names the
offending file); things worth a look are warnings.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
METADATA_NAME = "metadata.jsonl"
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
        for key, title in (("resolutions", "resolutions"), ("modes", "modes"),
                           ("splits", "splits"), ("caption_sources", "captions from")):
            if s.get(key):
                lines.append(f"{title}: " + ", ".join(f"{k} x{v}" for k, v in s[key].items()))
        if s.get("caption_words"):
            w = s["caption_words"]
            lines.append(f"caption words: min {w['min']}, median {w['median']:g}, max {w['max']}")
        if s.get("duplicate_groups"):
            lines.append(f"duplicate groups: {s['duplicate_groups']} "
                         f"({s['duplicate_images']} images)")
        for title, items in (("error", self.errors), ("warning", self.warnings)):
            lines += [f"{title}: {item}" for item in items[:SHOWN]]
            if len(items) > SHOWN:
                lines.append(f"... and {len(items) - SHOWN} more {title}s")
        lines.append(f"{len(self.errors)} errors, {len(self.warnings)} warnings")
        return "\n".join(lines)


def find_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (recursively), sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_metadata(root: Path, report: CheckReport) -> dict[Path, dict[str, Any]]:
    """Collect rows from every metadata.jsonl under ``root``, keyed by resolved image path."""
    rows: dict[Path, dict[str, Any]] = {}
    for meta in sorted(root.rglob(METADATA_NAME)):
        rel_meta = meta.relative_to(root)
        for lineno, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{rel_meta}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                report.errors.append(f"{where}: not valid JSON ({exc.msg})")
                continue
            if not isinstance(row, dict) or not isinstance(row.get("file_name"), str):
                report.errors.append(f"{where}: row has no file_name")
                continue
            path = (meta.parent / row["file_name"]).resolve()
            if not isinstance(row.get("text"), str):
                report.errors.append(f"{where}: {row['file_name']} has no text caption")
            if not path.is_file():
                report.errors.append(f"{where}: {row['file_name']} is missing")
            if path in rows:
                report.warnings.append(f"{where}: {row['file_name']} listed more than once")
            rows[path] = row
    return rows


def inspect_image(path: Path) -> tuple[str, str, str] | str:
    """Return (resolution, mode, sha256) for a readable image, else an error message."""
    try:
        data = path.read_bytes()
        with Image.open(path) as im:
            im.load()
            return f"{im.width}x{im.height}", im.mode, hashlib.sha256(data).hexdigest()
    except Exception as exc:  # PIL raises many types for broken files
        return f"{type(exc).__name__}: {exc}"


def caption_for(image: Path, rows: dict[Path, dict[str, Any]]) -> tuple[str | None, str]:
    """The caption of one image and where it came from ("metadata", "sidecar" or "none")."""
    row = rows.get(image.resolve())
    if row is not None and isinstance(row.get("text"), str):
        return row["text"], "metadata"
    sidecar = image.with_suffix(".txt")
    if sidecar.is_file():
        return sidecar.read_text(encoding="utf-8").strip(), "sidecar"
    return None, "none"


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


def check_dataset(root: Path, *, progress: bool = True) -> CheckReport:
    """Lint an image folder: captions, readability, resolutions, duplicates and splits."""
    root = Path(root)
    report = CheckReport(stats={"root": str(root), "images": 0})
    if not root.is_dir():
        report.errors.append(f"{root}: not a folder")
        return report
    rows = read_metadata(root, report)
    images = find_images(root)
    if not images:
        report.errors.append(f"{root}: no images found (empty dataset)")
        return report

    resolutions, modes, sources, splits = Counter(), Counter(), Counter(), Counter()
    hashes: dict[Path, str] = {}
    captions: list[str] = []
    for image in tqdm(images, desc="check", unit="img", disable=not progress):
        rel = image.relative_to(root)
        info = inspect_image(image)
        if isinstance(info, str):
            report.errors.append(f"{rel}: unreadable image ({info})")
        else:
            resolutions[info[0]] += 1
            modes[info[1]] += 1
            hashes[rel] = info[2]
        text, source = caption_for(image, rows)
        sources[source] += 1
        if text is None:
            report.errors.append(f"{rel}: no caption (no metadata row and no {rel.stem}.txt)")
        elif not text.strip():
            report.warnings.append(f"{rel}: empty caption")
        else:
            captions.append(text)
        split = rows.get(image.resolve(), {}).get("split")
        if split is not None:
            splits[str(split)] += 1

    have_images = {p.with_suffix("") for p in images}
    for txt in sorted(root.rglob("*.txt")):
        if txt.with_suffix("") not in have_images:
            report.warnings.append(f"{txt.relative_to(root)}: caption file with no image")

    dups = duplicate_groups(hashes)
    for group in dups:
        report.warnings.append("identical images: " + ", ".join(str(p) for p in group))
    report.stats.update({
        "images": len(images),
        "resolutions": dict(resolutions.most_common()),
        "modes": dict(modes.most_common()),
        "caption_sources": {k: v for k, v in sources.most_common() if k != "none"},
        "captioned": len(images) - sources["none"],
        "caption_words": word_stats(captions) if captions else None,
        "splits": dict(sorted(splits.items())),
        "duplicate_groups": len(dups),
        "duplicate_images": sum(len(g) for g in dups),
    })
    return report
