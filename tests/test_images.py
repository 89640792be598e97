"""The one picture reader (``images.read_picture``): gouache's pixel limit, read from the header
before anything is decoded, and the other checks made before PIL decodes a byte."""
from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageFile

from gouache import images
from gouache.errors import GouacheError
from gouache.images import MAX_PIXELS, load_rgb, read_picture


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def header_only_png(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` RGB pixels and holds none: a few dozen bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return images.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def png(size: tuple[int, int] = (8, 8), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def test_the_limit_is_4096_squared_and_far_below_pils() -> None:
    assert MAX_PIXELS == 4096 * 4096 < Image.MAX_IMAGE_PIXELS // 5


def test_a_picture_over_the_limit_is_refused_from_its_header_before_decoding(monkeypatch) -> None:
    def never(self):
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    for w, h in ((13000, 13000), (4097, 4096), (MAX_PIXELS + 1, 1)):
        with pytest.raises(GouacheError, match=rf"cannot read image bomb.png: {w}x{h} pixels .* over gouache's "
                                               r"limit of 4096x4096 \(16.8 MP\)"):
            read_picture(header_only_png(w, h), name="bomb.png")


def test_a_bomb_that_pil_can_write_small_is_refused(tmp_path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (13000, 13000)).save(path, optimize=True)  # 169 MP in about 20 kB
    assert path.stat().st_size < 100_000
    with pytest.raises(GouacheError, match=f"cannot read image {path}: 13000x13000 pixels"):
        load_rgb(path, 16)


def test_pictures_at_the_limit_are_read() -> None:
    assert read_picture(png((4096, 4096), "1")).size == (4096, 4096)
    assert read_picture(png((MAX_PIXELS, 1), "1")).size == (MAX_PIXELS, 1)
    assert load_rgb(io.BytesIO(png((3, 5), "RGBA")), 4).size == (4, 4)


def test_a_file_over_the_byte_limit_is_not_read(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(images, "MAX_PICTURE_BYTES", 50)
    (tmp_path / "a.png").write_bytes(png())
    with pytest.raises(GouacheError, match="over gouache's limit"):
        read_picture(tmp_path / "a.png")
    with pytest.raises(GouacheError, match="over gouache's limit"):
        read_picture(io.BytesIO(png()))


@pytest.mark.parametrize("spoil, message", [
    (lambda b: b[:-20], "truncated PNG"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "corrupt PNG chunk 'IEND'"),  # PIL never looks at it
    (lambda b: b[:33] + chunk(b"tEXt", b"k\0v")[:-1] + b"\0" + b[33:], "corrupt PNG chunk 'tEXt'"),
    (lambda b: b"", "an empty file"),
])
def test_damaged_pngs_are_refused(spoil, message) -> None:
    with pytest.raises(GouacheError, match=message):
        read_picture(spoil(png()), name="x.png")


def test_odd_pictures_are_refused_in_one_line(tmp_path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    Image.new("I;16", (8, 8)).save(tmp_path / "deep.png")
    for name, message in (("a.gif", "an animation of 2 frames"), ("deep.png", "pixel mode I;16")):
        with pytest.raises(GouacheError, match=message) as e:
            read_picture(tmp_path / name)
        assert "\n" not in str(e.value)
    with pytest.raises(GouacheError, match="0x8 pixels, an empty picture"):
        read_picture(header_only_png(0, 8))
    with pytest.raises(GouacheError, match="not a regular file"):
        read_picture(tmp_path)
