"""Captioned images from a folder, in the Hugging Face ``imagefolder`` convention.

Two ways to caption a folder:

* ``metadata.jsonl``: one JSON object per line with ``file_name`` (relative to
  the folder) and ``text``; an optional ``split`` ("train"/"test") selects rows,
  and rows without one count as "train";
* sidecar files: ``cat.png`` captioned by ``cat.txt`` beside it.

Images are composited on white, resized and centre-cropped to the model's
resolution, and held in memory as uint8 (7,500 emoji at 64x64 take 92 MB).
There is no horizontal flip: captions such as "left arrow" would be lied to.

Caption templates: a row that carries ``label`` and ``style`` (the emoji set
does) is shown at training time as one of
    "{label}" (p=0.6), "{label}, {style} style" (p=0.2), "an emoji of {label}" (p=0.2),
so that a user can ask for a style. Other rows always use ``text``.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..errors import GouacheError
from ..images import load_rgb, to_uint8_tensor

__all__ = ["CaptionedImages", "load_imagefolder", "caption_variants", "CAPTION_TEMPLATES",
           "IMAGE_SUFFIXES", "read_records", "balanced_weights"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
# (template, probability): the fixed draw used for rows with a label and a style.
CAPTION_TEMPLATES: tuple[tuple[str, float], ...] = (
    ("{label}", 0.6),
    ("{label}, {style} style", 0.2),
    ("an emoji of {label}", 0.2),
)


@dataclass
class CaptionedImages:
    """A dataset in memory: images, their caption variants, and the source rows."""

    images: torch.Tensor  # (N, 3, H, W) uint8
    variants: list[list[str]]  # per image, the captions it may be shown with
    probs: list[list[float]]  # per image, the probability of each variant
    records: list[dict] = field(default_factory=list)  # the metadata rows

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def captions(self) -> list[str]:
        """The main caption of each image (its first variant)."""
        return [v[0] for v in self.variants]


def caption_variants(record: dict) -> tuple[list[str], list[float]]:
    """The captions one row may be trained with, and their probabilities."""
    label, style = record.get("label"), record.get("style")
    if label and style:
        return ([t.format(label=label, style=style) for t, _ in CAPTION_TEMPLATES],
                [p for _, p in CAPTION_TEMPLATES])
    return [record["text"]], [1.0]


def read_records(root: Path, *, split: str | None = "train") -> list[dict]:
    """The rows of a folder: from metadata.jsonl, else from sidecar .txt files."""
    root = Path(root)
    if not root.is_dir():
        raise GouacheError(f"no such data folder: {root}")
    meta = root / "metadata.jsonl"
    rows = _read_metadata(meta) if meta.exists() else _read_sidecars(root)
    if split is not None:
        rows = [r for r in rows if r.get("split", "train") == split]
    if not rows:
        where = f" in split {split!r}" if split else ""
        raise GouacheError(f"no captioned images found in {root}{where}")
    return rows


def _read_metadata(meta: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise GouacheError(f"{meta}:{n}: not valid JSON ({e.msg})") from None
        if "file_name" not in row:
            raise GouacheError(f"{meta}:{n}: row has no 'file_name'")
        if not str(row.get("text", "")).strip():
            raise GouacheError(f"{meta.parent / row['file_name']}: image has no caption ('text')")
        row["path"] = str(meta.parent / row["file_name"])
        rows.append(row)
    return rows


def _read_sidecars(root: Path) -> list[dict]:
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise GouacheError(f"no images found in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    rows = []
    for path in images:
        txt = path.with_suffix(".txt")
        text = txt.read_text(encoding="utf-8").strip() if txt.exists() else ""
        if not text:
            raise GouacheError(f"{path}: image has no caption (expected {txt.name} or metadata.jsonl)")
        rows.append({"file_name": str(path.relative_to(root)), "text": text, "path": str(path)})
    return rows


def balanced_weights(records: list[dict], column: str) -> torch.Tensor:
    """Sampling weights that make every value of ``column`` equally likely, (N,) summing to 1.

    For the emoji set, ``column="base"`` gives each emoji one share however many
    skin-tone variants it has: 60% of its images are people and body parts, 20% of its
    emoji. A row without the column is a group of its own.
    """
    if all(column not in r for r in records):
        raise GouacheError(f"cannot balance by {column!r}: no row of metadata.jsonl has it")
    keys = [str(r.get(column, f"\0{k}")) for k, r in enumerate(records)]  # "\0k": a group of its own
    sizes = Counter(keys)
    w = torch.tensor([1.0 / sizes[k] for k in keys], dtype=torch.float64)
    return w / w.sum()


def load_imagefolder(root: Path, *, size: int, split: str | None = "train",
                     progress: bool = True) -> CaptionedImages:
    """Read every captioned image of ``split`` into memory at ``size`` x ``size``."""
    rows = read_records(root, split=split)
    images = torch.empty(len(rows), 3, size, size, dtype=torch.uint8)  # (N, 3, H, W)
    for k, row in enumerate(tqdm(rows, desc=f"loading {Path(root).name}", unit="img",
                                 disable=not progress)):
        path = Path(row["path"])
        if not path.exists():
            raise GouacheError(f"{path}: listed in metadata.jsonl but missing")
        images[k] = to_uint8_tensor(load_rgb(path, size))
    variants, probs = zip(*(caption_variants(r) for r in rows))
    return CaptionedImages(images, list(variants), list(probs), rows)
