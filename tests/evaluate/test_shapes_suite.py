"""The shapes testbed's judge and suite."""
from __future__ import annotations

import json

import pytest
import torch

from gouache.data.build.shapes import build_shapes_dataset
from gouache.data.imagefolder import load_imagefolder
from gouache.evaluate.shapes import format_shapes, judge_shapes, shapes_suite
from gouache.sampling.options import SamplingOptions

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("size", [32, 64])  # the testbed draws 32 px; at 16 px a triangle is a few pixels
def test_judge_names_every_drawn_shape_and_colour(tmp_path, size):
    build_shapes_dataset(tmp_path, size=size, per_caption=6, seed=3, progress=False)
    data = load_imagefolder(tmp_path, size=size, progress=False)
    judged = judge_shapes(data.images)
    assert [(s, c) for c, s in (t.split() for t in data.captions)] == judged


def test_judge_says_none_for_blank_noise_and_two_blobs(tmp_path):
    blank = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    noise = torch.randint(0, 256, (3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    two = blank.clone()
    two[:, 2:12, 2:12] = torch.tensor([220, 30, 30], dtype=torch.uint8)[:, None, None]
    two[:, 20:30, 20:30] = torch.tensor([220, 30, 30], dtype=torch.uint8)[:, None, None]
    grey = blank.clone()
    grey[:, 8:24, 8:24] = 120
    assert judge_shapes(torch.stack([blank, noise, two, grey])) == [(None, None)] * 4
    one = blank.clone()
    one[:, 8:24, 8:24] = torch.tensor([30, 60, 220], dtype=torch.uint8)[:, None, None]
    assert judge_shapes(one[None]) == [("square", "blue")]


def test_shapes_suite_scores_every_combination(tiny_pipeline, tiny_model_dir, tmp_path):
    build_shapes_dataset(tmp_path / "shapes", size=16, per_caption=1, holdout=("green triangle",), progress=False)
    report = shapes_suite(tiny_model_dir, tmp_path / "shapes", seeds=2, options=SamplingOptions(steps=2), out=tmp_path / "eval",
                          pipeline=tiny_pipeline, progress=False)
    assert len(report["combinations"]) == 12
    assert [c for c, v in report["combinations"].items() if v["heldout"]] == ["green triangle"]
    for v in report["combinations"].values():
        assert 0 <= v["right"] <= min(v["right_shape"], v["right_colour"]) <= 2
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["suite"] == "shapes"
    assert (tmp_path / "eval" / "shapes.png").exists()
    assert "green triangle" in format_shapes(report)
