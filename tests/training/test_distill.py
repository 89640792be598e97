"""gouache distill: a run that resumes exactly, a student joined to its teacher, and the
pipeline choosing it (``auto``) only where it can paint what is asked."""
from dataclasses import replace

import pytest
import torch

from gouache.errors import GouacheError
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.store.checkpoint import export_model, resolve_model_dir
from gouache.store.student import check_student, copy_student, read_student_info
from gouache.store.tensors import read_tensors
from gouache.training.distill import DistillConfig, distill, load_distill_config


def config(teacher, data, out, **kw) -> DistillConfig:
    return DistillConfig(teacher=str(teacher), data=str(data), out=str(out), steps=4, batch_size=4, warmup=2,
                         log_every=1, checkpoint_every=2, sample_every=0, device="cpu", **kw)


@pytest.fixture()
def distilled(tiny_model_dir, shapes_dir, tmp_path, text_encoder, one_thread):
    result = distill(config(tiny_model_dir, shapes_dir, tmp_path / "run"), progress=False, text_encoder=text_encoder)
    return result


def test_a_run_writes_a_student_checkpoint_that_learned(distilled, tiny_model_dir):
    assert distilled.step == 4 and len(distilled.losses) == 4
    folder = resolve_model_dir(distilled.run)
    info = read_student_info(folder)
    assert info.guidance == 3.0 and info.step == 4 and info.solver == "heun"
    for name in ("ema", "model", "target"):
        assert (folder / f"{name}.safetensors").exists()
    student, teacher = read_tensors(folder / "model.safetensors"), read_tensors(tiny_model_dir / "ema.safetensors")
    assert any(not torch.equal(student[k], teacher[k].float()) for k in teacher)  # the student moved


def test_resume_repeats_an_uninterrupted_run(tiny_model_dir, shapes_dir, tmp_path, text_encoder, one_thread):
    whole = distill(config(tiny_model_dir, shapes_dir, tmp_path / "whole"), progress=False, text_encoder=text_encoder)
    half = config(tiny_model_dir, shapes_dir, tmp_path / "half")
    distill(replace(half, steps=2), progress=False, text_encoder=text_encoder)
    resumed = distill(half, resume=tmp_path / "half", progress=False, text_encoder=text_encoder)
    assert resumed.losses == whole.losses[2:]
    a, b = resolve_model_dir(whole.run), resolve_model_dir(resumed.run)
    for name in ("ema.safetensors", "target.safetensors"):
        ta, tb = read_tensors(a / name), read_tensors(b / name)
        assert all(torch.equal(ta[k], tb[k]) for k in ta)


def test_a_student_can_start_from_another_students_weights(distilled, tiny_model_dir, shapes_dir, tmp_path,
                                                          text_encoder, one_thread):
    earlier = read_tensors(resolve_model_dir(distilled.run) / "ema.safetensors")
    cfg = config(tiny_model_dir, shapes_dir, tmp_path / "again", init=str(distilled.run), lr=1e-8)
    again = distill(replace(cfg, steps=1), progress=False, text_encoder=text_encoder)
    now = read_tensors(resolve_model_dir(again.run) / "target.safetensors")  # barely moved from its start
    teacher = read_tensors(tiny_model_dir / "ema.safetensors")

    def distance(a: dict, b: dict) -> float:
        return sum(float((a[k].float() - b[k].float()).norm() ** 2) for k in a) ** 0.5

    assert distance(now, earlier) < distance(teacher, earlier) / 100  # it started from the student
    with pytest.raises(GouacheError, match="not a few-step student"):
        distill(replace(cfg, out=str(tmp_path / "x"), init=str(tiny_model_dir)), progress=False,
                text_encoder=text_encoder)


@pytest.fixture()
def with_student(distilled, tiny_model_dir, tmp_path):
    model = export_model(tiny_model_dir, tmp_path / "model")
    copy_student(model, *check_student(model, distilled.run))
    return model


def test_auto_paints_with_the_student_where_it_can(with_student, text_encoder):
    pipe = Pipeline.load(with_student, device="cpu", text_encoder=text_encoder)
    calls = []
    pipe.student.register_forward_hook(lambda *a: calls.append(1))
    got = pipe.generate("red circle", progress=False)
    assert pipe._denoiser is None  # the diffusion model is not even read while the student paints
    assert (got.options.sampler, got.options.steps) == ("consistency", 4) and len(calls) == 4
    assert pipe.generate("red circle", SamplingOptions(guidance=5), progress=False).options.sampler == "dpmpp_2m"
    assert pipe.generate("red circle", SamplingOptions(negative_prompt="blue"),
                         progress=False).options.sampler == "dpmpp_2m"
    teacher = pipe.generate("red circle", SamplingOptions("dpmpp_2m"), progress=False)
    assert len(calls) == 4 and not torch.equal(teacher.final, got.final)  # the teacher painted that one
    with pytest.raises(GouacheError, match="paints at guidance 3"):
        pipe.generate("red circle", SamplingOptions("consistency", guidance=5), progress=False)


def test_a_model_without_student_uses_the_teacher_and_refuses_consistency(tiny_pipeline):
    assert tiny_pipeline.generate("x", progress=False).options.sampler == "dpmpp_2m"
    with pytest.raises(GouacheError, match="has none"):
        tiny_pipeline.generate("x", SamplingOptions("consistency"), progress=False)


def test_the_student_joins_only_its_own_teacher(distilled, tmp_path, text_encoder):
    other = tmp_path / "other"
    export_model(resolve_model_dir(distilled.run), other)  # another network: the student's own weights
    with pytest.raises(GouacheError, match="was distilled from"):
        check_student(other, distilled.run)
    with pytest.raises(GouacheError, match="few-step student on its own"):
        Pipeline.load(distilled.run, device="cpu", text_encoder=text_encoder)


def test_recipe_options_are_checked(tmp_path):
    with pytest.raises(GouacheError, match="solver must be one of"):
        load_distill_config(None, teacher="t", data="d", solver="rk4")
    recipe = tmp_path / "r.toml"
    recipe.write_text('teacher = "t"\ndata = "d"\nstepz = 3\n')
    with pytest.raises(GouacheError, match="unknown distillation option"):
        load_distill_config(recipe)


def test_the_student_repaints_only_under_the_mask(with_student, text_encoder, tmp_path):
    """Image-to-image and inpainting work with the student's sampler as with the others."""
    import numpy as np
    from PIL import Image

    pipe = Pipeline.load(with_student, device="cpu", text_encoder=text_encoder)
    size = pipe.image_size
    start = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[:, : size // 2] = 255  # repaint the left half
    got = pipe.generate("red circle", image=start, mask=Image.fromarray(mask), progress=False)
    assert got.options.sampler == "consistency"
    out = np.asarray(got.images[0])
    assert np.array_equal(out[:, size // 2:], np.asarray(start)[:, size // 2:])  # kept exactly
    assert np.abs(out[:, : size // 2].astype(int) - np.asarray(start)[:, : size // 2]).mean() > 10
