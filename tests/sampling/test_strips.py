"""The forward noising strip and the reverse trajectory strip: what their cells hold."""
import numpy as np
from PIL import Image

from gouache.sampling.options import SamplingOptions
from gouache.sampling.strips import noise_strip, trajectory_strip

PAD, SCALE, MARGIN = 4, 2, 90  # labelled_strip's layout: grid padding, enlargement, row-name margin


def cell(strip: Image.Image, row: int, col: int, size: int, *, margin: int = 0) -> np.ndarray:
    """The picture in one cell of a labelled strip, back at its own size."""
    w = size * SCALE
    x, y = margin + PAD + col * (w + PAD), PAD + row * (w + PAD + 14)
    return np.asarray(strip.crop((x, y, x + w, y + w)).resize((size, size), Image.NEAREST))


def test_noise_strip_starts_at_the_picture_and_ends_in_noise():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    strip = noise_strip(img, sigmas=(0.0, 1.0, 80.0))
    assert np.array_equal(cell(strip, 0, 0, 16), pixels)  # sigma 0: the picture itself
    noisy = cell(strip, 0, 2, 16).astype(float)
    assert np.abs(noisy - pixels).mean() > 40  # sigma 80: nothing of it is left to see
    assert abs(np.corrcoef(noisy.ravel(), pixels.ravel())[0, 1]) < 0.1


def test_trajectory_frames_and_strip(tiny_pipeline):
    g = tiny_pipeline.generate("red apple", SamplingOptions(steps=6), record=[0, 2, 5], progress=False)
    assert [f.step for f in g.frames] == [0, 2, 5]
    assert g.frames[0].sigma > g.frames[-1].sigma
    strip = trajectory_strip(g)
    final = np.asarray(g.images[0])
    for row in (0, 1):  # both rows end with the finished picture
        assert np.array_equal(cell(strip, row, 3, 16, margin=MARGIN), final)
    first_guess = cell(strip, 1, 0, 16, margin=MARGIN)
    assert not np.array_equal(first_guess, final)  # the guess from pure noise is not the picture yet
