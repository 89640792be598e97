"""The batch source a run draws from: each choice of the recipe gives its kind, in its order."""
import pytest
import torch

from gouache.data.batches import batch_source
from gouache.data.imagefolder import load_imagefolder
from gouache.data.prompts import CaptionTable
from gouache.data.recolour import RecolourOptions, RecolourSource
from gouache.data.resident import ResidentSource
from gouache.data.sources import MemorySource, PriorSource
from gouache.errors import GouacheError

CPU = torch.device("cpu")


class _Stream:
    """Stands for a ``StreamSource``: a source that is not images in memory."""

    def draw(self, batch_size, *, generator, dropout, step=0):
        raise AssertionError("not drawn here")

    def cond(self, ids, device):
        raise AssertionError("not drawn here")


@pytest.fixture()
def folder(shapes_dir, text_encoder):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    return data, CaptionTable.build(data, text_encoder)


def test_each_recipe_choice_gives_its_source(folder, text_encoder):
    data, table = folder
    plain = batch_source(data, table, CPU)
    assert type(plain) is MemorySource and plain.weights is None
    assert type(batch_source(data, table, CPU, resident="auto")) is MemorySource  # "auto": CUDA only
    on = batch_source(data, table, CPU, resident="on")
    assert isinstance(on, ResidentSource) and type(on.memory) is MemorySource
    prior = batch_source(data, table, CPU, prior=4, resident="on")  # the base's pictures stay in memory
    assert isinstance(prior, PriorSource) and prior.new == len(data) - 4
    recoloured = batch_source(data, table, CPU, recolour=RecolourOptions(prob=0.5), encoder=text_encoder)
    assert isinstance(recoloured, RecolourSource) and type(recoloured.inner) is MemorySource
    stream = _Stream()
    assert batch_source(stream, None, CPU) is stream


def test_a_prior_source_draws_new_pictures_then_the_bases(folder):
    data, table = folder
    source = batch_source(data, table, CPU, prior=4)
    idx, _ = source.indices(6, generator=torch.Generator().manual_seed(0), dropout=0.0)
    new = len(data) - 4
    assert idx.shape == (12,) and bool((idx[:6] < new).all()) and bool((idx[6:] >= new).all())


@pytest.mark.parametrize("options, message", [
    (dict(resident="on", recolour=RecolourOptions(prob=0.5)), "cannot recolour"),
    (dict(stream=True, balance_by="base"), "balance_by needs the images in memory"),
    (dict(stream=True, prior=2), "lora_prior needs the images in memory"),
    (dict(stream=True, resident="on"), "needs the images in memory"),
    (dict(stream=True, recolour=RecolourOptions(prob=0.5)), "recolour needs the images in memory"),
])
def test_what_cannot_be_drawn_is_refused(folder, text_encoder, options, message):
    data, table = folder
    if options.pop("stream", False):
        data, table = _Stream(), None
    with pytest.raises(GouacheError, match=message):
        batch_source(data, table, CPU, encoder=text_encoder, **options)
