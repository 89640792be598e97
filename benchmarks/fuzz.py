"""Fuzz every reader of a file gouache reads, and the server, far longer than ``make test`` does.

    python benchmarks/fuzz.py                                  # every format, 2000 variants each
    python benchmarks/fuzz.py --format config.json --examples 200
    python benchmarks/fuzz.py --format "POST /api/generate" --seed 7   # other variants than the usual

The variants are those of tests/test_fuzz.py (tests/fuzzing/ draws them with hypothesis and
reads them): truncations, byte flips, type swaps, huge numbers, deep nesting, other encodings,
a folder, a FIFO or a symlink in a file's place. Prints one row per format: the reads, how many
gave a valid object, how many a one-line refusal, how many failed (any other exception, a
message of several lines, a 5xx, a hang), and the first failures of each kind. Exits 1 when
any read failed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's gouache, whatever is installed
sys.path.insert(0, str(ROOT / "tests"))  # the strategies live beside the test that runs them briefly
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import fuzzing  # noqa: E402


def server_client():
    """The server's app on the tiny model, in a test client (as tests/conftest.py's ``client``)."""
    from fastapi.testclient import TestClient

    from gouache.model.text import TextEncoder
    from gouache.sampling.pipeline import Pipeline
    from gouache.serve.app import create_app

    def start(ctx: fuzzing.Context) -> TestClient:
        pipe = Pipeline.load(ctx.model(), device="cpu", text_encoder=TextEncoder())
        return TestClient(create_app(pipe))
    return start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=2000, help="hypothesis variants a format (default: 2000)")
    p.add_argument("--format", action="append", default=[], metavar="NAME",
                   help="a format by name (repeat for several; default: all): "
                        + ", ".join(f.name for f in fuzzing.FORMATS))
    p.add_argument("--seed", type=int, default=None, help="draw other variants than the fixed ones")
    p.add_argument("--show", type=int, default=3, help="failure kinds shown a format (default: 3)")
    p.add_argument("--json", type=Path, default=None, help="also write the tallies here")
    p.add_argument("--log", type=Path, default=None, help="write every read (variant, outcome, message) here")
    a = p.parse_args()
    import torch
    torch.set_num_threads(1)
    chosen = [f for f in fuzzing.FORMATS if not a.format or f.name in a.format]
    if not chosen:
        p.error(f"no format named {a.format}")
    tallies = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gouache-fuzz-") as tmp:
        ctx = fuzzing.Context(Path(tmp) / "shared")
        print(fuzzing.HEADER, flush=True)
        for k, fmt in enumerate(chosen):
            if fmt is fuzzing.REQUEST:
                with server_client()(ctx) as client:
                    ctx.client = client
                    tally = fuzzing.run_format(fmt, Path(tmp) / str(k), ctx, examples=a.examples, seed=a.seed,
                                               log=a.log is not None)
            else:
                tally = fuzzing.run_format(fmt, Path(tmp) / str(k), ctx, examples=a.examples, seed=a.seed,
                                           log=a.log is not None)
            tallies.append(tally)
            print(tally.report(a.show), flush=True)
    failed = sum(sum(t.failures.values()) for t in tallies)
    print(f"{sum(t.count for t in tallies)} reads in {time.monotonic() - start:.0f} s; {failed} failures")
    if a.log:
        with open(a.log, "w", encoding="utf-8", errors="backslashreplace") as f:
            for t in tallies:
                f.writelines(f"{t.name}\t{outcome}\t{what[:200]}\t{detail[:300]}\n" for what, outcome, detail in t.log)
    if a.json:
        a.json.write_text(json.dumps([{"format": t.name, "reads": t.count, "valid": t.valid, "refused": t.refused,
                                       "failures": dict(t.failures), "first": t.first, "seconds": round(t.seconds, 1)}
                                      for t in tallies], indent=2) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
