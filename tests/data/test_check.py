"""Tests for the imagefolder linter, using the emoji fixture and small hand-made folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from gouache.data.check import CheckReport, check_dataset

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "emoji"


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "emoji"))


def sidecar_folder(root: Path, names: list[str], captions: list[str]) -> Path:
    """Write small distinct PNGs, with a NAME.txt caption for those named in ``captions``."""
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(root / f"{name}.png")
        if name in captions:
            (root / f"{name}.txt").write_text(f"a picture of {name}\n", encoding="utf-8")
    return root


def test_fixture_passes() -> None:
    report = check_dataset(FIXTURE, progress=False)
    assert isinstance(report, CheckReport)
    assert report.errors == [] and report.warnings == []
    assert report.stats["images"] == 36
    assert report.stats["resolutions"] == {"64x64": 36}
    assert report.stats["modes"] == {"RGB": 36}
    assert report.stats["splits"] == {"test": 6, "train": 30}
    assert report.stats["caption_words"]["min"] == 1
    assert report.format().endswith("0 errors, 0 warnings")


def test_truncated_png_is_named(copy: Path) -> None:
    victim = copy / "images" / "google" / "1f34e.png"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    report = check_dataset(copy, progress=False)
    assert len(report.errors) == 1 and "images/google/1f34e.png" in report.errors[0]
    assert "cannot read image" in report.errors[0]
    assert report.format().endswith("1 errors, 0 warnings")


def test_metadata_row_with_missing_file(copy: Path) -> None:
    (copy / "images" / "twitter" / "1f680.png").unlink()
    report = check_dataset(copy, progress=False)
    assert len(report.errors) == 1
    assert "images/twitter/1f680.png" in report.errors[0] and "missing" in report.errors[0]


def test_missing_sidecar_caption_is_named(tmp_path: Path) -> None:
    root = sidecar_folder(tmp_path / "pics", ["cat", "dog", "owl"], ["cat", "owl"])
    report = check_dataset(root, progress=False)
    assert len(report.errors) == 1 and "dog.png" in report.errors[0]
    assert "no caption" in report.errors[0]
    assert report.stats["caption_sources"] == {"sidecar": 2}
    assert report.stats["caption_words"] == {"min": 4, "median": 4, "max": 4}


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    report = check_dataset(tmp_path, progress=False)
    assert len(report.errors) == 1 and "no images" in report.errors[0]
    assert report.format().endswith("1 errors, 0 warnings")


def test_duplicates_and_orphan_captions_warn(tmp_path: Path) -> None:
    root = sidecar_folder(tmp_path / "pics", ["a", "b"], ["a", "b"])
    shutil.copy(root / "a.png", root / "c.png")
    (root / "c.txt").write_text("a copy", encoding="utf-8")
    (root / "ghost.txt").write_text("no picture here", encoding="utf-8")
    report = check_dataset(root, progress=False)
    assert report.errors == []
    assert any("a.png" in w and "c.png" in w for w in report.warnings)
    assert any("ghost.txt" in w for w in report.warnings)
    assert report.stats["duplicate_groups"] == 1


def test_bad_rows_name_their_line(tmp_path: Path) -> None:
    root = sidecar_folder(tmp_path / "ds", ["x", "y"], [])
    rows = [{"file_name": "x.png", "text": "an x", "split": "train"}, {"text": "no file"}]
    lines = [json.dumps(r) for r in rows] + ["{not json"]
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = check_dataset(root, progress=False)
    joined = "\n".join(report.errors)
    assert "metadata.jsonl:2" in joined and "metadata.jsonl:3" in joined
    assert any("y.png: not listed" in w for w in report.warnings)  # training leaves it out
    assert report.stats["splits"] == {"train": 1}


def _nested(root: Path) -> None:
    sidecar_folder(root / "train", ["x", "y"], [])
    (root / "train" / "metadata.jsonl").write_text(
        json.dumps({"file_name": "x.png", "text": "an x"}) + "\n", encoding="utf-8")


def _mixed(root: Path) -> None:
    sidecar_folder(root, ["x", "y"], ["y"])  # y captioned by y.txt, x by metadata.jsonl
    (root / "metadata.jsonl").write_text(
        json.dumps({"file_name": "x.png", "text": "an x"}) + "\n" + json.dumps({"file_name": "y.png"}) + "\n",
        encoding="utf-8")


def _missing(root: Path) -> None:
    sidecar_folder(root, ["x"], [])
    (root / "metadata.jsonl").write_text(
        json.dumps({"file_name": "x.png", "text": "an x"}) + "\n" +
        json.dumps({"file_name": "gone.png", "text": "a ghost"}) + "\n", encoding="utf-8")


def _bad_keywords(root: Path) -> None:
    sidecar_folder(root, ["x"], [])
    row = {"file_name": "x.png", "text": "x", "label": "x", "keywords": 3, "style": "noto"}
    (root / "metadata.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")


@pytest.mark.parametrize("make", [_nested, _mixed, _missing, _bad_keywords])
def test_a_folder_training_refuses_is_an_error_of_the_check(tmp_path: Path, make) -> None:
    from gouache.data.imagefolder import read_records
    from gouache.errors import GouacheError

    root = tmp_path / "ds"
    make(root)
    with pytest.raises(GouacheError) as refused:
        read_records(root, split=None)
    report = check_dataset(root, progress=False)
    assert report.errors, "the check passed a folder that training refuses"
    assert str(refused.value).split(" (and ")[0].replace(f"{root}/", "") == report.errors[0]
    read_records(FIXTURE, split=None)  # and a folder the check passes, training reads
    assert check_dataset(FIXTURE, progress=False).ok
