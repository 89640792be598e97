"""``gouache data``: build the emoji and shapes datasets, check, shard and embed an imagefolder."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gouache.cli.arguments import HELP

__all__ = ["add_data"]


def add_data(sub) -> None:
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
    e.add_argument("--default-styles", default=None, metavar="noto,twemoji",
                   help="the styles a prompt without a style name paints; the others name their style "
                        "in every caption (default: all styles alike)")
    e.add_argument("--cache-dir", type=Path, default=None, help="npm tarball cache (default ~/.cache/gouache/npm)")
    e.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    e.add_argument("--jobs", type=int, default=None, help="rendering processes (default: up to 4)")
    e.add_argument("--only", default=None, help="keep only these code sequences (comma-separated; fixtures)")
    e.add_argument("--test", default=None, help="hold out exactly these emoji (comma-separated; fixtures)")
    e.add_argument("--overwrite", action="store_true",
                   help="build into --out even though it holds something other than an earlier build")
    e.set_defaults(func=_data_emoji)
    s = dsub.add_parser("shapes", formatter_class=HELP, help="draw the coloured-shapes sanity dataset")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--size", type=int, default=32)
    s.add_argument("--per-caption", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--holdout", default="", metavar='"green triangle,blue circle"',
                   help="colour-shape combinations never drawn (the composition test)")
    s.add_argument("--overwrite", action="store_true",
                   help="draw into --out even though it holds something other than an earlier shapes set")
    s.set_defaults(func=_data_shapes)
    c = dsub.add_parser("check", formatter_class=HELP, help="lint an imagefolder; non-zero exit on errors")
    c.add_argument("folder", type=Path)
    c.set_defaults(func=_data_check)
    h = dsub.add_parser("shard", formatter_class=HELP, help="convert an imagefolder to WebDataset tar shards",
                        description="Write OUT/000000.tar, 000001.tar, ...: png, txt and json per image; "
                                    'train on them with --data "OUT/{000000..000009}.tar" or --data OUT.')
    h.add_argument("folder", type=Path, help="imagefolder (metadata.jsonl or NAME.txt captions)")
    h.add_argument("--out", type=Path, required=True, help="a new or empty folder for the shards")
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
                                   test=items(a.test), overwrite=a.overwrite,
                                   default_styles=items(a.default_styles))
    print(manifest["summary"])
    print(f"built {a.out}")


def _data_shapes(a: argparse.Namespace) -> None:
    from gouache.data.build.shapes import build_shapes_dataset, parse_holdout

    n = build_shapes_dataset(a.out, size=a.size, per_caption=a.per_caption, seed=a.seed,
                             holdout=parse_holdout(a.holdout), overwrite=a.overwrite)
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
