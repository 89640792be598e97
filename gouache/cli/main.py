"""The ``gouache`` command: one parser, a sub-command per module of this folder; each parses,
calls the library (``gouache.api`` or the module that does the work) and prints. A command
imports what it runs only when it runs, so that ``gouache generate`` starts fast."""
from __future__ import annotations

import argparse
import gc
import sys

from gouache.cli.data import add_data
from gouache.cli.evaluate import add_eval
from gouache.cli.export import add_export
from gouache.cli.generate import add_generate, add_noise
from gouache.cli.serve import add_serve
from gouache.cli.train import add_distill, add_train
from gouache.errors import GouacheError

__all__ = ["main", "run", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line naming it, like every other gouache error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("gouache").strip()
        self.exit(2, f"gouache: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gouache", description="Text-to-image diffusion you train on your "
                                "own captioned pictures.")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (add_generate, add_train, add_distill, add_noise, add_data, add_export, add_serve, add_eval):
        add(sub)
    return p


def run() -> None:
    """The ``gouache`` program: ``main`` in a process of its own.

    Importing torch leaves some 170,000 Python objects that live as long as the process, and
    every full garbage collection scans them all: 0.08 s each on a 2-core CPU, one while
    `gouache generate` loads and one at exit, about half its time above `import torch`.
    Frozen once the command line is parsed (the parser imports torch, through the samplers'
    names), they are skipped. (Not in ``main``: a process that calls it again and again, like
    the tests, would freeze its own garbage too.)
    """
    args = build_parser().parse_args()
    gc.freeze()
    _call(args)


def main(argv: list[str] | None = None) -> None:
    _call(build_parser().parse_args(argv))


def _call(args: argparse.Namespace) -> None:
    """Run the parsed command; a GouacheError is one line and exit code 2."""
    try:
        args.func(args)
    except GouacheError as e:
        print(f"gouache: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("gouache: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
