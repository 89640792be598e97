"""``gouache eval`` refuses settings it cannot honour, in one line and before any work: no
network is loaded, no picture painted, no feature cached in the data folder (which lives in
the work folder here, so the harness sees any file it would write)."""
from __future__ import annotations

import shutil

import pytest

from refusals import assert_refused

# (extra argv, what stderr must say); every case runs `gouache eval --model TINY --device cpu`
# plus these, with {emoji}: a copy of the emoji fixture, {shapes}: a shapes folder, {file}: a file.
CASES = [
    (["--data", "{emoji}", "--batch-size", "0"], "the batch size must be a whole number from 1 to 1024, got 0"),
    (["--data", "{emoji}", "--batch-size", "100000"], "the batch size must be a whole number from 1 to 1024"),
    (["--data", "{emoji}", "--out", "{file}"], "is a file, not a folder"),
    (["--data", "{emoji}", "--out", "{file}/eval"], "is a file, not a folder"),
    (["--data", "{emoji}", "-n", "0"], "at least 2 images"),
    (["--data", "{emoji}", "-n", "-5"], "at least 2 images"),
    (["--data", "{emoji}", "-n", "1000000000"], "the number of images must be a whole number from 2 to 100000"),
    (["--data", "{emoji}", "--steps", "0"], "steps must be a whole number from 1 to 1000"),
    (["--data", "{emoji}", "--steps", "100000"], "steps must be a whole number from 1 to 1000"),
    (["--data", "{emoji}", "--guidance", "nan"], "guidance must be a number from 0 to 50, got nan"),
    (["--data", "{emoji}", "--guidance", "inf"], "guidance must be a number from 0 to 50"),
    (["--data", "{emoji}", "--guidance", "-1"], "guidance must be a number from 0 to 50"),
    (["--data", "{emoji}", "--guidance", "1e308"], "guidance must be a number from 0 to 50"),
    (["--data", "{emoji}", "--seed", "-1"], "a seed must be a whole number from 0 to 2^63 - 1"),
    (["--data", "{emoji}", "--seed", str(2**63 - 100)], "a seed must be a whole number from 0 to 2^63 - 1"),
    (["--data", "{emoji}", "--score-size", "4"], "the scoring size in pixels must be a whole number from 8 to 1024"),
    (["--data", "{emoji}", "--score-size", "100000"], "from 8 to 1024"),
    (["--data", "{emoji}", "--sweep-guidance", "--sweep-images", "1"], "the pictures per sweep point must be"),
    (["--data", "{emoji}", "--prompts", "{missing}"], "cannot read the prompts file"),
    (["--data", "{emoji}", "--prompts", "{file}"], "holds no prompts"),
    (["--data", "{emoji}", "--suite-seeds", "4"], "--suite-seeds is for a suite"),
    # the suites
    (["--data", "{shapes}", "--suite", "shapes", "--suite-seeds", "0"],
     "--suite-seeds (pictures a prompt) must be a whole number from 1 to 1000, got 0"),
    (["--data", "{shapes}", "--suite", "shapes", "--suite-seeds", "1000000000"], "from 1 to 1000"),
    (["--data", "{emoji}", "--suite", "understanding", "--suite-seeds", "-1"], "from 1 to 1000"),
    (["--data", "{emoji}", "--suite", "shapes"], "is not a `gouache data shapes` folder; for this data use"),
    (["--data", "{shapes}", "--suite", "understanding"], "for this data use --suite shapes"),
    (["--data", "{shapes}", "--suite", "shapes", "--batch-size", "0"], "the batch size must be"),
    (["--data", "{shapes}", "--suite", "shapes", "--out", "{file}"], "is a file, not a folder"),
    (["--data", "{shapes}", "--suite", "shapes", "--seed", "-3"], "a seed must be"),
    (["--data", "{shapes}", "--suite", "shapes", "--steps", "0"], "steps must be"),
    (["--data", "{shapes}", "--suite", "shapes", "-n", "50"], "-n is an option of the metrics"),
    (["--data", "{shapes}", "--suite", "shapes", "--references"], "--references is an option of the metrics"),
    (["--data", "{shapes}", "--suite", "shapes", "--score-size", "32"], "--score-size is an option of the metrics"),
]


@pytest.fixture()
def nothing_loads(monkeypatch):
    """A refusal must come before any network loads: loading one fails the test."""
    from gouache.evaluate import report, shapes, understanding

    def loaded(*args, **kwargs):
        raise AssertionError("a network was loaded before the refusal")

    for module in (report, shapes, understanding):
        monkeypatch.setattr(module.Pipeline, "load", loaded)
    monkeypatch.setattr(report, "InceptionV3TF", loaded)
    monkeypatch.setattr(understanding, "InceptionV3TF", loaded)


@pytest.mark.parametrize("extra, message", CASES, ids=[" ".join(a)[:70] for a, _ in CASES])
def test_eval_refuses_in_one_line_before_any_work(extra, message, tiny_model_dir, emoji_fixture, tmp_path,
                                                  capsys, nothing_loads):
    from gouache.data.build.shapes import build_shapes_dataset

    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(emoji_fixture, work / "emoji")
    build_shapes_dataset(work / "shapes", size=16, per_caption=1, progress=False)
    (work / "a-file.txt").write_text("\n\n")
    names = {"emoji": work / "emoji", "shapes": work / "shapes", "file": work / "a-file.txt",
             "missing": work / "missing.txt"}
    argv = ["eval", "--model", tiny_model_dir, "--device", "cpu", *(a.format(**names) for a in extra)]
    assert_refused(argv, message, work, capsys)
