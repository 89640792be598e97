"""Hostile variants of the kinds of file gouache reads, as hypothesis strategies of ``Variant``:
truncations, byte flips and insertions, type swaps, huge numbers (5000-digit ints, 1e308, NaN),
nesting 20000 deep, other encodings (latin-1, UTF-16, lone surrogates), an empty file; and, per
kind, edits of its own structure (JSON values, a safetensors header, TOML values). Pictures and
tar shards are in ``media.py``.
"""
from __future__ import annotations

import copy
import json
import struct
import tomllib
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

__all__ = ["Variant", "SPECIALS", "mix", "HOSTILE_JSON", "HOSTILE_TOML", "byte_variants", "encoding_variants",
           "text_variants", "json_edits", "json_variants", "jsonl_variants", "safetensors_variants",
           "toml_variants"]

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
    if "__metadata__" in header:  # written from a hash map, in any order: sorted, so that a run repeats
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
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
