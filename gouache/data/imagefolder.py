"""Captioned images from a folder, in the Hugging Face ``imagefolder`` convention.

Two ways to caption a folder:

* ``metadata.jsonl``: one JSON object per line with ``file_name`` (relative to
  the folder) and ``text``; an optional ``split`` ("train"/"test") selects rows,
  and rows without one count as "train";
* sidecar files: ``cat.png`` captioned by ``cat.txt`` beside it.

Images are composited on white, resized and centre-cropped to the model's
resolution, and held in memory as uint8 (7,500 emoji at 64x64 take 92 MB).
There is no horizontal flip: captions such as "left arrow" would be lied to.

Every file is checked before it is read (``inputs.py``): pictures and captions must be
regular files whose real paths lie in the folder (a symlink may not lead out of it), and
metadata.jsonl at most ``MAX_METADATA_BYTES``, each row at most ``MAX_ROW_BYTES`` of JSON
nested at most ``inputs.MAX_JSON_DEPTH`` deep; pictures pass ``images.read_picture``'s
checks (at most ``images.MAX_PIXELS`` pixels, read from the header before decoding).

Which captions a row is trained with is the caption policy's business
(``captions.py``); ``read_records`` is the one reader of a folder, used by
training, ``gouache data check`` and the examples, so that a folder the check
passes is one that training accepts.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gouache.data.captions import CAPTION_TEMPLATES, caption_variants
from gouache.store.reading import inside, parse_json, read_bytes
from gouache.errors import GouacheError
from gouache.images import load_rgb, to_uint8_tensor

__all__ = ["CaptionedImages", "load_imagefolder", "caption_variants", "CAPTION_TEMPLATES",
           "IMAGE_SUFFIXES", "METADATA_NAME", "FolderScan", "scan_folder", "read_records",
           "balanced_weights"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
METADATA_NAME = "metadata.jsonl"
MAX_METADATA_BYTES = 512 * 2**20  # a million rows of 500 bytes
MAX_ROW_BYTES = 64 * 2**10  # one row of metadata.jsonl
MAX_CAPTION_BYTES = 64 * 2**10  # one NAME.txt caption


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


def find_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (recursively), sorted."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass
class FolderScan:
    """What a folder holds: its rows (every split, each with its resolved ``path``), the
    problems that make training refuse it, and things worth a look."""

    rows: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    source: str = "none"  # "metadata" or "sidecar"


def scan_folder(root: Path) -> FolderScan:
    """Read a captioned folder without stopping at the first problem.

    With ROOT/metadata.jsonl, its rows are the data (each needs ``file_name``, an
    existing file, and a non-empty ``text``); images it does not list are left out
    (a warning), and sidecar .txt files are not read. Without it, every image needs
    a non-empty NAME.txt beside it. A metadata.jsonl below ROOT is never read: an error,
    so that nothing is silently left out.
    """
    root, scan = Path(root), FolderScan()
    if not root.is_dir():
        scan.errors.append(f"no such data folder: {root}")
        return scan
    meta = root / METADATA_NAME
    for nested in sorted(root.rglob(METADATA_NAME)):
        if nested != meta:
            scan.errors.append(f"{nested}: only {meta} is read; move its rows there "
                               "(file_name relative to it)")
    if meta.exists() or meta.is_symlink():
        scan.source = "metadata"
        _read_metadata(meta, scan)
        listed = {Path(r["path"]).resolve() for r in scan.rows}
        unlisted = [p for p in find_images(root) if p.resolve() not in listed]
        scan.warnings += [f"{p}: not listed in {METADATA_NAME}, so training leaves it out"
                          for p in unlisted]
    else:
        scan.source = "sidecar"
        _read_sidecars(root, scan)
    if not scan.rows and not scan.errors:
        scan.errors.append(f"no captioned images found in {root}")
    return scan


def read_records(root: Path, *, split: str | None = "train") -> list[dict]:
    """The rows of a folder (see ``scan_folder``); a folder with any problem is refused."""
    scan = scan_folder(root)
    if scan.errors:
        more = (f" (and {len(scan.errors) - 1} more problems: gouache data check {root} lists them)"
                if len(scan.errors) > 1 else "")
        raise GouacheError(scan.errors[0] + more)
    rows = scan.rows
    if split is not None:
        rows = [r for r in rows if r.get("split", "train") == split]
    if not rows:
        where = f" in split {split!r}" if split else ""
        raise GouacheError(f"no captioned images found in {root}{where}")
    return rows


def _read_metadata(meta: Path, scan: FolderScan) -> None:
    seen: set[str] = set()
    root = meta.parent.resolve()
    try:
        inside(meta, root, what=METADATA_NAME)
        lines = read_bytes(meta, what=METADATA_NAME, limit=MAX_METADATA_BYTES).splitlines()
    except GouacheError as e:
        scan.errors.append(str(e))
        return
    for n, raw in enumerate(lines, start=1):
        where = f"{meta}:{n}"
        if len(raw) > MAX_ROW_BYTES:
            scan.errors.append(f"{where}: a row of {len(raw)} bytes, over gouache's limit of {MAX_ROW_BYTES}")
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            scan.errors.append(f"{where}: not UTF-8 text (byte {raw[e.start]:#x} at column {e.start + 1})")
            continue
        if not line.strip():
            continue
        try:
            row = parse_json(line, what=where, top=None)
        except GouacheError as e:
            scan.errors.append(str(e))
            continue
        if not isinstance(row, dict):
            scan.errors.append(f"{where}: a row must be a JSON object with file_name and text, got {line.strip()[:40]}")
            continue
        if not isinstance(row.get("file_name"), str) or not row["file_name"].strip():
            scan.errors.append(f"{where}: row has no 'file_name' (a path in the folder, as text)")
            continue
        path = meta.parent / row["file_name"]
        if Path(row["file_name"]).is_absolute() or not path.resolve().is_relative_to(root):
            # ../x.png, /etc/...: a data folder never reads from outside itself
            scan.errors.append(f"{where}: file_name {row['file_name']!r} must be a path inside the data folder")
            continue
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            scan.errors.append(f"{path}: image has no caption ('text' must be text, got {row.get('text')!r})")
            continue
        if not path.exists():
            scan.errors.append(f"{path}: listed in {METADATA_NAME} but missing")
            continue
        if not path.is_file():
            scan.errors.append(f"{path}: listed in {METADATA_NAME} but not a regular file")
            continue
        if row["file_name"] in seen:
            scan.warnings.append(f"{where}: {row['file_name']} listed more than once")
        seen.add(row["file_name"])
        try:
            caption_variants(row)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            scan.errors.append(f"{where}: fields the caption policy cannot read ({type(e).__name__}: {e})")
            continue
        row["path"] = str(path)
        scan.rows.append(row)


def _read_sidecars(root: Path, scan: FolderScan) -> None:
    images = find_images(root)
    if not images:
        scan.errors.append(f"no images found in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    for path in images:
        txt = path.with_suffix(".txt")
        try:
            inside(path, root, what="picture")
            if txt.exists() or txt.is_symlink():
                inside(txt, root, what="caption")
                text = read_bytes(txt, what="caption", limit=MAX_CAPTION_BYTES).decode("utf-8").strip()
            else:
                text = ""
        except UnicodeDecodeError as e:
            scan.errors.append(f"{txt}: not UTF-8 text (byte at position {e.start})")
            continue
        except GouacheError as e:
            scan.errors.append(str(e))
            continue
        if not text:
            scan.errors.append(f"{path}: image has no caption (expected {txt.name} or metadata.jsonl)")
            continue
        scan.rows.append({"file_name": str(path.relative_to(root)), "text": text, "path": str(path)})


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
    with tqdm(rows, desc=f"loading {Path(root).name}", unit="img", disable=not progress) as bar:
        for k, row in enumerate(bar):  # a bad picture ends the bar's line before the error is printed
            path = Path(row["path"])
            if not path.exists():
                raise GouacheError(f"{path}: listed in metadata.jsonl but missing")
            images[k] = to_uint8_tensor(load_rgb(path, size))
    variants, probs = zip(*(caption_variants(r) for r in rows))
    return CaptionedImages(images, list(variants), list(probs), rows)
