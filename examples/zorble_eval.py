"""Measure what a LoRA taught and what it cost: the table of docs/lora.md.

For each model (the shipped base, the base with a zorble adapter at scale 1, trained without
(``--lora``) or with prior preservation (``--prior``), and a full ``--init`` fine-tune on the
same pictures):

* new-subject score: pictures from prompts the adapter never saw (a colour it never saw, the
  word in new phrases), and the share whose nearest real neighbour is a zorble, among the 16
  zorbles and 48 real emoji of the test split (so chance is 16/64 = 25%): in Inception space
  and in pixels (16x16);
* base-prompt KID and prompt fidelity (top-1): the ten showcase prompts
  (data.emoji_prompts.DEFAULT_SAMPLE_PROMPTS), 5 seeds each; KID against the emoji data set's test split (384 images), fidelity among the test
  split and every real image of a showcase prompt (the functions of ``gouache eval``, on a subset).

It also draws the before/after grid. Usage (after examples/zorble.py and the runs of docs/lora.md):

    python examples/zorble_eval.py --emoji data-build/emoji64 --zorble data-build/zorble \\
        --lora runs/zorble-lora --prior runs/zorble-prior60 --full runs/zorble-full --out eval/zorble \\
        --grid docs/images/lora_zorble.png

(one model at a time works too: ``--skip-base --full runs/zorble-full`` adds the full fine-tune,
and ``--grid`` draws every model measured in ``--out`` so far).
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from gouache.data.emoji_prompts import DEFAULT_SAMPLE_PROMPTS
from gouache.data.imagefolder import load_imagefolder, read_records
from gouache.evaluate.context import generate_images, row_label
from gouache.evaluate.features import InceptionV3TF
from gouache.evaluate.metrics import fidelity, kid, nearest
from gouache.images import grid, to_pil
from gouache.model.text import TextEncoder
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.store.files import save_png

NEW_PROMPTS = ("a blue and white zorble badge", "a zorble", "an emoji of a zorble badge")  # never in training
EMOJI_POOL = 48  # real emoji in the nearest-neighbour pool beside the 16 zorbles


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--emoji", type=Path, required=True)
    p.add_argument("--zorble", type=Path, required=True)
    p.add_argument("--lora", type=Path, default=None, help="the LoRA run folder (or adapter file)")
    p.add_argument("--prior", type=Path, default=None,
                   help="a LoRA run with prior preservation (--prior N), measured as the model \"prior\"")
    p.add_argument("--full", type=Path, default=None, help="the full fine-tune's run folder")
    p.add_argument("--skip-base", action="store_true", help="the base is measured already (in --out)")
    p.add_argument("--out", type=Path, required=True, help="per model: NAME.json and NAME.safetensors (pictures)")
    p.add_argument("--grid", type=Path, default=None, help="draw the grid of the models measured in --out")
    p.add_argument("--per-prompt", type=int, default=6, help="pictures per new-subject prompt")
    p.add_argument("--per-showcase", type=int, default=5, help="pictures per showcase prompt")
    p.add_argument("--steps", type=int, default=12, help="DPM-Solver++(2M) steps")
    a = p.parse_args()
    options = SamplingOptions(steps=a.steps)
    encoder = TextEncoder()
    models = {} if a.skip_base else {"base": lambda: Pipeline.load(device="cpu", text_encoder=encoder)}
    if a.lora is not None:
        models["lora"] = lambda: Pipeline.load(device="cpu", text_encoder=encoder, lora=[a.lora])
    if a.prior is not None:
        models["prior"] = lambda: Pipeline.load(device="cpu", text_encoder=encoder, lora=[a.prior])
    if a.full is not None:
        models["full"] = lambda: Pipeline.load(a.full, device="cpu", text_encoder=encoder)
    new_prompts = [q for q in NEW_PROMPTS for _ in range(a.per_prompt)]
    showcase = [q for q in DEFAULT_SAMPLE_PROMPTS for _ in range(a.per_showcase)]
    a.out.mkdir(parents=True, exist_ok=True)
    if models:  # the references (Inception features): minutes on a CPU, only when a model is measured
        extractor = InceptionV3TF("cpu")
        real, real_feats, real_labels, test = _real_reference(a.emoji, extractor)
        zorbles = load_imagefolder(a.zorble, size=64, progress=False).images
        zorble_feats = extractor.extract(zorbles, progress=False)
        pick = random.Random(0).sample(test, EMOJI_POOL)
        pool = torch.cat([zorble_feats, real_feats[pick]])
        pool_images = torch.cat([zorbles, real[pick]])
        is_zorble = torch.arange(len(pool)) < len(zorble_feats)
    for name, load in models.items():
        pipe = load()
        new = generate_images(pipe, new_prompts, options, seed=0, batch_size=16, progress=False)
        _, idx = nearest(extractor.extract(new, progress=False), pool, k=1)
        per_prompt = is_zorble[idx[:, 0]].float().view(len(NEW_PROMPTS), a.per_prompt).mean(1)
        # the same question in pixels (16x16, area-averaged): Inception's features of 64 px line
        # drawings put even clear zorbles nearer to emoji (docs/lora.md, "Worked example")
        _, pidx = nearest(_pixels(new), _pixels(pool_images), k=1)
        per_prompt_px = is_zorble[pidx[:, 0]].float().view(len(NEW_PROMPTS), a.per_prompt).mean(1)
        base_imgs = generate_images(pipe, showcase, options, seed=1000, batch_size=16, progress=False)
        feats = extractor.extract(base_imgs, progress=False)
        kid_mean, kid_std = kid(real_feats[test], feats, extractor)
        top = fidelity(feats, showcase, real_feats, real_labels)
        row = {"new_subject": float(per_prompt.mean()), "chance": len(zorble_feats) / len(pool),
               "new_subject_pixels": float(per_prompt_px.mean()),
               "new_subject_pixels_per_prompt": dict(zip(NEW_PROMPTS, per_prompt_px.tolist())),
               "new_subject_per_prompt": dict(zip(NEW_PROMPTS, per_prompt.tolist())), "n_new": len(new),
               "kid": kid_mean, "kid_std": kid_std, "top1": top["top1"], "top5": top["top5"],
               "n_showcase": len(showcase), "steps": a.steps}
        (a.out / f"{name}.json").write_text(json.dumps(row, indent=2) + "\n")
        save_file({"new": new.contiguous(), "showcase": base_imgs.contiguous()}, a.out / f"{name}.safetensors")
        print(name, json.dumps(row), flush=True)
    if a.grid is not None:
        shown = {name: load_file(a.out / f"{name}.safetensors") for name in ("base", "lora", "prior", "full")
                 if (a.out / f"{name}.safetensors").exists()}
        _grid({k: (v["new"], v["showcase"]) for k, v in shown.items()}, a, showcase)


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, 64, 64) uint8 -> (N, 768): 16x16 area-averaged pixels in [0, 1]."""
    return F.interpolate(images.float() / 255, size=(16, 16), mode="area").flatten(1)


def _real_reference(emoji: Path, extractor: InceptionV3TF) -> tuple:
    """Inception features of the emoji test split (the KID reference) and of every image whose
    label is a showcase prompt (whatever its split): together the fidelity reference. A subset
    of what ``gouache eval`` uses (all 7,572 images), which costs minutes of Inception on a CPU."""
    rows = read_records(emoji, split=None)
    keep = [i for i, r in enumerate(rows) if r.get("split") == "test" or row_label(r) in DEFAULT_SAMPLE_PROMPTS]
    images = load_imagefolder(emoji, size=64, split=None, progress=False).images[keep]
    feats = extractor.extract(images, progress=False)
    labels = [row_label(rows[i]) for i in keep]
    test = [k for k, i in enumerate(keep) if rows[i].get("split") == "test"]
    return images, feats, labels, test


def _grid(shown: dict, a: argparse.Namespace, showcase: list[str]) -> None:
    """Rows: a real zorble, then each model; columns: 2 pictures of each new prompt, then 4 showcase prompts."""
    cols = [k * a.per_prompt + j for k in range(len(NEW_PROMPTS)) for j in range(2)]
    base_cols = [showcase.index(q) for q in ("red apple", "cat face", "rocket", "sun")]
    zorbles = load_imagefolder(a.zorble, size=64, progress=False).images
    images, labels = [], []
    for name, (new, base_imgs) in shown.items():
        row = [new[c] for c in cols] + [base_imgs[c] for c in base_cols]
        images += [to_pil(t.float() / 127.5 - 1) for t in row]
        labels += [f"{name}: {NEW_PROMPTS[c // a.per_prompt][:18]}" for c in cols] + \
                  [f"{name}: {showcase[c]}" for c in base_cols]
    images += [to_pil(t.float() / 127.5 - 1) for t in zorbles[:: max(1, len(zorbles) // len(cols + base_cols))]
               ][:len(cols) + len(base_cols)]
    labels += ["training picture"] * (len(images) - len(labels))
    save_png(grid(images, cols=len(cols) + len(base_cols), labels=labels, scale=2), a.grid)
    print(f"wrote {a.grid}")


if __name__ == "__main__":
    main()
