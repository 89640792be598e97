"""Data resident on the device: the same draws as in memory, gathered there, with fixed shapes."""
import torch

from gouache.data.imagefolder import load_imagefolder
from gouache.data.prompts import CaptionTable
from gouache.data.resident import ResidentSource, fits_on, resident_bytes
from gouache.data.sources import MemorySource


def test_resident_draws_are_the_memory_sources_draws(shapes_dir, text_encoder):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    table = CaptionTable.build(data, text_encoder)
    memory = MemorySource(data, table)
    resident = ResidentSource(memory, torch.device("cpu"))
    for _ in range(3):
        a = memory.draw(8, generator=torch.Generator().manual_seed(5), dropout=0.3)
        b = resident.draw(8, generator=torch.Generator().manual_seed(5), dropout=0.3)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    ids = b[1]
    near, far = memory.cond(ids, torch.device("cpu")), resident.cond(ids, torch.device("cpu"))
    longest = int(table.emb.mask.sum(1).max())
    assert far["tokens"].shape[1] == far["mask"].shape[1] == longest  # the table's longest, every batch
    n = near["tokens"].shape[1]
    assert torch.equal(far["tokens"][:, :n], near["tokens"]) and torch.equal(far["mask"][:, :n], near["mask"])
    assert not far["mask"][:, n:].any() and torch.equal(far["pooled"], near["pooled"])


def test_the_fit_is_measured_and_never_claimed_off_cuda(shapes_dir, text_encoder):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    table = CaptionTable.build(data, text_encoder)
    nbytes = resident_bytes(data, table)
    assert nbytes > data.images.numel()  # the images and the prompt states
    assert not fits_on(torch.device("cpu"), 1)
