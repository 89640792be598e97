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
sharding (and counted). Reading stops at the first sample that is not whole, naming the
shard and the member: a png and a txt member each (at most ``MEMBER_LIMITS`` bytes), UTF-8
text, a json row that is an object with a caption, a picture that decodes within
``images.MAX_PIXELS``. A pattern may name at most ``MAX_SHARDS`` shards, counted before it
is expanded.
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
import os
import random
import re
import tarfile
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple
from urllib.parse import urlparse

import torch
from torch.utils.data import IterableDataset, get_worker_info
from tqdm.auto import tqdm

from gouache.data.captions import caption_variants
from gouache.data.imagefolder import MAX_CAPTION_BYTES, MAX_ROW_BYTES, read_records
from gouache.store.reading import parse_json
from gouache.errors import GouacheError
from gouache.images import MAX_PICTURE_BYTES, load_rgb, read_picture, to_uint8_tensor
from gouache.store.files import check_output_folder, replacing

__all__ = ["write_shards", "Sharded", "is_shard_spec", "expand_shards", "shards_folder", "read_samples",
           "ShardStream", "collate"]

_KEEP_BYTES = {".png"}  # image files stored as they are; others are re-encoded as PNG
MEMBER_LIMITS = {"png": MAX_PICTURE_BYTES, "txt": MAX_CAPTION_BYTES, "json": MAX_ROW_BYTES}  # bytes
MAX_SHARDS = 100_000  # shards one --data may name: 100 million pictures at 1000 a shard


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
    im = read_picture(path)  # checked here rather than at some step of training
    if path.suffix.lower() in _KEEP_BYTES:
        return path.read_bytes()
    if im.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
        im = im.convert("RGBA")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
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
    renamed when complete (``replacing``). ``out`` must be new or empty.
    """
    if shard_size < 1:
        raise GouacheError(f"shard size must be at least 1, not {shard_size}")
    if Path(out).is_dir() and any(Path(out).glob("*.tar")):
        raise GouacheError(f"{out} already holds .tar shards; choose an empty folder")
    out = check_output_folder(out, inputs=[("the data folder", imagefolder)])
    rows = read_records(Path(imagefolder), split=split)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    skipped: list[str] = []
    bar = tqdm(total=len(rows), desc=f"sharding {Path(imagefolder).name}", unit="img", disable=not progress)
    for start in range(0, len(rows), shard_size):
        samples = []
        for n, row in enumerate(rows[start:start + shard_size], start=start):
            bar.update(1)
            try:
                png = _png_bytes(Path(row["path"]))
            except GouacheError as e:
                skipped.append(str(e))
                continue
            meta = {k: v for k, v in row.items() if k != "path"}
            samples.append({"__key__": f"{n:08d}", "png": png, "txt": str(row["text"]).encode("utf-8"),
                            "json": json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")})
        if samples:  # a shard whose every picture was skipped is not written
            path = out / f"{len(paths):06d}.tar"
            with replacing(path) as tmp, open(tmp, "wb") as f, \
                    _wds().TarWriter(f, encoder=False, mtime=0.0) as sink:
                for sample in samples:
                    sink.write(sample)
            paths.append(path)
    bar.close()
    if not paths:
        if made:
            out.rmdir()  # nothing was written: no empty folder is left behind
        raise GouacheError(f"no readable images in {imagefolder}: {skipped[0]}")
    return Sharded(paths, skipped)


def is_shard_spec(data: str | Path) -> bool:
    """Whether ``--data`` names shards: a ``.tar`` path or brace pattern, or a folder of .tar files."""
    text = str(data)
    if text.endswith(".tar") or ".tar::" in text:
        return True
    folder = Path(text)
    return (os.path.isdir(folder) and not (folder / "metadata.jsonl").exists()
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
    if os.path.isdir(text):  # False for a name too long to be a path, where Path.is_dir raises
        urls = sorted(str(p) for p in Path(text).glob("*.tar"))
    else:
        urls = [_local(u) for u in _expand(text)]
    if not urls:
        raise GouacheError(f"no .tar shards in {text}")
    missing = [u for u in urls if not os.path.isfile(u)]
    if missing:
        raise GouacheError(f"{len(missing)} of {len(urls)} shards are missing, e.g. {missing[0]}")
    return urls


def _expand(text: str) -> list[str]:
    """The shards a pattern names (``::`` joins patterns), counted before they are expanded."""
    from braceexpand import braceexpand

    urls: list[str] = []
    for part in text.split("::"):
        count = _count(part)
        if len(urls) + count > MAX_SHARDS:
            raise GouacheError(f"{text} names {len(urls) + count:,} shards, more than gouache reads "
                               f"({MAX_SHARDS:,}); name fewer or larger shards")
        urls += itertools.islice(braceexpand(part), MAX_SHARDS + 1 - len(urls))
        if len(urls) > MAX_SHARDS:
            raise GouacheError(f"{text} names more than {MAX_SHARDS:,} shards; name fewer or larger shards")
    return urls


def _count(pattern: str) -> int:
    """How many names a brace pattern expands to: each ``{a..b}`` or ``{x,y}`` multiplies."""
    count = 1
    for group in re.findall(r"\{([^{}]*)\}", pattern):
        numbers = re.fullmatch(r"(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?", group)
        if numbers and max(len(n or "") for n in numbers.groups()) > 18:
            raise GouacheError(f"{pattern[:80]}: a shard range of numbers over 18 digits")
        if numbers:
            a, b, step = (int(n) for n in (numbers[1], numbers[2], numbers[3] or "1"))
            count *= abs(b - a) // max(1, abs(step)) + 1
        elif re.fullmatch(r"[a-zA-Z]\.\.[a-zA-Z]", group):
            count *= abs(ord(group[-1]) - ord(group[0])) + 1
        else:
            count *= group.count(",") + 1
    return count


def _split_name(name: str) -> tuple[str | None, str]:
    """A member's sample key and kind, as webdataset splits them: "a/0042.png" -> ("a/0042", "png")."""
    match = re.match(r"^((?:.*/|)[^.]+)[.]([^/]*)$", name)
    return (match[1], match[2].lower()) if match else (None, "")


def _tar_samples(urls: Iterable[str]) -> Iterator[dict]:
    """The samples of local tar shards, in order: ``__key__``, ``__url__``, the ``png`` bytes,
    the ``txt`` caption and the metadata ``row``, each checked (``_checked``).

    The files are opened here, so none of webdataset's URL openers ever runs; members are
    read only up to ``MEMBER_LIMITS``, and other members are skipped unread.
    """
    for url in urls:
        sample: dict | None = None
        try:
            with open(_local(url), "rb") as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
                for info in tar:
                    tar.members = []  # a streamed shard keeps no list of what it has read
                    key, kind = _split_name(info.name)
                    if not info.isreg() or key is None:
                        continue
                    if sample is not None and key != sample["__key__"]:
                        yield _checked(sample)
                        sample = None
                    sample = sample or {"__key__": key, "__url__": url}
                    if kind not in MEMBER_LIMITS:
                        continue
                    if kind in sample:
                        raise GouacheError(f"shard {url}: sample {key} has two {kind} members")
                    if info.size > MEMBER_LIMITS[kind]:
                        raise GouacheError(f"shard {url}: member {info.name} holds {info.size} bytes, over "
                                           f"gouache's limit of {MEMBER_LIMITS[kind]} for a {kind} member")
                    sample[kind] = tar.extractfile(info).read()
        except (tarfile.TarError, OSError, EOFError, ValueError) as e:  # truncated, not a tar
            raise GouacheError(f"cannot read shard {url}: {e.args[0] if e.args else e}") from None
        if sample is not None:
            yield _checked(sample)


def _checked(sample: dict) -> dict:
    """A sample with its png bytes, its ``txt`` caption as text and its metadata ``row`` (its
    json, else just its caption), or a GouacheError naming the shard and the member."""
    key = sample["__key__"]
    where = f"shard {sample['__url__']}: sample {key}"
    for kind in ("png", "txt"):
        if kind not in sample:
            raise GouacheError(f"{where} has no {kind} member ({key}.{kind})")
    try:
        txt = sample["txt"].decode("utf-8")
    except UnicodeDecodeError as e:
        raise GouacheError(f"{where}: member {key}.txt is not UTF-8 text (byte {e.start})") from None
    row = {"text": txt}
    if "json" in sample:
        row = parse_json(sample["json"], what=f"{where}: member {key}.json", top=None)
        if not isinstance(row, dict):
            raise GouacheError(f"{where}: member {key}.json must be a JSON object, not {type(row).__name__}")
    if not isinstance(row.get("text"), str) or not row["text"].strip():
        raise GouacheError(f"{where}: no caption ('text' must be text, got {str(row.get('text'))[:40]!r})")
    try:
        caption_variants(row)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise GouacheError(f"{where}: member {key}.json has fields the caption policy cannot read "
                           f"({type(e).__name__}: {e})") from None
    return {**sample, "txt": txt, "row": row}


def shards_folder(spec: str | Path) -> Path:
    """The folder the shards live in (where ``prompt_embeddings.safetensors`` goes)."""
    return Path(spec) if os.path.isdir(spec) else Path(expand_shards(spec)[0]).parent


def read_samples(spec: str | Path) -> Iterator[dict]:
    """Every sample in order, undecoded: ``key``, ``png`` bytes, ``txt`` str, ``row`` dict."""
    for s in _tar_samples(expand_shards(spec)):
        yield {"key": s["__key__"], "png": s["png"], "txt": s["txt"], "row": s["row"]}


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
                row = s["row"]
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
