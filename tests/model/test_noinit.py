"""Layers built under no_initial_weights draw nothing and the usual init comes back after."""
import pytest
import torch
from torch import nn

from gouache.model.noinit import no_initial_weights


def test_builds_without_drawing_and_restores_the_init():
    state = torch.random.get_rng_state()
    with no_initial_weights():
        layers = nn.Sequential(nn.Embedding(100, 8), nn.Linear(8, 8), nn.LayerNorm(8))
    assert torch.equal(torch.random.get_rng_state(), state)  # no random draw was made
    assert [p.shape for p in layers.parameters()] == [(100, 8), (8, 8), (8,), (8,), (8,)]
    torch.manual_seed(0)
    a = nn.Linear(8, 8).weight
    torch.manual_seed(0)
    assert torch.equal(nn.Linear(8, 8).weight, a) and a.abs().sum() > 0  # drawn again, as usual


def test_restores_the_init_after_an_error():
    with pytest.raises(RuntimeError), no_initial_weights():
        raise RuntimeError("building failed")
    state = torch.random.get_rng_state()
    nn.Linear(4, 4)
    assert not torch.equal(torch.random.get_rng_state(), state)
