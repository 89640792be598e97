import torch

from gouache.data.imagefolder import CaptionedImages, balanced_weights
from gouache.data.sources import MemorySource


class _Table:
    """Caption ids = image indices, so a draw shows which images came."""

    def draw(self, idx, *, generator, dropout):
        return idx.clone()


def _data(n: int) -> CaptionedImages:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()
    records = [{"base": "hand"}] * (n - 1) + [{"base": "apple"}]
    return CaptionedImages(images, [["x"]] * n, [[1.0]] * n, records)


def test_uniform_draw_follows_the_images_weighted_draw_the_groups():
    data = _data(10)  # nine variants of one emoji, one of another
    g = torch.Generator().manual_seed(0)
    _, ids = MemorySource(data, _Table()).draw(20_000, generator=g, dropout=0.0)
    assert abs(float((ids == 9).float().mean()) - 0.1) < 0.01
    source = MemorySource(data, _Table(), balanced_weights(data.records, "base"))
    images, ids = source.draw(20_000, generator=g, dropout=0.0)
    assert abs(float((ids == 9).float().mean()) - 0.5) < 0.015
    assert torch.equal(images[:, 0, 0, 0].long(), ids)  # images and captions stay paired
    # the same seed, the same batch
    a = source.draw(8, generator=torch.Generator().manual_seed(3), dropout=0.0)[1]
    b = source.draw(8, generator=torch.Generator().manual_seed(3), dropout=0.0)[1]
    assert torch.equal(a, b)
