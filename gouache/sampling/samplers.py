"""Samplers: from pure noise to an image, one decreasing sigma at a time.

Every sampler knows one contract only: ``model(x, sigma) -> denoised`` (the
prompt and guidance are bound into ``model`` by the caller, see ``guidance.py``).
Each takes the starting noise already scaled to ``sigmas[0]`` and a list of
sigmas ending in 0, and returns the final image. ``callback(i, x, denoised,
sigma)`` sees every step: that is how progress bars and trajectory strips are
drawn. Ancestral samplers take ``noise(like)``, which returns fresh unit noise
shaped like its argument (per-sample generators keep image k of a batch the same
whatever the batch size).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from gouache.model.schedule import NoiseSchedule, ddpm_sigmas, karras_sigmas

__all__ = ["SAMPLERS", "Sampler", "Callback", "sample_ddpm", "sample_euler", "sample_heun", "sample_heun_stochastic",
           "sample_dpmpp_2m", "sample_consistency", "euler_step", "heun_step"]

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Noise = Callable[[torch.Tensor], torch.Tensor]


class Callback(Protocol):
    def __call__(self, i: int, x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor) -> None: ...


def _check(sigmas: torch.Tensor) -> None:
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError("a sampler needs at least one step: sigmas must hold 2 or more values")


def _notify(callback: Callback | None, i: int, x, denoised, sigma) -> None:
    if callback is not None:
        callback(i, x, denoised, sigma)


# The probability-flow ODE's steps (Karras et al., EDM (2022), Algorithm 1, lines 4-8), written once
# for the samplers below and for distillation's teacher (``consistency.py``). ``t_cur`` and ``t_next``
# are 0-d (one level for the batch) or shaped to broadcast per image, (B, 1, 1, 1); ``denoised`` is
# D(x; t_cur), which the caller has (it shows it to the callback).


def euler_step(x: torch.Tensor, denoised: torch.Tensor, t_cur: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """One Euler step of dx/dt = (x - D(x; t)) / t from t_cur to t_next: EDM Algorithm 1 without
    its correction, which is DDIM (Song et al., 2021) in sigma form."""
    d_cur = (x - denoised) / t_cur  # Evaluate dx/dt at t_i.
    return x + (t_next - t_cur) * d_cur  # Take Euler step from t_i to t_{i+1}.


def heun_step(model: Model, x: torch.Tensor, denoised: torch.Tensor, t_cur: torch.Tensor,
              t_next: torch.Tensor) -> torch.Tensor:
    """EDM Algorithm 1's step (and Algorithm 2's after the churn): Euler, then the trapezoidal
    2nd-order correction, one more call of ``model``, unless t_next is 0."""
    d_cur = (x - denoised) / t_cur  # Evaluate dx/dt at t_i.
    x_next = x + (t_next - t_cur) * d_cur  # Take Euler step from t_i to t_{i+1}.
    if bool((t_next > 0).all()):  # Apply 2nd order correction.
        d_prime = (x_next - model(x_next, t_next)) / t_next
        x_next = x + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


@torch.no_grad()
def sample_ddpm(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: Noise,
                callback: Callback | None = None) -> torch.Tensor:
    """Ancestral sampling of Ho et al., "Denoising Diffusion Probabilistic Models" (2020).

    Each step draws x_{s} from the posterior q(x_s | x_t, x_0) with x_0 replaced by
    the model's estimate (DDPM eq. 6-7). In sigma form (x_t = x_0 + sigma_t n):
        mean = x0_hat + (sigma_s / sigma_t)^2 (x_t - x0_hat)
        var  = sigma_s^2 (1 - (sigma_s / sigma_t)^2)
    """
    _check(sigmas)
    for i in range(len(sigmas) - 1):
        t, s = sigmas[i], sigmas[i + 1]
        denoised = model(x, t)
        _notify(callback, i, x, denoised, t)
        ratio = (s / t) ** 2
        x = denoised + ratio * (x - denoised)  # posterior mean
        if s > 0:
            x = x + s * (1 - ratio).sqrt() * noise(x)  # posterior noise
    return x


@torch.no_grad()
def sample_euler(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *,
                 callback: Callback | None = None, noise: Noise | None = None) -> torch.Tensor:
    """Euler steps on the probability-flow ODE: DDIM (Song et al., 2021) in sigma form.

    EDM Algorithm 1 without its second-order correction: dx/dsigma = (x - D(x)) / sigma.
    """
    _check(sigmas)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        _notify(callback, i, x, denoised, sigmas[i])
        x = euler_step(x, denoised, sigmas[i], sigmas[i + 1])
    return x


@torch.no_grad()
def sample_heun(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *,
                callback: Callback | None = None, noise: Noise | None = None) -> torch.Tensor:
    """Karras et al., EDM (2022), Algorithm 1: Heun's 2nd-order deterministic sampler."""
    _check(sigmas)
    for i in range(len(sigmas) - 1):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, t_cur)
        _notify(callback, i, x, denoised, t_cur)
        x = heun_step(model, x, denoised, t_cur, t_next)
    return x


# EDM's stochastic sampler adds noise only inside [S_TMIN, S_TMAX] and at most
# gamma = sqrt(2) - 1 a step (Karras et al. 2022, section 4 and Table 5). S_CHURN is
# the total: with fewer steps than S_CHURN / (sqrt(2) - 1) every step in the range
# gets the most. The shapes testbed chose it (docs/understanding.md): the
# deterministic samplers' errors are what keeps this small network from drawing
# combinations it never saw, and fresh noise corrects them.
S_CHURN, S_TMIN, S_TMAX, S_NOISE = 40.0, 0.05, 50.0, 1.003


@torch.no_grad()
def sample_heun_stochastic(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: Noise,
                           callback: Callback | None = None) -> torch.Tensor:
    """Karras et al., EDM (2022), Algorithm 2: Heun's 2nd-order sampler with "churn".

    Before each step the image is noised up from t_i to t_hat = (1 + gamma) t_i, then one
    Heun step runs from t_hat down to t_{i+1}: the added noise washes out part of what the
    earlier steps got wrong, which a deterministic solver carries to the end.
    """
    _check(sigmas)
    n = len(sigmas) - 1
    for i in range(n):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        # Increase noise temporarily.
        gamma = min(S_CHURN / n, 2 ** 0.5 - 1) if S_TMIN <= t_cur <= S_TMAX else 0.0
        t_hat = t_cur + gamma * t_cur
        if gamma > 0:
            x = x + (t_hat ** 2 - t_cur ** 2).sqrt() * S_NOISE * noise(x)
        denoised = model(x, t_hat)
        _notify(callback, i, x, denoised, t_hat)
        x = heun_step(model, x, denoised, t_hat, t_next)  # Euler step, then the 2nd order correction.
    return x


@torch.no_grad()
def sample_dpmpp_2m(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *,
                    callback: Callback | None = None, noise: Noise | None = None) -> torch.Tensor:
    """Lu et al., "DPM-Solver++" (2022), Algorithm 2: the multistep 2nd-order solver (2M).

    Works in lambda = -ln(sigma). The first step (and a final step to sigma = 0) is
    first order; the others correct the data prediction with the previous one:
        D = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1},    r = h_{i-1} / h_i.
    """
    _check(sigmas)
    old_denoised = None
    for i in range(len(sigmas) - 1):
        t, t_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, t)
        _notify(callback, i, x, denoised, t)
        if t_next == 0:  # last step: the data prediction itself
            x = denoised
            break
        h = t.log() - t_next.log()  # lambda_next - lambda_cur
        if old_denoised is None:
            d = denoised  # first step: DPM-Solver++(1), i.e. DDIM
        else:
            r = (sigmas[i - 1].log() - t.log()) / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (t_next / t) * x - torch.expm1(-h) * d
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_consistency(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, noise: Noise,
                       callback: Callback | None = None) -> torch.Tensor:
    """Song et al., "Consistency Models" (2023), Algorithm 1: multistep consistency sampling.

    ``model`` is a consistency function (a distilled student, see ``consistency.py``): one
    call maps a noisy image at any sigma straight to a clean one. Each further step noises
    that estimate afresh to the next, lower sigma and maps it back, trading calls for quality:
        x0 = f(x, sigma_i);   x = x0 + sqrt(sigma_{i+1}^2 - sigma_min^2) z
    (sigma_min^2 ~ 4e-6 is left out: the student's sigmas are far above it).
    """
    _check(sigmas)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        _notify(callback, i, x, denoised, sigmas[i])
        x = denoised
        if sigmas[i + 1] > 0:
            x = denoised + sigmas[i + 1] * noise(x)  # back up to the next noise level
    return x


def _karras(steps: int, schedule: NoiseSchedule) -> torch.Tensor:
    return karras_sigmas(steps, sigma_min=schedule.sigma_min, sigma_max=schedule.sigma_max)


# Where the student's last call starts. Chosen on the training split (seed 1, never the test
# split), as Song et al. chose their 2-step midpoint by search: for the shipped student, KID
# x1e3 at 2 steps was 47.0 with the last level at 2.5, 37.2 at 5, 36.0 at 8, 34.9 at 12 and
# 37.8 at 20; at 4 steps 50.1 with EDM's levels down to 0.17, 34.4 ending at 5, 33.5 at 8
# (`python benchmarks/fewstep.py levels`). Its refinements below ~5 cost more than they add.
CONSISTENCY_SIGMA_LAST = 8.0


def _consistency(steps: int, schedule: NoiseSchedule) -> torch.Tensor:
    """EDM's spacing (eq. 5, rho 7) of ``steps`` levels from sigma_max down to
    ``CONSISTENCY_SIGMA_LAST``, then 0 (1 step: [80, 0]; 2: [80, 8, 0]; 4: [80, 40.3, 18.8,
    8, 0])."""
    return karras_sigmas(steps, sigma_min=min(CONSISTENCY_SIGMA_LAST, schedule.sigma_max),
                         sigma_max=schedule.sigma_max)


def _ddpm(steps: int, schedule: NoiseSchedule) -> torch.Tensor:
    return ddpm_sigmas(steps)  # the discrete DDPM grid, whatever the model's sigma range


@dataclass(frozen=True)
class Sampler:
    """A sampler with the noise levels it steps through and its usual number of steps."""

    name: str
    sample: Callable[..., torch.Tensor]  # sample(model, x, sigmas, *, noise, callback) -> x0
    schedule: Callable[[int, NoiseSchedule], torch.Tensor]  # (steps, the model's range) -> steps + 1 sigmas
    default_steps: int
    student: bool = False  # needs a distilled few-step student (``consistency.py``), not the diffusion model
    second_order: bool = False  # two model calls a step but the last (Heun's correction)

    def calls(self, steps: int) -> int:
        """Model calls for ``steps`` steps (a guided call is two network evaluations)."""
        return 2 * steps - 1 if self.second_order else steps

    def sigmas(self, steps: int, schedule: NoiseSchedule) -> torch.Tensor:
        """``steps + 1`` decreasing noise levels ending in 0."""
        return self.schedule(steps, schedule)


SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    Sampler("dpmpp_2m", sample_dpmpp_2m, _karras, 20),
    Sampler("heun", sample_heun, _karras, 12, second_order=True),
    Sampler("heun_stochastic", sample_heun_stochastic, _karras, 20, second_order=True),  # at 12 the churn is left in
    Sampler("euler", sample_euler, _karras, 25),
    Sampler("ddpm", sample_ddpm, _ddpm, 100),
    Sampler("consistency", sample_consistency, _consistency, 4, student=True),  # the best count measured (docs/fewstep.md)
)}
