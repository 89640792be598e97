"""Every sampler through the same checks, on an analytic denoiser and on the real pipeline."""
import pytest
import torch

from gouache.model.schedule import NoiseSchedule
from gouache.sampling.guidance import guided
from gouache.sampling.rng import PerSampleNoise
from gouache.sampling.samplers import (
    CONSISTENCY_SIGMA_LAST,
    S_TMAX,
    S_TMIN,
    SAMPLERS,
    euler_step,
    heun_step,
)

NAMES = sorted(SAMPLERS)
SD = 0.5


def gaussian_denoiser(x, sigma):
    """The exact denoiser for data ~ N(0, SD^2): E[x0 | x] = x SD^2 / (sigma^2 + SD^2)."""
    return x * SD ** 2 / (sigma ** 2 + SD ** 2)


def gaussian_consistency(x, sigma):
    """The exact consistency function for data ~ N(0, SD^2): the probability-flow ODE scales
    x_sigma (std sqrt(sigma^2 + SD^2)) down to x_0 (std SD) along a straight ray."""
    return x * SD / (sigma ** 2 + SD ** 2).sqrt()


def model_for(name):
    """A student sampler is given a consistency function, the others a denoiser."""
    return gaussian_consistency if SAMPLERS[name].student else gaussian_denoiser


def sigmas_for(name, steps):
    return SAMPLERS[name].sigmas(steps, NoiseSchedule())


def run(name, steps, seeds):
    fn = SAMPLERS[name].sample
    noise = PerSampleNoise(seeds)
    s = sigmas_for(name, steps)
    x = noise.randn((3, 8, 8)) * s[0]
    return fn(model_for(name), x, s, noise=noise)


@pytest.mark.parametrize("name", NAMES)
def test_shape_and_determinism(name):
    a, b = run(name, 10, [1, 2]), run(name, 10, [1, 2])
    assert a.shape == (2, 3, 8, 8)
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])


@pytest.mark.parametrize("name", NAMES)
def test_sample_k_does_not_depend_on_the_batch(name):
    batch = run(name, 8, [10, 11, 12])
    alone = run(name, 8, [11])
    assert torch.allclose(batch[1], alone[0], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_samples_have_the_data_distribution(name):
    steps = {"ddpm": 100, "euler": 50}.get(name, 25)  # Euler is first order: more steps
    x = run(name, steps, list(range(64)))
    assert x.std().item() == pytest.approx(SD, rel=0.1)
    assert abs(x.mean().item()) < 0.05


@pytest.mark.parametrize("name", NAMES)
def test_zero_steps_refused(name):
    fn = SAMPLERS[name].sample
    with pytest.raises(ValueError):
        fn(gaussian_denoiser, torch.zeros(1, 3, 4, 4), torch.tensor([0.0]), noise=PerSampleNoise([0]))


@pytest.mark.parametrize("name", NAMES)
def test_callback_sees_every_step(name):
    seen = []
    fn = SAMPLERS[name].sample
    s = sigmas_for(name, 6)
    fn(gaussian_denoiser, torch.randn(1, 3, 4, 4) * s[0], s, noise=PerSampleNoise([0]),
       callback=lambda i, x, d, sigma: seen.append(i))
    assert seen == list(range(6))


def test_guidance_scale_one_is_the_conditional_model(tiny_pipeline):
    cond = tiny_pipeline.encode(["red apple"])
    uncond = tiny_pipeline.encode([""])
    x, sigma = torch.randn(1, 3, 16, 16), torch.tensor(2.0)
    model = guided(tiny_pipeline.denoiser, cond, uncond, 1.0)
    want = tiny_pipeline.denoiser(x, sigma, **cond.as_cond())
    assert torch.equal(model(x, sigma), want)
    strong = guided(tiny_pipeline.denoiser, cond, uncond, 3.0)(x, sigma)
    d_u = tiny_pipeline.denoiser(x, sigma, **uncond.as_cond())
    assert torch.allclose(strong, d_u + 3.0 * (want - d_u), atol=1e-5)
    assert torch.equal(guided(tiny_pipeline.denoiser, cond, None, 1.0)(x, sigma), want)  # never uses it
    with pytest.raises(ValueError, match="unconditional"):
        guided(tiny_pipeline.denoiser, cond, None, 3.0)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_consistency_calls_the_network_once_a_step(steps):
    calls = []

    def model(x, sigma):
        calls.append(float(sigma))
        return gaussian_consistency(x, sigma)

    s = sigmas_for("consistency", steps)
    SAMPLERS["consistency"].sample(model, torch.randn(2, 3, 4, 4) * s[0], s, noise=PerSampleNoise([0, 1]))
    assert calls == pytest.approx(s[:-1].tolist())  # one call at each noise level, none at 0
    assert s[0] == NoiseSchedule().sigma_max and s[-1] == 0 and bool((s[:-1] > 0.1).all())


@pytest.mark.parametrize("sigma_max", [80.0, 20.0])
def test_consistency_levels_run_from_sigma_max_to_the_chosen_last_level(sigma_max):
    schedule = NoiseSchedule(sigma_max=sigma_max)
    last = CONSISTENCY_SIGMA_LAST
    for steps in (2, 3, 4, 8):
        s = SAMPLERS["consistency"].sigmas(steps, schedule)
        assert len(s) == steps + 1 and s[0] == sigma_max and s[-1] == 0
        assert s[-2] == pytest.approx(last) and bool((s[:-1].diff() < 0).all())


def test_consistency_one_step_is_the_model_itself():
    """One step of a consistency function is f(x, sigma_max): nothing added after it."""
    s = sigmas_for("consistency", 1)
    x = torch.randn(2, 3, 4, 4) * s[0]
    out = SAMPLERS["consistency"].sample(gaussian_consistency, x, s, noise=PerSampleNoise([0, 1]))
    assert torch.equal(out, gaussian_consistency(x, s[0]))


@pytest.mark.parametrize("name", NAMES)
def test_calls_counts_the_model_calls(name):
    """Sampler.calls is what the benchmarks count: one call a step, two for Heun but the last."""
    calls = []

    def model(x, sigma):
        calls.append(float(sigma))
        return model_for(name)(x, sigma)

    s = sigmas_for(name, 7)
    SAMPLERS[name].sample(model, torch.randn(1, 3, 4, 4) * s[0], s, noise=PerSampleNoise([0]))
    assert len(calls) == SAMPLERS[name].calls(7)


def test_heun_stochastic_without_churn_is_heun():
    """EDM Algorithm 2 adds noise only for sigma in [S_TMIN, S_TMAX]: above it, it is Algorithm 1."""
    s = torch.tensor([90.0, 70.0, S_TMAX + 1, 0.0])
    x = torch.randn(2, 3, 4, 4) * s[0]
    a = SAMPLERS["heun_stochastic"].sample(gaussian_denoiser, x, s, noise=PerSampleNoise([0, 1]))
    b = SAMPLERS["heun"].sample(gaussian_denoiser, x, s, noise=PerSampleNoise([0, 1]))
    assert torch.equal(a, b)


def test_heun_stochastic_churns_inside_its_range():
    """Inside the range each step first raises sigma by gamma = sqrt(2) - 1 at most (the model
    sees t_hat), and the seed's noise changes the result."""
    seen = []
    s = sigmas_for("heun_stochastic", 20)
    x = torch.randn(1, 3, 4, 4) * s[0]
    SAMPLERS["heun_stochastic"].sample(gaussian_denoiser, x, s, noise=PerSampleNoise([0]),
                                       callback=lambda i, x, d, sigma: seen.append(float(sigma)))
    inside = [(t_hat, float(t)) for t_hat, t in zip(seen, s) if S_TMIN <= t <= S_TMAX]
    assert inside and all(t_hat == pytest.approx(t * 2 ** 0.5, rel=1e-5) for t_hat, t in inside)
    a = SAMPLERS["heun_stochastic"].sample(gaussian_denoiser, x, s, noise=PerSampleNoise([0]))
    b = SAMPLERS["heun_stochastic"].sample(gaussian_denoiser, x, s, noise=PerSampleNoise([1]))
    assert not torch.equal(a, b)


def test_the_ode_steps_take_one_level_for_the_batch_or_one_per_image():
    """Samplers step the whole batch at one sigma; distillation's teacher each image at its own."""
    x = torch.randn(4, 3, 8, 8)
    t, s = torch.tensor(2.0), torch.tensor(1.5)
    per = lambda v: v.expand(4).view(4, 1, 1, 1)  # noqa: E731
    for step in (lambda *a: euler_step(*a[1:]), heun_step):
        batch = step(gaussian_denoiser, x, gaussian_denoiser(x, t), t, s)
        each = step(gaussian_denoiser, x, gaussian_denoiser(x, per(t)), per(t), per(s))
        assert torch.equal(batch, each)
    calls = []
    counted = lambda x, sigma: calls.append(1) or gaussian_denoiser(x, sigma)  # noqa: E731
    last = heun_step(counted, x, gaussian_denoiser(x, t), t, torch.tensor(0.0))
    assert calls == [] and torch.equal(last, euler_step(x, gaussian_denoiser(x, t), t, torch.tensor(0.0)))
