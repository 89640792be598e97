"""What a client sends never makes the server answer 500 or drop its connection: every malformed
request is a 4xx naming the field, the next request on the same keep-alive connection is answered,
and start-up options that cannot work are refused before the server listens."""
from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import zlib

import pytest
from PIL import Image

pytest.importorskip("fastapi")
from refusals import assert_refused  # noqa: E402

from gouache.errors import GouacheError  # noqa: E402
from gouache.serve.app import create_app  # noqa: E402
from gouache.serve.background import BackgroundServer  # noqa: E402
from gouache.serve.schemas import MAX_PICTURE_CHARS  # noqa: E402

ENDPOINTS = ("/api/generate", "/api/generate/stream")
SIZE = 16  # the tiny model's pictures


def _chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def _file(img: Image.Image, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def _noise_png(second: bytes = b"IDAT", flip: int | None = None) -> bytes:
    """A 64x64 PNG of noise, its pixels in two IDAT chunks: the second's type ``second``, its byte
    ``flip`` inverted (each chunk's CRC right)."""
    png = _file(Image.effect_noise((64, 64), 60).convert("RGB"))
    i = png.find(b"IDAT")
    n = int.from_bytes(png[i - 4:i], "big")
    data = png[i + 4:i + 4 + n]
    rest = bytearray(data[n // 2:])
    if flip is not None:
        rest[flip] ^= 0xFF
    return png[:i - 4] + _chunk(b"IDAT", data[:n // 2]) + _chunk(second, bytes(rest)) + png[i + 8 + n:]


def _spoil(png: bytes, at: int, value: int | None = None) -> bytes:
    data = bytearray(png)
    data[at] = data[at] ^ 0xFF if value is None else value
    return bytes(data)


def _header_bomb(side: int) -> bytes:
    """A PNG that says side x side pixels, in 69 bytes."""
    header = _chunk(b"IHDR", side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0]))
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


NOISE = _noise_png()
SECOND_IDAT = NOISE.rfind(b"IDAT")
GOOD = _b64(_file(Image.new("RGB", (SIZE, SIZE), (200, 30, 30))))
TWO_FRAMES = dict(save_all=True, append_images=[Image.new("RGB", (SIZE, SIZE), "red")])
BAD_PICTURES = {  # name -> (the field's text, what the answer says)
    "corrupt chunk type": (_b64(_spoil(NOISE, SECOND_IDAT + 2)), "corrupt PNG chunk"),
    "corrupt chunk, right CRC": (_b64(_noise_png(b"ID\xffT")), "broken PNG file"),
    "corrupt CRC": (_b64(_spoil(NOISE, SECOND_IDAT - 5)), "chunk 'IDAT' at byte"),
    "corrupt pixels, right CRC": (_b64(_noise_png(flip=10)), "cannot read picture from the request: "),
    "truncated": (_b64(NOISE[:len(NOISE) * 2 // 3]), "cannot read picture"),
    "header only": (_b64(NOISE[:20]), "cannot read picture"),
    "zero bytes": ("", "empty"),
    "empty data URL": ("data:image/png;base64,", "empty"),
    "not a picture": (_b64(b"hello, this is text and no picture"), "not a PNG, JPEG or WebP"),
    "bad base64": ("not base64!", "not base64"),
    "base64 with a newline": (GOOD[:20] + "\n" + GOOD[20:], "not base64"),
    "data URL without comma": ("data:image/png;base64" + GOOD, "needs a comma"),
    "data URL, not base64": ("data:image/png," + GOOD, "must be base64"),
    "media type gif": ("data:image/gif;base64," + GOOD, "media type 'image/gif'"),
    "media type text": ("data:text/plain;base64," + GOOD, "media type 'text/plain'"),
    "no media type": ("data:;base64," + GOOD, "media type"),
    "says png, is jpeg": ("data:image/png;base64," + _b64(_file(Image.new("RGB", (SIZE, SIZE)), "JPEG")),
                          "says image/png, but this is a JPEG"),
    "13000x13000 header bomb": (_b64(_header_bomb(13000)), "13000x13000 pixels: at most 1024 a side"),
    "20000x20000 header bomb": (_b64(_header_bomb(20000)), "exceeds limit"),
    "too wide": (_b64(_file(Image.new("L", (2000, 1)))), "at most 1024 a side"),
    "16-bit grey": (_b64(_file(Image.new("I;16", (SIZE, SIZE)))), "mode I;16"),
    "gif": (_b64(_file(Image.new("RGB", (SIZE, SIZE)), "GIF")), "not a PNG, JPEG or WebP"),
    "animated gif": (_b64(_file(Image.new("RGB", (SIZE, SIZE)), "GIF", **TWO_FRAMES)), "not a PNG, JPEG or WebP"),
    "animated png": (_b64(_file(Image.new("RGB", (SIZE, SIZE)), "PNG", **TWO_FRAMES)), "an animation"),
    "animated webp": (_b64(_file(Image.new("RGB", (SIZE, SIZE)), "WEBP", **TWO_FRAMES)), "an animation"),
    "too long": ("A" * (MAX_PICTURE_CHARS + 4), f"at most {MAX_PICTURE_CHARS} characters"),
}
OTHER_FIELDS = [  # (raw JSON of the fields beside the prompt, the field named)
    ('"steps": 1e400', "steps"),
    ('"steps": true', "steps"),
    ('"seed": 1000000000000000000000000000000', "seed"),
    ('"num_images": 100000000000000000000', "num_images"),
    ('"num_images": 1.5', "num_images"),
    ('"guidance": 1e400', "guidance"),
    ('"guidance": NaN', "guidance"),
    ('"image": "%s", "strength": -1e400' % GOOD, "strength"),
    ('"image": "%s", "strength": "high"' % GOOD, "strength"),
    ('"lora": "x", "lora_scale": Infinity', "lora_scale"),
    ('"image": 12345', "image"),
    ('"image": ["%s"]' % GOOD, "image"),
    ('"image": {"png": "%s"}' % GOOD, "image"),
    ('"image": "%s", "mask": true' % GOOD, "mask"),
    ('"sampler": 3', "sampler"),
    ('"negative_prompt": []', "negative_prompt"),
]


def _post(client, path: str, fields: str):
    return client.post(path, content='{"prompt": "red apple", %s}' % fields,
                       headers={"Content-Type": "application/json"})


def _assert_names(r, field: str, says: str = "") -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    assert body["message"].startswith(f"{field}:"), body
    assert any(err["loc"][-1] == field for err in body["detail"]), body
    assert says in body["message"], body


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("name", BAD_PICTURES)
def test_a_bad_start_picture_is_422_naming_image(client, path, name):
    text, says = BAD_PICTURES[name]
    _assert_names(_post(client, path, f'"image": {json.dumps(text)}'), "image", says)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("name", BAD_PICTURES)
def test_a_bad_mask_is_422_naming_mask(client, path, name):
    text, says = BAD_PICTURES[name]
    _assert_names(_post(client, path, f'"image": "{GOOD}", "mask": {json.dumps(text)}'), "mask", says)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("mask_size", [(8, 8), (SIZE, SIZE + 1), (64, 64)])
def test_a_mask_of_another_size_is_refused_not_stretched(client, path, mask_size):
    mask = _b64(_file(Image.new("L", mask_size, 255)))
    _assert_names(_post(client, path, f'"image": "{GOOD}", "mask": "{mask}"'), "mask",
                  f"{mask_size[0]}x{mask_size[1]} pixels, but the image is {SIZE}x{SIZE}")


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("fields, field", OTHER_FIELDS, ids=[f for _, f in OTHER_FIELDS])
def test_huge_numbers_and_wrong_types_are_422_naming_the_field(client, path, fields, field):
    _assert_names(_post(client, path, fields), field)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_number_too_long_to_parse_is_a_4xx(client, path):
    r = _post(client, path, '"seed": 1' + "0" * 5000)
    assert 400 <= r.status_code < 500 and "body" in r.text, r.text


def test_a_refusal_of_the_library_is_422(client, tiny_pipeline, monkeypatch):
    def refuse(options):
        raise GouacheError("this sampler cannot paint that")

    monkeypatch.setattr(tiny_pipeline, "resolve", refuse)
    for path in ENDPOINTS:
        r = _post(client, path, '"steps": 2')
        assert r.status_code == 422 and r.json()["message"] == "body: this sampler cannot paint that", r.text


# ---- on a real server: the keep-alive connection outlives what went wrong ----

def _ask(conn: http.client.HTTPConnection, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    conn.request(method, path, None if body is None else json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


@pytest.fixture()
def server(tiny_pipeline):
    with BackgroundServer(create_app(tiny_pipeline)) as s:
        yield s


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("field", ["image", "mask"])
def test_a_bad_picture_then_a_good_request_on_the_same_connection(server, path, field):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    bad = {"prompt": "red apple", "steps": 2, "image": GOOD, field: BAD_PICTURES["corrupt chunk type"][0]}
    for body in (bad, {**bad, field: BAD_PICTURES["data URL without comma"][0]}):
        status, text = _ask(conn, "POST", path, body)
        assert status == 422 and json.loads(text)["message"].startswith(f"{field}: "), text
    sock = conn.sock
    assert sock is not None  # not closed by the server
    status, text = _ask(conn, "POST", path, {"prompt": "red apple", "steps": 2, "seed": 1})
    assert status == 200 and (b"event: result" in text if path.endswith("stream") else b'"images"' in text)
    assert conn.sock is sock  # the same connection
    conn.close()


def test_an_unexpected_error_is_answered_whole_and_the_connection_kept(server, monkeypatch):
    import gouache.serve.app as app_module

    def fail(*args, **kwargs):
        raise RuntimeError("a fault of the server's own")

    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    with monkeypatch.context() as m:
        m.setattr(app_module, "_samplers", fail)  # inside GET /api/info, before its answer starts
        status, text = _ask(conn, "GET", "/api/info")
    assert status == 500 and b"see its log" in text
    sock = conn.sock
    assert _ask(conn, "GET", "/api/health")[0] == 200 and conn.sock is sock


def test_an_error_inside_a_stream_ends_it_and_keeps_the_connection(server, monkeypatch):
    import gouache.serve.app as app_module

    sse = app_module._sse

    def fail_on_result(event, data):
        if event == "result":
            raise RuntimeError("cannot send this")
        return sse(event, data)

    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    with monkeypatch.context() as m:
        m.setattr(app_module, "_sse", fail_on_result)
        status, text = _ask(conn, "POST", "/api/generate/stream", {"prompt": "red apple", "steps": 2})
    assert status == 200 and b"event: error" in text and b"event: result" not in text
    sock = conn.sock
    status, text = _ask(conn, "POST", "/api/generate/stream", {"prompt": "red apple", "steps": 2})
    assert status == 200 and b"event: result" in text and conn.sock is sock


# ---- start-up: refused before listening, one line, exit 2 ----

def _nan_adapter(folder, model):
    """A real adapter for the tiny model, one of its tensors then filled with NaN."""
    from safetensors.torch import load_file, save_file

    from gouache.model.lora import add_adapter
    from gouache.store.adapters import AdapterInfo, save_adapter
    from gouache.store.checkpoint import load_network
    from gouache.store.fingerprint import weights_fingerprint

    net, _ = load_network(model)
    add_adapter(net, "a", rank=2, alpha=2)
    info = AdapterInfo(rank=2, alpha=2.0, convs=True, base_model="tiny", base_sha256=weights_fingerprint(model))
    path = save_adapter(net, "a", info, folder / "adapter-nan.safetensors")
    tensors = load_file(path)
    key = sorted(tensors)[0]
    tensors[key].fill_(float("nan"))
    save_file(tensors, path, metadata={"format": info.format})
    return path


@pytest.mark.parametrize("option, message", [
    (["--max-batch", "100000000"], "--max-batch must be from 1 to 64"),
    (["--max-batch", "0"], "--max-batch must be from 1 to 64"),
    (["--threads", "-1"], "--threads must be from 1 to"),
    (["--threads", "0"], "--threads must be from 1 to"),
    (["--threads", "100000"], "--threads must be from 1 to"),
    (["--queue-size", "0"], "--queue-size must be from 1 to 1024"),
    (["--queue-size", "100000000"], "--queue-size must be from 1 to 1024"),
    (["--port", "70000"], "--port must be between 0 and 65535"),
    (["--model", "{work}/missing"], "no such model or run folder"),
    (["--lora", "{work}/missing.safetensors"], "no such adapter"),
    (["--lora", "{nan}"], "finite"),
])
def test_serve_refuses_options_that_cannot_work(option, message, tiny_model_dir, tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    nan = _nan_adapter(work, tiny_model_dir) if "{nan}" in option else None
    argv = ["serve", "--model", tiny_model_dir, "--port", "0",
            *[o.format(work=work, nan=nan) for o in option]]
    assert_refused(argv, message, work, capsys)


def test_serve_refuses_a_port_in_use(tiny_model_dir, tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert_refused(["serve", "--model", tiny_model_dir, "--host", "127.0.0.1", "--port", port],
                       f"port {port} is in use; choose another with --port", work, capsys)
