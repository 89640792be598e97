"""Starting from a picture: image-to-image (SDEdit) and inpainting, through every sampler."""
import numpy as np
import pytest
import torch
from PIL import Image

from gouache.errors import GouacheError
from gouache.sampling.options import SamplingOptions
from gouache.sampling.samplers import SAMPLERS
from gouache.sampling.start import StartPicture
from gouache.sampling.strips import trajectory_strip

NAMES = sorted(n for n, s in SAMPLERS.items() if not s.student)  # the student's: test_distill


@pytest.fixture()
def picture() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))


@pytest.fixture()
def left_half() -> Image.Image:
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[:, :8] = 255  # white = repaint
    return Image.fromarray(mask)


@pytest.mark.parametrize("name", NAMES)
def test_strength_0_returns_the_picture(tiny_pipeline, picture, name):
    g = tiny_pipeline.generate("red apple", SamplingOptions(sampler=name, steps=4), image=picture, strength=0,
                               progress=False)
    assert np.array_equal(np.asarray(g.images[0]), np.asarray(picture))


@pytest.mark.parametrize("name", NAMES)
def test_strength_1_is_plain_generation_from_the_same_seed(tiny_pipeline, picture, name):
    opts = SamplingOptions(sampler=name, steps=4)
    plain = tiny_pipeline.generate("red apple", opts, num_images=2, seed=3, progress=False).final
    started = tiny_pipeline.generate("red apple", opts, num_images=2, seed=3, image=picture, strength=1.0,
                                     progress=False).final
    assert torch.equal(plain, started)


@pytest.mark.parametrize("name", NAMES)
def test_strength_runs_that_share_of_the_schedule_from_the_noised_picture(tiny_pipeline, picture, name):
    steps = []
    g = tiny_pipeline.generate("red apple", SamplingOptions(sampler=name, steps=10), image=picture,
                               strength=0.5, record=[0], callback=lambda i, n, d: steps.append((i, n)),
                               progress=False)
    assert [i for i, _ in steps] == list(range(5)) and steps[0][1] == 5
    start = g.frames[0]
    noise = (start.x[0] - StartPicture.load(picture, size=16).image) / start.sigma
    assert 0.8 < float(noise.std()) < 1.2  # x = picture + sigma * unit noise
    assert not np.array_equal(np.asarray(g.images[0]), np.asarray(picture))


@pytest.mark.parametrize("name", NAMES)
def test_the_mask_is_honoured(tiny_pipeline, picture, left_half, name):
    g = tiny_pipeline.generate("red apple", SamplingOptions(sampler=name, steps=4), num_images=2, image=picture,
                               mask=left_half, progress=False)
    src = np.asarray(picture)
    for img in g.images:
        out = np.asarray(img)
        assert np.array_equal(out[:, 8:], src[:, 8:])  # kept: exactly the picture's pixels
        assert np.abs(out[:, :8].astype(int) - src[:, :8]).mean() > 10  # repainted


def test_a_mask_with_image_to_image(tiny_pipeline, picture, left_half):
    g = tiny_pipeline.generate("red apple", SamplingOptions(steps=6), image=picture, mask=left_half,
                               strength=0.5, progress=False)
    assert np.array_equal(np.asarray(g.images[0])[:, 8:], np.asarray(picture)[:, 8:])


def test_pictures_of_any_size_and_mode_are_converted(tiny_pipeline, tmp_path):
    big = Image.new("RGBA", (40, 30), (200, 20, 20, 0))  # transparent: white after compositing
    big.save(tmp_path / "big.png")
    g = tiny_pipeline.generate("red apple", SamplingOptions(steps=2), image=tmp_path / "big.png", strength=0,
                               progress=False)
    assert g.images[0].size == (16, 16) and np.asarray(g.images[0]).min() == 255


@pytest.mark.parametrize("kwargs, message", [
    (dict(mask="m.png"), "mask and strength need image, the picture to start from"),
    (dict(strength=0.5), "mask and strength need image, the picture to start from"),
    (dict(image="{pic}", strength=1.5), "strength must be a number from 0 to 1"),
    (dict(image="{pic}", strength=-0.1), "strength must be"),
    (dict(image="{tmp}/nope.png"), "cannot read image"),
    (dict(image="{pic}", mask="{tmp}/nope.png"), "cannot read mask"),
])
def test_bad_start_pictures_are_clear_errors(tiny_pipeline, picture, tmp_path, kwargs, message):
    picture.save(tmp_path / "pic.png")
    kwargs = {k: v.format(pic=tmp_path / "pic.png", tmp=tmp_path) if isinstance(v, str) else v
              for k, v in kwargs.items()}
    with pytest.raises(GouacheError, match=message):
        tiny_pipeline.generate("red apple", SamplingOptions(steps=2), progress=False, **kwargs)


def test_the_trajectory_shows_the_start_picture_then_its_noising(tiny_pipeline, picture):
    from test_strips import MARGIN, cell  # the strip's layout, read the same way

    g = tiny_pipeline.generate("red apple", SamplingOptions(steps=8), image=picture, strength=0.5,
                               record=[0, 3], progress=False)
    strip = trajectory_strip(g)
    assert np.array_equal(cell(strip, 0, 0, 16, margin=MARGIN), np.asarray(picture))  # the start picture
    assert np.array_equal(cell(strip, 0, 3, 16, margin=MARGIN), np.asarray(g.images[0]))  # then the end
