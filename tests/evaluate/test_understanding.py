"""The prompt-understanding suite: its data files, the judge, and a run on a tiny model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from gouache.colours import HUES
from gouache.data.imagefolder import read_records
from gouache.errors import GouacheError
from gouache.evaluate.understanding import (
    SuitePrompt,
    check_suite,
    format_understanding,
    judge_objects,
    load_suite,
    train_captions,
    understanding,
)
from gouache.sampling.options import SamplingOptions

pytestmark = pytest.mark.usefixtures("one_thread")

from test_evaluate import PixelFeatures  # noqa: E402  (the cheap stand-in for Inception)


def test_shipped_suite_sizes_and_fields():
    suite = load_suite()
    para = [p for p in suite if p.kind == "paraphrase"]
    comp = [p for p in suite if p.kind == "composition"]
    assert len(para) >= 50 and len(comp) >= 40
    assert len({p.prompt for p in suite}) == len(suite)  # no prompt twice
    for p in comp:
        assert p.colour in HUES and p.prompt.split()[0] == p.colour and p.category == p.colour
    assert all(p.colour is None for p in para)


def test_no_suite_prompt_is_a_training_caption_of_the_fixture(emoji_fixture):
    rows = read_records(emoji_fixture, split=None)
    captions = train_captions(rows)
    assert "banana" in captions and "an emoji of banana" in captions  # the templates are counted
    assert not {p.prompt.lower() for p in load_suite()} & captions


def test_check_suite_refuses_a_training_caption_and_an_unknown_label(emoji_fixture):
    rows = read_records(emoji_fixture, split=None)
    check_suite([SuitePrompt("a ripe banana", ("banana",), "paraphrase", "phrase")], rows)
    with pytest.raises(GouacheError, match="is a caption"):
        check_suite([SuitePrompt("an emoji of banana", ("banana",), "paraphrase", "phrase")], rows)
    with pytest.raises(GouacheError, match="not a label"):
        check_suite([SuitePrompt("a slice of pizza", ("pizza",), "paraphrase", "phrase")], rows)  # test split only
    with pytest.raises(GouacheError, match="not a label"):
        check_suite(load_suite(), rows)


def test_judge_objects_looks_at_the_top_k_labels():
    ref = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    labels = ["a", "b", "c", "d"]
    q = torch.tensor([[0.1], [2.9]])
    assert judge_objects(q, [("b",), ("b",)], ref, labels, k=2) == [True, False]
    assert judge_objects(q, [("a",), ("d",)], ref, labels, k=1) == [True, True]
    exclude = torch.tensor([[True, False, False, False], [False, False, False, True]])
    assert judge_objects(q, [("a",), ("d",)], ref, labels, k=1, exclude=exclude) == [False, False]


SMALL_SUITE = [
    SuitePrompt("a ripe banana", ("banana",), "paraphrase", "phrase"),
    SuitePrompt("kitten", ("cat face",), "paraphrase", "synonym"),
    SuitePrompt("blue banana", ("banana",), "composition", "blue", "blue"),
    SuitePrompt("purple sun", ("sun",), "composition", "purple", "purple"),
]


def test_understanding_runs_and_writes_rows_grids_and_report(tiny_pipeline, tiny_model_dir, emoji_fixture,
                                                              tmp_path):
    data = Path(shutil.copytree(emoji_fixture, tmp_path / "emoji"))
    out = tmp_path / "eval"
    kw = dict(seeds=2, options=SamplingOptions(steps=2), out=out, distractors=10, suite=SMALL_SUITE, pipeline=tiny_pipeline,
              extractor=PixelFeatures(), progress=False)
    report = understanding(tiny_model_dir, data, **kw)
    for kind in ("paraphrase", "composition"):
        for row in ("model", "ceiling", "chance"):
            r = report[kind][row]
            assert r["count"] == 4 and 0 <= r["rate"] <= min(r["object"], r["colour"]) + 1e-9
        assert set(report[kind]["model"]["categories"]) == {p.category for p in SMALL_SUITE if p.kind == kind}
    # the ceiling's pictures are real images recoloured to the asked colour: the colour always holds
    assert report["composition"]["ceiling"]["colour"] == 1.0
    assert report["paraphrase"]["ceiling"]["colour"] == 1.0  # no colour asked
    assert len(report["prompts"]) == 8 and {p["seed"] for p in report["prompts"]} == set(range(8))
    assert json.loads((out / "report.json").read_text())["suite"] == "understanding"
    assert (out / "understanding_paraphrase.png").exists() and (out / "understanding_composition.png").exists()
    cached = list((data / ".gouache_cache").glob("pixels-understanding-*"))
    assert len(cached) == 2  # colour and grey references, reused by the next run
    again = understanding(tiny_model_dir, data, **kw)
    assert again["paraphrase"] == report["paraphrase"] and again["composition"] == report["composition"]
    text = format_understanding(report)
    assert "ceiling" in text and "chance" in text and "purple" in text


def test_cli_suite_on_data_it_was_not_written_for_is_a_one_line_error(tiny_model_dir, emoji_fixture, capsys):
    from gouache.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["eval", "--suite", "understanding", "--data", str(emoji_fixture), "--model", str(tiny_model_dir),
              "--device", "cpu"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gouache: error: understanding suite:") and "\n" not in err
