"""The prompt-understanding suite: does the model paint what the words say, not only its labels?

    gouache eval --data data/emoji64 --suite understanding

Two sets of hand-written prompts, kept in ``suites/`` beside this file:

* ``paraphrase.jsonl``: a known thing in other words ("a cup of hot coffee" for hot
  beverage, "puppy" for dog face), each with the labels it means; no prompt is a caption
  of the training split;
* ``composition.jsonl``: a colour on an object that never has that colour in the
  training split ("green banana", "blue apple", "purple cat").

Judged without a person. The object: is one of the 5 nearest real images, in the TF-FID
Inception features, an image of one of the prompt's labels? For composition prompts both
the picture and the real references are turned greyscale first, so that the colour does
not decide the shape. The colour (when a prompt asks one): the dominant named hue of the
picture's coloured foreground (``gouache.colours``). A prompt counts when both hold.

The real references are every image (of any split) of the suite's labels and ``distractors``
others drawn with the seed; their features are cached in ``DATA/.gouache_cache/``. Beside
the model's row, a ceiling and a chance row read the numbers:

* ceiling: real images of each prompt's labels, ranked against the other references; for
  composition, recoloured by hue rotation to the asked colour (``colours.rotate_hue``);
* chance: a real image of something else drawn at random for each prompt (a model that
  ignores the prompt), judged the same way.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from gouache.colours import HUES, dominant_colours, dominant_hue, greyscale, rotate_hue
from gouache.data.build.shapes import COLOURS, SHAPES
from gouache.data.imagefolder import caption_variants, read_records
from gouache.device import pick_device
from gouache.errors import GouacheError
from gouache.evaluate.context import MAX_SUITE_SEEDS, check_count, check_run, generate_images, row_label
from gouache.evaluate.features import ImageFeatures, InceptionV3TF, cache_path
from gouache.evaluate.metrics import nearest
from gouache.images import grid, load_rgb, to_pil, to_uint8_tensor
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.store.checkpoint import (
    checkpoint_record,
    default_model_dir,
    resolve_model_dir,
)
from gouache.store.files import json_safe, save_png

__all__ = ["SuitePrompt", "SUITES_DIR", "KINDS", "load_suite", "train_captions", "check_suite", "suite_fits",
           "judge_objects", "understanding", "format_understanding"]

SUITES_DIR = Path(__file__).parent / "suites"
SHAPE_CAPTIONS = {f"{c} {s}" for c in COLOURS for s in SHAPES}  # a `gouache data shapes` folder's
KINDS = ("paraphrase", "composition")
TOP_K = 5


@dataclass(frozen=True)
class SuitePrompt:
    prompt: str
    labels: tuple[str, ...]  # the training labels the prompt means
    kind: str  # "paraphrase" or "composition"
    category: str  # per-category rates: a kind of wording, or the asked colour
    colour: str | None = None  # the colour the picture must have, if the prompt asks one


def load_suite(folder: Path = SUITES_DIR) -> list[SuitePrompt]:
    """The prompts of ``folder/paraphrase.jsonl`` and ``folder/composition.jsonl``."""
    out = []
    for kind in KINDS:
        path = Path(folder) / f"{kind}.jsonl"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            colour = row.get("colour")
            if colour is not None and colour not in HUES:
                raise GouacheError(f"{path}:{n}: unknown colour {colour!r}")
            if not row.get("labels"):
                raise GouacheError(f"{path}:{n}: a prompt needs the labels it means")
            out.append(SuitePrompt(row["prompt"], tuple(row["labels"]), kind, row.get("category", kind), colour))
    return out


def train_captions(rows: Sequence[dict]) -> set[str]:
    """Every caption the training split shows a model (each row's variants), lower-cased."""
    return {c.lower() for r in rows if r.get("split", "train") == "train" for c in caption_variants(r)[0]}


def check_suite(suite: Sequence[SuitePrompt], rows: Sequence[dict]) -> None:
    """The suite fits the data: every label is a training label and no prompt is a training caption."""
    labels = {row_label(r) for r in rows if r.get("split", "train") == "train"}
    captions = train_captions(rows)
    for p in suite:
        missing = [x for x in p.labels if x not in labels]
        if missing:
            raise GouacheError(f"understanding suite: {p.prompt!r} means {', '.join(missing)}, "
                               "not a label of the data's training split (the suite is written for the emoji set)")
        if p.prompt.lower() in captions:
            raise GouacheError(f"understanding suite: {p.prompt!r} is a caption of the training split")


def suite_fits(rows: Sequence[dict], suite: Sequence[SuitePrompt] | None = None) -> bool:
    """Whether the suite (default: the shipped one) fits a data folder's rows (``check_suite``)."""
    try:
        check_suite(load_suite() if suite is None else suite, rows)
    except GouacheError:
        return False
    return True


def judge_objects(feats: torch.Tensor, wanted: Sequence[Sequence[str]], ref: torch.Tensor,
                  ref_labels: Sequence[str], *, exclude: torch.Tensor | None = None, k: int = TOP_K) -> list[bool]:
    """Per query: is one of its ``k`` nearest references (L2) of one of its wanted labels?"""
    if len(feats) == 0:
        return []
    dist, idx = nearest(feats, ref, k, exclude)
    return [any(ref_labels[j] in want and d < float("inf") for j, d in zip(row, drow))
            for want, row, drow in zip(wanted, idx.tolist(), dist.tolist())]


def _pool(rows: list[dict], suite: Sequence[SuitePrompt], distractors: int, seed: int) -> list[int]:
    """Rows of the references: all of the suite's labels, and ``distractors`` others drawn with ``seed``."""
    wanted = {x for p in suite for x in p.labels}
    pos = [i for i, r in enumerate(rows) if row_label(r) in wanted]
    others = [i for i, r in enumerate(rows) if row_label(r) not in wanted]
    random.Random(seed).shuffle(others)
    return sorted(pos + others[:distractors])


def _load(rows: Sequence[dict], size: int) -> torch.Tensor:
    return torch.stack([to_uint8_tensor(load_rgb(Path(r["path"]), size)) for r in rows])  # (N, 3, H, W)


def _pool_features(data: Path, rows: Sequence[dict], images: torch.Tensor, extractor: ImageFeatures, *,
                   grey: bool, cache_dir: Path | None, batch_size: int, progress: bool) -> torch.Tensor:
    """Inception features of the references (greyscale ones if ``grey``), cached beside the data."""
    from safetensors.torch import load_file, save_file

    key = hashlib.sha256("\n".join(r["file_name"] for r in rows).encode()).hexdigest()[:12]
    path = cache_path(data, f"understanding-{'grey' if grey else 'colour'}-{key}", images.shape[-1],
                      extractor.name, cache_dir)
    if path.exists():
        feats = load_file(path).get("features")
        if feats is not None and feats.shape == (len(rows), extractor.num_features):
            return feats
    feats = extractor.extract(greyscale(images) if grey else images, batch_size=batch_size, progress=progress,
                              desc=f"inception: references{' (grey)' if grey else ''}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"features": feats.contiguous()}, path)
    except OSError as e:
        print(f"gouache: warning: cannot write the feature cache {path}: {e}")
    return feats


def _recolour_to(images: torch.Tensor, colours: Sequence[str]) -> torch.Tensor:
    """Real pictures turned so that their dominant hue is each asked colour (the ceiling's pictures)."""
    turns = []
    for hue, colour in zip(dominant_hue(images), colours):
        turns.append(0.0 if hue is None else HUES[colour] - hue[1])
    return rotate_hue(images, turns)


def _rates(items: Sequence[SuitePrompt], obj: Sequence[bool], col: Sequence[bool]) -> dict:
    """Shares of prompts whose object, colour, and both hold, overall and per category."""
    both = [o and c for o, c in zip(obj, col)]
    out = {"count": len(items), "rate": _mean(both), "object": _mean(obj), "colour": _mean(col), "categories": {}}
    groups: dict[str, list[bool]] = defaultdict(list)
    for p, ok in zip(items, both):
        groups[p.category].append(ok)
    out["categories"] = {k: {"count": len(v), "rate": _mean(v)} for k, v in sorted(groups.items())}
    return out


def _mean(xs: Sequence[bool]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _colour_ok(images: torch.Tensor, items: Sequence[SuitePrompt]) -> list[bool]:
    found = dominant_colours(images)
    return [p.colour is None or f == p.colour for p, f in zip(items, found)]


def understanding(model: Path | str | None, data: Path | str, *, seeds: int = 2, seed: int = 0,
                  options: SamplingOptions = SamplingOptions(), out: Path | str | None = Path("eval"), distractors: int = 500, batch_size: int = 16,
                  device: str = "auto", suite: Sequence[SuitePrompt] | None = None,
                  pipeline: Pipeline | None = None, extractor: ImageFeatures | None = None,
                  cache_dir: Path | None = None, progress: bool = True) -> dict:
    """Paint every suite prompt with ``seeds`` seeds and judge the pictures; return the report
    (also ``out/report.json`` and the grids ``out/understanding_<kind>.png`` unless ``out`` is None)."""
    start = time.time()
    data = Path(data)
    check_count(seeds, 1, MAX_SUITE_SEEDS, what="--suite-seeds (pictures a prompt)")
    suite = list(suite) if suite is not None else load_suite()
    rows = read_records(data, split=None)
    if any(row_label(r).lower() in SHAPE_CAPTIONS for r in rows) and not suite_fits(rows, suite):
        raise GouacheError(f"understanding suite: {data} is a `gouache data shapes` folder, not emoji; "
                           "for this data use --suite shapes")
    check_suite(suite, rows)
    check_run(seed=seed, count=len(suite) * seeds, batch_size=batch_size, out=out)
    folder = resolve_model_dir(model if model is not None else default_model_dir())
    info = checkpoint_record(folder)
    dev = pick_device(device)
    pipe = pipeline or Pipeline.load(folder, device=dev)
    options = pipe.resolve(options)  # "auto" named, for the report
    extractor = extractor or InceptionV3TF(dev)
    size = pipe.image_size

    pool_rows = [rows[i] for i in _pool(rows, suite, distractors, seed)]
    pool_images = _load(pool_rows, size)
    pool_labels = [row_label(r) for r in pool_rows]
    kw = dict(cache_dir=cache_dir, batch_size=batch_size, progress=progress)
    ref = {grey: _pool_features(data, pool_rows, pool_images, extractor, grey=grey, **kw) for grey in (False, True)}

    items = [p for _ in range(seeds) for p in suite]  # item k: prompt k % len(suite), seed + k
    images = generate_images(pipe, [p.prompt for p in items], options, seed=seed, batch_size=batch_size,
                             progress=progress)
    grey_of = [p.kind == "composition" for p in items]
    feats = _features(extractor, images, grey_of, batch_size=batch_size, progress=progress)
    rows_out = {"model": (_objects(feats, items, ref, pool_labels, grey_of), _colour_ok(images, items))}
    rows_out["ceiling"] = _ceiling(items, pool_rows, pool_images, pool_labels, ref, extractor, seed,
                                   batch_size=batch_size, progress=progress)
    rows_out["chance"] = _chance(items, pool_images, pool_labels, ref, seed)

    report: dict = {"suite": "understanding", "model": info, "data": {"folder": str(data)},
                    "sampler": options.sampler, "steps": options.steps, "guidance": options.guidance, "seed": seed, "seeds": seeds,
                    "feature_network": extractor.name, "top_k": TOP_K,
                    "references": {"count": len(pool_rows), "distractors": distractors}}
    for kind in KINDS:
        sel = [k for k, p in enumerate(items) if p.kind == kind]
        report[kind] = {name: _rates([items[k] for k in sel], [o[k] for k in sel], [c[k] for k in sel])
                        for name, (o, c) in rows_out.items()}
    obj, col = rows_out["model"]
    report["prompts"] = [{"prompt": p.prompt, "kind": p.kind, "seed": seed + k, "object": o, "colour": c}
                         for k, (p, o, c) in enumerate(zip(items, obj, col))]
    report["seconds"] = round(time.time() - start, 1)
    report = json_safe(report)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        report["plots"] = [str(_grid(images, items, obj, col, kind, out / f"understanding_{kind}.png"))
                           for kind in KINDS if any(p.kind == kind for p in items)]
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _features(extractor: ImageFeatures, images: torch.Tensor, grey: Sequence[bool], *, batch_size: int,
              progress: bool) -> torch.Tensor:
    """Features of the pictures, of their greyscale version where ``grey``."""
    mask = torch.tensor(grey, dtype=torch.bool)
    x = torch.where(mask.view(-1, 1, 1, 1), greyscale(images), images)
    return extractor.extract(x, batch_size=batch_size, progress=progress, desc="inception: suite")


def _objects(feats: torch.Tensor, items: Sequence[SuitePrompt], ref: dict, labels: Sequence[str],
             grey: Sequence[bool], exclude: torch.Tensor | None = None) -> list[bool]:
    """The object judge, against the colour references or (composition) the grey ones."""
    ok = [False] * len(items)
    for g in (False, True):
        sel = [k for k in range(len(items)) if grey[k] == g]
        if not sel:
            continue
        ex = exclude[sel] if exclude is not None else None
        for k, hit in zip(sel, judge_objects(feats[sel], [items[k].labels for k in sel], ref[g], labels,
                                             exclude=ex)):
            ok[k] = hit
    return ok


def _exclude_self(picks: Sequence[int], n: int) -> torch.Tensor:
    ex = torch.zeros(len(picks), n, dtype=torch.bool)
    ex[torch.arange(len(picks)), torch.tensor(picks)] = True
    return ex


def _ceiling(items, pool_rows, pool_images, labels, ref, extractor, seed, *, batch_size, progress):
    """Real images of each prompt's labels (item k: the (k // prompts)-th image, cycled) judged against
    the other references; composition ones recoloured to the asked colour, and their grey features new."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for j, lab in enumerate(labels):
        by_label[lab].append(j)
    picks = []
    for p in items:
        cands = sorted(j for lab in p.labels for j in by_label[lab])
        picks.append(cands[rng.randrange(len(cands))])
    images = pool_images[picks].clone()
    comp = [k for k, p in enumerate(items) if p.kind == "composition"]
    grey = [p.kind == "composition" for p in items]
    feats = ref[False][picks].clone()
    if comp:
        images[comp] = _recolour_to(images[comp], [items[k].colour for k in comp])
        feats[comp] = extractor.extract(greyscale(images[comp]), batch_size=batch_size, progress=progress,
                                        desc="inception: ceiling (recoloured, grey)")
    exclude = _exclude_self(picks, len(labels))
    return _objects(feats, items, ref, labels, grey, exclude), _colour_ok(images, items)


def _chance(items, pool_images, labels, ref, seed):
    """A real image of another label, drawn at random for each prompt, judged as the prompt's picture."""
    rng = random.Random(seed + 1)
    picks = []
    for p in items:
        while True:
            j = rng.randrange(len(labels))
            if labels[j] not in p.labels:
                break
        picks.append(j)
    grey = [p.kind == "composition" for p in items]
    feats = torch.stack([ref[g][j] for g, j in zip(grey, picks)])
    exclude = _exclude_self(picks, len(labels))
    return _objects(feats, items, ref, labels, grey, exclude), _colour_ok(pool_images[picks], items)


def _grid(images, items, obj, col, kind, path: Path) -> Path:
    """The first seed's pictures of a kind, each captioned with its prompt and what held."""
    sel = [k for k, p in enumerate(items) if p.kind == kind][:len({p.prompt for p in items if p.kind == kind})]
    pics = [to_pil(images[k].float() / 127.5 - 1) for k in sel]
    marks = [f"[{'obj' if obj[k] else '---'}{'' if items[k].colour is None else (' col' if col[k] else ' ---')}] "
             f"{items[k].prompt}" for k in sel]  # the marks first: a long prompt is cut at the picture's width
    return save_png(grid(pics, labels=marks, cols=8, scale=2), path)


def format_understanding(report: dict) -> str:
    """The terminal table: per kind, the rows model / ceiling / chance, overall and per category."""
    lines = [f"{report['model']['folder']}  (understanding suite, {report['seeds']} seeds a prompt, "
             f"{report['references']['count']} real references, top-{report['top_k']})"]
    for kind in KINDS:
        block = report.get(kind)
        if not block or not block["model"]["count"]:
            continue
        cats = list(block["model"]["categories"])
        lines.append(f"{kind}: {block['model']['count']} pictures; a prompt counts when object and colour hold")
        lines.append(f"{'':8} {'both':>6} {'object':>6} {'colour':>6}  " + " ".join(f"{c[:9]:>9}" for c in cats))
        for name in ("model", "ceiling", "chance"):
            r = block[name]
            per = " ".join(f"{_pct(r['categories'].get(c, {}).get('rate')):>9}" for c in cats)
            lines.append(f"{name:8} {_pct(r['rate']):>6} {_pct(r['object']):>6} {_pct(r['colour']):>6}  {per}")
    return "\n".join(lines)


def _pct(v) -> str:
    return "-" if v is None or v != v else f"{100 * v:.0f}%"
