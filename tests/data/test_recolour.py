"""Colour augmentation with caption rewriting: honest captions, the never-list, exact resume."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gouache.colours import dominant_colours
from gouache.data.build.shapes import COLOURS, SHAPES, build_shapes_dataset
from gouache.data.imagefolder import load_imagefolder
from gouache.data.prompts import CaptionTable
from gouache.data.recolour import (
    RecolourOptions,
    RecolourSource,
    recolour_batch,
    rewrite_caption,
)
from gouache.data.sources import MemorySource
from gouache.errors import GouacheError
from gouache.model.config import ModelConfig
from gouache.model.unet import PRESETS
from gouache.training.config import TrainConfig
from gouache.training.train import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("caption, old, new, expected", [
    ("red circle", "red", "green", "green circle"),
    ("banana", "yellow", "green", "green banana"),
    ("an emoji of banana", "yellow", "purple", "an emoji of purple banana"),
    ("banana, google style", "yellow", "blue", "blue banana, google style"),
    ("a banana", "yellow", "orange", "an orange banana"),
    ("an apple", "red", "blue", "a blue apple"),
    ("Red Apple", "red", "blue", "blue Apple"),
    ("white flower", "yellow", "blue", None),  # it says white: the picture's colour is not its colour
    ("thumbs up: light skin tone", "orange", "blue", None),
    ("red and blue", "red", "green", None),
    ("", "red", "green", None),
])
def test_rewrite_caption(caption, old, new, expected):
    assert rewrite_caption(caption, old, new) == expected


def test_options_are_validated_once():
    RecolourOptions(prob=0.3, colours=("red", "green"))
    with pytest.raises(GouacheError, match="probability"):
        RecolourOptions(prob=1.5)
    with pytest.raises(GouacheError, match="unknown colour"):
        RecolourOptions.from_config(TrainConfig.from_dict({"recolour": 0.5, "recolour_colours": ["teal"]}))
    with pytest.raises(GouacheError, match="two colours"):
        RecolourOptions(prob=0.5, colours=("red",))
    opts = RecolourOptions.from_config(TrainConfig.from_dict({"recolour_never": ["Green  Triangle"]}))
    assert opts.never == ("green triangle",) and opts.prob == 0


@pytest.fixture()
def shapes32(tmp_path) -> Path:
    build_shapes_dataset(tmp_path / "s", size=32, per_caption=4, seed=1, progress=False)
    return tmp_path / "s"


def test_recoloured_pictures_are_the_colour_their_captions_say(shapes32):
    data = load_imagefolder(shapes32, size=32, progress=False)
    n = len(data)
    opts = RecolourOptions(prob=1.0, colours=tuple(COLOURS))
    images, captions = recolour_batch(data.images, data.captions, opts, chosen=torch.ones(n, dtype=torch.bool),
                                      targets=torch.arange(n) % 3)
    changed = [k for k in range(n) if captions[k] != data.captions[k]]
    assert len(changed) > 0.9 * n
    for k in changed:
        colour, shape = captions[k].split()
        assert shape == data.captions[k].split()[1] and colour != data.captions[k].split()[0]
    assert [c.split()[0] for c in captions] == dominant_colours(images)
    untouched = [k for k in range(n) if k not in changed]
    assert torch.equal(images[untouched], data.images[untouched])


def test_never_list_and_grey_pictures(shapes32):
    data = load_imagefolder(shapes32, size=32, progress=False)
    never = tuple(f"green {s}" for s in SHAPES)
    opts = RecolourOptions(prob=1.0, colours=tuple(COLOURS), never=never)
    src = [k for k, c in enumerate(data.captions) if not c.startswith("green")]
    images, captions = recolour_batch(data.images[src], [data.captions[k] for k in src], opts,
                                      chosen=torch.ones(len(src), dtype=torch.bool), targets=torch.arange(len(src)))
    assert not any(c.startswith("green") for c in captions)
    assert "green" not in dominant_colours(images)
    grey = torch.full((1, 3, 32, 32), 255, dtype=torch.uint8)
    grey[:, :, 8:24, 8:24] = 90
    out, caps = recolour_batch(grey, ["grey square"], opts, chosen=torch.ones(1, dtype=torch.bool),
                               targets=torch.zeros(1, dtype=torch.long))
    assert torch.equal(out, grey) and caps == ["grey square"]


def test_source_draws_recoloured_batches_with_their_captions(tmp_path, text_encoder):
    build_shapes_dataset(tmp_path, size=32, per_caption=4, seed=1, holdout=("green triangle",), progress=False)
    data = load_imagefolder(tmp_path, size=32, progress=False)
    table = CaptionTable.build(data, text_encoder)
    source = RecolourSource(MemorySource(data, table), RecolourOptions(prob=0.5, colours=tuple(COLOURS)),
                            text_encoder)
    g = torch.Generator().manual_seed(0)
    images, ids = source.draw(32, generator=g, dropout=0.0)
    text = {i: c for c, i in source.captions.index.items()}
    captions = [text[i] for i in ids.tolist()]
    assert "green triangle" in captions and "green triangle" not in table.captions  # made, encoded once
    assert [c.split()[0] for c in captions] == dominant_colours(images)
    cond = source.cond(ids, torch.device("cpu"))
    direct = text_encoder(captions)
    n = int(direct.mask.sum(1).max())
    assert torch.allclose(cond["pooled"], direct.pooled, atol=1e-5)
    assert torch.allclose(cond["tokens"][:, :n], direct.tokens[:, :n].half().float(), atol=1e-3)


def test_training_with_recolour_resumes_exactly(shapes32, tmp_path, text_encoder):
    def cfg(out, **kw):
        base = dict(data=str(shapes32), out=str(out), model=ModelConfig(unet=PRESETS["tiny"]), steps=4,
                    batch_size=8, lr=1e-3, warmup=1, log_every=1, checkpoint_every=2, sample_every=0,
                    eval_every=0, recolour=0.5)
        return TrainConfig.from_dict(base | kw)

    data = load_imagefolder(shapes32, size=16, progress=False)  # the tiny network paints 16 px
    full = train(cfg(tmp_path / "full"), data=data, text_encoder=text_encoder, progress=False)
    first = train(cfg(tmp_path / "cut", steps=2), data=data, text_encoder=text_encoder, progress=False)
    rest = train(cfg(tmp_path / "cut"), resume=tmp_path / "cut", data=data, text_encoder=text_encoder,
                 progress=False)
    assert first.losses + rest.losses == full.losses
    plain = train(cfg(tmp_path / "plain", recolour=0.0), data=data, text_encoder=text_encoder, progress=False)
    assert plain.losses != full.losses  # the augmentation reached the batches
