"""scripts/expert_pair.py: each image goes to the expert of its noise level."""
from __future__ import annotations

import math

import pytest
import torch


@pytest.fixture(scope="module")
def pair_module(scripts):
    return scripts("expert_pair")


class Constant(torch.nn.Module):
    """A stand-in network whose output names it and counts its calls."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value, self.calls = value, 0

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, **cond: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.full_like(x, self.value)


def test_images_above_the_switch_go_to_the_expert(pair_module):
    low, high = Constant(0.0), Constant(1.0)
    pair = pair_module.ExpertPair(low, high, switch=5.0)
    sigma = torch.tensor([80.0, 5.1, 4.9, 0.1])
    out = pair(torch.zeros(4, 3, 8, 8), sigma.log() / 4)  # c_noise as the denoiser computes it
    assert out[:, 0, 0, 0].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_a_batch_at_one_noise_level_runs_one_network(pair_module):
    low, high = Constant(0.0), Constant(1.0)
    pair = pair_module.ExpertPair(low, high, switch=5.0)
    x = torch.zeros(2, 3, 8, 8)
    pair(x, torch.full((2,), math.log(80.0) / 4))
    pair(x, torch.full((2,), math.log(0.5) / 4))
    assert (high.calls, low.calls) == (1, 1)
