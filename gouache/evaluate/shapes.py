"""The shapes testbed: does a model paint colour x shape combinations it never saw?

    gouache data shapes --out data/shapes-h --holdout "green triangle,blue circle,yellow square"
    gouache train --config configs/shapes.toml --data data/shapes-h --out runs/shapes-h
    gouache eval --suite shapes --data data/shapes-h --model runs/shapes-h

Every colour x shape caption of the folder (``shapes.json``) is painted with ``seeds``
seeds, and each picture judged without a person. The shape: the coloured pixels' largest
connected blob must hold most of them and have a squarish bounding box; a square fills the
box's corners (outside its inscribed ellipse) and a disc leaves them empty, and the
triangle's top third is much narrower than its bottom (thresholds set between the drawn
shapes, where every one is judged right, and the wobbly or doubled shapes of a half-trained
model, which a person would not call the shape either). The colour: the blob's dominant
named hue (``gouache.colours``). A picture counts when both
are the caption's; a combination's score is the number of seeds that count.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from gouache.colours import dominant_colours, foreground, rgb_to_hsv, saturated
from gouache.data.build.shapes import read_shapes_info
from gouache.data.imagefolder import read_records
from gouache.device import pick_device
from gouache.errors import GouacheError
from gouache.evaluate.context import MAX_SUITE_SEEDS, check_count, check_run, generate_images, row_label
from gouache.evaluate.understanding import suite_fits
from gouache.images import grid, to_pil
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.store.checkpoint import checkpoint_record, resolve_model_dir
from gouache.store.files import json_safe, save_png

__all__ = ["judge_shapes", "check_shapes_data", "shapes_suite", "format_shapes"]

MIN_AREA = 0.02  # a blob smaller than this share of the picture is no shape
MAX_AREA = 0.6  # nor one larger (the drawn shapes cover at most 0.41 of it)
MIN_BLOB = 0.8  # the largest blob's share of the coloured pixels (one shape, not a scatter)
MAX_ASPECT = 1.4  # a longer box holds a rectangle, an oval or two shapes run together
APEX = 0.5  # a triangle's top third is less than half as wide as its bottom third


def _largest_blob(mask: torch.Tensor) -> torch.Tensor | None:
    """The largest 8-connected component of a (H, W) bool mask, or None when it is not one shape."""
    from scipy import ndimage

    total = int(mask.sum())
    if total < MIN_AREA * mask.numel():
        return None
    lab, n = ndimage.label(mask.numpy(), structure=[[1, 1, 1], [1, 1, 1], [1, 1, 1]])
    sizes = torch.bincount(torch.from_numpy(lab).flatten(), minlength=n + 1)[1:]
    k = int(sizes.argmax()) + 1
    if sizes[k - 1] < MIN_BLOB * total or sizes[k - 1] > MAX_AREA * mask.numel():
        return None
    return torch.from_numpy(lab == k)


def _shape_of(blob: torch.Tensor) -> str | None:
    """circle, square or triangle (apex up), or None, from the blob's bounding box: how much of the box
    it fills, how much of the box's corners (outside the inscribed ellipse) it fills, and whether its
    top third is much narrower than its bottom third."""
    ys, xs = blob.nonzero(as_tuple=True)
    top, bottom, left, right = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    h, w = bottom - top + 1, right - left + 1
    if min(h, w) < 4 or max(h, w) > MAX_ASPECT * min(h, w):
        return None
    box = blob[top:bottom + 1, left:right + 1]
    fill = float(box.float().mean())
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    outside = ((yy - (h - 1) / 2) / (h / 2)) ** 2 + ((xx - (w - 1) / 2) / (w / 2)) ** 2 > 1
    corners = float(box[outside].float().mean()) if outside.any() else 0.0
    rows = box.sum(1).float()  # the width of each row
    third = max(1, h // 3)
    apex_up = float(rows[:third].mean()) < APEX * float(rows[-third:].mean())
    if apex_up:
        return "triangle" if fill < 0.68 else None
    if corners >= 0.5 and fill >= 0.8:
        return "square"
    if corners <= 0.35 and 0.62 <= fill < 0.86:
        return "circle"
    return None


def judge_shapes(images: torch.Tensor) -> list[tuple[str | None, str | None]]:
    """(shape, colour) of each (N, 3, H, W) uint8 picture; None where it is not one."""
    _, s, v = rgb_to_hsv(images.float() / 255)
    masks = saturated(s, v) & foreground(images)
    out = []
    for img, mask in zip(images, masks):
        blob = _largest_blob(mask)
        if blob is None:
            out.append((None, None))
            continue
        only = torch.where(blob, img, torch.full_like(img, 255))  # the blob's pixels on white
        out.append((_shape_of(blob), dominant_colours(only[None])[0]))
    return out


def check_shapes_data(data: Path, seen: list[str]) -> None:
    """Refuse a folder whose training pictures are not the suite's shapes (every one would be
    judged wrong), naming the suite that fits it."""
    rows = read_records(data, split=None)
    labels = {row_label(r).lower() for r in rows if r.get("split", "train") == "train"}
    missing = [c for c in seen if c not in labels]
    if missing:
        fits = "--suite understanding" if suite_fits(rows) else "gouache eval without --suite"
        raise GouacheError(f"shapes suite: {data} has no training picture of {missing[0]!r}: it is not a "
                           f"`gouache data shapes` folder; for this data use {fits}")


def shapes_suite(model: Path | str | None, data: Path | str, *, seeds: int = 8, seed: int = 0,
                 options: SamplingOptions = SamplingOptions(), out: Path | str | None = Path("eval"),
                 batch_size: int = 16, device: str = "auto", pipeline: Pipeline | None = None,
                 progress: bool = True) -> dict:
    """Paint every colour x shape of ``data``'s ``shapes.json`` with ``seeds`` seeds and judge each."""
    start = time.time()
    if model is None:
        raise GouacheError("the shapes suite needs --model: a run trained on the shapes folder")
    check_count(seeds, 1, MAX_SUITE_SEEDS, what="--suite-seeds (pictures a prompt)")
    info = read_shapes_info(Path(data))
    captions = [f"{c} {s}" for c in info["colours"] for s in info["shapes"]]
    check_shapes_data(Path(data), [c for c in captions if c not in info["holdout"]])
    check_run(seed=seed, count=len(captions) * seeds, batch_size=batch_size, out=out)
    folder = resolve_model_dir(model)
    pipe = pipeline or Pipeline.load(folder, device=pick_device(device))
    options = pipe.resolve(options)  # "auto" named, for the report
    prompts = [c for c in captions for _ in range(seeds)]  # caption k's seeds: seed + k*seeds ...
    images = generate_images(pipe, prompts, options, seed=seed, batch_size=batch_size, progress=progress)
    judged = judge_shapes(images)
    combos = {}
    for n, caption in enumerate(captions):
        colour, shape = caption.split(" ", 1)
        got = judged[n * seeds:(n + 1) * seeds]
        combos[caption] = {"heldout": caption in info["holdout"], "seeds": seeds,
                           "right": sum(g == (shape, colour) for g in got),
                           "right_shape": sum(g[0] == shape for g in got),
                           "right_colour": sum(g[1] == colour for g in got),
                           "judged": [list(g) for g in got]}
    held = [c for c in combos.values() if c["heldout"]]
    seen = [c for c in combos.values() if not c["heldout"]]
    report = {"suite": "shapes", "model": checkpoint_record(folder), "data": str(data),
              "holdout": info["holdout"],
              "sampler": options.sampler, "steps": options.steps, "guidance": options.guidance, "seed": seed, "seeds": seeds,
              "heldout_rate": _share(held), "seen_rate": _share(seen),
              "heldout_all_90": bool(held) and all(c["right"] >= 0.9 * seeds for c in held),
              "combinations": combos, "seconds": round(time.time() - start, 1)}
    report = json_safe(report)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        pics = [to_pil(x.float() / 127.5 - 1) for x in images]
        # the verdict first: a long label is cut at the picture's width
        labels = [f"{'ok' if j == tuple(p.split(' ', 1)[::-1]) else 'NO'}: {p}{' (held out)' if p in info['holdout'] else ''}"
                  for p, j in zip(prompts, judged)]
        report["plots"] = [str(save_png(grid(pics, cols=seeds, labels=labels, scale=3), out / "shapes.png"))]
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _share(combos: list[dict]) -> float:
    return sum(c["right"] for c in combos) / max(1, sum(c["seeds"] for c in combos)) if combos else float("nan")


def format_shapes(report: dict) -> str:
    """One row per combination: right shape and colour in how many of the seeds."""
    lines = [f"{report['model']['folder']}  (shapes testbed, {report['seeds']} seeds a caption)",
             f"{'caption':18} {'held out':>8} {'right':>6} {'shape':>6} {'colour':>6}"]
    for caption, c in report["combinations"].items():
        lines.append(f"{caption:18} {'yes' if c['heldout'] else '':>8} {c['right']:>4}/{c['seeds']} "
                     f"{c['right_shape']:>4}/{c['seeds']} {c['right_colour']:>4}/{c['seeds']}")
    held, seen = report["heldout_rate"], report["seen_rate"]
    lines.append(f"held-out: {'-' if held is None else f'{100 * held:.0f}%'} of pictures right; "
                 f"seen: {'-' if seen is None else f'{100 * seen:.0f}%'}")
    return "\n".join(lines)
