import subprocess
import sys

import pytest
import torch

from gouache.errors import GouacheError
from gouache.sampling.options import SamplingOptions


def test_generate_shapes_and_seeds(tiny_pipeline):
    g = tiny_pipeline.generate(["red apple", "banana"], SamplingOptions(steps=3), num_images=2, seed=7,
                               progress=False)
    assert g.prompts == ["red apple", "red apple", "banana", "banana"]
    assert g.seeds == [7, 8, 9, 10]
    assert len(g.images) == 4 and g.images[0].size == (16, 16)
    assert g.final.shape == (4, 3, 16, 16) and g.final.abs().max() <= 1


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "heun", "euler", "ddpm"])
def test_same_seed_same_picture_whatever_the_batch(tiny_pipeline, sampler):
    opts = SamplingOptions(sampler=sampler, steps=4)
    batch = tiny_pipeline.generate("red apple", opts, num_images=3, seed=5, progress=False).final
    alone = tiny_pipeline.generate("red apple", opts, num_images=1, seed=6, progress=False).final
    assert torch.allclose(batch[1], alone[0], atol=1e-4)  # batched kernels round differently
    again = tiny_pipeline.generate("red apple", opts, num_images=3, seed=5, batch_size=2, progress=False).final
    assert torch.allclose(batch, again, atol=1e-4)


def test_prompt_and_negative_prompt_change_the_picture(tiny_pipeline):
    opts, kw = SamplingOptions(steps=4), dict(seed=0, progress=False)
    a = tiny_pipeline.generate("red apple", opts, **kw).final
    b = tiny_pipeline.generate("blue whale", opts, **kw).final
    c = tiny_pipeline.generate("red apple", SamplingOptions(steps=4, negative_prompt="green"), **kw).final
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt=""), "prompt is empty"),
    (dict(prompt="   "), "prompt is empty"),
    (dict(prompt="x", num_images=0), "number of images"),
])
def test_bad_requests_are_clear_errors(tiny_pipeline, kwargs, message):
    with pytest.raises(GouacheError, match=message):
        tiny_pipeline.generate(progress=False, **kwargs)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    from gouache.sampling.pipeline import Pipeline

    with pytest.raises(GouacheError, match="no such model or run folder"):
        Pipeline.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GouacheError, match="holds no checkpoint"):
        Pipeline.load(tmp_path / "empty")


def test_explicit_seeds_give_each_image_its_own_picture(tiny_pipeline):
    kw = dict(options=SamplingOptions(steps=3), progress=False)
    numbered = tiny_pipeline.generate("red apple", num_images=3, seed=5, **kw).final
    mixed = tiny_pipeline.generate(["banana", "red apple"], seeds=[1, 7], **kw)
    assert mixed.seeds == [1, 7]
    assert torch.allclose(mixed.final[1], numbered[2], atol=1e-4)
    with pytest.raises(GouacheError, match="2 seeds for 3 images"):
        tiny_pipeline.generate("red apple", num_images=3, seeds=[1, 2], **kw)


def test_prompt_cache_is_bounded_and_keeps_recent_prompts(tiny_pipeline, monkeypatch):
    import gouache.sampling.pipeline as pipeline

    monkeypatch.setattr(pipeline, "PROMPT_CACHE_SIZE", 2)
    tiny_pipeline._prompt_cache.clear()
    first = tiny_pipeline.encode(["red apple"])
    tiny_pipeline.encode(["banana"])
    tiny_pipeline.encode(["red apple"])  # now the most recent
    tiny_pipeline.encode(["cat face"])  # evicts "banana"
    assert list(tiny_pipeline._prompt_cache) == ["red apple", "cat face"]
    assert torch.equal(tiny_pipeline.encode(["red apple"]).tokens, first.tokens)


def test_loading_and_sampling_skip_the_compiler_import(tiny_model_dir):
    """`gouache generate` pays for every import at start-up: torch._dynamo alone is over a second
    (it was imported by initialising meta-device tensors in the prompt encoder)."""
    code = ("import sys\nfrom gouache.sampling.pipeline import Pipeline\n"
            f"pipe = Pipeline.load({str(tiny_model_dir)!r}, device='cpu')\n"
            "from gouache.sampling.options import SamplingOptions\n"
            "pipe.generate(['red apple'], SamplingOptions(steps=2), seeds=[0], progress=False)\n"
            "print('torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
