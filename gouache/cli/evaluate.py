"""The ``gouache eval`` subcommand: parse, call ``evaluate``, print the table."""
from __future__ import annotations

import argparse
from pathlib import Path

from gouache.cli.arguments import add_sampling_arguments, sampling_options

__all__ = ["add_eval"]

SUITES = ("understanding", "shapes")

DESCRIPTION = """\
Generate pictures with a checkpoint and measure them against the real images of a
data folder, in the feature space of the TF-FID Inception-v3:

  FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) against the split's images;
  prompt fidelity: is the nearest real image (of all splits) one of the prompt? (top-1, top-5);
  memorisation: distance to the nearest training image relative to the typical
    real-to-real distance (share below 0.5 = near-copies, and the median ratio);
  the held-out denoising loss at fixed noise levels.

Writes OUT/report.json, OUT/samples.png and the sweep plots. Real images' features
are cached in DATA/.gouache_cache/, so the first run on a folder is the slow one.

A larger --num-images buys tighter numbers: FID is biased upwards at small N (compare
FIDs only at equal N), KID is unbiased (its std over subsets shrinks with N); top-1/top-5
and the memorisation shares are proportions whose error shrinks as 1/sqrt(N). On a CPU the
Inception network runs at about 3 images/s."""


def add_eval(sub) -> None:
    p = sub.add_parser("eval", formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="measure a checkpoint against real images (FID, KID, fidelity, memorisation)",
                       description=DESCRIPTION)
    p.add_argument("--model", default=None,
                   help="model or run folder (a run is followed to its latest checkpoint; "
                        "default: the shipped emoji model)")
    p.add_argument("--data", type=Path, required=True, help="imagefolder with the real images (metadata.jsonl)")
    p.add_argument("--split", default="test", help="real images to compare with (default: test)")
    p.add_argument("-n", "--num-images", type=int, default=200,
                   help="pictures to generate (default: 200, a few minutes on a CPU); more = tighter "
                        "FID/KID: FID is biased at small N, KID is not")
    p.add_argument("--prompts", type=Path, default=None,
                   help="file of prompts, one a line (default: the labels of the split's images)")
    p.add_argument("--seed", type=int, default=0, help="image k uses seed+k (default: 0)")
    add_sampling_arguments(p)
    p.add_argument("--out", type=Path, default=Path("eval"),
                   help="folder for report.json and plots, new or empty or an earlier report's (default: eval/)")
    p.add_argument("--references", action="store_true",
                   help="also score a ceiling (real images) and a floor (clipped Gaussian noise)")
    p.add_argument("--sweep-steps", action="store_true",
                   help="KID and top-1 against steps 5..100 for every sampler (slow: 20 generations)")
    p.add_argument("--sweep-guidance", action="store_true",
                   help="KID and top-1 against guidance 1, 2, 3, 5, 8 (5 generations)")
    p.add_argument("--sweep-images", type=int, default=50, help="pictures per sweep point (default: 50)")
    p.add_argument("--no-heldout", action="store_true", help="skip the held-out denoising loss")
    p.add_argument("--score-size", type=int, default=None, metavar="PX",
                   help="score at this size instead of the model's: the real images are read at it and "
                        "the pictures resized to it as they are (Lanczos), e.g. a 128 px model against "
                        "64 px references beside a 64 px model; no held-out loss then")
    p.add_argument("--batch-size", type=int, default=16, help="batch for sampling and Inception (default: 16)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    p.add_argument("--suite", choices=SUITES, default=None,
                   help="instead of the metrics above, a suite: 'understanding' (paraphrases and colour x "
                        "object prompts of the emoji set, with ceiling and chance rows) or 'shapes' (every "
                        "colour x shape of a `gouache data shapes` folder, held-out ones marked)")
    p.add_argument("--suite-seeds", type=int, default=None,
                   help="pictures a suite prompt (default: understanding 2, shapes 8)")
    p.set_defaults(func=_eval)


def _eval(a: argparse.Namespace) -> None:
    from gouache.store.checkpoint import default_model_dir
    from gouache.store.files import check_output_folder

    check_output_folder(a.out, inputs=[("the --model", a.model or default_model_dir()), ("the --data", a.data)],
                        own=lambda folder: (folder / "report.json").is_file())  # an earlier report: replaced
    if a.suite is not None:
        return _suite(a)
    from gouache.evaluate.report import Sweeps, evaluate, format_report

    sweeps = Sweeps(steps=a.sweep_steps, guidance=a.sweep_guidance, images=a.sweep_images)
    report = evaluate(a.model, a.data, sampling_options(a), split=a.split, num_images=a.num_images,
                      prompts=a.prompts, seed=a.seed, out=a.out, references=a.references, sweeps=sweeps,
                      batch_size=a.batch_size, device=a.device, heldout=not a.no_heldout,
                      score_size=a.score_size)
    print(format_report(report))
    print(f"wrote {a.out / 'report.json'}")


def _suite(a: argparse.Namespace) -> None:
    if a.suite == "shapes":
        from gouache.evaluate.shapes import format_shapes, shapes_suite

        report = shapes_suite(a.model, a.data, seeds=a.suite_seeds or 8, seed=a.seed, options=sampling_options(a),
                              out=a.out, batch_size=a.batch_size, device=a.device)
        print(format_shapes(report))
        print(f"wrote {a.out / 'report.json'}")
        return
    from gouache.evaluate.understanding import format_understanding, understanding

    report = understanding(a.model, a.data, seeds=a.suite_seeds or 2, seed=a.seed, options=sampling_options(a),
                           out=a.out, batch_size=a.batch_size, device=a.device)
    print(format_understanding(report))
    print(f"wrote {a.out / 'report.json'}")
