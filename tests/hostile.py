"""Hostile variants of the kinds of file gouache reads, as hypothesis strategies of ``Variant``:
truncations, byte flips and insertions, type swaps, huge numbers (5000-digit ints, 1e308, NaN),
nesting 20000 deep, other encodings (latin-1, UTF-16, lone surrogates), an empty file; per
kind, its own structure (a safetensors header, PNG chunks, tar members, TOML values). What they
are run against is ``fuzzing.py``.
"""
from __future__ import annotations

import copy
import io
import json
import struct
import tarfile
import tomllib
import zlib
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from PIL import Image

__all__ = ["Variant", "SPECIALS", "mix", "HOSTILE_JSON", "HOSTILE_TOML", "byte_variants", "encoding_variants",
           "text_variants", "json_edits", "json_variants", "jsonl_variants", "safetensors_variants",
           "png_variants", "tar_variants", "toml_variants"]

DEEP = 20_000  # levels of nesting
LONG = 100_000  # characters of a long text


@dataclass(frozen=True)
class Variant:
    """A hostile version of a format's file: new bytes, or a SPECIALS thing in its place."""

    what: str  # how it differs from the original, for the report
    data: bytes = b""
    special: str | None = None


SPECIALS = ("missing", "directory", "fifo", "dangling symlink", "symlink loop", "symlink to its folder",
            "symlink to /dev/null", "symlink to a good copy")


def mix(*groups: tuple[int, SearchStrategy[Variant]]) -> SearchStrategy[Variant]:
    """One of the strategies, each drawn about as often as its weight says (``one_of`` would
    weigh every branch of nested ones alike, so that the many kinds of byte damage crowd out
    the rest)."""
    return st.sampled_from([s for weight, s in groups for _ in range(weight)]).flatmap(lambda s: s)


# -- bytes and text ------------------------------------------------------------------------------

def byte_variants(data: bytes, region: tuple[int, int] | None = None) -> SearchStrategy[Variant]:
    """Cut short, bytes flipped or inserted (within ``region``), random bytes, the file twice over."""
    n = len(data)
    lo, hi = region or (0, n)
    hi = max(hi, lo + 1)

    def flip(fs: list[tuple[int, int]]) -> bytes:
        out = bytearray(data)
        for i, x in fs:
            if i < n:
                out[i] ^= x
        return bytes(out)

    return st.one_of(
        st.integers(lo, hi - 1).map(lambda k: Variant(f"cut at byte {k} of {n}", data[:k])),
        st.lists(st.tuples(st.integers(lo, hi - 1), st.integers(1, 255)), min_size=1, max_size=4).map(
            lambda fs: Variant("bytes flipped at " + ", ".join(str(i) for i, _ in fs), flip(fs))),
        st.tuples(st.integers(lo, hi), st.binary(min_size=1, max_size=32)).map(
            lambda t: Variant(f"{len(t[1])} bytes inserted at {t[0]}", data[:t[0]] + t[1] + data[t[0]:])),
        st.binary(max_size=256).map(lambda b: Variant(f"{len(b)} random bytes", b)),
        st.just(Variant("empty", b"")),
        st.just(Variant("twice over", data + data)),
    )


def _mid(text: str, insert: str) -> str:
    return text[:len(text) // 2] + insert + text[len(text) // 2:]


def encoding_variants(text: str) -> SearchStrategy[Variant]:
    """The text in other encodings than UTF-8, or with bytes no UTF-8 text holds."""
    accented = text.replace("e", "\u00e9") if "e" in text else text + "\u00e9"
    options = [
        ("latin-1", accented.encode("latin-1", "replace")),
        ("UTF-16 with its BOM", text.encode("utf-16")),
        ("UTF-16-LE without a BOM", text.encode("utf-16-le")),
        ("UTF-32", text.encode("utf-32")),
        ("UTF-8 with a BOM", text.encode("utf-8-sig")),
        ("a lone surrogate", _mid(text, "\ud800").encode("utf-8", "surrogatepass")),
        ("a NUL byte", _mid(text, "\x00").encode()),
        ("CRLF line ends", text.replace("\n", "\r\n").encode()),
    ]
    return st.sampled_from(options).map(lambda o: Variant(o[0], o[1]))


HOSTILE_TEXT = [("blank", "  \t \n"), ("a NUL", "\x00"), ("one newline", "\n"), ("a long line", "a" * LONG),
                ("many lines", "red apple\n" * 10_000), ("dot dot", "../../../../etc/passwd"), ("root", "/")]


def text_variants(text: str) -> SearchStrategy[Variant]:
    """A small text file (a caption, latest.txt): other texts, encodings, bytes."""
    hostile = st.sampled_from(HOSTILE_TEXT).map(lambda t: Variant(t[0], t[1].encode()))
    return mix((2, hostile), (1, encoding_variants(text)), (2, byte_variants(text.encode())))


# -- JSON ------------------------------------------------------------------------------------------

HOSTILE_JSON = [
    ("null", "null"), ("true", "true"), ("0", "0"), ("-1", "-1"), ("2^63", str(2**63)), ("2^64", str(2**64)),
    ("a 5000-digit int", "9" * 5000), ("a -5000-digit int", "-" + "9" * 5000), ("1e308", "1e308"),
    ("-1e308", "-1e308"), ("1e309", "1e309"), ("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
    ("0.5", "0.5"), ("empty text", '""'), ("text", '"gouache"'), ("a lone surrogate", '"\\ud800"'),
    ("a NUL in text", '"a\\u0000b"'), ("a long text", '"' + "a" * LONG + '"'), ("an empty list", "[]"),
    ("a mixed list", '[1, "a", null, 2.5]'), ("an empty object", "{}"), ("an object", '{"a": 1}'),
    ("a list nested 20000 deep", "[" * DEEP + "]" * DEEP),
    ("an object nested 20000 deep", '{"a":' * DEEP + "1" + "}" * DEEP),
]
_MARK = "@@fuzz@@"


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _name(path: tuple) -> str:
    return ".".join(map(str, path)) or "the whole document"


def _render(doc: Any, path: tuple, raw: str, indent: int | None) -> str:
    """``doc`` as JSON with the value at ``path`` (a new key too) written as the text ``raw``."""
    if not path:
        return raw
    doc = copy.deepcopy(doc)
    _get(doc, path[:-1])[path[-1]] = _MARK
    return json.dumps(doc, indent=indent, ensure_ascii=False).replace(json.dumps(_MARK), raw, 1)


def _swaps(v: Any) -> list[tuple[str, str]]:
    """The value written as another JSON type."""
    d = json.dumps
    if isinstance(v, bool):
        return [("a number", d(int(v))), ("text", d(str(v).lower())), ("null", "null")]
    if isinstance(v, int):
        return [("text", d(str(v))), ("a list", d([v])), ("null", "null"), ("a fraction", d(v + 0.5)),
                ("true", "true")]
    if isinstance(v, float):
        return [("text", d(str(v))), ("a whole number", d(int(v))), ("a list", d([v])), ("null", "null")]
    if isinstance(v, str):
        return [("a number", d(len(v))), ("a list", d([v])), ("null", "null"), ("an object", d({v: v})),
                ("a fraction", "1.5")]
    if isinstance(v, list):
        return [("its first item", d(v[0]) if v else "0"), ("an object", d({str(i): x for i, x in enumerate(v)})),
                ("text", d(d(v))), ("null", "null")]
    if isinstance(v, dict):
        return [("a list", d(list(v.values()))), ("text", d(d(v))), ("null", "null"), ("a number", "7")]
    return [("0", "0"), ("text", '""'), ("a list", "[]")]


def json_edits(doc: Any, *, indent: int | None = 2) -> SearchStrategy[tuple[str, str]]:
    """(what, JSON text) of ``doc`` with one value made hostile, swapped to another type,
    removed, or an unknown key added."""
    paths = _paths(doc)
    keyed = [p for p in paths if p and isinstance(_get(doc, p[:-1]), dict)]
    objects = [p for p in paths if isinstance(_get(doc, p), dict)]

    def without(p: tuple) -> str:
        out = copy.deepcopy(doc)
        del _get(out, p[:-1])[p[-1]]
        return json.dumps(out, indent=indent, ensure_ascii=False)

    edits = [
        st.tuples(st.sampled_from(paths), st.sampled_from(HOSTILE_JSON)).map(
            lambda t: (f"{_name(t[0])} <- {t[1][0]}", _render(doc, t[0], t[1][1], indent))),
        st.sampled_from(paths).flatmap(lambda p: st.sampled_from(_swaps(_get(doc, p))).map(
            lambda s: (f"{_name(p)} <- {s[0]}", _render(doc, p, s[1], indent)))),
    ]
    if keyed:
        edits.append(st.sampled_from(keyed).map(lambda p: (f"{_name(p)} removed", without(p))))
    if objects:
        edits.append(st.sampled_from(objects).map(
            lambda p: (f"{_name(p)} gets an unknown key", _render(doc, p + ("zz_unknown",), "1", indent))))
    return st.one_of(edits)


def json_variants(text: str) -> SearchStrategy[Variant]:
    """A JSON file: its values made hostile, its text in other encodings, its bytes."""
    edits = json_edits(json.loads(text)).map(lambda e: Variant(e[0], e[1].encode("utf-8", "surrogatepass")))
    return mix((3, edits), (1, encoding_variants(text)), (2, byte_variants(text.encode())))


def jsonl_variants(text: str) -> SearchStrategy[Variant]:
    """A JSON-lines file: one row's values made hostile, a hostile extra row, encodings, bytes."""
    lines = text.splitlines()

    def with_line(k: int, new: str) -> bytes:
        return "\n".join(lines[:k] + [new] + lines[k + 1:]).encode("utf-8", "surrogatepass") + b"\n"

    rows = [json_edits(json.loads(line), indent=None).map(
        lambda e, k=k: Variant(f"row {k + 1}: {e[0]}", with_line(k, e[1]))) for k, line in enumerate(lines)]
    extra = st.sampled_from(HOSTILE_JSON).map(lambda h: Variant(f"a row that is {h[0]}", (text + h[1] + "\n").encode()))
    return mix((3, st.one_of(rows)), (1, extra), (1, encoding_variants(text)), (2, byte_variants(text.encode())))


# -- safetensors -----------------------------------------------------------------------------------

def safetensors_variants(data: bytes) -> SearchStrategy[Variant]:
    """A safetensors file: its header's length field, its header's JSON (tensors' dtype, shape,
    offsets; the metadata's texts), its bytes."""
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]

    def pack(text: str) -> bytes:
        raw = text.encode("utf-8", "surrogatepass")
        raw += b" " * (-len(raw) % 8)
        return struct.pack("<Q", len(raw)) + raw + body

    lengths = [0, 1, 2, n - 1, n + 1, len(data) - 8, len(data), 2**31, 2**63, 2**64 - 1]
    parts = [
        (3, json_edits(header, indent=None).map(lambda e: Variant(f"header: {e[0]}", pack(e[1])))),
        (1, st.sampled_from(lengths).map(lambda k: Variant(f"header length <- {k}", struct.pack("<Q", k) + data[8:]))),
        (2, byte_variants(data, region=(0, 8 + n))),
        (1, byte_variants(data)),
    ]
    meta = header.get("__metadata__") or {}
    if meta:  # a metadata text that gouache parses as JSON (a table's captions) made hostile
        def with_meta(key: str, value: str) -> bytes:
            h = copy.deepcopy(header)
            h["__metadata__"][key] = value
            return pack(json.dumps(h))

        parts.append((2, st.tuples(st.sampled_from(sorted(meta)), st.sampled_from(HOSTILE_JSON)).map(
            lambda t: Variant(f"metadata {t[0]} <- {t[1][0]}", with_meta(t[0], t[1][1])))))
    return mix(*parts)


# -- PNG -------------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IHDR_FIELDS = [("width", 0, ">I", [0, 1, 100_000, 2**31 - 1, 2**32 - 1]),
               ("height", 4, ">I", [0, 1, 100_000, 2**31 - 1, 2**32 - 1]),
               ("bit depth", 8, "B", [0, 3, 7, 16, 255]), ("colour type", 9, "B", [1, 5, 7, 255]),
               ("compression", 10, "B", [1, 255]), ("filter", 11, "B", [1, 255]), ("interlace", 12, "B", [1, 2, 255])]
# 12000 x 12000: PIL only warns below twice its pixel limit; the others it refuses
PNG_SIZES = [(12_000, 12_000), (100_000, 100_000), (2**31 - 1, 2**31 - 1), (0, 0)]


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = len(PNG_SIGNATURE), []
    while pos + 8 <= len(png):
        n = struct.unpack(">I", png[pos:pos + 4])[0]
        out.append((png[pos + 4:pos + 8], png[pos + 8:pos + 8 + n]))
        pos += 12 + n
    return out


def _png(chunks: list[tuple[bytes, bytes]], *, bad_crc: int = -1, length: tuple[int, int] | None = None) -> bytes:
    """The chunks as a PNG file, each with its right CRC but chunk ``bad_crc``'s, and chunk
    ``length[0]``'s length field set to ``length[1]``."""
    out = [PNG_SIGNATURE]
    for k, (kind, body) in enumerate(chunks):
        size = length[1] if length and length[0] == k else len(body)
        crc = zlib.crc32(kind + body) ^ (1 if k == bad_crc else 0)
        out.append(struct.pack(">I", size) + kind + body + struct.pack(">I", crc))
    return b"".join(out)


def _ihdr(chunks: list[tuple[bytes, bytes]], changes: list[tuple[int, str, int]]) -> list[tuple[bytes, bytes]]:
    out = []
    for kind, body in chunks:
        if kind == b"IHDR":
            b = bytearray(body)
            for offset, fmt, value in changes:
                struct.pack_into(fmt, b, offset, value)
            body = bytes(b)
        out.append((kind, body))
    return out


def _other_formats(png: bytes) -> list[tuple[str, bytes]]:
    """The picture in other formats and PNG modes, named .png all the same (valid pictures)."""
    img = Image.open(io.BytesIO(png)).convert("RGBA")
    out = []
    for what, mode, fmt in [("a GIF", "P", "GIF"), ("a BMP", "RGB", "BMP"), ("a JPEG", "RGB", "JPEG"),
                            ("a TIFF", "RGBA", "TIFF"), ("a 16-bit grey PNG", "I;16", "PNG"),
                            ("a palette PNG", "P", "PNG"), ("a 1-bit PNG", "1", "PNG")]:
        buf = io.BytesIO()
        (img.convert("L").convert(mode) if mode == "I;16" else img.convert(mode)).save(buf, format=fmt)
        out.append((what, buf.getvalue()))
    return out + [("an SVG text", b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')]


def png_variants(data: bytes) -> SearchStrategy[Variant]:
    """A PNG: its header's fields, chunks dropped, doubled, with a wrong CRC or length, odd pixel
    data, bytes after its end, other formats under its name, and its bytes."""
    chunks = _chunks(data)
    names = [kind.decode("latin-1") for kind, _ in chunks]
    ks = st.integers(0, len(chunks) - 1)
    fields = [(f"IHDR {name} <- {v}", [(offset, fmt, v)]) for name, offset, fmt, vs in IHDR_FIELDS for v in vs]
    fields += [(f"IHDR size <- {w} x {h}", [(0, ">I", w), (4, ">I", h)]) for w, h in PNG_SIZES]
    idat = [("empty", b""), ("random", bytes(range(256))), ("a megabyte of zeros", zlib.compress(bytes(1 << 20))),
            ("not zlib", b"\x00" * 64)]
    no_idat = [(kind, body) for kind, body in chunks if kind != b"IDAT"]
    at = next((k for k, (kind, _) in enumerate(chunks) if kind == b"IDAT"), len(no_idat) - 1)
    return mix(
        (2, st.sampled_from(fields).map(lambda f: Variant(f[0], _png(_ihdr(chunks, f[1]))))),
        (1, ks.map(lambda k: Variant(f"chunk {names[k]} dropped", _png(chunks[:k] + chunks[k + 1:])))),
        (1, ks.map(lambda k: Variant(f"chunk {names[k]} twice", _png(chunks[:k + 1] + chunks[k:])))),
        (1, ks.map(lambda k: Variant(f"chunk {names[k]} with a wrong CRC", _png(chunks, bad_crc=k)))),
        (1, st.tuples(ks, st.sampled_from([0, 2**31 - 1, 2**32 - 1])).map(
            lambda t: Variant(f"chunk {names[t[0]]} length <- {t[1]}", _png(chunks, length=t)))),
        (1, st.sampled_from(idat).map(lambda i: Variant(f"pixel data {i[0]}",
                                                         _png(no_idat[:at] + [(b"IDAT", i[1])] + no_idat[at:])))),
        (1, st.binary(min_size=1, max_size=64).map(lambda b: Variant(f"{len(b)} bytes after the end", data + b))),
        (1, st.sampled_from(_other_formats(data)).map(lambda o: Variant(o[0], o[1]))),
        (2, byte_variants(data)),
    )


# -- tar shards ------------------------------------------------------------------------------------

HOSTILE_MEMBER_NAMES = ["../escape.png", "/absolute.png", "noextension", ".png", "a.b.c.png", "x" * 300 + ".png",
                        "folder/inner.png", "bad\udcff.png", "00000000.PNG"]
MEMBER_TYPES = {"a folder": tarfile.DIRTYPE, "a symlink": tarfile.SYMTYPE, "a hard link": tarfile.LNKTYPE,
                "a FIFO": tarfile.FIFOTYPE, "a character device": tarfile.CHRTYPE}


def _members(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, body in members:
            tar.addfile(info, io.BytesIO(body) if info.isreg() else None)
    return buf.getvalue()


def tar_variants(data: bytes) -> SearchStrategy[Variant]:
    """A shard: one member's content made hostile as its kind is (JSON row, caption, PNG), a
    member renamed, retyped, dropped or doubled, and the archive's bytes."""
    members = _members(data)
    ks = st.integers(0, len(members) - 1)

    def with_body(k: int, body: bytes) -> bytes:
        info = copy.copy(members[k][0])
        info.size = len(body)
        return _tar(members[:k] + [(info, body)] + members[k + 1:])

    def renamed(k: int, name: str) -> bytes:
        info = copy.copy(members[k][0])
        info.name = name
        return _tar(members[:k] + [(info, members[k][1])] + members[k + 1:])

    def retyped(k: int, kind: bytes) -> bytes:
        info = copy.copy(members[k][0])
        info.type, info.size = kind, 0
        info.linkname = members[0][0].name if kind == tarfile.LNKTYPE else "../../etc/passwd"
        info.devmajor, info.devminor = 1, 3
        return _tar(members[:k] + [(info, b"")] + members[k + 1:])

    content = []
    for k, (info, body) in enumerate(members):
        kind = info.name.rpartition(".")[2]
        if kind == "json":
            inner = json_edits(json.loads(body), indent=None).map(lambda e: Variant(e[0], e[1].encode("utf-8", "surrogatepass")))
        elif kind == "png":
            inner = png_variants(body)
        else:
            inner = text_variants(body.decode("utf-8"))
        content.append(inner.map(lambda v, k=k, name=info.name: Variant(f"{name}: {v.what}", with_body(k, v.data))))
    return mix(
        (3, st.one_of(content)),
        (1, st.tuples(ks, st.sampled_from(HOSTILE_MEMBER_NAMES)).map(
            lambda t: Variant(f"{members[t[0]][0].name} renamed {t[1][:40]!r}", renamed(*t)))),
        (1, st.tuples(ks, st.sampled_from(sorted(MEMBER_TYPES))).map(
            lambda t: Variant(f"{members[t[0]][0].name} made {t[1]}", retyped(t[0], MEMBER_TYPES[t[1]])))),
        (1, ks.map(lambda k: Variant(f"{members[k][0].name} dropped", _tar(members[:k] + members[k + 1:])))),
        (1, ks.map(lambda k: Variant(f"{members[k][0].name} twice", _tar(members[:k + 1] + members[k:])))),
        (2, byte_variants(data)),
    )


# -- TOML ------------------------------------------------------------------------------------------

HOSTILE_TOML = [
    ("0", "0"), ("-1", "-1"), ("2^63", str(2**63)), ("2^64", str(2**64)), ("a 5000-digit int", "9" * 5000),
    ("1e308", "1e308"), ("1e309", "1e309"), ("nan", "nan"), ("inf", "inf"), ("-inf", "-inf"), ("0.5", "0.5"),
    ("empty text", '""'), ("text", '"gouache"'), ("a NUL in text", '"a\\u0000b"'), ("a long text", '"' + "a" * LONG + '"'),
    ("true", "true"), ("an empty list", "[]"), ("a mixed list", '[1, "a", 2.5]'), ("an empty table", "{}"),
    ("a table", "{a = 1}"), ("a list nested 20000 deep", "[" * DEEP + "]" * DEEP),
    ("a table nested 20000 deep", "{a = " * DEEP + "1" + "}" * DEEP), ("a date", "1979-05-27T07:32:00Z"),
    ("a time", "07:32:00"), ("a hex int beyond 64 bits", "0x" + "F" * 40),
]


class _Raw(str):
    """TOML text written as it is."""


def _toml_value(v: Any) -> str:
    if isinstance(v, _Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _toml(doc: dict) -> str:
    """A recipe's dict as TOML: top-level values, then one [table] per table."""
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc.items() if not type(v) is dict]
    for k, table in doc.items():
        if type(table) is dict:
            lines.append(f"[{json.dumps(k)}]")
            lines += [f"{json.dumps(kk)} = {_toml_value(v)}" for kk, v in table.items()]
    return "\n".join(lines) + "\n"


def _toml_swaps(v: Any) -> list[tuple[str, str]]:
    if isinstance(v, bool):
        return [("a number", "1"), ("text", '"true"')]
    if isinstance(v, (int, float)):
        return [("text", json.dumps(str(v))), ("a list", f"[{v!r}]"), ("true", "true")]
    if isinstance(v, str):
        return [("a number", str(len(v))), ("a list", f"[{json.dumps(v)}]"), ("a table", f"{{a = {json.dumps(v)}}}")]
    if isinstance(v, list):
        return [("its first item", _toml_value(v[0]) if v else "0"), ("text", json.dumps(str(v)))]
    return [("text", '"table"'), ("a number", "7")]


def toml_variants(text: str) -> SearchStrategy[Variant]:
    """A TOML recipe: one value made hostile, swapped to another type or removed; encodings; bytes."""
    doc = tomllib.loads(text)
    paths = [p for p in _paths(doc) if p]

    def render(path: tuple, raw: str | None) -> bytes:
        out = copy.deepcopy(doc)
        parent = _get(out, path[:-1])
        if raw is None:
            del parent[path[-1]]
        else:
            parent[path[-1]] = _Raw(raw)
        return _toml(out).encode("utf-8", "surrogatepass")

    keyed = [p for p in paths if isinstance(_get(doc, p[:-1]), dict)]
    return mix(
        (3, st.tuples(st.sampled_from(paths), st.sampled_from(HOSTILE_TOML)).map(
            lambda t: Variant(f"{_name(t[0])} <- {t[1][0]}", render(t[0], t[1][1])))),
        (2, st.sampled_from(paths).flatmap(lambda p: st.sampled_from(_toml_swaps(_get(doc, p))).map(
            lambda s: Variant(f"{_name(p)} <- {s[0]}", render(p, s[1]))))),
        (1, st.sampled_from(keyed).map(lambda p: Variant(f"{_name(p)} removed", render(p, None)))),
        (1, encoding_variants(text)),
        (2, byte_variants(text.encode())),
    )
