"""gouache eval: Inception features, FID/KID, prompt fidelity, memorisation, cache and report."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gouache.errors import GouacheError
from gouache.evaluate.features import (
    ImageFeatures,
    cache_path,
    cached_features,
    tf_bilinear_resize,
)
from gouache.evaluate.metrics import (
    fid,
    fidelity,
    kid,
    memorisation,
    nearest,
    typical_nn_distance,
)
from gouache.sampling.options import SamplingOptions


class PixelFeatures(ImageFeatures):
    """A cheap stand-in for Inception: 8x8 pixels through a fixed random projection."""

    name = "pixels"

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.num_features = dim
        self.register_buffer("proj", torch.randn(3 * 8 * 8, dim, generator=torch.Generator().manual_seed(0)))
        self.calls = 0

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return F.interpolate(images.float() / 127.5 - 1, size=(8, 8), mode="area").flatten(1) @ self.proj


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def emoji_copy(emoji_fixture, tmp_path) -> Path:
    """The emoji fixture in a scratch folder, so the feature cache is not written into the repo."""
    return Path(shutil.copytree(emoji_fixture, tmp_path / "emoji"))


def _images(n: int, seed: int = 0, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


def test_tf_bilinear_resize_matches_tf1_sampling_grid():
    """Output pixel j samples source position j * in/out (TF1, no half-pixel centres), edges clamped."""
    x = torch.rand(2, 3, 5, 7) * 255
    y = tf_bilinear_resize(x, 11)
    theta = torch.eye(2, 3).repeat(2, 1, 1)
    theta[:, 0, 2] += 1 / 7 - 1 / 11
    theta[:, 1, 2] += 1 / 5 - 1 / 11
    grid = F.affine_grid(theta, [2, 3, 11, 11], align_corners=False)
    ref = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    assert y.shape == (2, 3, 11, 11)
    assert torch.allclose(y, ref, atol=1e-3)
    assert torch.equal(tf_bilinear_resize(x, 5)[..., 0], x[..., 0])  # output 0 samples source 0


@pytest.fixture(scope="module")
def inception():
    from gouache.evaluate.features import InceptionV3TF

    return InceptionV3TF("cpu")


def test_inception_features_shape_and_deterministic(inception):
    images = _images(2, size=64)
    a = inception.extract(images, batch_size=2, progress=False)
    b = inception.extract(images[1:], batch_size=1, progress=False)
    assert a.shape == (2, 2048) and a.dtype == torch.float32
    assert torch.allclose(a[1:], b, atol=1e-4)  # the same whatever the batch
    assert (a >= 0).all() and a.abs().sum() > 0  # pool3 of ReLUs
    assert inception(a) is a  # cached features pass through (the torchmetrics feed)


def test_fid_of_a_set_against_itself_is_zero_and_against_noise_large():
    ex = PixelFeatures(64)
    g = torch.Generator().manual_seed(0)
    real = torch.randn(200, 64, generator=g)
    same = torch.randn(200, 64, generator=g)
    noise = 3 * torch.randn(200, 64, generator=g) + 2
    assert fid(real, real, ex) < 1e-6
    assert fid(real, same, ex) < 0.2 * fid(real, noise, ex)
    assert fid(real, noise, ex) > 100


def test_kid_returns_mean_and_std():
    ex = PixelFeatures(64)
    g = torch.Generator().manual_seed(1)
    real, same = torch.randn(120, 64, generator=g), torch.randn(120, 64, generator=g)
    far = torch.randn(120, 64, generator=g) + 1
    m_same, s_same = kid(real, same, ex, subsets=20, subset_size=50)
    m_far, s_far = kid(real, far, ex, subsets=20, subset_size=50)
    assert abs(m_same) < 0.1 * m_far and s_same >= 0 and s_far > 0
    assert kid(real, far, ex, subsets=20, subset_size=50) == (m_far, s_far)  # seeded subsets


def test_nearest_and_fidelity_on_hand_made_features():
    # 1-D features on a line; labels: cat cat dog dog fish
    ref = torch.tensor([[0.0], [1.0], [1.4], [5.0], [5.3]])
    labels = ["cat", "cat", "dog", "dog", "fish"]
    exclude_self = torch.eye(5, dtype=torch.bool)
    dist, idx = nearest(ref, ref, 2, exclude_self)
    assert idx.tolist() == [[1, 2], [2, 0], [1, 0], [4, 2], [3, 2]]
    assert torch.allclose(dist[:, 0], torch.tensor([1.0, 0.4, 0.4, 0.3, 0.3], dtype=torch.float64))
    # top-1 hits: cat->cat yes, cat->dog no, dog->cat no, dog->fish no, fish->dog no
    score = fidelity(ref, labels, ref, labels, exclude=exclude_self, k=2)
    assert score["top1"] == pytest.approx(1 / 5)
    # top-2 adds: cat(1)->[dog, cat] yes, dog(2)->[cat, cat] no, dog(3)->[fish, dog] yes
    assert score["top2"] == pytest.approx(3 / 5)
    # without exclusion every image finds itself
    assert fidelity(ref, labels, ref, labels, k=2)["top1"] == 1.0


def test_fidelity_excluding_same_style_ranks_against_other_style_only():
    ref = torch.tensor([[0.0], [0.1], [3.0], [3.1]])
    labels, styles = ["a", "b", "a", "b"], ["g", "t", "t", "g"]
    from gouache.evaluate.metrics import same_value

    exclude = same_value(styles, styles)
    # a/g at 0 -> nearest other-style is b/t at 0.1: miss; a/t at 3 -> b/g at 3.1: miss
    assert fidelity(ref, labels, ref, labels, exclude=exclude, k=2)["top1"] == 0.0
    assert fidelity(ref, labels, ref, labels, exclude=exclude, k=2)["top2"] == 1.0


def test_memorisation_of_a_copied_train_image_is_zero():
    train = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    test = torch.tensor([[1.0, 0.0], [10.0, 2.0], [0.0, 13.0]])
    typical = typical_nn_distance(test, ["g", "g", "g"], train, ["g", "g", "g"])
    assert typical == pytest.approx(2.0)  # median of 1, 2, 3
    m = memorisation(train[1:2].clone(), train, typical)
    assert m == {"near_copy_share": 1.0, "median_nn_ratio": 0.0}
    m = memorisation(torch.tensor([[5.0, 5.0], [0.5, 0.0]]), train, typical)
    assert m["near_copy_share"] == 0.5  # 0.5/2 = 0.25 is a near-copy, 7.07/2 is not
    # a style with no training image of its own does not count: median of 1 and 3
    assert typical_nn_distance(test, ["g", "t", "g"], train, ["g", "g", "g"]) == pytest.approx(2.0)


def test_feature_cache_is_written_and_reused(emoji_copy):
    ex = PixelFeatures(32)
    feats = cached_features(emoji_copy, "test", 16, ex, progress=False)
    path = cache_path(emoji_copy, "test", 16, "pixels")
    assert path.exists() and path.parent == emoji_copy / ".gouache_cache"
    assert feats.shape == (6, 32) and ex.calls == 1
    again = cached_features(emoji_copy, "test", 16, ex, progress=False)
    assert ex.calls == 1 and torch.equal(feats, again)
    assert [f.name for f in path.parent.iterdir()] == [path.name]  # no temporary file left
    # a damaged cache is computed again and written anew, not a traceback
    path.write_bytes(path.read_bytes()[:40])
    assert torch.equal(cached_features(emoji_copy, "test", 16, ex, progress=False), feats) and ex.calls == 2
    assert torch.equal(cached_features(emoji_copy, "test", 16, ex, progress=False), feats) and ex.calls == 2
    # a changed metadata.jsonl is another cache entry
    meta = emoji_copy / "metadata.jsonl"
    meta.write_text(meta.read_text() + "\n")
    assert cache_path(emoji_copy, "test", 16, "pixels") != path


def test_eval_prompts_cycle_labels_or_file(tmp_path):
    from gouache.evaluate.context import eval_prompts

    labels = ["b", "a", "b", "c"]
    got = eval_prompts(labels, 7, seed=0)
    assert len(got) == 7 and set(got) == {"a", "b", "c"} and got[:3] == got[3:6]
    assert eval_prompts(labels, 7, seed=0) == got
    f = tmp_path / "prompts.txt"
    f.write_text("red apple\n\nblue car\n")
    assert eval_prompts(labels, 3, prompts_file=f) == ["red apple", "blue car", "red apple"]


def test_evaluate_writes_report_with_required_keys(tiny_pipeline, tiny_model_dir, emoji_copy, tmp_path):
    from gouache.evaluate import evaluate, format_report

    out = tmp_path / "eval"
    report = evaluate(tiny_model_dir, emoji_copy, SamplingOptions(steps=2), num_images=4, references=True, out=out,
                      pipeline=tiny_pipeline, extractor=PixelFeatures(32), progress=False)
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == report
    assert (out / "samples.png").exists()
    for key in ("model", "data", "split", "sampler", "steps", "guidance", "seed", "counts", "metrics",
                "references"):
        assert key in report
    assert len(report["model"]["ema_sha256"]) == 64 and len(report["data"]["metadata_sha256"]) == 64
    assert report["counts"] == {"generated": 4, "real_split": 6, "real_train": 30, "real_all": 36}
    m = report["metrics"]
    for key in ("fid", "kid_mean", "kid_std", "top1", "top5", "near_copy_share", "median_nn_ratio"):
        assert isinstance(m[key], float), key
    assert len(m["heldout_loss"]["per_sigma"]) == 8 and m["heldout_loss"]["mean"] > 0
    ceiling, floor = report["references"]["ceiling"], report["references"]["floor"]
    assert {"fid", "kid_mean", "top1", "top5", "median_nn_ratio"} <= set(ceiling)
    assert ceiling["top1"] > floor["top1"] or ceiling["top5"] > floor["top5"]
    table = format_report(report)
    assert all(name in table for name in ("model", "ceiling", "floor", "FID", "KID"))
    assert list((emoji_copy / ".gouache_cache").glob("pixels-*-16px-*.safetensors"))


def test_pictures_are_resized_as_real_images_are_read(emoji_copy):
    from gouache.data.imagefolder import load_imagefolder
    from gouache.evaluate.context import fit_images

    native = load_imagefolder(emoji_copy, size=64, split="test", progress=False).images  # the files' size
    small = load_imagefolder(emoji_copy, size=16, split="test", progress=False).images
    assert torch.equal(fit_images(native, 16), small)
    assert fit_images(native, 64) is native


def test_a_model_is_scored_at_another_size_against_references_read_at_it(tiny_pipeline, tiny_model_dir,
                                                                          emoji_copy, tmp_path):
    from gouache.evaluate import evaluate, format_report

    features = PixelFeatures(32)
    seen: list[tuple[int, int]] = []
    features.register_forward_pre_hook(  # image batches only: features pass through forward too
        lambda m, args: seen.append(tuple(args[0].shape[-2:])) if args[0].ndim == 4 else None)
    report = evaluate(tiny_model_dir, emoji_copy, SamplingOptions(steps=2), num_images=4, out=tmp_path / "eval",
                      score_size=8, pipeline=tiny_pipeline, extractor=features, progress=False)
    assert (report["image_size"], report["model_image_size"]) == (8, 16)
    assert set(seen) == {(8, 8)}  # real and generated alike
    assert list((emoji_copy / ".gouache_cache").glob("pixels-*-8px-*.safetensors"))
    assert "heldout_loss" not in report["metrics"]  # it needs the model's own size
    assert "scored at 8 px" in format_report(report)
    with pytest.raises(GouacheError, match="8 to 1024"):
        evaluate(tiny_model_dir, emoji_copy, score_size=4, pipeline=tiny_pipeline, extractor=features, out=None,
                 progress=False)


def test_sweeps_write_plots(tiny_pipeline, tiny_model_dir, emoji_copy, tmp_path, monkeypatch):
    import gouache.evaluate.sweeps as sweeps
    from gouache.evaluate import evaluate
    from gouache.evaluate.report import Sweeps

    monkeypatch.setattr(sweeps, "SWEEP_STEPS", (2, 3))
    monkeypatch.setattr(sweeps, "SWEEP_GUIDANCE", (1.0, 3.0))
    out = tmp_path / "eval"
    report = evaluate(tiny_model_dir, emoji_copy, SamplingOptions(steps=2), num_images=3, out=out,
                      sweeps=Sweeps(steps=True, guidance=True), heldout=False, pipeline=tiny_pipeline,
                      extractor=PixelFeatures(32), progress=False)
    assert set(report["sweeps"]["steps"]) == {"dpmpp_2m", "heun", "heun_stochastic", "euler", "ddpm"}
    assert [p["steps"] for p in report["sweeps"]["steps"]["heun"]] == [2, 3]
    assert [p["guidance"] for p in report["sweeps"]["guidance"]] == [1.0, 3.0]
    assert (out / "sweep_steps.png").stat().st_size > 1000
    assert (out / "sweep_guidance.png").stat().st_size > 1000


def test_cli_eval_is_registered_and_lazy():
    code = ("import sys; from gouache.cli.main import build_parser; "
            "a = build_parser().parse_args(['eval', '--data', 'd']); "
            "assert a.split == 'test' and a.num_images == 200 and a.model is None; "
            "bad = [m for m in sys.modules if m.startswith(('torchmetrics', 'matplotlib'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_eval_missing_model_is_a_clean_error(tmp_path, emoji_copy, capsys):
    from gouache.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", str(tmp_path / "nope"), "--data", str(emoji_copy)])
    assert e.value.code == 2
    assert "no such model or run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_with_inception_end_to_end(tiny_pipeline, tiny_model_dir, emoji_copy, inception, tmp_path):
    from gouache.evaluate import evaluate

    report = evaluate(tiny_model_dir, emoji_copy, SamplingOptions(steps=2), num_images=4, out=tmp_path / "eval",
                      heldout=False, pipeline=tiny_pipeline, extractor=inception, progress=False)
    assert report["feature_network"] == "inception" and report["metrics"]["fid"] > 0
    assert len(list((emoji_copy / ".gouache_cache").glob("inception-*.safetensors"))) == 2
