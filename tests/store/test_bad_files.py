"""Spoiled files where gouache keeps its own, under every command that reads them: one line,
exit 2, no traceback, no hang, and the work folder as it was (``refusals.assert_refused``).

The files: a model folder's config.json and ema.safetensors, a run folder's latest.txt,
state.json, train.safetensors and weights, an adapter and its .json, a student's student.json,
and a recipe (a data folder's files have their own table, tests/data). Each is spoiled the ways a file can be: a
folder or a named pipe in its place, too large, not UTF-8, nested 100,000 deep, a number of
5000 digits, a field of the wrong type, a network too costly to build, tensors of the wrong
shape or not finite, a header that promises more bytes than the file has.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file, save_file

from refusals import assert_refused, assert_unchanged, snapshot

TINY_RECIPE = """steps = 2
batch_size = 4
lr = 1e-3
warmup = 1
log_every = 1
checkpoint_every = 2
sample_every = 0
eval_every = 0
device = "cpu"
compile = "off"
[model]
preset = "tiny"
"""
CHECKPOINT = "checkpoints/step-00000002"  # the last checkpoint of every run made here


# --- the files, made once --------------------------------------------------------------------

def _cli(argv: list) -> None:
    from gouache.cli.main import main

    main([str(a) for a in argv])


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny_model_dir, text_encoder) -> dict[str, Path]:
    """A data set, a recipe, a training run, a LoRA run, a distillation run and the tiny model
    joined to its student: what the cases copy into their work folder and spoil."""
    from gouache.data.build.shapes import build_shapes_dataset
    from gouache.data.prompts import embed_dataset

    root = tmp_path_factory.mktemp("made")
    data = root / "data"
    build_shapes_dataset(data, size=16, per_caption=2, seed=0, progress=False)
    embed_dataset(data, text_encoder)
    recipe = root / "recipe.toml"
    recipe.write_text(TINY_RECIPE)
    (root / "distill.toml").write_text("steps = 2\nbatch_size = 4\nsample_every = 0\n")
    wider = root / "wider.toml"
    wider.write_text(TINY_RECIPE + "channels = [16, 24]\n")
    with pytest.MonkeyPatch.context() as mp:
        _share_encoder(mp, text_encoder)
        _cli(["train", "--config", recipe, "--data", data, "--out", root / "run"])
        _cli(["train", "--config", wider, "--data", data, "--out", root / "wider-run"])
        _cli(["train", "--config", recipe, "--data", data, "--out", root / "lora", "--lora", "2",
              "--init", tiny_model_dir, "--prior", "0", "--steps", "2", "--checkpoint-every", "2"])
        _cli(["distill", tiny_model_dir, "--data", data, "--out", root / "distill", "--steps", "2",
              "--batch-size", "4", "--checkpoint-every", "2", "--sample-every", "0", "--device", "cpu"])
        _cli(["export", tiny_model_dir, "--out", root / "student-model", "--student", root / "distill"])
    for run in ("run", "wider-run", "lora", "distill"):
        assert (root / run / "latest.txt").read_text().strip() == CHECKPOINT
    return {"data": data, "recipe.toml": recipe, "distill.toml": root / "distill.toml", "run": root / "run", "wider-run": root / "wider-run",
            "lora": root / "lora", "distill": root / "distill", "student-model": root / "student-model",
            "model": tiny_model_dir}


def _share_encoder(mp: pytest.MonkeyPatch, encoder) -> None:
    """Every command gets the session's prompt encoder instead of loading it again."""
    for module in ("gouache.training.train", "gouache.training.distill", "gouache.sampling.pipeline"):
        mp.setattr(f"{module}.TextEncoder", lambda *a, **k: encoder)


# --- ways to spoil a file ---------------------------------------------------------------------

def fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def deep(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000)


def deep_small(path: Path) -> None:
    """Nested 30,000 deep: within the 64 KB that an adapter's or a student's .json may be."""
    path.write_text("[" * 30_000 + "]" * 30_000)


def deep_toml(path: Path) -> None:
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")


def latin1(path: Path) -> None:
    path.write_bytes(b"# caf\xe9\n" + path.read_bytes())  # a Latin-1 byte first


def too_large(path: Path) -> None:
    path.write_bytes(b" " * (2 << 20) + path.read_bytes())  # still valid JSON or TOML: too large all the same


def a_list(path: Path) -> None:
    path.write_text("[1, 2, 3]")


def digits(field: str) -> Callable[[Path], None]:
    """The whole number ``field`` written with 5000 digits."""
    def spoil(path: Path) -> None:
        d = json.loads(path.read_text())
        _set(d, field, "@@")
        path.write_text(json.dumps(d).replace('"@@"', "7" * 5000))
    return spoil


def fields(**changes) -> Callable[[Path], None]:
    """JSON fields changed (``a__b`` is ``a["b"]``; the value ``DROP`` removes the field)."""
    def spoil(path: Path) -> None:
        d = json.loads(path.read_text())
        for key, value in changes.items():
            _set(d, key.replace("__", "."), value)
        path.write_text(json.dumps(d))
    return spoil


DROP = object()


def _set(d: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        d = d[int(p)] if isinstance(d, list) else d[p]
    if value is DROP:
        del d[last]
    elif isinstance(d, list):
        d[int(last)] = value
    else:
        d[last] = value


def tensors(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """A safetensors file rewritten with ``change`` applied to its tensors, metadata kept."""
    def spoil(path: Path) -> None:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
        sd = load_file(path)
        change(sd)
        save_file({k: v.contiguous() for k, v in sd.items()}, path, metadata=meta)
    return spoil


def lying_header(path: Path) -> None:
    """The header's length raised by the file's: it declares more bytes than the file has."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    path.write_bytes((n + len(data)).to_bytes(8, "little") + data[8:])


def truncated(path: Path) -> None:
    """The last tensor's bytes cut short: its offsets point past the end."""
    path.write_bytes(path.read_bytes()[:-16])


def text(body: str | bytes) -> Callable[[Path], None]:
    def spoil(path: Path) -> None:
        path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return spoil


def nan_first(sd: dict) -> None:
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.numel())
    sd[key] = torch.full_like(sd[key], float("nan"))


def reshaped(name: str) -> Callable[[dict], None]:
    """Tensor ``name`` (or the first whose name ends with it) one longer in its first dimension."""
    def change(sd: dict) -> None:
        key = name if name in sd else next(k for k in sd if k.endswith(name))
        v = sd[key]
        sd[key] = torch.cat([v, v[:1]]) if v.dim() else v.reshape(1)
    return change


def as_int(sd: dict) -> None:
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.dim())
    sd[key] = sd[key].to(torch.int32)


def extra(sd: dict) -> None:
    sd["stray"] = torch.zeros(3)


def drop(name: str) -> Callable[[dict], None]:
    def change(sd: dict) -> None:
        del sd[name]
    return change


def garbage_rng(sd: dict) -> None:
    sd["rng.data"] = torch.full_like(sd["rng.data"], 255)


def foreign_train_state(made) -> Callable[[Path], None]:
    """Another run's train.safetensors (a wider network's AdamW moments) in this one's place."""
    def spoil(path: Path) -> None:
        shutil.copyfile(made["wider-run"] / CHECKPOINT / "train.safetensors", path)
    return spoil


def wider_weights(path: Path) -> None:
    from gouache.model.unet import PRESETS, UNet

    net = UNet(PRESETS["tiny"].from_dict(PRESETS["tiny"].to_dict() | {"channels": [16, 24]}))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path)


# --- the commands -------------------------------------------------------------------------------
# {x}: the copy of made[x] in the work folder; {made:x}: made[x] itself (never spoiled); {work}

GENERATE = ["generate", "x", "--model", "{model}", "--out", "{work}/out", "--device", "cpu"]
EXPORT = ["export", "{model}", "--out", "{work}/exported"]
SERVE = ["serve", "--model", "{model}", "--port", "0", "--device", "cpu"]
EVAL = ["eval", "--model", "{model}", "--data", "{made:data}", "-n", "2", "--out", "{work}/eval", "--device", "cpu"]
INIT = ["train", "--config", "{made:recipe.toml}", "--data", "{made:data}", "--out", "{work}/new", "--init", "{model}"]
DISTILL = ["distill", "{model}", "--data", "{made:data}", "--out", "{work}/new", "--steps", "2", "--device", "cpu"]
LORA_BASE = ["train", "--config", "{made:recipe.toml}", "--data", "{made:data}", "--out", "{work}/new", "--lora", "2",
             "--init", "{model}", "--prior", "0"]
RESUME = ["train", "--resume", "{run}", "--config", "{made:recipe.toml}", "--data", "{made:data}", "--steps", "4"]
RESUME_LORA = ["train", "--resume", "{lora}", "--config", "{made:recipe.toml}", "--data", "{made:data}", "--steps", "4",
               "--lora", "2", "--init", "{made:model}", "--prior", "0"]
RESUME_DISTILL = ["distill", "{made:model}", "--resume", "{distill}", "--data", "{made:data}", "--steps", "4",
                  "--batch-size", "4", "--sample-every", "0", "--device", "cpu"]
ADAPTER = "{lora}/" + CHECKPOINT + "/adapter.safetensors"
WITH_LORA = ["generate", "x", "--model", "{made:model}", "--lora", ADAPTER, "--out", "{work}/out", "--device", "cpu"]
WITH_LORA_RUN = ["generate", "x", "--model", "{made:model}", "--lora", "{lora}", "--out", "{work}/out", "--device", "cpu"]
MERGE_LORA = ["export", "{made:model}", "--out", "{work}/exported", "--merge-lora", ADAPTER]
SERVE_LORA = ["serve", "--model", "{made:model}", "--lora", ADAPTER, "--port", "0", "--device", "cpu"]
STUDENT = ["export", "{made:model}", "--out", "{work}/exported", "--student", "{distill}"]
STUDENT_MODEL = ["generate", "x", "--model", "{student-model}", "--out", "{work}/out", "--device", "cpu"]
RECIPE = ["train", "--config", "{recipe.toml}", "--data", "{made:data}", "--out", "{work}/new"]
RECIPE_DISTILL = ["distill", "{made:model}", "--config", "{distill.toml}", "--data", "{made:data}", "--out",
                  "{work}/new", "--device", "cpu"]


def _at(argv: list[str], **where: str) -> list[str]:
    """``argv`` with its {model} (or another placeholder) standing for another copy."""
    return [a.replace("{model}", where.get("model", "{model}")) for a in argv]


MODEL_COMMANDS = {"generate": GENERATE, "export": EXPORT, "eval": EVAL, "train --init": INIT, "distill": DISTILL,
                  "serve": SERVE, "train --lora --init": LORA_BASE}
RUN_COMMANDS = {"generate": _at(GENERATE, model="{run}"), "export": _at(EXPORT, model="{run}"),
                "eval": _at(EVAL, model="{run}"), "train --resume": RESUME}

CONFIG, EMA = "model/config.json", "model/ema.safetensors"
STATE, TRAIN = f"run/{CHECKPOINT}/state.json", f"run/{CHECKPOINT}/train.safetensors"

# (what is copied into the work folder, the file spoiled there, how, the command, what the line says)
CASES: list[tuple[str, str, Callable, list[str], str]] = [
    # a model folder's config.json, under every command that reads one
    *[("model", CONFIG, spoil, argv, said) for spoil, said in (
        (folder, "is a folder, not a regular file"),
        (fifo, "is a named pipe (FIFO), not a regular file"),
        (deep, "nested deeper than 32 levels"),
        (digits("unet.image_size"), "a number of 5000 digits"),
        (fields(unet__image_size=4096), "GiB of activations, more than 8 GiB"),
        (fields(unet__blocks_per_level=1_000_000), "parameters ("),
    ) for argv in MODEL_COMMANDS.values()],
    ("model", CONFIG, latin1, GENERATE, "is not UTF-8 text"),
    ("model", CONFIG, too_large, GENERATE, "bytes, more than such a file may be (1,048,576)"),
    ("model", CONFIG, a_list, EXPORT, "the top level must be an object, not a list"),
    ("model", CONFIG, fields(unet="abc"), GENERATE, "unet must be an object"),
    ("model", CONFIG, fields(unet=DROP), EVAL, "not a gouache model config"),
    ("model", CONFIG, fields(unet__channels=[1 << 20, 1 << 21]), EXPORT, "more than the 1,000,000,000"),
    ("model", CONFIG, fields(unet__text_dim=10**9), GENERATE, "parameters ("),
    ("model", CONFIG, fields(text_max_length="abc"), GENERATE, "text_max_length must be a whole number"),
    ("model", CONFIG, fields(text_model="/etc"), GENERATE, "text_model '/etc' must be"),
    ("model", CONFIG, fields(text_model="../encoder"), SERVE, "text_model '../encoder' must be"),
    ("model", CONFIG, fields(text_model="no-such-encoder"), GENERATE, "no such folder in"),
    # its weights
    *[("model", EMA, spoil, argv, said) for spoil, said in (
        (fifo, "is a named pipe (FIFO), not a regular file"),
        (wider_weights, "weights of another model shape"),
        (lying_header, "its header declares"),
        (tensors(nan_first), "not finite"),
    ) for argv in (GENERATE, EXPORT, INIT, DISTILL)],
    ("model", EMA, folder, GENERATE, "is a folder, not a regular file"),
    ("model", EMA, truncated, EXPORT, "past the"),
    ("model", EMA, text(b""), GENERATE, "not a readable safetensors file (only 0 bytes)"),
    ("model", EMA, text(b"\xff" * 8 + b"{}"), EXPORT, "its header declares"),
    ("model", EMA, tensors(extra), GENERATE, "1 unexpected (e.g. stray)"),
    ("model", EMA, tensors(as_int), EXPORT, "torch.int32, torch.float32 expected"),
    ("model", EMA, tensors(reshaped("stem.weight")), SERVE, "weights of another model shape: stem.weight"),
    ("model", EMA, tensors(nan_first), EVAL, "not finite"),
    ("model", EMA, wider_weights, LORA_BASE, "weights of another model shape"),
    # a run folder's latest.txt
    *[("run", "run/latest.txt", spoil, argv, said) for spoil, said in (
        (text("../x\n"), "must name a checkpoint inside the run folder"),
        (text("/etc/passwd\n"), "must name a checkpoint inside the run folder"),
    ) for argv in RUN_COMMANDS.values()],
    ("run", "run/latest.txt", text("checkpoints/step-00000099\n"), RUN_COMMANDS["generate"], "not a folder of"),
    ("run", "run/latest.txt", folder, RUN_COMMANDS["export"], "is a folder, not a regular file"),
    ("run", "run/latest.txt", fifo, RUN_COMMANDS["train --resume"], "is a named pipe (FIFO)"),
    ("run", "run/latest.txt", text(b"checkpoints/step-\xff\n"), RUN_COMMANDS["eval"], "is not UTF-8 text"),
    ("run", "run/latest.txt", text("x" * 5000), RUN_COMMANDS["generate"], "more than such a file may be (1,024)"),
    ("lora", "lora/latest.txt", text("../../x\n"), WITH_LORA_RUN, "must name a checkpoint inside the run folder"),
    ("lora", "lora/latest.txt", text("/etc/passwd\n"), RESUME_LORA, "must name a checkpoint inside the run folder"),
    # a run's state.json
    *[("run", STATE, spoil, RESUME, said) for spoil, said in (
        (folder, "is a folder, not a regular file"),
        (fifo, "is a named pipe (FIFO)"),
        (deep, "nested deeper than 32 levels"),
        (digits("step"), "a number of 5000 digits"),
        (latin1, "is not UTF-8 text"),
        (a_list, "the top level must be an object, not a list"),
        (fields(step=DROP), "step must be a whole number"),
        (fields(step="2"), "step must be a whole number"),
        (fields(step=-1), "step must be a whole number of 0 or more"),
        (fields(param_groups={"lr": 1}), "param_groups must be a list of objects"),
        (fields(param_groups=[]), "0 parameter groups, this run's optimiser has 1"),
        (fields(param_groups__0__lr="fast"), "lr must be like"),
        (fields(param_groups__0__betas=[0.9]), "betas must be like"),
        (fields(param_groups__0__lr=DROP), "parameter group 0 lacks 'lr'"),
        (fields(param_groups__0__params=[0, 1]), "holds 2 parameters"),
        (fields(train_config=DROP), "train_config must be an object"),
    )],
    ("run", STATE, fields(step="two"), RUN_COMMANDS["eval"], "step must be a whole number"),  # eval records it
    # a run's train.safetensors
    *[("run", TRAIN, spoil, RESUME, said) for spoil, said in (
        (tensors(reshaped("state.3.exp_avg")), "optimizer state of another model shape: state.3.exp_avg"),
        (tensors(reshaped("state.0.step")), "optimizer state of another model shape: state.0.step"),
        (tensors(drop("rng.noise")), "1 missing, 0 unexpected (e.g. rng.noise)"),
        (tensors(reshaped("rng.data")), "rng.data is"),
        (tensors(garbage_rng), "rng.data is not a state of this generator"),
        (tensors(extra), "0 missing, 1 unexpected (e.g. stray)"),
        (tensors(as_int), "torch.int32, torch.float32 expected"),
        (fifo, "is a named pipe (FIFO)"),
        (lying_header, "its header declares"),
        (truncated, "past the"),
    )],
    ("run", f"run/{CHECKPOINT}/model.safetensors", wider_weights, RESUME, "weights of another model shape"),
    ("run", f"run/{CHECKPOINT}/model.safetensors", tensors(nan_first), RESUME, "not finite"),
    ("run", f"run/{CHECKPOINT}/ema.safetensors", fifo, RESUME, "is a named pipe (FIFO)"),
    ("run", f"run/{CHECKPOINT}/config.json", fields(unet__image_size=4096), RUN_COMMANDS["generate"],
     "GiB of activations"),
    # a LoRA run: its adapters, state and moments
    ("lora", f"lora/{CHECKPOINT}/train.safetensors", tensors(reshaped("state.0.exp_avg_sq")), RESUME_LORA,
     "optimizer state of another model shape"),
    ("lora", f"lora/{CHECKPOINT}/state.json", fields(step="two"), RESUME_LORA, "step must be a whole number"),
    ("lora", f"lora/{CHECKPOINT}/adapter_raw.safetensors", tensors(nan_first), RESUME_LORA, "not finite"),
    ("lora", f"lora/{CHECKPOINT}/adapter_raw.json", deep_small, RESUME_LORA, "nested deeper than 32 levels"),
    # an adapter and its .json, under every command that loads one
    *[("lora", f"lora/{CHECKPOINT}/adapter.{ext}", spoil, argv, said) for ext, spoil, said in (
        ("json", fields(rank=1_000_000_000), "rank must be at least 1 and at most 256, got 1000000000"),
        ("safetensors", tensors(nan_first), "not finite (NaN or infinity)"),
        ("json", folder, "is a folder, not a regular file"),
        ("json", fifo, "is a named pipe (FIFO)"),
    ) for argv in (WITH_LORA, MERGE_LORA, SERVE_LORA)],
    ("lora", f"lora/{CHECKPOINT}/adapter.json", deep, WITH_LORA, "is 200,000 bytes, more than such a file may be"),
    ("lora", f"lora/{CHECKPOINT}/adapter.json", deep_small, WITH_LORA, "nested deeper than 32 levels"),
    ("lora", f"lora/{CHECKPOINT}/adapter.json", digits("rank"), MERGE_LORA, "a number of 5000 digits"),
    ("lora", f"lora/{CHECKPOINT}/adapter.json", latin1, WITH_LORA, "is not UTF-8 text"),
    ("lora", f"lora/{CHECKPOINT}/adapter.json", a_list, WITH_LORA, "the top level must be an object"),
    ("lora", f"lora/{CHECKPOINT}/adapter.json", too_large, WITH_LORA, "more than such a file may be (65,536)"),
    ("lora", f"lora/{CHECKPOINT}/adapter.json", fields(alpha=1e300), WITH_LORA, "alpha must be above 0 and at most"),
    ("lora", f"lora/{CHECKPOINT}/adapter.json", fields(convs="yes"), MERGE_LORA, "convs must be true or false"),
    ("lora", f"lora/{CHECKPOINT}/adapter.json", fields(base_sha256="z" * 64), WITH_LORA, "64 hex digits"),
    ("lora", f"lora/{CHECKPOINT}/adapter.json", fields(rank=3), WITH_LORA, "adapter of another model shape"),
    ("lora", f"lora/{CHECKPOINT}/adapter.safetensors", tensors(reshaped(".up")), MERGE_LORA,
     "adapter of another model shape"),
    ("lora", f"lora/{CHECKPOINT}/adapter.safetensors", tensors(as_int), WITH_LORA, "torch.int32, torch.float32"),
    ("lora", f"lora/{CHECKPOINT}/adapter.safetensors", lying_header, WITH_LORA, "its header declares"),
    ("lora", f"lora/{CHECKPOINT}/adapter.safetensors", fifo, MERGE_LORA, "is a named pipe (FIFO)"),
    # a distillation run, joined to its teacher or resumed
    *[("distill", f"distill/{CHECKPOINT}/student.json", spoil, argv, said) for spoil, said in (
        (folder, "is a folder, not a regular file"),
        (deep_small, "nested deeper than 32 levels"),
        (latin1, "is not UTF-8 text"),
        (fields(guidance="x"), "guidance must be a finite number"),
        (fields(teacher_sha256=DROP), "not a student description"),
    ) for argv in (STUDENT, RESUME_DISTILL)],
    ("distill", f"distill/{CHECKPOINT}/ema.safetensors", wider_weights, STUDENT, "weights of another model shape"),
    ("distill", f"distill/{CHECKPOINT}/config.json", fields(unet__blocks_per_level=1_000_000), STUDENT,
     "parameters ("),
    ("distill", f"distill/{CHECKPOINT}/train.safetensors", tensors(reshaped("state.5.exp_avg")), RESUME_DISTILL,
     "optimizer state of another model shape"),
    ("distill", f"distill/{CHECKPOINT}/target.safetensors", fifo, RESUME_DISTILL, "is a named pipe (FIFO)"),
    ("distill", f"distill/{CHECKPOINT}/state.json", fields(param_groups=[{}]), RESUME_DISTILL,
     "parameter group 0 lacks"),
    # a model folder with its student
    ("student-model", "student-model/student/config.json", fields(unet__image_size=4096), STUDENT_MODEL,
     "GiB of activations"),
    ("student-model", "student-model/student/student.json", latin1, STUDENT_MODEL, "is not UTF-8 text"),
    ("student-model", "student-model/student/ema.safetensors", fifo, STUDENT_MODEL, "is a named pipe (FIFO)"),
    # a recipe
    *[(copy, copy, spoil, argv, said) for spoil, said in (
        (folder, "is a folder, not a regular file"),
        (fifo, "is a named pipe (FIFO)"),
        (latin1, "is not UTF-8 text"),
        (too_large, "more than such a file may be (1,048,576)"),
        (deep_toml, "nested deeper than 32 levels"),
        (text("steps = " + "7" * 5000 + "\n"), "not valid TOML"),
    ) for copy, argv in (("recipe.toml", RECIPE), ("distill.toml", RECIPE_DISTILL))],
]


def _ids() -> list[str]:
    """file-spoil-command, e.g. config.json-fifo-generate--model."""
    out = []
    for _, target, spoil, argv, _ in CASES:
        how = getattr(spoil, "__qualname__", "").split(".")[0]
        flags = "".join(a for a in argv if a in ("--model", "--resume", "--init", "--lora", "--merge-lora",
                                                  "--student", "--config"))
        out.append(f"{target.split('/')[-1]}-{how}-{argv[0]}{flags}")
    return [f"{name}-{k}" for k, name in enumerate(out)]


def _expand(arg: str, work: Path, made: dict[str, Path]) -> str:
    for name, path in made.items():
        arg = arg.replace(f"{{made:{name}}}", str(path)).replace(f"{{{name}}}", str(work / name))
    return arg.replace("{work}", str(work))


@pytest.mark.parametrize("copy, target, spoil, argv, said", CASES, ids=_ids())
def test_a_spoiled_file_is_one_line(copy, target, spoil, argv, said, made, text_encoder, tmp_path, capsys,
                                    monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(made[copy], work / copy) if made[copy].is_dir() else shutil.copy(made[copy], work / copy)
    spoil(work / target)
    _share_encoder(monkeypatch, text_encoder)
    line = assert_refused([_expand(a, work, made) for a in argv], said, work, capsys)
    assert str(work) in line  # it names the file (or the folder) it found spoiled


def test_the_table_covers_every_reader_and_command():
    assert len(CASES) >= 70
    spoiled = {target.split("/")[-1] for _, target, *_ in CASES}
    assert {"config.json", "ema.safetensors", "latest.txt", "state.json", "train.safetensors", "adapter.json",
            "adapter.safetensors", "student.json", "recipe.toml", "distill.toml"} <= spoiled
    used = {tuple(argv) for *_, argv, _ in CASES}
    commands = (GENERATE, EXPORT, SERVE, EVAL, INIT, DISTILL, LORA_BASE, RESUME, RESUME_LORA, RESUME_DISTILL,
                WITH_LORA, WITH_LORA_RUN, MERGE_LORA, SERVE_LORA, STUDENT, STUDENT_MODEL, RECIPE, RECIPE_DISTILL)
    assert all(tuple(c) in used for c in commands)


def test_another_runs_optimizer_state_is_one_line_not_a_crash(made, tmp_path):
    """A run whose train.safetensors holds a wider network's AdamW state: the fused AdamW step
    was handed moments of the wrong shapes (a segfault). In a process of its own, to be safe."""
    work = tmp_path / "work"
    shutil.copytree(made["run"], work / "run")
    foreign_train_state(made)(work / "run" / CHECKPOINT / "train.safetensors")
    before = snapshot(work)
    argv = ["train", "--resume", work / "run", "--config", made["recipe.toml"], "--data", made["data"], "--steps", "4"]
    done = subprocess.run([sys.executable, "-m", "gouache", *map(str, argv)], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("gouache: error:"), lines
    assert "train.safetensors: optimizer state of another model shape" in lines[0], lines
    assert_unchanged(before, work)

