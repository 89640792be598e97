"""Every file format gouache reads, and the server's request body: the valid originals, the
hostile variants of each (``variants.py``, ``media.py``) and the reader gouache uses for it.
The readers are reached only through the ``read_*`` functions here: a reader that is renamed is
changed here, once.
"""
from __future__ import annotations

import base64
import copy
import json
import shutil
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable

import torch
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from PIL import Image, ImageDraw

from gouache.errors import GouacheError

from .media import png_variants, tar_variants
from .variants import (
    Variant,
    byte_variants,
    encoding_variants,
    json_edits,
    json_variants,
    jsonl_variants,
    mix,
    safetensors_variants,
    text_variants,
    toml_variants,
)

__all__ = ["Format", "Context", "FORMATS", "FILE_FORMATS", "REQUEST", "SECONDS"]

ROOT = Path(__file__).resolve().parents[2]
EMOJI = ROOT / "tests" / "fixtures" / "emoji"
SECONDS = 3.0  # a read of these small files answers at once; slower is a hang


# -- the readers, as gouache calls them ------------------------------------------------------------

def read_model(folder: Path) -> Any:
    from gouache.store.checkpoint import load_network
    return load_network(folder)


def read_student(folder: Path) -> Any:
    from gouache.store.student import load_student
    return load_student(folder)


def read_adapter(path: Path, base: Path, net: torch.nn.Module) -> Any:
    from gouache.store.adapters import apply_adapters
    return apply_adapters(copy.deepcopy(net), base, [path])


def read_train_state(checkpoint: Path, net: torch.nn.Module) -> int:
    from gouache.store.checkpoint import load_train_state
    return load_train_state(checkpoint, torch.optim.AdamW(net.parameters()), {"data": torch.Generator()})


def read_imagefolder(folder: Path) -> Any:
    from gouache.data.imagefolder import load_imagefolder
    return load_imagefolder(folder, size=8, split=None, progress=False)


def read_shard(path: Path) -> list:
    from gouache.data.shards import ShardStream, read_samples
    list(read_samples(str(path)))
    return list(islice(iter(ShardStream([str(path)], size=8, split=None, buffer=1)), 3))


def read_embeddings(folder: Path, data: Any, encoder: Any) -> Any:
    """The stored table as training uses it: in memory (and resident), and for streamed shards."""
    from gouache.data.prompts import EMBEDDINGS_FILE, CaptionCache, CaptionTable, load_prompt_embeddings
    from gouache.data.resident import resident_bytes
    table = CaptionTable.build(data, encoder, folder=folder)
    resident_bytes(data, table)
    cache = CaptionCache(encoder, load_prompt_embeddings(folder / EMBEDDINGS_FILE, encoder))
    cache.cond(cache.ids(data.captions), torch.device("cpu"))
    return table


def read_train_recipe(path: Path) -> Any:
    from gouache.training.config import load_train_config
    return load_train_config(path)


def read_distill_recipe(path: Path) -> Any:
    from gouache.training.distill import load_distill_config
    return load_distill_config(path)


def read_pictures(image: Path, mask: Path) -> Any:
    from gouache.sampling.start import StartPicture
    return StartPicture.load(image, size=16, mask=mask)


class ServerError(Exception):
    """The server answered 5xx."""


def read_request(client: Any, body: bytes) -> Any:
    r = client.post("/api/generate", content=body, headers={"content-type": "application/json"})
    if r.status_code >= 500:
        raise ServerError(f"HTTP {r.status_code}: {r.text[:120]}")
    if r.status_code >= 400:
        raise GouacheError(f"HTTP {r.status_code}")
    return r


# -- the valid originals -------------------------------------------------------------------------

class StubEncoder:
    """A prompt encoder of 4-d states, 6 tokens long, for the embeddings table (no network)."""

    name, max_length, dim = "stub-encoder", 6, 4

    def encode_many(self, captions: list[str], progress: bool = False,
                    token_dtype: torch.dtype = torch.float32) -> Any:
        from gouache.model.text import PromptEmbedding
        g = torch.Generator().manual_seed(0)
        n = len(captions)
        mask = torch.zeros(n, self.max_length, dtype=torch.bool)
        mask[:, :2] = True
        return PromptEmbedding(torch.randn(n, self.max_length, self.dim, generator=g).to(token_dtype), mask,
                               torch.randn(n, self.dim, generator=g))


@dataclass
class Context:
    """What the formats share: a tiny model folder and its network, built once in ``root``;
    the server's test client, for the request format."""

    root: Path
    client: Any = None
    _model: Path | None = None
    _net: Any = None

    def model(self) -> Path:
        if self._model is None:
            from gouache.model.config import ModelConfig
            from gouache.model.unet import PRESETS, UNet
            from gouache.store.files import write_json
            from gouache.store.tensors import contiguous, save_tensors
            folder = self.root / "tiny-model"
            folder.mkdir(parents=True, exist_ok=True)
            cfg = ModelConfig(unet=PRESETS["tiny"])
            torch.manual_seed(0)
            write_json(cfg.to_dict(), folder / "config.json")
            save_tensors(contiguous(UNet(cfg.unet).state_dict()), folder / "ema.safetensors")
            self._model = folder
        return self._model

    def net(self) -> torch.nn.Module:
        if self._net is None:
            self._net = read_model(self.model())[0]
        return self._net


def build_model(case: Path, ctx: Context) -> None:
    shutil.copytree(ctx.model(), case)


def build_student(case: Path, ctx: Context) -> None:
    from gouache.store.student import INFO_FILE, STUDENT_DIR, StudentInfo
    shutil.copytree(ctx.model(), case)
    shutil.copytree(ctx.model(), case / STUDENT_DIR)
    info = StudentInfo(guidance=3.0, teacher="tiny-model", teacher_sha256="ab" * 32, step=10)
    (case / STUDENT_DIR / INFO_FILE).write_text(json.dumps(asdict(info), indent=2))


def build_adapter(case: Path, ctx: Context) -> None:
    from gouache.model.lora import add_adapter
    from gouache.store.adapters import AdapterInfo, save_adapter
    from gouache.store.fingerprint import weights_fingerprint
    case.mkdir(parents=True)
    net = copy.deepcopy(ctx.net())
    add_adapter(net, "a", rank=2, alpha=2)
    info = AdapterInfo(rank=2, alpha=2.0, convs=True, base_model="tiny-model",
                       base_sha256=weights_fingerprint(ctx.model()))
    save_adapter(net, "a", info, case / "adapter.safetensors")


def build_run(case: Path, ctx: Context) -> None:
    from gouache.store.checkpoint import read_model_config, save_run_state, write_model_weights
    net = copy.deepcopy(ctx.net())
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    sum(p.sum() for p in net.parameters()).backward()
    opt.step()
    config = read_model_config(ctx.model())
    save_run_state(case, step=1, weights=lambda f: write_model_weights(f, model_config=config, net=net, ema=net),
                   optimizer=opt, generators={"data": torch.Generator().manual_seed(0)}, train_config={"steps": 1})


def build_metadata(case: Path, ctx: Context) -> None:
    rows = [json.loads(line) for line in (EMOJI / "metadata.jsonl").read_text().splitlines()[:3]]
    for row in rows:
        (case / row["file_name"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EMOJI / row["file_name"], case / row["file_name"])
    (case / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def build_sidecars(case: Path, ctx: Context) -> None:
    case.mkdir(parents=True)
    for name, colour in (("a", "red"), ("b", "green"), ("c", "blue")):
        Image.new("RGB", (8, 8), colour).save(case / f"{name}.png")
        (case / f"{name}.txt").write_text(f"a {colour} square\n")


def build_shard(case: Path, ctx: Context) -> None:
    from gouache.data.shards import write_shards
    build_metadata(case / "folder", ctx)
    write_shards(case / "folder", case / "shards")


def embedding_data() -> Any:
    from gouache.data.imagefolder import CaptionedImages
    return CaptionedImages(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), [["red apple", "apple"], ["blue whale"]],
                           [[0.5, 0.5], [1.0]], [{}, {}])


def build_embeddings(case: Path, ctx: Context) -> None:
    from gouache.data.prompts import EMBEDDINGS_FILE, save_prompt_embeddings
    case.mkdir(parents=True)
    encoder = StubEncoder()
    captions = ["", "apple", "blue whale", "red apple"]
    save_prompt_embeddings(case / EMBEDDINGS_FILE, captions, encoder.encode_many(captions),
                           text_model=encoder.name, max_length=encoder.max_length)


def build_recipe(source: str, *, first: str = "") -> Callable[[Path, Context], None]:
    """A shipped recipe, with the lines ``first`` (formatted with ``model``) put before it."""
    def build(case: Path, ctx: Context) -> None:
        case.mkdir(parents=True)
        head = first.format(model=json.dumps(str(ctx.model())))
        (case / "recipe.toml").write_text(head + (ROOT / "configs" / source).read_text())
    return build


def build_pictures(case: Path, ctx: Context) -> None:
    case.mkdir(parents=True)
    shutil.copy(EMOJI / "images" / "google" / "1f333.png", case / "image.png")
    with Image.open(case / "image.png") as image:
        mask = Image.new("L", image.size, 0)  # a mask has its picture's size
    w, h = mask.size
    ImageDraw.Draw(mask).ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=255)
    mask.save(case / "mask.png")


def check_table(table: Any) -> str | None:
    """What is wrong with an embeddings table that was read without complaint."""
    u = len(table.captions)
    tokens, mask, pooled = table.emb.tokens, table.emb.mask, table.emb.pooled
    if tokens.ndim != 3 or tokens.shape[0] != u or tokens.shape[2] != StubEncoder.dim:
        return f"tokens of shape {tuple(tokens.shape)} for {u} captions of {StubEncoder.dim}-d states"
    if tuple(mask.shape) != tuple(tokens.shape[:2]) or tuple(pooled.shape) != (u, StubEncoder.dim):
        return f"mask {tuple(mask.shape)} and pooled {tuple(pooled.shape)} beside tokens {tuple(tokens.shape)}"
    if not (torch.isfinite(tokens.float()).all() and torch.isfinite(pooled.float()).all()):
        return "states that are not finite"
    return None


def check_step(step: Any) -> str | None:
    return None if isinstance(step, int) and not isinstance(step, bool) else f"a step of {step!r}"


# -- the server's request body ---------------------------------------------------------------------

BODY = {"prompt": "red apple", "negative_prompt": "", "steps": 1, "guidance": 3.0, "sampler": "euler", "seed": 0,
        "num_images": 1}


def request_variants(png: bytes) -> SearchStrategy[Variant]:
    """Bodies of POST /api/generate: hostile values, encodings, bytes, and hostile start pictures."""
    text = json.dumps(BODY)
    b64 = base64.b64encode(png).decode()

    def body(**extra: Any) -> bytes:
        return json.dumps(BODY | extra).encode()

    bad_text = [("not base64", "not base64!"), ("a data URL", "data:image/png;base64," + b64),
                ("base64 cut short", b64[:-3]), ("base64 over several lines", "\n".join(b64[i:i + 60] for i in range(0, len(b64), 60)))]
    return mix(
        (3, json_edits(BODY, indent=None).map(lambda e: Variant(e[0], e[1].encode("utf-8", "surrogatepass")))),
        (1, encoding_variants(text)),
        (1, byte_variants(text.encode())),
        (2, png_variants(png).map(lambda v: Variant(f"image: {v.what}", body(
            image=base64.b64encode(v.data).decode(), strength=0.5)))),
        (1, png_variants(png).map(lambda v: Variant(f"mask: {v.what}", body(
            image=b64, mask=base64.b64encode(v.data).decode())))),
        (1, st.sampled_from(bad_text).map(lambda t: Variant(f"image: {t[0]}", body(image=t[1])))),
    )


# -- the formats -----------------------------------------------------------------------------------

@dataclass
class Format:
    """One file (``target``, in the folder ``build`` writes) and the reader of it."""

    name: str
    build: Callable[[Path, Context], None]
    target: str | None  # the file the variants replace (None: the request body, no file)
    variants: Callable[[bytes], SearchStrategy[Variant]]  # from the valid file's bytes
    read: Callable[[Path, Context, Variant], Any]
    check: Callable[[Any], str | None] = lambda obj: None  # what is wrong with an object read
    seconds: float = SECONDS


def _text(strategy: Callable[[str], SearchStrategy[Variant]]) -> Callable[[bytes], SearchStrategy[Variant]]:
    return lambda data: strategy(data.decode("utf-8"))


FILE_FORMATS = [
    Format("config.json", build_model, "config.json", _text(json_variants), lambda c, x, v: read_model(c)),
    Format("ema.safetensors", build_model, "ema.safetensors", safetensors_variants, lambda c, x, v: read_model(c)),
    Format("student.json", build_student, "student/student.json", _text(json_variants),
           lambda c, x, v: read_student(c)),
    Format("adapter.json", build_adapter, "adapter.json", _text(json_variants),
           lambda c, x, v: read_adapter(c / "adapter.safetensors", x.model(), x.net())),
    Format("adapter.safetensors", build_adapter, "adapter.safetensors", safetensors_variants,
           lambda c, x, v: read_adapter(c / "adapter.safetensors", x.model(), x.net())),
    Format("latest.txt", build_run, "latest.txt", _text(text_variants), lambda c, x, v: read_model(c)),
    Format("state.json", build_run, "checkpoints/step-00000001/state.json", _text(json_variants),
           lambda c, x, v: read_train_state(c / "checkpoints" / "step-00000001", x.net()), check_step),
    Format("metadata.jsonl", build_metadata, "metadata.jsonl", _text(jsonl_variants),
           lambda c, x, v: read_imagefolder(c)),
    Format("caption .txt", build_sidecars, "a.txt", _text(text_variants), lambda c, x, v: read_imagefolder(c)),
    Format("shard .tar", build_shard, "shards/000000.tar", tar_variants, lambda c, x, v: read_shard(c / "shards" / "000000.tar")),
    Format("prompt_embeddings", build_embeddings, "prompt_embeddings.safetensors", safetensors_variants,
           lambda c, x, v: read_embeddings(c, embedding_data(), StubEncoder()), check_table),
    Format("train recipe .toml", build_recipe("shapes.toml"), "recipe.toml", _text(toml_variants),
           lambda c, x, v: read_train_recipe(c / "recipe.toml")),
    Format("distill recipe .toml", build_recipe("distill-emoji64.toml", first="teacher = {model}\ndata = \"data\"\n"), "recipe.toml", _text(toml_variants),
           lambda c, x, v: read_distill_recipe(c / "recipe.toml")),
    Format("--image PNG", build_pictures, "image.png", png_variants,
           lambda c, x, v: read_pictures(c / "image.png", c / "mask.png")),
    Format("--mask PNG", build_pictures, "mask.png", png_variants,
           lambda c, x, v: read_pictures(c / "image.png", c / "mask.png")),
]
REQUEST = Format("POST /api/generate", lambda case, ctx: case.mkdir(parents=True), None,
                 lambda _: request_variants((EMOJI / "images" / "google" / "1f333.png").read_bytes()),
                 lambda c, x, v: read_request(x.client, v.data), seconds=20.0)
FORMATS = FILE_FORMATS + [REQUEST]
