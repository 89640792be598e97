"""The two networks the web page runs, as ONNX files.

    student.onnx   (x, sigma, tokens, mask, pooled) -> denoised: the few-step student with
                   its EDM preconditioning (``Denoiser``), the guidance folded in when it was
                   distilled, so one call is one step of the consistency sampler.
    text.onnx      (ids, mask) -> tokens, pooled: the frozen prompt encoder with the masked
                   mean and L2 norm of ``TextEncoder``; the page tokenizes in JavaScript.

Both come from ``torch.onnx.export``; ``check_onnx`` runs a file with onnxruntime against the
PyTorch module. The weights are stored smaller than float32 (``compress_weights``): float16
(what the shipped student is saved as: nothing lost) or int8 with one scale per output
channel; each is cast back to float32 by a node that onnxruntime folds when the file loads,
so the page computes in float32 whatever the file stores.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from gouache.errors import GouacheError
from gouache.model.bert import BertEncoder, is_plain_bert
from gouache.model.denoiser import Denoiser
from gouache.model.text import resolve_text_model
from gouache.store.checkpoint import read_model_config
from gouache.store.student import STUDENT_DIR, load_student

__all__ = ["StudentStep", "PromptEncoder", "require_student", "student_module", "text_module", "export_student", "export_text_encoder", "compress_weights",
           "check_onnx", "OPSET", "WeightType"]

OPSET = 17  # LayerNormalization is an operator from 17 on; onnxruntime-web runs it
WeightType = Literal["float32", "float16", "int8"]
_SMALL = 4096  # tensors with fewer values (biases, norms) stay float32: they weigh nothing
_GROUP = 32  # int8 matrices: inputs that share a scale


class StudentStep(nn.Module):
    """``(x, sigma, tokens, mask, pooled) -> denoised`` for one image: the student ``Denoiser``."""

    def __init__(self, denoiser: Denoiser) -> None:
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor,
                pooled: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, sigma, tokens=tokens, mask=mask, pooled=pooled)


class PromptEncoder(nn.Module):
    """``(ids, mask) -> (tokens, pooled)`` as ``TextEncoder.forward`` computes them."""

    def __init__(self, bert: BertEncoder) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.bert(ids, mask).float()  # (B, L, D)
        weights = mask.unsqueeze(-1).float()  # (B, L, 1)
        pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1)
        return tokens * weights, nn.functional.normalize(pooled, dim=-1)


def require_student(model: Path) -> None:
    """Refuse a model folder without a few-step student: the page paints with one."""
    if not (Path(model) / STUDENT_DIR).is_dir():
        raise GouacheError(f"{model} has no few-step student (a student/ folder): the page paints with one; "
                           f"distill it with gouache distill and join it with gouache export --student")


def student_module(model: Path) -> tuple[StudentStep, dict]:
    """The student of a model folder as a ``StudentStep``, and what the page needs to know of it."""
    require_student(model)
    net, info = load_student(model)
    config = read_model_config(model)
    step = StudentStep(Denoiser(net.float(), sigma_data=config.schedule.sigma_data)).eval()
    return step, {"guidance": info.guidance, "image_size": config.unet.image_size,
                  "channels": config.unet.in_channels, "text_dim": config.unet.text_dim,
                  "text_model": config.text_model, "text_max_length": config.text_max_length,
                  "sigma_max": config.schedule.sigma_max}


def text_module(text_model: str) -> tuple[PromptEncoder, Path]:
    """The prompt encoder named in a model's config, and its folder (for the vocabulary)."""
    folder = Path(resolve_text_model(text_model))
    if not is_plain_bert(folder):
        raise GouacheError(f"the page tokenizes with BERT's WordPiece: the text encoder {text_model!r} is not "
                           "a plain BERT folder (config.json, model.safetensors, tokenizer.json)")
    return PromptEncoder(BertEncoder.from_folder(folder).float().eval()), folder


def _export(module: nn.Module, args: tuple, path: Path, *, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]]) -> None:
    # the tracer warns of Python values it records as constants (the batch of one, the sigma
    # conversion): the files are checked against the modules at several lengths and sigmas
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)


def export_student(model: Path, path: Path, *, weights: WeightType = "float16") -> dict:
    """Write the student of ``model`` to ``path``; returns what the page needs (``student_module``)."""
    step, meta = student_module(model)
    size, length = meta["image_size"], 4
    args = (torch.zeros(1, meta["channels"], size, size), torch.tensor([80.0]), torch.zeros(1, length, meta["text_dim"]),
            torch.ones(1, length, dtype=torch.bool), torch.zeros(1, meta["text_dim"]))
    _export(step, args, path, inputs=["x", "sigma", "tokens", "mask", "pooled"], outputs=["denoised"],
            dynamic={"tokens": {1: "length"}, "mask": {1: "length"}})
    compress_weights(path, weights)
    return meta


def export_text_encoder(text_model: str, path: Path, *, weights: WeightType = "int8") -> Path:
    """Write the prompt encoder to ``path``; returns its folder (tokenizer.json lives there)."""
    encoder, folder = text_module(text_model)
    ids = torch.tensor([[101, 2417, 6207, 102]])
    _export(encoder, (ids, torch.ones_like(ids)), path, inputs=["ids", "mask"], outputs=["tokens", "pooled"],
            dynamic={"ids": {1: "length"}, "mask": {1: "length"}, "tokens": {1: "length"}})
    compress_weights(path, weights)
    return folder


def compress_weights(path: Path, weights: WeightType) -> None:
    """Store the large float32 initializers of an ONNX file as ``weights``, each cast back to
    float32 by a Cast (and for int8 a Mul by its per-channel scales) in front of its users."""
    if weights == "float32":
        return
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    users = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            users.setdefault(name, []).append((node.op_type, k))
    kept, added, nodes = [], [], []
    for init in graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype != np.float32 or w.size < _SMALL:
            kept.append(init)
            continue
        name = init.name
        if weights == "float16":
            added.append(numpy_helper.from_array(w.astype(np.float16), f"{name}.f16"))
            nodes.append(helper.make_node("Cast", [f"{name}.f16"], [name], to=onnx.TensorProto.FLOAT))
            continue
        # int8, symmetric. A MatMul's weight (in, out): one scale per output column and group of
        # _GROUP inputs (with one scale per column, the prompt encoder's pictures moved 2.3/255 at
        # worst, 1.0 with these); any other: one scale per output channel (its first axis)
        matmul = w.ndim == 2 and w.shape[0] % _GROUP == 0 and all(op == "MatMul" and k == 1
                                                                 for op, k in users.get(name, []))
        shaped = w.reshape(w.shape[0] // _GROUP, _GROUP, w.shape[1]) if matmul else w  # (in / G, G, out)
        reduce = (1,) if matmul else tuple(range(1, w.ndim))
        scale = np.abs(shaped).max(axis=reduce, keepdims=True) / 127
        scale = np.where(scale > 0, scale, 1).astype(np.float32)
        q = np.clip(np.round(shaped / scale), -127, 127).astype(np.int8)
        added += [numpy_helper.from_array(q, f"{name}.i8"), numpy_helper.from_array(scale, f"{name}.scale")]
        nodes += [helper.make_node("Cast", [f"{name}.i8"], [f"{name}.i8f"], to=onnx.TensorProto.FLOAT),
                  helper.make_node("Mul", [f"{name}.i8f", f"{name}.scale"], [f"{name}.scaled" if matmul else name])]
        if matmul:  # back to (in, out)
            added.append(numpy_helper.from_array(np.array(w.shape, np.int64), f"{name}.shape"))
            nodes.append(helper.make_node("Reshape", [f"{name}.scaled", f"{name}.shape"], [name]))
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old)  # the casts first: the graph stays in topological order
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def check_onnx(path: Path, module: nn.Module, feeds: dict[str, np.ndarray]) -> list[float]:
    """Run ``path`` with onnxruntime and ``module`` in PyTorch on the same inputs: the largest
    absolute difference of each output."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    with torch.no_grad():
        want = module(*(torch.from_numpy(v) for v in feeds.values()))
    want = want if isinstance(want, tuple) else (want,)
    return [float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want)]
