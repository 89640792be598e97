"""Few-step generation: what the distilled student costs and buys against its teacher.

    python benchmarks/fewstep.py speed                      # the shipped model, 5 interleaved rounds
    python benchmarks/fewstep.py quality --data data-build/emoji64 -n 300 --out eval/fewstep
    python benchmarks/fewstep.py levels --data data-build/emoji64 --steps 2 4 --last 2.5 5 8 12 20

``speed``: ``gouache generate "red apple"`` end to end (process start to PNG), the default
(the student, 2 steps) and the teacher's path (``--sampler dpmpp_2m``, 20 guided steps),
against the floor that ``python -c "import torch"`` sets; the three commands in turn, round
after round, so that a busy machine slows all three alike. Then sampling alone, in one
process: the teacher's 20 guided steps against the student's steps, interleaved.

``quality``: held-out KID and prompt fidelity (``gouache eval``'s measure, the same prompts
and seeds at every point) against network calls a picture: the student at 1, 2, 4, 8 steps
and the teacher's samplers at 10, 20, 50 steps (a guided step is 2 calls, Heun's 2 a step
but the last). Writes report.json and a plot.

``levels``: the student's KID and fidelity for each count of steps and each last noise level
(``samplers.CONSISTENCY_SIGMA_LAST``), measured on the *training* split with seed 1, so that
choosing the levels never looks at the test split that ``quality`` reports.
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from timing import interleaved  # noqa: E402

from gouache.sampling.options import SamplingOptions  # noqa: E402

CPU = torch.device("cpu")

PROMPT = "red apple"


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)


def _medians(times: dict[str, list[float]]) -> dict:
    return {name: {"median_s": statistics.median(t), "all_s": t} for name, t in times.items()}


def end_to_end(model: str | None, repeats: int) -> dict:
    """Median wall seconds of the floor, the student's and the teacher's `gouache generate`."""
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        generate = [py, "-m", "gouache", "generate", PROMPT, "--overwrite", *(["--model", model] if model else [])]
        cmds = {"floor (import torch)": [py, "-c", "import torch"],
                "default (auto)": [*generate, "--out", f"{tmp}/student.png"],
                "teacher (--sampler dpmpp_2m)": [*generate, "--sampler", "dpmpp_2m", "--out", f"{tmp}/teacher.png"]}
        _run(cmds["default (auto)"])  # warm the file cache
        times = interleaved({name: functools.partial(_run, cmd) for name, cmd in cmds.items()}, repeats, 0, CPU)
    return _medians(times)


def sampling_alone(model: str | None, repeats: int) -> dict:
    """Median seconds of one picture's sampling in one process: teacher and student in turn."""
    from gouache.sampling.pipeline import Pipeline

    pipe = Pipeline.load(model, device="cpu")
    runs = {"teacher dpmpp_2m 20 steps, guided": SamplingOptions("dpmpp_2m", 20),
            "default (auto)": pipe.resolve(SamplingOptions())}
    # one warm-up call each: the prompt encoded, everything warm
    out = _medians(interleaved({name: functools.partial(pipe.generate, PROMPT, options, progress=False)
                                for name, options in runs.items()}, repeats, 1, CPU))
    out["default (auto)"]["sampler"] = f"{runs['default (auto)'].sampler} {runs['default (auto)'].steps} steps"
    return out


def speed(a: argparse.Namespace) -> dict:
    e2e = end_to_end(a.model, a.repeats)
    floor = e2e["floor (import torch)"]["median_s"]
    above = {k: v["median_s"] - floor for k, v in e2e.items()}
    alone = sampling_alone(a.model, a.repeats)
    t_name, s_name = "teacher dpmpp_2m 20 steps, guided", "default (auto)"
    result = {"end_to_end": e2e, "sampling": alone,
              "ratio_above_floor": above["default (auto)"] / above["teacher (--sampler dpmpp_2m)"],
              "ratio_sampling": alone[s_name]["median_s"] / alone[t_name]["median_s"]}
    print(f"| `gouache generate \"{PROMPT}\"`, {a.repeats} interleaved rounds | median s | above the floor |")
    print("|---|---|---|")
    for name, v in e2e.items():
        print(f"| {name} | {v['median_s']:.2f} | {above[name]:.2f} |")
    print(f"\nstudent / teacher above the floor: {result['ratio_above_floor']:.3f} (bar: at most 1/3)\n")
    print("| sampling one picture, in process | median s |")
    print("|---|---|")
    for name, v in alone.items():
        print(f"| {name}{' (' + v['sampler'] + ')' if 'sampler' in v else ''} | {v['median_s']:.3f} |")
    print(f"\nstudent / teacher sampling: {result['ratio_sampling']:.3f} (bar: at most 0.15)")
    return result


def network_calls(options: SamplingOptions) -> int:
    """Network evaluations a picture (a guided call is two: conditional and unconditional)."""
    guided = 1 if options.spec.student or options.guidance == 1 else 2
    return guided * options.spec.calls(options.steps)


def quality(a: argparse.Namespace) -> dict:
    from gouache.evaluate.features import InceptionV3TF
    from gouache.evaluate.report import evaluate
    from gouache.evaluate.sweeps import plot_sweep
    from gouache.sampling.pipeline import Pipeline

    pipe = Pipeline.load(a.model, device="cpu")
    extractor = InceptionV3TF(pipe.device)
    points = [SamplingOptions("consistency", n) for n in a.student_steps] + [
        SamplingOptions(s, n) for s in a.teacher_samplers for n in a.teacher_steps]
    rows = [r for path in a.also for r in json.loads(Path(path).read_text())["points"]]  # measured before
    for options in points:
        t0 = time.time()
        report = evaluate(a.model, a.data, options, num_images=a.num_images, out=None, heldout=False,
                          pipeline=pipe, extractor=extractor, progress=False)
        m = report["metrics"]
        rows.append({"sampler": options.sampler, "steps": options.steps, "calls": network_calls(options),
                     "kid_mean": m["kid_mean"], "kid_std": m["kid_std"], "top1": m["top1"], "top5": m["top5"],
                     "seconds": round(time.time() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
    ref = next((r for r in rows if r["sampler"] == "dpmpp_2m" and r["steps"] == 20), None)
    print("\n| sampler | steps | network calls | KID x1e3 | top-1 | top-5 |"
          + (" KID / teacher's 20 | top-5 / teacher's 20 |" if ref else ""))
    print("|---|---|---|---|---|---|" + ("---|---|" if ref else ""))
    for r in rows:
        extra = f" {r['kid_mean'] / ref['kid_mean']:.2f} | {r['top5'] / ref['top5']:.2f} |" if ref else ""
        print(f"| {r['sampler']} | {r['steps']} | {r['calls']} | {1e3 * r['kid_mean']:.1f} ± {1e3 * r['kid_std']:.1f}"
              f" | {r['top1']:.3f} | {r['top5']:.3f} |" + extra)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    series: dict[str, list] = {}
    for r in sorted(rows, key=lambda r: r["calls"]):
        name = "student (consistency)" if r["sampler"] == "consistency" else f"teacher ({r['sampler']})"
        series.setdefault(name, []).append((r["calls"], r))
    plot_sweep(series, "network calls a picture", out / "kid_vs_calls.png", log_x=True,
               title=f"held-out KID and fidelity, {a.num_images} pictures, same prompts and seeds")
    return {"points": rows, "num_images": a.num_images, "data": str(a.data)}


def levels(a: argparse.Namespace) -> dict:
    from gouache.evaluate.features import InceptionV3TF
    from gouache.evaluate.report import evaluate
    from gouache.sampling import samplers
    from gouache.sampling.pipeline import Pipeline

    pipe = Pipeline.load(a.model, device="cpu")
    extractor = InceptionV3TF(pipe.device)
    seed = 1  # not the test split's seed 0 either
    chosen, rows = samplers.CONSISTENCY_SIGMA_LAST, []
    try:
        for steps in a.steps:
            for last in a.last:
                samplers.CONSISTENCY_SIGMA_LAST = last
                options = SamplingOptions("consistency", steps)
                m = evaluate(a.model, a.data, options, split="train", seed=seed, num_images=a.num_images, out=None,
                             heldout=False, pipeline=pipe, extractor=extractor, progress=False)["metrics"]
                levels = [round(float(x), 2) for x in options.spec.sigmas(steps, pipe.config.schedule)[:-1]]
                rows.append({"steps": steps, "last": last, "levels": levels, "kid_mean": m["kid_mean"],
                             "top1": m["top1"], "top5": m["top5"]})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        samplers.CONSISTENCY_SIGMA_LAST = chosen
    print(f"\n| steps | last level | levels | KID x1e3 (train split, {a.num_images} pictures) | top-1 | top-5 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['steps']} | {r['last']:g} | {', '.join(f'{x:g}' for x in r['levels'])} | "
              f"{1e3 * r['kid_mean']:.1f} | {r['top1']:.3f} | {r['top5']:.3f} |")
    return {"points": rows, "num_images": a.num_images, "split": "train", "seed": seed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--repeats", type=int, default=5)
    q = sub.add_parser("quality")
    q.add_argument("--data", type=Path, required=True)
    q.add_argument("-n", "--num-images", type=int, default=300)
    q.add_argument("--student-steps", type=int, nargs="*", default=[1, 2, 4, 8])
    q.add_argument("--teacher-samplers", nargs="*", default=["dpmpp_2m"])
    q.add_argument("--teacher-steps", type=int, nargs="*", default=[10, 20, 50])
    q.add_argument("--also", nargs="*", default=[], metavar="JSON",
                   help="points measured before (this script's --json), added to the table and plot")
    q.add_argument("--out", type=Path, default=Path("eval/fewstep"))
    lv = sub.add_parser("levels")
    lv.add_argument("--data", type=Path, required=True)
    lv.add_argument("-n", "--num-images", type=int, default=300)
    lv.add_argument("--steps", type=int, nargs="+", default=[2, 4])
    lv.add_argument("--last", type=float, nargs="+", default=[2.5, 5.0, 8.0, 12.0, 20.0])
    for sp in (s, q, lv):
        sp.add_argument("--model", default=None, help="model folder with a student (default: the shipped one)")
        sp.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    result = {"speed": speed, "quality": quality, "levels": levels}[a.what](a)
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
