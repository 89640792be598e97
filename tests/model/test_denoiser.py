import pytest
import torch
from torch import nn

from gouache.model.denoiser import Denoiser


class Const(nn.Module):
    """A raw network that always answers ``value``, whatever it is shown."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x, c_noise, **cond):
        return torch.full_like(x, self.value)


def test_tiny_sigma_returns_the_input():
    d = Denoiser(Const(5.0))
    x = torch.randn(2, 3, 8, 8)
    out = d(x, torch.tensor([1e-4, 1e-4]))
    assert torch.allclose(out, x, atol=1e-3)


def test_huge_sigma_returns_the_network_scaled_by_sigma_data():
    d = Denoiser(Const(1.0), sigma_data=0.5)
    out = d(torch.zeros(1, 3, 4, 4), torch.tensor([1e4]))
    assert torch.allclose(out, torch.full_like(out, 0.5), atol=1e-3)  # c_out -> sigma_data


def test_scalings_at_sigma_data():
    d = Denoiser(Const(0.0), sigma_data=0.5)
    c_skip, c_out, c_in, c_noise = d.scalings(torch.tensor(0.5))
    assert c_skip.item() == pytest.approx(0.5)
    assert c_out.item() == pytest.approx(0.5 / 2 ** 0.5)
    assert c_in.item() == pytest.approx(1 / (0.5 * 2 ** 0.5))
    assert c_noise.item() == pytest.approx(torch.tensor(0.5).log().item() / 4)


def test_loss_is_one_value_per_sample():
    d = Denoiser(Const(0.0))
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    loss = d.loss(x0, torch.randn_like(x0), torch.tensor([0.01, 0.1, 1.0, 10.0]))
    assert loss.shape == (4,)
    assert torch.all(torch.isfinite(loss)) and torch.all(loss >= 0)


def test_loss_is_zero_when_the_network_is_right():
    # For x0 = 0 the right F is the one that cancels c_skip x: F = -c_skip x / c_out.
    class Right(nn.Module):
        def forward(self, x, c_noise, **cond):
            sigma = (4 * c_noise).exp().view(-1, 1, 1, 1)
            x = x * (sigma ** 2 + 0.25).sqrt()  # undo c_in
            c_skip = 0.25 / (sigma ** 2 + 0.25)
            c_out = sigma * 0.5 / (sigma ** 2 + 0.25).sqrt()
            return -c_skip * x / c_out

    d = Denoiser(Right(), sigma_data=0.5)
    x0 = torch.zeros(3, 3, 8, 8)
    loss = d.loss(x0, torch.randn_like(x0), torch.tensor([0.1, 1.0, 10.0]))
    assert torch.allclose(loss, torch.zeros(3), atol=1e-6)


def test_edm_weighting_makes_the_trivial_guess_unit_loss():
    # F = 0 means D = c_skip x. For x0 ~ N(0, sd^2) the weighted loss of that guess is 1
    # at every sigma in expectation (EDM's lambda normalises the target to unit variance).
    class Zero(nn.Module):
        def forward(self, x, c_noise, **cond):
            return torch.zeros_like(x)

    g = torch.Generator().manual_seed(0)
    d = Denoiser(Zero(), sigma_data=0.5)
    for sigma in (0.05, 0.5, 5.0):
        x0 = 0.5 * torch.randn(256, 3, 8, 8, generator=g)
        loss = d.loss(x0, torch.randn(x0.shape, generator=g), torch.full((256,), sigma))
        assert loss.mean().item() == pytest.approx(1.0, rel=0.05)
