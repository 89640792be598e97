"""Sweeps: KID and prompt fidelity against sampling steps (per sampler) and guidance scale.

Each point generates the same prompts from the same seeds, so the curves differ
only by the swept setting. KID (Binkowski et al. 2018) is used rather than FID
because it is unbiased at the small N a sweep can afford.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

from gouache.evaluate.context import EvalContext, generate_images
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.sampling.samplers import SAMPLERS

__all__ = ["run_sweeps", "plot_sweep", "SWEEP_STEPS", "SWEEP_GUIDANCE"]

SWEEP_STEPS = (5, 10, 20, 50, 100)
STUDENT_STEPS = (1, 2, 4, 8)  # a few-step student's (see consistency.py)
SWEEP_GUIDANCE = (1.0, 2.0, 3.0, 5.0, 8.0)


def _point(pipe: Pipeline, ctx: EvalContext, prompts: Sequence[str], options: SamplingOptions, *, seed: int,
           batch_size: int, progress: bool) -> dict:
    images = generate_images(pipe, prompts, options, seed=seed, batch_size=batch_size, progress=progress,
                             size=ctx.size)
    feats = ctx.extractor.extract(images, batch_size=batch_size, progress=progress,
                                  desc=f"inception: {options.sampler} {options.steps} steps, "
                                       f"guidance {options.guidance}")
    score = ctx.score(feats, prompts, fid=False)
    return {"kid_mean": score["kid_mean"], "kid_std": score["kid_std"], "top1": score["top1"],
            "top5": score["top5"]}


def _student_can(pipe: Pipeline, options: SamplingOptions) -> bool:
    """Whether the model's few-step student paints these settings (``SamplingOptions.resolve``)."""
    return pipe.resolve(replace(options, sampler="auto", steps=None)).sampler == "consistency"


def run_sweeps(pipe: Pipeline, ctx: EvalContext, prompts: Sequence[str], options: SamplingOptions, *,
               out: Path | None, steps_sweep: bool, guidance_sweep: bool, seed: int, batch_size: int,
               progress: bool = True) -> tuple[dict, list[str]]:
    """The requested sweeps around ``options``, as {"steps": {sampler: [points]}, "guidance": [points]},
    and the plot paths."""
    result: dict = {"count": len(prompts)}
    plots: list[str] = []
    kw = dict(seed=seed, batch_size=batch_size, progress=progress)
    if steps_sweep:
        # the student's sampler only where the model has a student, at its guidance
        runnable = {name: STUDENT_STEPS if s.student else SWEEP_STEPS for name, s in SAMPLERS.items()
                    if not s.student or _student_can(pipe, options)}
        result["steps"] = {
            name: [{"steps": n, **_point(pipe, ctx, prompts, replace(options, sampler=name, steps=n), **kw)}
                   for n in steps]
            for name, steps in runnable.items()}
        if out is not None:
            series = {name: [(p["steps"], p) for p in pts] for name, pts in result["steps"].items()}
            plots.append(str(plot_sweep(series, "sampling steps", out / "sweep_steps.png", log_x=True,
                                        title=f"guidance {options.guidance}, {len(prompts)} images")))
    if guidance_sweep:
        result["guidance"] = [{"guidance": w, **_point(pipe, ctx, prompts, replace(options, guidance=w), **kw)}
                              for w in SWEEP_GUIDANCE]
        if out is not None:
            series = {options.sampler: [(p["guidance"], p) for p in result["guidance"]]}
            plots.append(str(plot_sweep(series, "guidance scale", out / "sweep_guidance.png",
                                        title=f"{options.sampler}, {options.steps} steps, {len(prompts)} images")))
    return result, plots


def plot_sweep(series: dict[str, list[tuple[float, dict]]], xlabel: str, path: Path, *,
               log_x: bool = False, title: str = "") -> Path:
    """Two panels, KID (with its std over subsets) and top-1/top-5 fidelity, one line per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_kid, ax_fid) = plt.subplots(1, 2, figsize=(10, 4))
    for name, points in series.items():
        x = [p[0] for p in points]
        ax_kid.errorbar(x, [1e3 * p[1]["kid_mean"] for p in points], yerr=[1e3 * p[1]["kid_std"] for p in points],
                        marker="o", capsize=3, label=name)
        line, = ax_fid.plot(x, [p[1]["top1"] for p in points], marker="o", label=f"{name} top-1")
        ax_fid.plot(x, [p[1]["top5"] for p in points], marker="x", linestyle="--", color=line.get_color(),
                    label=f"{name} top-5")
    for ax, ylabel in ((ax_kid, "KID x 1e3 (lower is better)"), (ax_fid, "prompt fidelity (higher is better)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log_x:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
