"""Consistency distillation's loss: the pieces against analytic answers for Gaussian data."""
import math

import pytest
import torch

from gouache.training.consistency import (
    ConsistencyLoss,
    boundaries,
    pseudo_huber,
    teacher_step,
)

SD = 0.5


def gaussian_denoiser(x, sigma):
    return x * SD ** 2 / (sigma.view(-1, 1, 1, 1) ** 2 + SD ** 2)


def gaussian_consistency(x, sigma):
    """The exact consistency function for N(0, SD^2) data (see test_samplers)."""
    return x * SD / (sigma.view(-1, 1, 1, 1) ** 2 + SD ** 2).sqrt()


def test_boundaries_are_edm_levels_increasing_from_sigma_min_to_sigma_max():
    t = boundaries(18, 0.002, 80.0)
    assert len(t) == 18
    assert t[0].item() == pytest.approx(0.002) and t[-1].item() == pytest.approx(80.0)
    assert bool((t[1:] > t[:-1]).all())


def test_pseudo_huber_is_zero_for_equal_images_and_grows_like_l2_then_l1():
    a = torch.zeros(2, 3, 8, 8)
    assert torch.equal(pseudo_huber(a, a), torch.zeros(2))
    c = 0.00054 * math.sqrt(3 * 8 * 8)
    small, big = torch.full_like(a, 1e-4), torch.full_like(a, 10.0)
    norm_small, norm_big = 1e-4 * math.sqrt(192), 10 * math.sqrt(192)
    assert pseudo_huber(small, a)[0].item() == pytest.approx(norm_small ** 2 / (2 * c), rel=1e-2)  # ~ L2 / 2c
    assert pseudo_huber(big, a)[0].item() == pytest.approx(norm_big - c, rel=1e-3)  # ~ L1


def exact_ode(x, t, s):
    """The probability-flow ODE for Gaussian data moves x along a ray: x_s = x_t sqrt(s^2+SD^2)/sqrt(t^2+SD^2)."""
    return x * ((s ** 2 + SD ** 2) / (t ** 2 + SD ** 2)).sqrt()


@pytest.mark.parametrize("t_hi, t_lo", [(2.0, 1.5), (0.5, 0.4), (40.0, 30.0)])
def test_heun_step_follows_the_ode_closer_than_euler(t_hi, t_lo):
    x = torch.randn(4, 3, 4, 4)
    t, s = torch.full((4, 1, 1, 1), t_hi), torch.full((4, 1, 1, 1), t_lo)
    want = exact_ode(x, t, s)
    err_euler = (teacher_step("euler", gaussian_denoiser, x, t, s) - want).abs().max()
    err_heun = (teacher_step("heun", gaussian_denoiser, x, t, s) - want).abs().max()
    assert err_heun < err_euler
    assert err_heun < 1e-2 * want.abs().max()


def test_the_true_consistency_function_is_a_fixed_point_of_the_loss():
    """With the exact f as student and target, only the teacher's ODE step errs: the loss is
    tiny, and much smaller than for a student that is the teacher's denoiser (f at 1 step)."""
    loss = ConsistencyLoss(boundaries(40, 0.002, 80.0), solver="heun")
    x0 = torch.randn(64, 3, 8, 8) * SD

    def run(student):
        return loss(x0, gaussian_denoiser, student, gaussian_consistency,
                    generator=torch.Generator().manual_seed(0)).mean()

    exact, denoiser = run(gaussian_consistency), run(gaussian_denoiser)
    assert exact < 0.02 * denoiser


def test_the_loss_is_reproducible_and_differentiable_in_the_student_only():
    loss = ConsistencyLoss(boundaries(10, 0.002, 80.0), solver="euler")
    w = torch.tensor(1.0, requires_grad=True)
    x0 = torch.randn(8, 3, 4, 4) * SD

    def student(x, sigma):
        return w * gaussian_denoiser(x, sigma)

    def teacher(x, sigma):
        return w * gaussian_denoiser(x, sigma)  # the teacher runs without gradient

    a = loss(x0, teacher, student, gaussian_consistency, generator=torch.Generator().manual_seed(3))
    b = loss(x0, teacher, student, gaussian_consistency, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (8,)
    a.sum().backward()
    assert w.grad is not None and w.grad != 0
