"""gouache data shapes: the colour x shape set, with held-out combinations."""
from __future__ import annotations

import json

import pytest

from gouache.cli.main import main
from gouache.data.build.shapes import (
    COLOURS,
    SHAPES,
    build_shapes_dataset,
    parse_holdout,
    read_shapes_info,
)
from gouache.data.imagefolder import read_records
from gouache.errors import GouacheError

HOLDOUT = "green triangle,blue circle,yellow square"


def test_holdout_combinations_are_never_drawn_and_are_recorded(tmp_path):
    n = build_shapes_dataset(tmp_path, size=16, per_caption=3, holdout=parse_holdout(HOLDOUT), progress=False)
    captions = {r["text"] for r in read_records(tmp_path)}
    assert n == 3 * (len(COLOURS) * len(SHAPES) - 3)
    assert captions == {f"{c} {s}" for c in COLOURS for s in SHAPES} - {"green triangle", "blue circle",
                                                                       "yellow square"}
    assert read_shapes_info(tmp_path)["holdout"] == ["blue circle", "green triangle", "yellow square"]


def test_without_holdout_the_set_is_the_same_as_before(tmp_path):
    build_shapes_dataset(tmp_path / "a", size=16, per_caption=2, progress=False)
    build_shapes_dataset(tmp_path / "b", size=16, per_caption=2, holdout=(), progress=False)
    for name in ("red_circle_000.png", "yellow_triangle_001.png"):
        assert (tmp_path / "a" / "images" / name).read_bytes() == (tmp_path / "b" / "images" / name).read_bytes()
    assert read_shapes_info(tmp_path / "a")["holdout"] == []


@pytest.mark.parametrize("bad", ["purple circle", "green hexagon", "triangle"])
def test_holdout_must_name_a_colour_and_a_shape(bad):
    with pytest.raises(GouacheError, match="not a colour and a shape"):
        parse_holdout(bad)
    assert parse_holdout(" Green  Triangle ,, green triangle") == ("green triangle",)


def test_cli_holdout(tmp_path, capsys):
    main(["data", "shapes", "--out", str(tmp_path), "--size", "16", "--per-caption", "2", "--holdout", HOLDOUT])
    assert json.loads((tmp_path / "shapes.json").read_text())["holdout"] == sorted(HOLDOUT.split(","))
    with pytest.raises(SystemExit) as e:
        main(["data", "shapes", "--out", str(tmp_path / "x"), "--holdout", "pink circle"])
    assert e.value.code == 2
