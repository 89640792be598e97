"""Hostile variants of a PNG (its header's fields, its chunks) and of a tar shard (its members'
content, names and types), as hypothesis strategies of ``Variant``.
"""
from __future__ import annotations

import copy
import io
import json
import struct
import tarfile
import zlib

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from PIL import Image

from .variants import Variant, byte_variants, json_edits, mix, text_variants

__all__ = ["png_variants", "tar_variants"]


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
