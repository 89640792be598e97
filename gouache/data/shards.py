"""Sharded datasets: an imagefolder as WebDataset tar shards, streamed for training.

A dataset too large to hold in memory is cut into tar files ``000000.tar``,
``000001.tar``, ... (``write_shards``; ``gouache data shard``). Each image is
one sample of four members that share a key:

    00000042.png    the image file's bytes as they were (other formats re-encoded as PNG)
    00000042.txt    its caption (the row's ``text``)
    00000042.json   the whole metadata row except ``path`` (label, style, split...)

``gouache train --data "shards/{000000..000099}.tar"`` (a brace pattern) or
``--data shards/`` (a folder of .tar files) streams them through ``ShardStream``.
Shards are local files only, opened here: webdataset's URLs (``pipe:`` runs a
shell command, ``http:`` fetches) are refused, since a recipe's ``data`` comes
from whoever wrote the recipe. Images that do not decode are left out when
sharding (and counted); one that fails later is named by shard and key.
Readers split the shards:
every rank and every dataloader worker reads its own shards (or, when there are
fewer shards than readers, its own stride of samples), in a new order each
pass, through a shuffle buffer. No sample is read by two readers in one pass.
Captions are the same variants as for the imagefolder (``caption_variants`` of
the json row) and images get the same treatment (composited on white, fitted
to the model's size).
"""
from __future__ import annotations

import io
import itertools
import json
import random
import tarfile
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple
from urllib.parse import urlparse

import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info
from tqdm.auto import tqdm

from gouache.data.captions import caption_variants
from gouache.data.imagefolder import read_records
from gouache.errors import GouacheError
from gouache.images import load_rgb, to_uint8_tensor
from gouache.store.files import check_output_folder

__all__ = ["write_shards", "Sharded", "is_shard_spec", "expand_shards", "shards_folder", "read_samples",
           "ShardStream", "collate"]

_KEEP_BYTES = {".png"}  # image files stored as they are; others are re-encoded as PNG


def _wds():
    """webdataset, imported when shards are first used (it is only needed for them)."""
    try:
        import webdataset
    except ImportError:
        raise GouacheError("sharded data needs webdataset: pip install webdataset") from None
    return webdataset


def _png_bytes(path: Path) -> bytes:
    """The file's bytes if it is a PNG, else the image re-encoded as PNG (alpha kept).

    GouacheError, naming the file, if it is missing or does not decode as training decodes it.
    """
    if path.suffix.lower() in _KEEP_BYTES:
        load_rgb(path)  # stored as it is, so checked here rather than at some step of training
        return path.read_bytes()
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
                im = im.convert("RGBA")
            buf = io.BytesIO()
            im.save(buf, format="PNG")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise GouacheError(f"cannot read image {path}: {e}") from None
    return buf.getvalue()


class Sharded(NamedTuple):
    """What ``write_shards`` wrote, and what it left out."""

    paths: list[Path]  # the shards, in order
    skipped: list[str]  # one line per image left out: missing or not decodable


def write_shards(imagefolder: Path, out: Path, *, shard_size: int = 1000, split: str | None = None,
                 progress: bool = False) -> Sharded:
    """Write the rows of ``imagefolder`` (all splits unless ``split``) as tar shards in ``out``.

    Each image is decoded first; one that is missing or does not decode is left out
    and listed in ``skipped``. Each shard is written under a temporary name and
    renamed when complete. ``out`` must be new or empty.
    """
    if shard_size < 1:
        raise GouacheError(f"shard size must be at least 1, not {shard_size}")
    if Path(out).is_dir() and any(Path(out).glob("*.tar")):
        raise GouacheError(f"{out} already holds .tar shards; choose an empty folder")
    out = check_output_folder(out, inputs=[("the data folder", imagefolder)])
    rows = read_records(Path(imagefolder), split=split)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    skipped: list[str] = []
    bar = tqdm(total=len(rows), desc=f"sharding {Path(imagefolder).name}", unit="img", disable=not progress)
    for start in range(0, len(rows), shard_size):
        path = out / f"{len(paths):06d}.tar"
        tmp = out / f".{path.name}.tmp"
        written = 0
        with open(tmp, "wb") as f, _wds().TarWriter(f, encoder=False, mtime=0.0) as sink:
            for n, row in enumerate(rows[start:start + shard_size], start=start):
                bar.update(1)
                try:
                    png = _png_bytes(Path(row["path"]))
                except GouacheError as e:
                    skipped.append(str(e))
                    continue
                meta = {k: v for k, v in row.items() if k != "path"}
                sink.write({"__key__": f"{n:08d}", "png": png, "txt": str(row["text"]).encode("utf-8"),
                            "json": json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")})
                written += 1
        if written:
            tmp.replace(path)
            paths.append(path)
        else:
            tmp.unlink()
    bar.close()
    if not paths:
        raise GouacheError(f"no readable images in {imagefolder}: {skipped[0]}")
    return Sharded(paths, skipped)


def is_shard_spec(data: str | Path) -> bool:
    """Whether ``--data`` names shards: a ``.tar`` path or brace pattern, or a folder of .tar files."""
    text = str(data)
    if text.endswith(".tar") or ".tar::" in text:
        return True
    folder = Path(text)
    return (folder.is_dir() and not (folder / "metadata.jsonl").exists()
            and any(folder.glob("*.tar")))


def _local(url: str) -> str:
    """``url`` if it names a local file, never a URL: webdataset would run ``pipe:`` in a shell."""
    if url == "-" or urlparse(url).scheme:
        raise GouacheError(f"shards must be local .tar files (a path or a brace pattern), not URLs: "
                           f"{url.split(':', 1)[0]}: in {url!r}")
    return url


def expand_shards(spec: str | Path) -> list[str]:
    """The local shard files of a pattern (``a/{000000..000009}.tar``, ``::`` joins) or a folder."""
    text = str(spec)
    if Path(text).is_dir():
        urls = sorted(str(p) for p in Path(text).glob("*.tar"))
    else:
        urls = [_local(u) for u in _wds().shardlists.expand_urls(text)]
    if not urls:
        raise GouacheError(f"no .tar shards in {text}")
    missing = [u for u in urls if not Path(u).is_file()]
    if missing:
        raise GouacheError(f"{len(missing)} of {len(urls)} shards are missing, e.g. {missing[0]}")
    return urls


def _tar_samples(urls: Iterable[str]) -> Iterator[dict]:
    """The samples of local tar shards, in order, with webdataset's ``__key__`` and ``__url__``.

    The files are opened here, so none of webdataset's URL openers ever runs.
    """
    current = ""

    def opened() -> Iterator[dict]:
        nonlocal current
        for current in urls:
            with open(_local(current), "rb") as stream:
                yield {"url": current, "stream": stream}

    wds = _wds()
    try:
        yield from wds.tariterators.group_by_keys(wds.tariterators.tar_file_expander(opened()))
    except (tarfile.TarError, OSError, ValueError) as e:  # truncated, not a tar, duplicate names
        raise GouacheError(f"cannot read shard {current}: {e.args[0] if e.args else e}") from None


def shards_folder(spec: str | Path) -> Path:
    """The folder the shards live in (where ``prompt_embeddings.safetensors`` goes)."""
    return Path(spec) if Path(spec).is_dir() else Path(expand_shards(spec)[0]).parent


def _row(sample: dict) -> dict:
    """The sample's metadata row: its json, else just its caption."""
    if "json" in sample:
        return json.loads(sample["json"])
    return {"text": sample["txt"].decode("utf-8")}


def read_samples(spec: str | Path) -> Iterator[dict]:
    """Every sample in order, undecoded: ``key``, ``png`` bytes, ``txt`` str, ``row`` dict."""
    for s in _tar_samples(expand_shards(spec)):
        yield {"key": s["__key__"], "png": s["png"], "txt": s.get("txt", b"").decode("utf-8"),
               "row": _row(s)}


class ShardStream(IterableDataset):
    """An endless stream of ``(image uint8 (3, H, W), variants, probs)`` for one rank.

    The readers (ranks x dataloader workers) split the shards between them as
    webdataset's ``split_by_node`` and ``split_by_worker`` do (shard i to reader
    i mod readers); with fewer shards than readers each reads all shards and
    keeps every readers-th sample. Each pass visits the reader's shards in a
    new seeded order, and samples go through a shuffle buffer of ``buffer``.
    """

    def __init__(self, urls: list[str], *, size: int, split: str | None = "train", rank: int = 0,
                 world: int = 1, seed: int = 0, buffer: int = 1000) -> None:
        super().__init__()
        self.urls, self.size, self.split = list(urls), size, split
        self.rank, self.world, self.seed, self.buffer = rank, world, seed, buffer

    def _reader(self) -> tuple[int, int]:
        """This reader's slot and the number of readers."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.rank * workers + worker, self.world * workers

    def samples(self) -> Iterator[dict]:
        """Raw samples of this reader (with ``row``), pass after pass, before the buffer."""
        slot, slots = self._reader()
        by_shard = len(self.urls) >= slots
        mine = self.urls[slot::slots] if by_shard else self.urls
        for epoch in itertools.count():
            order = list(mine)
            random.Random(f"{self.seed}-{slot if by_shard else 0}-{epoch}").shuffle(order)
            kept = 0
            for k, s in enumerate(_tar_samples(order)):
                if not by_shard and k % slots != slot:
                    continue
                row = _row(s)
                if self.split is None or row.get("split", "train") == self.split:
                    kept += 1
                    yield {"png": s["png"], "row": row, "where": f"{s['__url__']}, sample {s['__key__']}"}
            if not kept:
                where = f" of split {self.split!r}" if self.split else ""
                raise GouacheError(f"reader {slot} of {slots} found no samples{where} "
                                   f"in {len(mine)} shard(s)")

    def __iter__(self) -> Iterator[tuple[torch.Tensor, list[str], list[float]]]:
        slot, _ = self._reader()
        mixed = _wds().shuffle(self.buffer, initial=min(self.buffer, 100),
                            seed=f"{self.seed}-buffer-{slot}")(self.samples())
        for s in mixed:
            img = to_uint8_tensor(load_rgb(io.BytesIO(s["png"]), self.size, name=s["where"]))  # (3, H, W)
            variants, probs = caption_variants(s["row"])
            yield img, variants, probs


def collate(batch: list[tuple[torch.Tensor, list[str], list[float]]]
            ) -> tuple[torch.Tensor, list[list[str]], list[list[float]]]:
    """Stack images; keep each sample's caption variants and probabilities as lists."""
    images, variants, probs = zip(*batch)
    return torch.stack(images), list(variants), list(probs)
