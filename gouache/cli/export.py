"""``gouache export``: parse, call ``gouache.api.export``, print the model folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from gouache.cli.arguments import HELP, add_lora_argument

__all__ = ["add_export"]


def add_export(sub) -> None:
    p = sub.add_parser("export", formatter_class=HELP, help="write a run's EMA weights as a model folder",
                       description="Copy config.json and the EMA weights (fp16 by default) of a run's latest "
                                   "checkpoint into a folder that --model takes: what a model ships as. "
                                   "Given several runs or checkpoints of one model (continued or "
                                   "fine-tuned from each other), their EMA weights are averaged "
                                   "uniformly (a model soup, Wortsman et al. 2022).")
    p.add_argument("run", type=Path, nargs="+", help="run folder or checkpoint folder; several to average")
    p.add_argument("--out", type=Path, default=None, help="the model folder to write")
    p.add_argument("--web", type=Path, default=None, metavar="OUT",
                   help="instead: a static site that paints with the model's student in the browser")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the --out (or --web) folder if it holds anything (never a run, nor an input)")
    add_lora_argument(p, "--merge-lora")
    p.add_argument("--student", type=Path, default=None, metavar="RUN",
                   help="a few-step student distilled from this model (gouache distill): the model "
                        "folder carries it, and `generate` uses it by default")
    p.set_defaults(func=_export)


def _export(a: argparse.Namespace) -> None:
    from gouache.api import export

    if a.web is not None or a.out is None:
        from gouache.web.site import export_site

        print(export_site(a.run, a.web, alone=a.out is None and a.student is None and not a.merge_lora,
                          overwrite=a.overwrite))
        return
    print(export(a.run, a.out, fp32=a.fp32, merge_lora=a.merge_lora, student=a.student, overwrite=a.overwrite))
