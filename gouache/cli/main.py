"""The ``gouache`` command: parse, call the library, print. Nothing here that Python can't call."""
from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from gouache.errors import GouacheError

__all__ = ["main", "run", "build_parser"]

HELP = argparse.ArgumentDefaultsHelpFormatter


class _Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line naming it, like every other gouache error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("gouache").strip()
        self.exit(2, f"gouache: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def _add_lora_argument(p: argparse.ArgumentParser, flag: str = "--lora") -> None:
    p.add_argument(flag, action="append", default=[], metavar="FILE[:SCALE]",
                   help="a low-rank adapter (its .safetensors, or its run folder) on the model, at SCALE "
                        "(default 1); repeat for several")


def _add_generate(sub) -> None:
    from gouache.sampling.options import add_sampling_arguments

    p = sub.add_parser("generate", formatter_class=HELP, help="paint pictures from a prompt",
                       description="Start from pure noise and denoise step by step, steered by the prompt.")
    p.add_argument("prompt", help='what to paint, e.g. "red apple"')
    p.add_argument("--model", default=None, help="model or run folder (default: the shipped emoji model)")
    _add_lora_argument(p)
    p.add_argument("-n", "--num-images", type=int, default=1, help="pictures to make")
    add_sampling_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="image k uses seed+k: same seed, same picture")
    p.add_argument("--out", type=Path, default=Path("out"),
                   help="a folder for the PNGs, or a file name ending in .png (then NAME-1.png, ...)")
    p.add_argument("--trajectory", type=Path, default=None, help="also write the step-by-step strip here")
    p.add_argument("--image", type=Path, default=None,
                   help="start from this picture instead of pure noise (image-to-image; any size)")
    p.add_argument("--strength", type=float, default=None,
                   help="with --image: how far to noise it, 0 (keep it) to 1 (from pure noise); "
                        "default 0.75, or 1 with --mask")
    p.add_argument("--mask", type=Path, default=None,
                   help="with --image: repaint only where this picture is white (inpainting)")
    p.add_argument("--scale", type=int, default=1, help="enlarge saved pictures this many times (nearest)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_generate)


def _generate(a: argparse.Namespace) -> None:
    from gouache.api import generate
    from gouache.sampling.options import sampling_options

    paths = generate(a.prompt, sampling_options(a), model=a.model, num_images=a.num_images, seed=a.seed,
                     out=a.out, trajectory=a.trajectory, image=a.image, mask=a.mask, strength=a.strength,
                     scale=a.scale, device=a.device, lora=a.lora)
    for path in paths:
        print(path)


def _add_train(sub) -> None:
    from gouache.model.lora import DEFAULT_RANK
    from gouache.training.config import COMPILE_MODES, RESIDENT_MODES

    p = sub.add_parser("train", formatter_class=HELP, help="train a model on a folder of captioned images",
                       description="Supervised denoising of image+caption pairs. Options given here "
                                   "override the --config recipe (a TOML file).")
    p.add_argument("--data", default=None, help="imagefolder (metadata.jsonl or NAME.txt captions), "
                   'or WebDataset shards: "DIR/{000000..000099}.tar" or a folder of .tar files')
    p.add_argument("--config", type=Path, default=None, help="TOML recipe (see configs/)")
    p.add_argument("--out", default=None, help="run folder (default runs/gouache)")
    p.add_argument("--resume", type=Path, default=None, help="continue the run in this folder")
    p.add_argument("--init", default=None, help="fine-tune: start from this model's weights (e.g. "
                   "gouache/models/emoji64), with the same [model] preset")
    p.add_argument("--lora", type=int, nargs="?", const=DEFAULT_RANK, default=None, metavar="RANK",
                   help=f"train only low-rank adapters of this rank (alone: {DEFAULT_RANK}) on the frozen --init "
                        "model; the other options' defaults then fit about 10 minutes on a CPU (see README)")
    p.add_argument("--prior", type=int, default=None, metavar="N", dest="lora_prior",
                   help="with --lora: the base first paints N pictures of its own (lora_prior_prompts) and "
                        "each step trains on them beside yours, so it forgets less (DreamBooth); 0 = off (LoRA default: 64)")
    p.add_argument("--prior-weight", type=float, default=None, dest="lora_prior_weight", metavar="W",
                   help="with --prior: the weight of the base's pictures' loss beside yours (default: 1)")
    for name, kind in (("steps", int), ("batch-size", int), ("lr", float), ("seed", int),
                       ("max-minutes", float), ("sample-every", int), ("checkpoint-every", int),
                       ("grad-accum", int), ("num-workers", int)):
        p.add_argument(f"--{name}", type=kind, default=None, help="override the recipe")
    p.add_argument("--balance-by", default=None, metavar="COLUMN",
                   help="draw each value of this metadata.jsonl column equally often (emoji: base)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda")
    p.add_argument("--grad-checkpointing", action="store_true", default=None,
                   help="recompute activations to save memory")
    p.add_argument("--compile", default=None, choices=COMPILE_MODES,
                   help="torch.compile the network (auto: on CUDA; off: eager)")
    p.add_argument("--resident-data", default=None, choices=RESIDENT_MODES,
                   help="keep the images and prompt states in the device's memory (auto: on CUDA when they fit)")
    p.set_defaults(func=_train)


def _train(a: argparse.Namespace) -> None:
    from gouache.distributed import is_main
    from gouache.training.config import load_train_config
    from gouache.training.train import train

    over = {k: getattr(a, k) for k in ("data", "out", "steps", "batch_size", "lr", "seed", "max_minutes",
                                       "sample_every", "checkpoint_every", "grad_accum", "num_workers",
                                       "device", "grad_checkpointing", "init", "balance_by", "lora",
                                       "compile", "resident_data", "lora_prior", "lora_prior_weight")}
    if a.resume is not None and over["out"] is None:
        over["out"] = str(a.resume)
    cfg = load_train_config(a.config, **over)
    if not cfg.data:
        raise GouacheError("say which data to train on: --data FOLDER (or data = ... in --config)")
    result = train(cfg, resume=a.resume)
    if is_main():  # under torchrun, one line for the run, not one per process
        print(f"trained to step {result.step} at {result.images_per_second:.1f} images/s; run folder {result.run}")
        if result.stopped:
            print(f"stopped early with a checkpoint; continue with: gouache train --resume {result.run} "
                  "(and the same --config/--data)")


def _add_distill(sub) -> None:
    p = sub.add_parser("distill", formatter_class=HELP, help="distill a model into a few-step student",
                       description="Consistency distillation with the guidance folded in (Song et al. 2023; "
                                   "LCM): a student that paints in 1 to 4 network calls. Join it to its "
                                   "teacher with: gouache export TEACHER --student RUN --out MODEL.")
    p.add_argument("teacher", help="the trained model (model or run folder)")
    p.add_argument("--data", default=None, help="an imagefolder like the teacher's training data")
    p.add_argument("--config", type=Path, default=None, help="TOML recipe (see configs/distill-emoji64.toml)")
    p.add_argument("--out", default=None, help="run folder (default runs/distill)")
    p.add_argument("--resume", type=Path, default=None, help="continue the run in this folder")
    for name, kind in (("steps", int), ("batch-size", int), ("lr", float), ("seed", int), ("max-minutes", float),
                       ("guidance", float), ("sample-every", int), ("checkpoint-every", int)):
        p.add_argument(f"--{name}", type=kind, default=None, help="override the recipe")
    p.add_argument("--device", default=None, help="auto, cpu, cuda")
    p.set_defaults(func=_distill)


def _distill(a: argparse.Namespace) -> None:
    from gouache.training.distill import distill, load_distill_config

    over = {k: getattr(a, k) for k in ("teacher", "data", "out", "steps", "batch_size", "lr", "seed",
                                       "max_minutes", "guidance", "sample_every", "checkpoint_every", "device")}
    if a.resume is not None and over["out"] is None:
        over["out"] = str(a.resume)
    result = distill(load_distill_config(a.config, **over), resume=a.resume)
    print(f"distilled to step {result.step} at {result.images_per_second:.1f} images/s; run folder {result.run}")
    if result.stopped:
        print(f"stopped early with a checkpoint; continue with: gouache distill {a.teacher} --resume {result.run}")


def _add_noise(sub) -> None:
    p = sub.add_parser("noise", formatter_class=HELP, help="draw the forward noising strip of an image",
                       description="Clean, noisier, noisier, pure noise: what training does to an image.")
    p.add_argument("image", type=Path)
    p.add_argument("--out", type=Path, default=Path("out/noise_strip.png"))
    p.add_argument("--size", type=int, default=64, help="resize and centre-crop to this side")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_noise)


def _noise(a: argparse.Namespace) -> None:
    from gouache.api import noise_strip_file

    print(noise_strip_file(a.image, out=a.out, size=a.size, seed=a.seed))


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="build and check datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    e = dsub.add_parser("emoji", formatter_class=HELP, help="build the emoji dataset from npm packages",
                        description="svg (version 2): nine art styles rendered from vector artwork, many "
                                    "names per emoji; png: the 64 px Noto/Twemoji set of the shipped model.")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--source", choices=("svg", "png"), default="svg")
    e.add_argument("--size", type=int, default=None, help="64, 128 or 256 (default: 128 for svg, 64 for png)")
    e.add_argument("--styles", default=None, help="comma-separated styles (default: all; svg: noto,twemoji,"
                   "openmoji,fluent-flat,fluent,emojione,fxemoji,streamline,noto-blob; png: google,twitter)")
    e.add_argument("--cache-dir", type=Path, default=None, help="npm tarball cache (default ~/.cache/gouache/npm)")
    e.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    e.add_argument("--jobs", type=int, default=None, help="rendering processes (default: up to 4)")
    e.add_argument("--only", default=None, help="keep only these code sequences (comma-separated; fixtures)")
    e.add_argument("--test", default=None, help="hold out exactly these emoji (comma-separated; fixtures)")
    e.set_defaults(func=_data_emoji)
    s = dsub.add_parser("shapes", formatter_class=HELP, help="draw the coloured-shapes sanity dataset")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--size", type=int, default=32)
    s.add_argument("--per-caption", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--holdout", default="", metavar='"green triangle,blue circle"',
                   help="colour-shape combinations never drawn (the composition test)")
    s.set_defaults(func=_data_shapes)
    c = dsub.add_parser("check", formatter_class=HELP, help="lint an imagefolder; non-zero exit on errors")
    c.add_argument("folder", type=Path)
    c.set_defaults(func=_data_check)
    h = dsub.add_parser("shard", formatter_class=HELP, help="convert an imagefolder to WebDataset tar shards",
                        description="Write OUT/000000.tar, 000001.tar, ...: png, txt and json per image; "
                                    'train on them with --data "OUT/{000000..000009}.tar" or --data OUT.')
    h.add_argument("folder", type=Path, help="imagefolder (metadata.jsonl or NAME.txt captions)")
    h.add_argument("--out", type=Path, required=True, help="an empty folder for the shards")
    h.add_argument("--shard-size", type=int, default=1000, help="images per shard")
    h.add_argument("--split", default=None, help="only this split (default: all rows, split kept in json)")
    h.set_defaults(func=_data_shard)
    m = dsub.add_parser("embed", formatter_class=HELP, help="precompute the prompt embeddings of a dataset",
                        description="Encode every caption variant once into DATA/prompt_embeddings.safetensors; "
                                    "training then never runs the text encoder.")
    m.add_argument("data", help="imagefolder, shard folder or shard pattern")
    m.add_argument("--text-model", default=None, help="text encoder (default: the bundled MiniLM)")
    m.add_argument("--max-length", type=int, default=32, help="prompts are cut to this many tokens")
    m.set_defaults(func=_data_embed)


def _data_emoji(a: argparse.Namespace) -> None:
    from gouache.data.build.emoji import build_emoji_dataset

    def items(text: str | None) -> list[str] | None:
        return None if text is None else [t for t in text.split(",") if t.strip()]

    manifest = build_emoji_dataset(a.out, size=a.size, styles=items(a.styles), source=a.source,
                                   cache_dir=a.cache_dir, seed=a.seed, jobs=a.jobs, only=items(a.only),
                                   test=items(a.test))
    print(manifest["summary"])
    print(f"built {a.out}")


def _data_shapes(a: argparse.Namespace) -> None:
    from gouache.data.build.shapes import build_shapes_dataset, parse_holdout

    n = build_shapes_dataset(a.out, size=a.size, per_caption=a.per_caption, seed=a.seed,
                             holdout=parse_holdout(a.holdout))
    print(f"drew {n} images in {a.out}")


def _data_shard(a: argparse.Namespace) -> None:
    from gouache.data.shards import write_shards

    paths, skipped = write_shards(a.folder, a.out, shard_size=a.shard_size, split=a.split, progress=True)
    print(f"wrote {len(paths)} shards to {a.out}")
    if skipped:
        print(f"gouache: skipped {len(skipped)} unreadable images, e.g. {skipped[0]}", file=sys.stderr)


def _data_embed(a: argparse.Namespace) -> None:
    from gouache.data.prompts import embed_dataset
    from gouache.model.text import DEFAULT_TEXT_MODEL, TextEncoder

    encoder = TextEncoder(a.text_model or DEFAULT_TEXT_MODEL, max_length=a.max_length)
    print(f"wrote {embed_dataset(a.data, encoder, progress=True)}")


def _data_check(a: argparse.Namespace) -> None:
    from gouache.data.check import check_dataset

    report = check_dataset(a.folder)
    print(report.format())
    if report.errors:
        raise SystemExit(1)


def _add_export(sub) -> None:
    p = sub.add_parser("export", formatter_class=HELP, help="write a run's EMA weights as a model folder",
                       description="Copy config.json and the EMA weights (fp16 by default) of a run's latest "
                                   "checkpoint into a folder that --model takes: what a model ships as. "
                                   "Given several runs or checkpoints of one model (continued or "
                                   "fine-tuned from each other), their EMA weights are averaged "
                                   "uniformly (a model soup, Wortsman et al. 2022).")
    p.add_argument("run", type=Path, nargs="+", help="run folder or checkpoint folder; several to average")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--fp32", action="store_true", help="keep float32 weights")
    _add_lora_argument(p, "--merge-lora")
    p.add_argument("--student", type=Path, default=None, metavar="RUN",
                   help="a few-step student distilled from this model (gouache distill): the model "
                        "folder carries it, and `generate` uses it by default")
    p.set_defaults(func=_export)


def _export(a: argparse.Namespace) -> None:
    import torch

    from gouache.store.checkpoint import export_model

    dtype = torch.float32 if a.fp32 else torch.float16
    if a.student is not None and (len(a.run) > 1 or a.merge_lora):
        raise GouacheError("--student joins a student to the one model it was distilled from: name one "
                           "model, without --merge-lora")
    if a.student is not None:  # refused before anything is written
        from gouache.store.student import check_student, copy_student

        student = check_student(a.run[0], a.student)
    out = export_model(a.run, a.out, dtype=dtype, lora=a.merge_lora)
    if a.student is not None:
        copy_student(out, *student, dtype=dtype)
    print(out)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gouache", description="Text-to-image diffusion you train on your "
                                "own captioned pictures.")
    sub = p.add_subparsers(dest="command", required=True)
    from gouache.cli.evaluate import add_eval
    from gouache.cli.serve import add_serve

    for add in (_add_generate, _add_train, _add_distill, _add_noise, _add_data, _add_export, add_serve, add_eval):
        add(sub)
    return p


def run() -> None:
    """The ``gouache`` program: ``main`` in a process of its own.

    Importing torch leaves some 170,000 Python objects that live as long as the process, and
    every full garbage collection scans them all: 0.08 s each on a 2-core CPU, one while
    `gouache generate` loads and one at exit, about half its time above `import torch`.
    Frozen, they are skipped. (Not in ``main``: a process that calls it again and again, like
    the tests, would freeze its own garbage too.)
    """
    gc.freeze()
    main()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except GouacheError as e:
        print(f"gouache: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("gouache: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
