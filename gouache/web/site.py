"""``gouache export MODEL --web OUT``: a static site that paints with the model's few-step student
in the browser, with no server behind it.

    OUT/index.html, app.js, history.js, sampler.js, tokenizer.js, style.css, sw.js   the page (gouache/web/static)
    OUT/student.onnx      the student with its preconditioning (``onnx_export``)
    OUT/text.onnx         the prompt encoder
    OUT/vocab.txt         the tokenizer's vocabulary, one token a line, in id order
    OUT/model.json        what the page needs to know: sizes, noise levels, the folded-in guidance
    OUT/files.json        every file of the site and its size
    OUT/ort/              onnxruntime-web (``runtime``)

Any static host serves it; ``python -m http.server -d OUT`` does on this machine.
"""
from __future__ import annotations

import functools
import hashlib
import json
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from gouache.errors import GouacheError
from gouache.sampling.samplers import CONSISTENCY_SIGMA_LAST, SAMPLERS
from gouache.store.checkpoint import check_export_folder, resolve_model_dir
from gouache.store.files import replacing_folder, write_json
from gouache.web.onnx_export import (
    WeightType,
    export_student,
    export_text_encoder,
    require_student,
)
from gouache.web.runtime import ORT_WEB_VERSION, WASM_FILES, WEBGPU_FILES, runtime_dir

__all__ = ["write_site", "export_site", "write_vocab", "StaticServer", "STATIC", "PAGE_FILES", "MAX_STEPS"]

STATIC = Path(__file__).resolve().parent / "static"
PAGE_FILES = ("index.html", "app.js", "sampler.js", "tokenizer.js", "sw.js")
# what the page shares with the server's page (its stylesheet, its history): copied, not kept twice
SHARED = STATIC.parent.parent / "serve" / "static"
SHARED_FILES = ("style.css", "history.js")
MAX_STEPS = 4  # the student's steps on the page, as on `gouache serve`'s


def write_site(model: Path | str, out: Path | str, *, student_weights: WeightType = "int8",
               text_weights: WeightType = "int8") -> Path:
    """Write the site for the model folder ``model`` (it must carry a student) into ``out``."""
    model, out = resolve_model_dir(model), Path(out)
    if out.exists() and not out.is_dir():
        raise GouacheError(f"--web {out}: a file is in the way; name a folder")
    require_student(model)
    runtime = runtime_dir()  # before the slow part: a missing runtime is said at once
    out.mkdir(parents=True, exist_ok=True)
    meta = export_student(model, out / "student.onnx", weights=student_weights)
    text_folder = export_text_encoder(meta["text_model"], out / "text.onnx", weights=text_weights)
    wordpiece = write_vocab(text_folder / "tokenizer.json", out / "vocab.txt")
    for name in PAGE_FILES:
        shutil.copyfile(STATIC / name, out / name)
    for name in SHARED_FILES:
        shutil.copyfile(SHARED / name, out / name)
    (out / "ort").mkdir(exist_ok=True)
    for name in WASM_FILES + WEBGPU_FILES:
        shutil.copyfile(runtime / name, out / "ort" / name)
    spec = SAMPLERS["consistency"]
    write_json({"name": model.name, "image_size": meta["image_size"], "channels": meta["channels"],
                "text_dim": meta["text_dim"], "text_max_length": meta["text_max_length"],
                "guidance": meta["guidance"], "sigma_max": meta["sigma_max"], "sigma_last": CONSISTENCY_SIGMA_LAST,
                "default_steps": spec.default_steps, "max_steps": MAX_STEPS,
                "tokenizer": wordpiece, "weights": {"student": student_weights, "text": text_weights},
                "runtime": f"onnxruntime-web {ORT_WEB_VERSION}"}, out / "model.json")
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name not in ("files.json", "sw.js"))
    sizes = {str(p.relative_to(out).as_posix()): p.stat().st_size for p in files}
    fingerprint = hashlib.sha256(b"".join(p.read_bytes() for p in files if p.suffix != ".wasm")).hexdigest()[:16]
    sw = (STATIC / "sw.js").read_text(encoding="utf-8").replace("gouache-web-SITE", f"gouache-web-{fingerprint}")
    (out / "sw.js").write_text(sw, encoding="utf-8")  # the offline copy is named after these files
    write_json({**sizes, "sw.js": (out / "sw.js").stat().st_size}, out / "files.json")
    return out


def write_vocab(tokenizer_json: Path, path: Path) -> dict:
    """The WordPiece vocabulary of ``tokenizer.json`` in id order, one token a line; returns its
    settings."""
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    model, norm = spec["model"], spec.get("normalizer") or {}
    uncased_bert = (norm.get("type") == "BertNormalizer" and norm.get("lowercase") and norm.get("clean_text")
                    and norm.get("handle_chinese_chars") and norm.get("strip_accents") in (None, True)
                    and (spec.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer")
    if model.get("type") != "WordPiece" or not uncased_bert:
        raise GouacheError(f"{tokenizer_json}: the page tokenizes as uncased BERT (BertNormalizer, "
                           f"BertPreTokenizer, WordPiece); this tokenizer is another")
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    if [i for _, i in vocab] != list(range(len(vocab))) or any("\n" in t for t, _ in vocab):
        raise GouacheError(f"{tokenizer_json}: the vocabulary is not one token per id")
    path.write_text("".join(f"{t}\n" for t, _ in vocab), encoding="utf-8")
    return {"unk": model["unk_token"], "prefix": model["continuing_subword_prefix"],
            "max_word_chars": model["max_input_chars_per_word"],
            "special": [t["content"] for t in spec.get("added_tokens", []) if t.get("special")]}


def export_site(runs: list[Path], out: Path | None, *, alone: bool, overwrite: bool = False) -> Path:
    """``gouache export MODEL --web OUT``: one model folder, no other output (``alone``). The site
    is written beside ``out`` and renamed into place: a folder already there is replaced only
    with ``overwrite``."""
    if out is None:
        raise GouacheError("gouache export needs --out (a model folder) or --web (a static site)")
    if len(runs) != 1 or not alone:
        raise GouacheError("--web writes the site of one model folder: name one, without --out, --student "
                           "or --merge-lora (export the model first, then its site)")
    check_export_folder(out, [("the exported folder", runs[0])], what="--web", overwrite=overwrite)
    with replacing_folder(out) as folder:
        write_site(runs[0], folder)
    return Path(out)


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request
        pass

    def copyfile(self, source, outputfile) -> None:
        start = source.tell()
        super().copyfile(source, outputfile)
        self.server.bytes_sent += source.tell() - start  # type: ignore[attr-defined]


class StaticServer:
    """``python -m http.server -d FOLDER`` on a free port of 127.0.0.1, in a daemon thread, that
    counts the bytes it sends (``bytes_sent``):

        with StaticServer(site) as server:
            page.goto(server.url + "/")
    """

    def __init__(self, folder: Path | str) -> None:
        handler = functools.partial(_Handler, directory=str(folder))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.bytes_sent = 0  # bodies of the files served so far
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "StaticServer":
        threading.Thread(target=self.httpd.serve_forever, name="gouache-web", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def bytes_sent(self) -> int:
        return self.httpd.bytes_sent
