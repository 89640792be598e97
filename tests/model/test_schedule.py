import math

import pytest
import torch

from gouache.model.schedule import NoiseSchedule, add_noise, ddpm_sigmas, karras_sigmas


@pytest.mark.parametrize("fn", [karras_sigmas, ddpm_sigmas])
@pytest.mark.parametrize("n", [1, 5, 20, 100])
def test_sampling_sigmas_decrease_to_zero(fn, n):
    s = fn(n)
    assert s.shape == (n + 1,)
    assert s[-1] == 0
    assert torch.all(s[:-1] > 0)
    assert torch.all(s[1:] < s[:-1])


def test_karras_ends():
    s = karras_sigmas(10, sigma_min=0.002, sigma_max=80.0)
    assert s[0].item() == pytest.approx(80.0, rel=1e-5)
    assert s[-2].item() == pytest.approx(0.002, rel=1e-4)


def test_ddpm_sigmas_follow_the_linear_beta_schedule():
    s = ddpm_sigmas(1000)  # every timestep
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    ab = torch.cumprod(1 - betas, 0)
    assert s[-2].item() == pytest.approx(math.sqrt((1 - ab[0]) / ab[0]), rel=1e-4)
    assert s[0].item() == pytest.approx(math.sqrt((1 - ab[-1]) / ab[-1]), rel=1e-4)


def test_zero_steps_refused():
    with pytest.raises(ValueError):
        karras_sigmas(0)
    with pytest.raises(ValueError):
        ddpm_sigmas(0)


def test_add_noise_per_image_sigma():
    x0 = torch.zeros(3, 3, 4, 4)
    noise = torch.ones_like(x0)
    out = add_noise(x0, torch.tensor([0.0, 1.0, 2.0]), noise)
    assert torch.equal(out[:, 0, 0, 0], torch.tensor([0.0, 1.0, 2.0]))
    assert torch.equal(add_noise(x0, 0.5, noise), x0 + 0.5)


def test_training_sigmas_are_lognormal():
    sched = NoiseSchedule()
    s = sched.sample_training_sigmas(200_000, generator=torch.Generator().manual_seed(0))
    assert s.log().mean().item() == pytest.approx(sched.p_mean, abs=0.01)
    assert s.log().std().item() == pytest.approx(sched.p_std, abs=0.01)
