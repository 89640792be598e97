import pytest
import torch

from gouache.model.unet import PRESETS, UNet, count_flops


def cond(b: int, length: int = 5):
    return dict(tokens=torch.randn(b, length, 384), mask=torch.ones(b, length, dtype=torch.bool),
                pooled=torch.randn(b, 384))


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_output_is_shaped_like_the_input(name):
    net = UNet(PRESETS[name])
    s = PRESETS[name].image_size
    x = torch.randn(2, 3, s, s)
    assert net(x, torch.zeros(2), **cond(2)).shape == x.shape


@pytest.mark.parametrize("name", ["base", "cpu64"])
def test_64px_presets_fit_the_cpu_budget(name):
    assert PRESETS[name].image_size == 64
    assert count_flops(UNet(PRESETS[name])) <= 4e9  # at most 4 GFLOP per image forward


def test_flop_count_includes_attention():
    cfg = PRESETS["tiny"]
    no_attn = cfg.__class__.from_dict(cfg.to_dict() | {"attn_levels": ()})
    assert count_flops(UNet(cfg)) > count_flops(UNet(no_attn))


def test_padding_tokens_are_ignored():
    torch.manual_seed(0)
    net = UNet(PRESETS["tiny"])
    for p in net.parameters():  # zero-initialised projections would hide the attention
        p.data.add_(0.05 * torch.randn_like(p))
    c = cond(1, 6)
    c["mask"][0, 3:] = False
    x = torch.randn(1, 3, 16, 16)
    a = net(x, torch.zeros(1), **c)
    c["tokens"][0, 3:] = 100.0  # garbage in the padding
    assert torch.allclose(a, net(x, torch.zeros(1), **c), atol=1e-5)
    c["tokens"][0, 1] = 100.0  # a real token matters
    assert not torch.allclose(a, net(x, torch.zeros(1), **c), atol=1e-3)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("change", [{}, {"blocks_per_level": 3, "attn_levels": (0, 1)}, {"patch": 1, "emb_dim": 64}])
def test_the_parameter_count_from_the_config_is_the_networks(name, change):
    from gouache.model.unet import parameter_count

    cfg = PRESETS[name].from_dict(PRESETS[name].to_dict() | change)
    assert parameter_count(cfg) == sum(p.numel() for p in UNet(cfg).parameters())


@pytest.mark.parametrize("change, said", [
    ({"image_size": 4096}, "GiB of activations, more than 8 GiB"),
    ({"blocks_per_level": 1_000_000}, "parameters"),
    ({"channels": (1 << 20, 1 << 21, 1 << 21)}, "more than the 1,000,000,000 gouache builds"),
    ({"text_dim": 10**9}, "parameters"),
    ({"patch": 1 << 12, "image_size": 1 << 14}, "parameters"),
])
def test_a_network_too_costly_to_build_is_refused_from_its_config(change, said):
    import time

    from gouache.errors import GouacheError

    start = time.monotonic()
    with pytest.raises(GouacheError, match=said):
        PRESETS["base"].from_dict(PRESETS["base"].to_dict() | change)
    assert time.monotonic() - start < 1  # counted, never built
