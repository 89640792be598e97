"""Writing a built dataset folder: files rewritten only when their bytes change, the
metadata.jsonl, LICENSES.md and a manifest.json that makes a build checkable.

Every file is a pure function of the inputs (sorted rows, canonical JSON, bare
PNGs), so two builds from the same package versions are byte-identical, and a
rebuild touches only what changed.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from gouache.errors import GouacheError
from gouache.store.files import file_sha256, replacing

__all__ = ["write_if_changed", "remove_stale_images", "dumps_line", "finish_build", "inside_out", "is_build"]


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` (atomically: ``files.replacing``) unless the file already holds exactly
    these bytes; True if written."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return True


def is_build(folder: Path) -> bool:
    """Whether ``folder`` holds a finished build (its manifest.json): a rebuild may replace it."""
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "metadata_sha256" in manifest


def remove_stale_images(images_dir: Path, keep: set[Path]) -> int:
    """Delete PNGs under ``images_dir`` that this build did not produce; return how many."""
    stale = [p for p in images_dir.rglob("*.png") if p not in keep] if images_dir.is_dir() else []
    for path in stale:
        path.unlink()
    return len(stale)


def dumps_line(row: dict[str, Any]) -> str:
    """Canonical one-line JSON (sorted keys, UTF-8 kept)."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def finish_build(out: Path, rows: list[dict[str, Any]], tarballs: dict[str, Path], *,
                 packages: dict[str, str], settings: dict[str, Any], licenses: str,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write metadata.jsonl, LICENSES.md and manifest.json for ``rows``, delete pictures of an
    earlier build that ``rows`` no longer list, and return the manifest.

    The manifest holds ``settings`` (which must list ``styles``), the package versions and
    tarball checksums, counts per style and split, the held-out emoji (by ``base``), the
    metadata checksum, and ``extra``.
    """
    rows.sort(key=lambda r: r["file_name"])
    remove_stale_images(out / "images", {out / r["file_name"] for r in rows})
    metadata = "".join(dumps_line(r) + "\n" for r in rows).encode("utf-8")
    write_if_changed(out / "metadata.jsonl", metadata)
    write_if_changed(out / "LICENSES.md", licenses.encode("utf-8"))
    styles = settings["styles"]
    per_style = {s: dict(Counter(r["split"] for r in rows if r["style"] == s)) for s in styles}
    held_out = sorted({r["base"] for r in rows if r["split"] == "test"})
    manifest = {
        **settings,
        "packages": {name: packages[name] for name in tarballs},
        "tarball_sha256": {name: file_sha256(path) for name, path in tarballs.items()},
        "images": len(rows),
        "counts": {"per_style": per_style, "per_split": dict(Counter(r["split"] for r in rows))},
        "emoji": len({r["base"] for r in rows}),
        "held_out_count": len(held_out),
        "held_out": held_out,
        "metadata_sha256": hashlib.sha256(metadata).hexdigest(),
        **(extra or {}),
    }
    text = json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    write_if_changed(out / "manifest.json", text.encode("utf-8"))
    return manifest


def inside_out(out: Path, file_name: str) -> Path:
    """``out / file_name``, refused unless it lies in ``out``: names come from packages."""
    path = Path(out) / file_name
    if Path(file_name).is_absolute() or not path.resolve().is_relative_to(Path(out).resolve()):
        raise GouacheError(f"{file_name!r} would be written outside the output folder {out}")
    return path
