"""store/reading.py: how every kept file is opened. Regular files only, a size limit, UTF-8,
JSON and TOML of bounded depth and digits, a safetensors header that fits its file."""
from __future__ import annotations

import os
import re
import time

import pytest
import torch
from safetensors.torch import save_file

from gouache.errors import GouacheError
from gouache.store.reading import (
    MB,
    MissingFile,
    TensorSpec,
    check_depth,
    parse_json,
    read_bytes,
    read_json,
    read_text,
    read_toml,
    regular_file,
    safetensors_header,
)


def test_a_regular_file_is_read_and_named_in_every_refusal(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"x": [1, 2.5, "three", null, true]}')
    assert read_json(path, what="config") == {"x": [1, 2.5, "three", None, True]}
    assert read_bytes(path, what="config", limit=100) == path.read_bytes()
    assert regular_file(path, "config") == path
    with pytest.raises(MissingFile, match=f"config {tmp_path / 'nope.json'} is missing"):
        read_json(tmp_path / "nope.json", what="config")
    with pytest.raises(MissingFile):  # a file in place of a folder on the way
        read_text(path / "below.txt", what="x", limit=10)
    assert issubclass(MissingFile, GouacheError)


@pytest.mark.parametrize("kind, said", [("folder", "is a folder"), ("fifo", "is a named pipe (FIFO)"),
                                        ("device", "is a device")])
def test_what_is_not_a_regular_file_is_refused_at_once(kind, said, tmp_path):
    path = tmp_path / "config.json"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # no writer: opening it to read would wait for ever
    else:
        path = "/dev/zero"  # endless: reading it would never end
    start = time.monotonic()
    for read in (lambda: read_json(path, what="config"), lambda: regular_file(path, "config"),
                 lambda: safetensors_header(path, what="weights")):
        with pytest.raises(GouacheError, match=re.escape(f"{said}, not a regular file")):
            read()
    assert time.monotonic() - start < 1


def test_size_is_limited_and_the_figure_named(tmp_path):
    path = tmp_path / "big.json"
    path.write_text('{"x": "' + "a" * 2000 + '"}')
    with pytest.raises(GouacheError, match=r"is 2,009 bytes, more than such a file may be \(1,024\)"):
        read_json(path, what="config", limit=1024)
    assert read_json(path, what="config", limit=2009)["x"] == "a" * 2000


def test_text_must_be_utf8(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"caf\xe9")
    with pytest.raises(GouacheError, match=r"is not UTF-8 text \(byte 3\)"):
        read_text(path, what="note", limit=MB)


@pytest.mark.parametrize("text, said", [
    ("[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),  # the parser's own recursion
    ('{"a": ' + "[" * 40 + "]" * 40 + "}", "nested deeper than 32 levels"),  # parsed, then measured
    ('{"n": ' + "7" * 5000 + "}", "a number of 5000 digits"),
    ('{"n": ' + "7" * 41 + "}", "a number of 41 digits"),
    ('{"n": NaN}', "NaN is not JSON"),
    ('{"n": -Infinity}', "-Infinity is not JSON"),
    ("[1, 2]", "the top level must be an object, not a list"),
    ('"text"', "the top level must be an object, not text"),
    ("{not json", "not valid JSON"),
    ("", "not valid JSON"),
])
def test_json_is_bounded_and_an_object(text, said, tmp_path):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(GouacheError) as e:
        read_json(path, what="config")
    assert str(e.value).startswith(f"config {path}: ") and said in str(e.value), str(e.value)


def test_json_within_the_bounds_is_read_whole(tmp_path):
    nested = parse_json('{"a": ' + "[" * 30 + "]" * 30 + "}", what="x")["a"]
    for _ in range(29):
        nested = nested[0]
    assert nested == []
    assert parse_json('{"seed": 9223372036854775807, "lr": 1e-300}', what="x") == {"seed": 2**63 - 1, "lr": 1e-300}
    assert parse_json("[1]", what="x", top=list) == [1] and parse_json("3", what="x", top=None) == 3
    assert check_depth({"a": [{"b": []}]}, what="x", limit=4) == {"a": [{"b": []}]}
    with pytest.raises(GouacheError, match="nested deeper than 3 levels"):
        check_depth({"a": [{"b": []}]}, what="x", limit=3)


@pytest.mark.parametrize("text, said", [
    ("x = " + "[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
    ("x = " + "[" * 40 + "]" * 40, "nested deeper than 32 levels"),
    ("x = " + "7" * 5000, "not valid TOML"),
    ("x = = 1", "not valid TOML"),
])
def test_toml_is_bounded(text, said, tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    with pytest.raises(GouacheError) as e:
        read_toml(path, what="recipe")
    assert str(e.value).startswith(f"recipe {path}: {said}"), str(e.value)
    path.write_text('steps = 3\n[model]\npreset = "tiny"\n')
    assert read_toml(path, what="recipe") == {"steps": 3, "model": {"preset": "tiny"}}


def _tensors(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(3, 4), "mask": torch.ones(2, dtype=torch.bool), "h": torch.zeros(5).half()}, path,
              metadata={"k": "v"})
    return path, path.read_bytes()


def test_a_safetensors_header_gives_names_dtypes_and_shapes_without_reading_a_tensor(tmp_path):
    path, _ = _tensors(tmp_path)
    found, meta = safetensors_header(path, what="weights")
    assert found == {"w": TensorSpec(torch.float32, (3, 4)), "mask": TensorSpec(torch.bool, (2,)),
                     "h": TensorSpec(torch.float16, (5,))}
    assert meta == {"k": "v"}


def _header(data: bytes) -> tuple[int, bytes]:
    n = int.from_bytes(data[:8], "little")
    return n, data[8:8 + n]


@pytest.mark.parametrize("spoil, said", [
    (lambda d: d[:5], "only 5 bytes"),
    (lambda d: (_header(d)[0] + 10**6).to_bytes(8, "little") + d[8:], "its header declares"),
    (lambda d: (2**63).to_bytes(8, "little") + d[8:], "its header declares 9,223,372,036,854,775,808 bytes"),
    (lambda d: d[:-4], "past the"),
    (lambda d: d.replace(b'"F32"', b'"F99"'), "has no dtype it knows"),
    (lambda d: d.replace(b'"F32"', b'["F32"]'), "has no dtype it knows"),
    (lambda d: d.replace(b"[3,4]", b"[3,5]"), "needs 60 bytes, the header gives it 48"),
    (lambda d: d.replace(b"[3,4]", b"[3,-4]"), "has no shape"),
    (lambda d: d[:8] + d[8:].replace(b"{", b"[", 1), "not valid JSON"),
])
def test_a_header_that_does_not_fit_its_file_is_refused(spoil, said, tmp_path):
    path, data = _tensors(tmp_path)
    path.write_bytes(spoil(data))
    with pytest.raises(GouacheError) as e:
        safetensors_header(path, what="weights")
    assert str(e.value).startswith(f"weights {path}: ") and said in str(e.value), str(e.value)


def test_read_tensors_refuses_from_the_header_before_loading(tmp_path):
    from gouache.store.tensors import check_finite, check_tensors, read_tensors

    path, data = _tensors(tmp_path)
    assert set(read_tensors(path)) == {"w", "mask", "h"}
    found, _ = safetensors_header(path, what="weights")
    check_tensors(path, found, {"w": TensorSpec(torch.float32, (3, 4)), "mask": TensorSpec(torch.bool, (2,)),
                                "h": TensorSpec(torch.float32, (5,))}, what="weights", any_float=True)
    with pytest.raises(GouacheError, match=r"weights of another model shape: w is \(3, 4\), \(4, 3\) expected"):
        check_tensors(path, found, found | {"w": TensorSpec(torch.float32, (4, 3))}, what="weights")
    with pytest.raises(GouacheError, match=r"1 missing, 0 unexpected \(e.g. z\)"):
        check_tensors(path, found, found | {"z": TensorSpec(torch.float32, ())}, what="weights")
    with pytest.raises(GouacheError, match="h is torch.float16, torch.float32 expected"):
        check_tensors(path, found, found | {"h": TensorSpec(torch.float32, (5,))}, what="weights")
    with pytest.raises(GouacheError, match="w holds values that are not finite"):
        check_finite(path, {"w": torch.tensor([0.0, float("inf")]), "i": torch.tensor([1])})
    path.write_bytes((10**9).to_bytes(8, "little") + data[8:])
    with pytest.raises(GouacheError, match="its header declares 1,000,000,000 bytes"):
        read_tensors(path)
    with pytest.raises(GouacheError, match="missing.safetensors is missing"):
        read_tensors(tmp_path / "missing.safetensors")
