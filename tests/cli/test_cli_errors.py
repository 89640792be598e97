"""Bad input to every command: exit code 2, one line on stderr naming the problem, no traceback,
and nothing written (no half-made run, no stray temporary file).

Each case runs the command in-process; a traceback would escape as an exception and fail it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from refusals import assert_refused

TOML_RUN = 'data = "{data}"\nout = "{tmp}/run"\n'


def _bad_model(tmp: Path, model: Path, name: str, change) -> Path:
    """A copy of the tiny model folder with its config.json or weights spoiled."""
    folder = tmp / name
    shutil.copytree(model, folder)
    config = json.loads((folder / "config.json").read_text())
    if callable(change):
        change(config, folder)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _truncate(config: dict, folder: Path) -> None:
    weights = folder / "ema.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def _adapter(tmp: Path, model: Path, change: str) -> Path:
    """A real adapter file for the tiny model, with its .json spoiled as ``change`` says."""
    from gouache.model.lora import add_adapter
    from gouache.store.adapters import AdapterInfo, save_adapter
    from gouache.store.checkpoint import load_network
    from gouache.store.fingerprint import weights_fingerprint

    net, _ = load_network(model)
    add_adapter(net, "a", rank=2, alpha=2)
    info = AdapterInfo(rank=2, alpha=2.0, convs=True, base_model="tiny", base_sha256=weights_fingerprint(model))
    path = save_adapter(net, "a", info, tmp / f"adapter-{change}.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta |= {"otherbase": {"base_model": "elsewhere", "base_sha256": "f" * 64}, "rank0": {"rank": 0}}[change]
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def _recipe(tmp: Path, body: str, model: str = 'preset = "tiny"') -> str:
    path = tmp / "recipe.toml"
    path.write_text(body + f"\n[model]\n{model}\n")
    return str(path)


# (argv, what stderr must say). {model}: the tiny model; {tmp}: a fresh folder; {file}: a
# regular file in it; {data}: the shapes data set; {recipe:BODY}: a recipe with BODY.
CASES = [
    # generate
    (["generate", "", "--model", "{model}"], "the prompt is empty"),
    (["generate", "   ", "--model", "{model}"], "the prompt is empty"),
    (["generate", "x", "--model", "{model}", "--steps", "0"], "steps must be a whole number from 1 to 1000"),
    (["generate", "x", "--model", "{model}", "--steps", "1001"], "steps must be"),
    (["generate", "x", "--model", "{model}", "--steps", "abc"], "invalid int value: 'abc'"),
    (["generate", "x", "--model", "{model}", "--guidance", "-1"], "guidance must be a number from 0 to 50"),
    (["generate", "x", "--model", "{model}", "--guidance", "nan"], "guidance must be"),
    (["generate", "x", "--model", "{model}", "--guidance", "inf"], "guidance must be"),
    (["generate", "x", "--model", "{model}", "--sampler", "magic"], "invalid choice: 'magic'"),
    (["generate", "x", "--model", "{model}", "-n", "0"], "number of images must be at least 1"),
    (["generate", "x", "--model", "{model}", "-n", "100000"], "at most 10000 pictures"),
    (["generate", "x", "--model", "{model}", "--scale", "0"], "--scale must be from 1 to 16"),
    (["generate", "x", "--model", "{model}", "--scale", "100000"], "--scale must be from 1 to 16"),
    (["generate", "x", "--model", "{model}", "--seed", "1e20"], "invalid int value: '1e20'"),
    (["generate", "x", "--model", "{model}", "--seed", "100000000000000000000"], "a seed must be"),
    (["generate", "x", "--model", "{model}", "--seed", "-1"], "a seed must be"),
    (["generate", "x", "--model", "{model}", "--device", "bogus"], "unknown device 'bogus'"),
    (["generate", "x", "--model", "{tmp}/missing"], "no such model or run folder"),
    (["generate", "x", "--model", "{tmp}"], "holds no checkpoint"),
    (["generate", "x", "--model", "{model:size0}"], "image_size must be at least 1, got 0"),
    (["generate", "x", "--model", "{model:size17}"], "image_size 17 is not divisible"),
    (["generate", "x", "--model", "{model:channels}"], "channels must be a list of whole numbers"),
    (["generate", "x", "--model", "{model:nojson}"], "config.json: not valid JSON"),
    (["generate", "x", "--model", "{model:truncated}"], "not a readable safetensors file"),
    (["generate", "x", "--model", "{model}", "--out", "{file}"], "is a file, not a folder"),
    (["generate", "x", "--model", "{model}", "--out", "/dev/null"], "is a file, not a folder"),
    (["generate", "x", "--model", "{model}", "--out", "{file}/below"], "is a file, not a folder"),
    (["generate", "x", "--model", "{model}", "--trajectory", "{tmp}"], "--trajectory"),
    (["generate", "x", "--model", "{model}", "--trajectory", "/dev/null"], "is not a regular file"),
    (["generate", "x", "--model", "{model}", "--mask", "{image}"], "--mask and --strength need --image"),
    (["generate", "x", "--model", "{model}", "--strength", "0.5"], "--mask and --strength need --image"),
    (["generate", "x", "--model", "{model}", "--image", "{image}", "--strength", "2"], "strength must be"),
    (["generate", "x", "--model", "{model}", "--image", "{file}"], "cannot read image"),
    (["generate", "x", "--model", "{model}", "--image", "{image}", "--mask", "{file}"], "cannot read mask"),
    (["generate", "x", "--model", "{model}", "--out", "{tmp}/x.png", "-n", "0"], "number of images"),
    (["generate", "x", "--model", "{model}", "--out", "{file}/y.png"], "is a file, not a folder"),
    (["generate", "x", "--model", "{model}", "--lora", "{tmp}/missing.safetensors"], "no such adapter"),
    (["generate", "x", "--model", "{model}", "--lora", "{tmp}"], "no such adapter"),
    (["generate", "x", "--model", "{model}", "--lora", "{file}"], "needs its .json beside it"),
    (["generate", "x", "--model", "{model}", "--lora", "{file}:11"], "the scale must be a number from -10 to 10"),
    (["generate", "x", "--model", "{model}", "--lora", "{file}:nan"], "the scale must be a number"),
    (["generate", "x", "--model", "{model}", "--lora", "{adapter:otherbase}"], "was made for base model 'elsewhere'"),
    (["generate", "x", "--model", "{model}", "--lora", "{adapter:rank0}"], "rank must be at least 1"),
    # noise
    (["noise", "{tmp}/nope.png"], "cannot read image"),
    (["noise", "{file}"], "cannot read image"),
    (["noise", "{image}", "--size", "0"], "--size must be from 8 to 1024"),
    (["noise", "{image}", "--size", "100000"], "--size must be from 8 to 1024"),
    (["noise", "{image}", "--seed", "-1"], "a seed must be"),
    (["noise", "{image}", "--out", "{tmp}"], "is a folder"),
    (["noise", "{image}", "--out", "/dev/null"], "is not a regular file"),
    # train
    (["train"], "say which data to train on"),
    (["train", "--data", "{tmp}"], "no images found"),
    (["train", "--data", "{data}", "--config", "{tmp}/nope.toml"], "no such config file"),
    (["train", "--data", "{data}", "--config", "{file}"], "not valid TOML"),
    (["train", "--config", "{recipe:steps = \"abc\"}"], "steps must be a whole number, got 'abc'"),
    (["train", "--config", "{recipe:cpu_bf16 = \"yes\"}"], "cpu_bf16 must be true or false"),
    (["train", "--config", "{recipe:batch_size = 0}"], "batch_size must be at least 1"),
    (["train", "--config", "{recipe:grad_accum = 0}"], "grad_accum must be at least 1"),
    (["train", "--config", "{recipe:checkpoint_every = 0}"], "checkpoint_every must be at least 1"),
    (["train", "--config", "{recipe:log_every = 0}"], "log_every must be at least 1"),
    (["train", "--config", "{recipe:steps = -5}"], "steps must be at least 1"),
    (["train", "--config", "{recipe:caption_dropout = 2}"], "caption_dropout must be from 0 up to"),
    (["train", "--config", "{recipe:ema_decay = 2}"], "ema_decay must be from 0 up to"),
    (["train", "--config", "{recipe:grad_clip = -1}"], "grad_clip must be above 0"),
    (["train", "--config", "{recipe:lr = inf}"], "lr must be a finite number"),
    (["train", "--config", "{recipe:lr = 1e6}"], "lr must be above 0 and at most 1"),
    (["train", "--config", "{recipe:sample_steps = 0}"], "sample_steps must be from 1 to 1000"),
    (["train", "--config", "{recipe:sample_prompts = []}"], "sample_prompts is empty"),
    (["train", "--config", "{recipe:sample_prompts = [\"\"]}"], "sample_prompts must be prompts that are not blank"),
    (["train", "--config", "{recipe:sample_prompts = \"red apple\"}"], "sample_prompts must be a list of texts"),
    (["train", "--config", "{recipe:steps = 3\ncooldown = 10}"], "cooldown (10) must not exceed steps (3)"),
    (["train", "--config", "{recipe:stepz = 3}"], "unknown training option(s): stepz"),
    (["train", "--config", "{recipe:seed = -1}"], "seed must be from 0"),
    (["train", "--config", "{recipe-model:preset = \"huge\"}"], "unknown model preset 'huge'"),
    (["train", "--config", "{recipe-model:preset = [\"tiny\"]}"], "unknown model preset ['tiny']"),
    (["train", "--config", "{recipe-model:preset = \"tiny\"\nchanels = [8, 16]}"], "bad [model] table"),
    (["train", "--config", "{recipe-model:preset = \"tiny\"\nimage_size = 17}"], "image_size 17 is not divisible"),
    (["train", "--config", "{recipe-model:preset = \"tiny\"\n[model.schedule]\nsigma_data = 0}"],
     "sigma_data must be above 0"),
    (["train", "--data", "{data}", "--out", "{file}", "--steps", "1"], "is a file, not a folder"),
    (["train", "--data", "{data}", "--batch-size", "0"], "batch_size must be at least 1"),
    (["train", "--data", "{data}", "--steps", "-5"], "steps must be at least 1"),
    (["train", "--data", "{data}", "--lr", "nan"], "lr must be a finite number"),
    (["train", "--data", "{data}", "--device", "bogus", "--out", "{tmp}/r"], "unknown device 'bogus'"),
    (["train", "--data", "{data}", "--init", "{tmp}/missing", "--out", "{tmp}/r"], "no such model or run folder"),
    # data: what a captioned folder may hold
    (["train", "--data", "{folder:{\"file_name\": \"a.png\", \"text\": \"caf\xe9\"}}"], "not UTF-8 text"),
    (["train", "--data", "{folder:42}"], "a row must be a JSON object"),
    (["train", "--data", "{folder:\"hello\"}"], "a row must be a JSON object"),
    (["train", "--data", "{folder:{\"file_name\": \"a.png\", \"text\": null}}"], "'text' must be text, got None"),
    (["train", "--data", "{folder:{\"file_name\": \"a.png\", \"text\": 3}}"], "'text' must be text, got 3"),
    (["train", "--data", "{folder:{\"file_name\": \"a.png\", \"text\": [\"a\"]}}"], "'text' must be text"),
    (["train", "--data", "{folder:{\"file_name\": 3, \"text\": \"x\"}}"], "row has no 'file_name'"),
    (["train", "--data", "{folder:{\"file_name\": \"../a.png\", \"text\": \"x\"}}"], "must be a path inside"),
    (["train", "--data", "{folder:{\"file_name\": \"/etc/hostname\", \"text\": \"x\"}}"], "must be a path inside"),
    (["train", "--data", "{folder:{not json}"], "not valid JSON"),
    (["train", "--data", "{sidecar:caf\xe9}"], "not UTF-8 text"),
    (["data", "check", "{tmp}/missing"], "no such data folder"),
    (["train", "--data", "{data}", "--lora", "4", "--out", "{tmp}/r"], "lora needs init"),
    (["train", "--data", "{data}", "--lora", "--out", "{tmp}/r"], "lora needs init"),
    (["train", "--data", "{data}", "--lora", "-1", "--init", "{model}"], "lora must be from 0 (off) to 256"),
    (["train", "--data", "{data}", "--lora", "abc", "--init", "{model}"], "invalid int value: 'abc'"),
    (["train", "--config", "{recipe:lora = 4\nlora_alpha = -1\ninit = \"x\"}"], "lora_alpha must be at least 0"),
    (["train", "--config", "{recipe:lora = 4\nlora_convs = 1\ninit = \"x\"}"], "lora_convs must be true or false"),
    (["train", "--data", "{data}", "--lora", "4", "--init", "{tmp}/missing", "--out", "{tmp}/r"],
     "no such model or run folder"),
    (["train", "--data", "{data}", "--prior", "8", "--out", "{tmp}/r"], "lora_prior needs lora"),
    (["train", "--data", "{data}", "--lora", "--prior", "-1", "--init", "{model}"], "lora_prior must be from 0"),
    (["train", "--data", "{data}", "--lora", "--prior-weight", "-1", "--init", "{model}"],
     "lora_prior_weight must be at least 0"),
    (["train", "--config", "{recipe:lora = 4\nlora_prior = 8\nlora_prior_prompts = [\" \"]\ninit = \"x\"}"],
     "lora_prior_prompts must be prompts that are not blank"),
    # data
    (["data", "shard", "{tmp}/missing", "--out", "{tmp}/s"], "no such data folder"),
    (["data", "shard", "{data}", "--out", "{tmp}/s", "--shard-size", "0"], "shard size must be at least 1"),
    (["data", "shard", "{data}", "--out", "{file}"], "is a file, not a folder"),
    (["data", "embed", "{tmp}/missing"], "no such data folder"),
    (["data", "frobnicate"], "invalid choice: 'frobnicate'"),
    # export
    (["export", "{tmp}/missing", "--out", "{tmp}/m"], "no such model or run folder"),
    (["export", "{model}", "--out", "{file}"], "is a file, not a folder"),
    (["export", "{model:truncated}", "--out", "{tmp}/m"], "not a readable safetensors file"),
    (["export", "{model}", "--out", "{tmp}/m", "--merge-lora", "{tmp}/missing"], "no such adapter"),
    (["export", "{model}", "--out", "{tmp}/m", "--merge-lora", "{adapter:otherbase}"], "was made for base model"),
    (["export", "{model}", "{model}", "--out", "{tmp}/m", "--merge-lora", "{adapter:otherbase}"],
     "name one run or model folder"),
    (["export", "{model}", "--out", "{tmp}/m", "--student", "{model}"], "student.json is missing"),
    (["export", "{model}", "--out", "{tmp}/m", "--student", "{tmp}/missing"], "no such model or run folder"),
    (["export", "{model}", "{model}", "--out", "{tmp}/m", "--student", "{model}"], "name one model"),
    # distill
    (["distill", "{tmp}/missing", "--data", "{data}", "--out", "{tmp}/r"], "no such model or run folder"),
    (["distill", "{model}", "--out", "{tmp}/r"], "data must be an imagefolder"),
    (["distill", "{model}", "--data", "{data}", "--out", "{tmp}/r", "--steps", "0"], "steps must be 1 or more"),
    (["distill", "{model}", "--data", "{data}", "--out", "{tmp}/r", "--guidance", "99"], "guidance must be from 0"),
    (["distill", "{model}", "--data", "{data}", "--out", "{tmp}/r", "--lr", "nan"], "lr must be"),
    (["distill", "{model}", "--data", "{data}", "--out", "{file}"], "is a file, not a folder"),
    (["distill", "{model}", "--data", "{data}", "--config", "{file}"], "not valid TOML"),
    (["distill", "{model}", "--data", "{tmp}/missing", "--out", "{tmp}/r"], "no such"),
    (["generate", "x", "--model", "{model}", "--sampler", "consistency"], "needs a model with a few-step student"),
    # eval
    (["eval", "--model", "{model}", "--data", "{tmp}/missing"], "no such data folder"),
    (["eval", "--model", "{model}", "--data", "{data}", "-n", "1"], "at least 2 images"),
    (["eval", "--model", "{model}", "--data", "{data}", "--steps", "0"], "steps must be"),
    (["eval", "--model", "{model}", "--data", "{data}", "--device", "bogus"], "unknown device 'bogus'"),
    # serve
    (["serve", "--model", "{tmp}/missing"], "no such model or run folder"),
    (["serve", "--lora", "{tmp}/missing.safetensors"], "no such adapter"),
    (["serve", "--port", "70000"], "--port must be between 0 and 65535"),
    # the command itself
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: command"),
]
MODEL_CHANGES = {
    "size0": lambda c, f: c["unet"].update(image_size=0),
    "size17": lambda c, f: c["unet"].update(image_size=17),
    "channels": lambda c, f: c["unet"].update(channels="abc"),
    "nojson": None,
    "truncated": _truncate,
}


def _folder(tmp: Path, metadata: bytes | None, caption: bytes | None = None) -> str:
    """A data folder of one picture with this metadata.jsonl (or this sidecar caption)."""
    from PIL import Image

    folder = tmp / "pictures"
    folder.mkdir()
    Image.new("RGB", (8, 8), "red").save(folder / "a.png")
    if metadata is not None:
        (folder / "metadata.jsonl").write_bytes(metadata + b"\n")
    if caption is not None:
        (folder / "a.txt").write_bytes(caption)
    return str(folder)


def _expand(arg: str, tmp: Path, tiny_model_dir: Path, shapes_dir: Path) -> str:
    if arg.startswith("{folder:"):  # latin-1: the test's own bytes, non-UTF-8 ones included
        return _folder(tmp, arg[8:-1].encode("latin-1"))
    if arg.startswith("{sidecar:"):
        return _folder(tmp, None, arg[9:-1].encode("latin-1"))
    if arg.startswith("{adapter:"):
        return str(_adapter(tmp, tiny_model_dir, arg[9:-1]))
    if arg.startswith("{model:"):
        name = arg[7:-1]
        folder = _bad_model(tmp, tiny_model_dir, name, MODEL_CHANGES[name])
        if name == "nojson":
            (folder / "config.json").write_text("{not json")
        return str(folder)
    if arg.startswith("{recipe:"):
        return _recipe(tmp, TOML_RUN.format(data=shapes_dir, tmp=tmp) + arg[8:-1])
    if arg.startswith("{recipe-model:"):
        return _recipe(tmp, TOML_RUN.format(data=shapes_dir, tmp=tmp), model=arg[14:-1])
    image = next(shapes_dir.rglob("*.png"))
    return arg.format(model=tiny_model_dir, tmp=tmp, file=tmp / "a-file.txt", data=shapes_dir, image=image)


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a)[:70] for a, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(argv, message, tiny_model_dir, shapes_dir, tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "a-file.txt").write_text("not an image, not TOML = = =\n")
    argv = [_expand(a, work, tiny_model_dir, shapes_dir) for a in argv]  # may spoil inputs in work
    assert_refused(argv, message, work, capsys)


def test_the_table_covers_every_command():
    commands = {a[0] for a, _ in CASES if a} | {" ".join(a[:2]) for a, _ in CASES if a[:1] == ["data"]}
    assert {"generate", "noise", "train", "distill", "export", "eval", "serve", "data check", "data shard",
            "data embed"} <= commands
    assert len(CASES) >= 80
