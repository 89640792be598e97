"""Nothing is lost that the user did not ask to replace: every command checks where it writes
before it starts, refuses an output that is one of its inputs (even with --overwrite), an
existing file or a folder of something else (unless --overwrite), and a run folder that holds
a run (unless --resume); while one process trains into a run folder, a second is refused.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from gouache.cli.main import main
from gouache.store.lock import locked
from refusals import assert_refused, snapshot

RECIPE = ('steps = 2\nbatch_size = 4\nlog_every = 1\ncheckpoint_every = 1\nsample_every = 0\neval_every = 0\n'
          'device = "cpu"\n[model]\npreset = "tiny"\n')


def _run(folder: Path, model: Path, step: int, config: str, recipe: dict) -> None:
    """A run folder as training leaves it (its recipe, log, latest.txt and one checkpoint)."""
    checkpoint = folder / "checkpoints" / f"step-{step:08d}"
    checkpoint.mkdir(parents=True)
    for name in ("config.json", "ema.safetensors"):
        shutil.copy(model / name, checkpoint / name)
    (checkpoint / "state.json").write_text(json.dumps({"step": step}))
    (folder / config).write_text(json.dumps(recipe))
    (folder / "log.csv").write_text("time,step,loss\n1,1,0.5\n")
    (folder / "latest.txt").write_text(f"checkpoints/step-{step:08d}\n")


@pytest.fixture()
def work(tmp_path, tiny_model_dir, shapes_dir) -> Path:
    """A work folder (the data set ``shapes`` in it) with what a user may already have:

        a.png, old.png, pic-1.png, sheet-grid.png   pictures
        model/, model-out/                          a model folder, an earlier export
        run/, lora/, distill/                       runs at steps 3, 2 and 5
        pics/                                       the user's own folder
        mine/                                       the user's own captioned pictures
        shards/                                     an earlier `data shard`
        site/                                       an earlier `export --web`
        embed/                                      pictures whose embeddings file is a folder
    """
    picture = next(shapes_dir.rglob("*.png"))
    for name in ("a.png", "old.png", "pic-1.png", "sheet-grid.png"):
        shutil.copy(picture, tmp_path / name)
    shutil.copytree(tiny_model_dir, tmp_path / "model")
    shutil.copytree(tiny_model_dir, tmp_path / "model-out")
    _run(tmp_path / "run", tiny_model_dir, 3, "train_config.json", {"lora": 0})
    _run(tmp_path / "lora", tiny_model_dir, 2, "train_config.json", {"lora": 4})
    _run(tmp_path / "distill", tiny_model_dir, 5, "distill_config.json", {"teacher": "model"})
    for folder, files in (("pics", ("mine.png", "notes.txt")), ("shards", ("000000.tar",)),
                          ("site", ("index.html", "files.json"))):
        (tmp_path / folder).mkdir()
        for name in files:
            (tmp_path / folder / name).write_bytes(b"the user's")
    for folder in ("mine", "embed"):
        (tmp_path / folder / "images").mkdir(parents=True)
        shutil.copy(picture, tmp_path / folder / "images" / "x.png")
        (tmp_path / folder / "metadata.jsonl").write_text('{"file_name": "images/x.png", "text": "red circle"}\n')
    (tmp_path / "embed" / "prompt_embeddings.safetensors").mkdir()
    (tmp_path / "recipe.toml").write_text(RECIPE)
    return tmp_path


TRAIN = ["train", "--config", "{w}/recipe.toml", "--data", "{w}/shapes"]
LORA = ["train", "--config", "{w}/recipe.toml", "--data", "{w}/shapes", "--lora", "--init", "{w}/model"]
DISTILL = ["distill", "{w}/model", "--data", "{w}/shapes", "--device", "cpu"]
GEN = ["generate", "x", "--model", "{w}/model", "--device", "cpu"]
EVAL = ["eval", "--model", "{w}/model", "--data", "{w}/shapes", "--device", "cpu"]
CASES = [
    # generate: an input is never an output; a file there is replaced only with --overwrite
    (GEN + ["--image", "{w}/a.png", "--out", "{w}/a.png"], "is also the --image"),
    (GEN + ["--image", "{w}/a.png", "--out", "{w}/a.png", "--overwrite"], "is also the --image"),
    (GEN + ["--image", "{w}/a.png", "--mask", "{w}/old.png", "--out", "{w}/old.png", "--overwrite"],
     "is also the --mask"),
    (GEN + ["--out", "{w}/old.png"], "old.png exists; name another file, or add --overwrite"),
    (GEN + ["-n", "3", "--out", "{w}/pic.png"], "pic-1.png exists"),
    (GEN + ["-n", "2", "--out", "{w}/sheet.png"], "sheet-grid.png exists"),
    (GEN + ["--out", "{w}/new.png", "--trajectory", "{w}/new.png"], "is also a picture of --out"),
    (GEN + ["--out", "{w}/new.png", "--trajectory", "{w}/new.png", "--overwrite"], "is also a picture of --out"),
    (GEN + ["-n", "2", "--out", "{w}/new.png", "--trajectory", "{w}/new-1.png"], "is also a picture of --out"),
    (GEN + ["-n", "2", "--out", "{w}/new.png", "--trajectory", "{w}/new-grid.png", "--overwrite"],
     "is also a picture of --out"),
    (GEN + ["--out", "{w}/pics", "--trajectory", "{w}/pics/x-seed0.png"], "is also a picture of --out"),
    (GEN + ["--out", "{w}/new.png", "--trajectory", "{w}/old.png"], "--trajectory"),
    (GEN + ["--out", "{w}/model/pic.png"], "is inside the --model"),
    (GEN + ["--out", "{w}/model", "--overwrite"], "is also the --model"),
    (["generate", "x", "--model", "{w}/run", "--out", "{w}/run/pictures"], "is inside the --model"),
    (GEN + ["--lora", "{w}/lora", "--out", "{w}/lora/pictures"], "is inside the --lora adapter"),
    # noise
    (["noise", "{w}/a.png", "--out", "{w}/a.png", "--overwrite"], "is also the image"),
    (["noise", "{w}/a.png", "--out", "{w}/old.png"], "old.png exists"),
    # train: a run is continued only with --resume; nothing else is written over
    (TRAIN + ["--out", "{w}/run"], "holds a training run at step 3; continue it with --resume"),
    (TRAIN + ["--out", "{w}/lora"], "holds a LoRA run at step 2; name another folder"),
    (TRAIN + ["--out", "{w}/distill"], "holds a distillation run at step 5; name another folder"),
    (TRAIN + ["--out", "{w}/pics"], "is not empty"),
    (TRAIN + ["--out", "{w}/shapes"], "is also the --data"),
    (TRAIN + ["--out", "{w}/shapes/run"], "is inside the --data"),
    (TRAIN + ["--init", "{w}/model", "--out", "{w}/model/run"], "is inside the --init model"),
    (TRAIN + ["--resume", "{w}/run", "--out", "{w}/lora"], "holds a LoRA run at step 2"),
    (TRAIN + ["--resume", "{w}/run", "--out", "{w}/run/again"], "is inside the --resume run"),
    # LoRA runs
    (LORA + ["--out", "{w}/lora"], "holds a LoRA run at step 2; continue it with --resume"),
    (LORA + ["--out", "{w}/run"], "holds a training run at step 3; name another folder"),
    (LORA + ["--out", "{w}/model/lora"], "is inside the --init model"),
    # distill
    (DISTILL + ["--out", "{w}/distill"], "holds a distillation run at step 5; continue it with --resume"),
    (DISTILL + ["--out", "{w}/run"], "holds a training run at step 3; name another folder"),
    (DISTILL + ["--out", "{w}/model/student"], "is inside the teacher"),
    (DISTILL + ["--out", "{w}/pics"], "is not empty"),
    # export: a folder is replaced only with --overwrite, and never a run, a checkpoint or an input
    (["export", "{w}/model", "--out", "{w}/model-out"], "is not empty (it holds config.json and more)"),
    (["export", "{w}/model", "--out", "{w}/model", "--overwrite"], "is also the exported folder"),
    (["export", "{w}/run", "--out", "{w}/run/checkpoints/step-00000003", "--overwrite"], "is inside the exported"),
    (["export", "{w}/run/checkpoints/step-00000003", "--out", "{w}/run/checkpoints/step-00000003", "--fp32"],
     "is also the exported folder"),
    (["export", "{w}/model", "--out", "{w}/run", "--overwrite"], "holds a run or one of its checkpoints"),
    (["export", "{w}/model", "--out", "{w}/distill/checkpoints/step-00000005", "--overwrite"],
     "holds a run or one of its checkpoints"),
    (["export", "{w}/model", "--out", "{w}", "--overwrite"], "holds the exported folder"),
    (["export", "{w}/model", "--out", ".", "--overwrite"], "holds the current folder"),
    (["export", "{w}/model", "--student", "{w}/distill", "--out", "{w}/model-out"], "is not empty"),
    (["export", "{w}/model", "--student", "{w}/distill", "--out", "{w}/distill/model"], "inside the --student run"),
    (["export", "{w}/model", "--merge-lora", "{w}/lora", "--out", "{w}/lora/merged"], "inside the --merge-lora"),
    (["export", "{w}/model", "--merge-lora", "{w}/lora", "--out", "{w}/model-out"], "is not empty"),
    (["export", "{w}/model", "--web", "{w}/site"], "is not empty (it holds files.json and more)"),
    (["export", "{w}/model", "--web", "{w}/model", "--overwrite"], "is also the exported folder"),
    (["export", "{w}/run", "--web", "{w}/run/site", "--overwrite"], "is inside the exported folder"),
    # data: a folder of something else is built into only with --overwrite
    (["data", "emoji", "--out", "{w}/pics"], "is not empty"),
    (["data", "emoji", "--source", "png", "--out", "{w}/mine"], "is not empty"),
    (["data", "emoji", "--out", "{w}/old.png"], "is a file, not a folder"),
    (["data", "shapes", "--out", "{w}/mine"], "is not empty"),
    (["data", "shapes", "--out", "{w}/model-out"], "or add --overwrite"),
    (["data", "shard", "{w}/shapes", "--out", "{w}/pics"], "is not empty"),
    (["data", "shard", "{w}/shapes", "--out", "{w}/shapes"], "is also the data folder"),
    (["data", "shard", "{w}/shapes", "--out", "{w}/shards"], "already holds .tar shards"),
    (["data", "embed", "{w}/embed"], "prompt_embeddings.safetensors is a folder"),
    # eval
    (EVAL + ["--out", "{w}/pics"], "is not empty"),
    (EVAL + ["--out", "{w}/model/eval"], "is inside the --model"),
    (EVAL + ["--out", "{w}/shapes"], "is also the --data"),
    (EVAL + ["--out", "{w}/old.png"], "is a file, not a folder"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a)[:80] for a, _ in CASES])
def test_an_output_that_would_lose_something_is_refused(argv, message, work, capsys):
    assert_refused([a.format(w=work) for a in argv], message, work, capsys)


def test_the_table_covers_every_command_that_writes():
    commands = {" ".join(a[:2]) if a[0] == "data" else a[0] for a, _ in CASES}
    assert {"generate", "noise", "train", "distill", "export", "eval", "data emoji", "data shapes", "data shard",
            "data embed"} <= commands
    assert any("--lora" in a for a, _ in CASES) and any("--web" in a for a, _ in CASES)
    assert len(CASES) >= 40


@pytest.mark.parametrize("argv", [TRAIN + ["--resume", "{w}/run"], LORA + ["--resume", "{w}/lora"],
                                  DISTILL + ["--resume", "{w}/distill"], TRAIN + ["--out", "{w}/run/../run-b"]])
def test_a_second_process_is_refused_while_one_trains_into_the_folder(argv, work, capsys):
    folder = Path(argv[-1].format(w=work))
    with locked(folder):  # this test's process holds it, as a trainer would
        line = assert_refused([a.format(w=work) for a in argv], "is in use by another process", work, capsys)
    assert str(folder) in line and "(pid " in line


def _paint(work: Path, *extra: str) -> None:
    main(["generate", "red apple", "--model", str(work / "model"), "--steps", "1", "--device", "cpu", *extra])


def test_generate_into_a_folder_takes_the_next_free_name(work, capsys):
    _paint(work, "-n", "2", "--out", str(work / "pics"))
    first = snapshot(work / "pics")
    _paint(work, "-n", "2", "--out", str(work / "pics"))
    names = sorted(p.name for p in (work / "pics").iterdir())
    assert names == ["mine.png", "notes.txt", "red-apple-grid-2.png", "red-apple-grid.png", "red-apple-seed0-2.png",
                     "red-apple-seed0.png", "red-apple-seed1-2.png", "red-apple-seed1.png"]
    assert {k: v for k, v in snapshot(work / "pics").items() if k in first} == first  # nothing replaced
    _paint(work, "-n", "2", "--out", str(work / "pics"), "--overwrite")  # replaces the plain names
    assert len(list((work / "pics").iterdir())) == 8


def test_overwrite_replaces_a_named_file_and_its_siblings(work, capsys):
    before = (work / "pic-1.png").read_bytes()
    _paint(work, "-n", "2", "--out", str(work / "pic.png"), "--trajectory", str(work / "old.png"), "--overwrite")
    assert (work / "pic-1.png").read_bytes() != before and (work / "pic-grid.png").is_file()
    assert Image.open(work / "old.png").width > 16  # the strip now
    main(["noise", str(work / "a.png"), "--out", str(work / "old.png"), "--overwrite"])
    assert not list(work.glob(".*.tmp"))


def test_export_overwrite_replaces_the_whole_folder(work, capsys):
    (work / "model-out" / "notes.txt").write_text("left from before")
    main(["export", str(work / "model"), "--out", str(work / "model-out"), "--overwrite"])
    assert sorted(p.name for p in (work / "model-out").iterdir()) == ["config.json", "ema.safetensors"]
    assert not [p for p in work.iterdir() if p.name.startswith(".model-out")]  # no temporary sibling left
    main(["export", str(work / "run"), "--out", str(work / "new")])  # a new folder needs no flag
    assert (work / "new" / "ema.safetensors").is_file()


def test_a_data_set_is_rebuilt_in_its_own_folder_and_overwrite_builds_over_another(work, capsys):
    main(["data", "shapes", "--out", str(work / "drawn"), "--size", "16", "--per-caption", "1"])
    before = snapshot(work / "drawn")
    main(["data", "shapes", "--out", str(work / "drawn"), "--size", "16", "--per-caption", "1"])
    assert snapshot(work / "drawn") == before  # its own output: accepted, the same bytes
    main(["data", "shapes", "--out", str(work / "pics"), "--size", "16", "--per-caption", "1", "--overwrite"])
    assert (work / "pics" / "notes.txt").read_bytes() == b"the user's" and (work / "pics" / "shapes.json").is_file()


def test_data_emoji_goes_on_in_its_own_earlier_build(work, emoji_svg_fixture, monkeypatch, capsys):
    """An earlier build (its manifest.json) is updated in place: the check lets it through, and
    nothing in it is touched before the packages are read."""
    import gouache.data.build.emoji as emoji

    class Fetched(Exception):
        pass

    def fetch_all(*args, **kwargs):
        raise Fetched

    monkeypatch.setattr(emoji, "fetch_all", fetch_all)
    shutil.copytree(emoji_svg_fixture, work / "built")
    before = snapshot(work / "built")
    with pytest.raises(Fetched):
        main(["data", "emoji", "--out", str(work / "built"), "--cache-dir", str(work / "npm")])
    assert snapshot(work / "built") == before


def test_eval_writes_over_its_own_earlier_report(work, monkeypatch, capsys):
    import gouache.evaluate.report as report

    (work / "pics" / "report.json").write_text("{}")  # now an earlier report's folder
    monkeypatch.setattr(report, "evaluate", lambda *a, **k: {"out": k["out"]})
    monkeypatch.setattr(report, "format_report", lambda r: "measured")
    main(["eval", "--model", str(work / "model"), "--data", str(work / "shapes"), "--out", str(work / "pics")])
    assert "measured" in capsys.readouterr().out


def test_train_starts_again_where_a_start_saved_no_checkpoint(work, capsys):
    """A start that died before its first checkpoint (its recipe and log only) is this command's
    own: run again, it starts there from step 0."""
    (work / "fresh").mkdir()
    (work / "fresh" / "train_config.json").write_text("{}")
    (work / "fresh" / "log.csv").write_text("time,step,loss\n")
    main([a.format(w=work) for a in TRAIN] + ["--out", str(work / "fresh"), "--steps", "1"])
    assert (work / "fresh" / "checkpoints" / "step-00000001").is_dir()


def test_export_into_a_new_folder_below_the_current_one(work, monkeypatch, capsys):
    monkeypatch.chdir(work)  # as `make web` exports into out/web from the repository's root
    main(["export", "model", "--out", "exported/model"])
    assert (work / "exported" / "model" / "ema.safetensors").is_file()
