"""Consistency distillation with classifier-free guidance folded in: the loss.

Song, Dhariwal, Chen & Sutskever, "Consistency Models" (ICML 2023), Algorithm 2
(consistency distillation, CD), with the guided teacher of Luo et al., "Latent
Consistency Models" (LCM, 2023) and the pseudo-Huber distance and 1/(t_{n+1} - t_n)
weighting of Song & Dhariwal, "Improved Techniques for Training Consistency Models"
(iCT, 2023).

A consistency function f(x_t, t) maps every point of one probability-flow ODE
trajectory to its end, the clean image; then one network call paints a picture, and
a few calls (``samplers.sample_consistency``) paint a better one. CD learns f from a
trained diffusion model, the teacher, without ever solving the ODE to its end:

    draw x0 and its caption c, n ~ U{1, ..., N-1} and z ~ N(0, I)
    x_{n+1} = x0 + t_{n+1} z                                    # a point on the trajectory
    x_n     = one ODE step of the guided teacher from t_{n+1} to t_n
              (Heun, as Song et al.; or Euler, which is DDIM here)
    L       = lambda(t_n) d(f_theta(x_{n+1}, t_{n+1}, c), f_target(x_n, t_n, c))
    theta  <- theta - eta grad L;  target <- stopgrad(mu target + (1 - mu) theta)

so that f agrees with itself along the teacher's trajectories; at t_1 = sigma_min it is
the identity (the boundary condition), which anchors the chain to the data.

The teacher is guided (LCM): D_w = D(x | "") + w (D(x | c) - D(x | "")) at a fixed
scale w, so the student paints at that guidance with one network call a step and no
unconditional half. The student keeps the teacher's EDM preconditioning (``Denoiser``):
at sigma_min = 0.002, c_skip = 1 - 1.6e-5 and c_out = 0.002, the boundary condition
up to that rounding (Song et al. shift c_skip and c_out by sigma_min to make it exact;
keeping the teacher's lets the student start as the teacher, with f = D).

The discretisation t_1 < ... < t_N is EDM's (Karras et al. 2022, eq. 5, rho = 7)
between sigma_min and sigma_max, as in Song et al.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from gouache.model.schedule import karras_sigmas
from gouache.sampling.samplers import euler_step, heun_step

__all__ = ["ConsistencyLoss", "boundaries", "pseudo_huber", "teacher_step", "SOLVERS"]

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, sigma (B,)) -> denoised


def boundaries(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """t_1 < ... < t_N: the N noise levels of the discretisation, increasing (EDM eq. 5)."""
    return karras_sigmas(n, sigma_min=sigma_min, sigma_max=sigma_max)[:-1].flip(0)


def pseudo_huber(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """iCT's distance sqrt(||a - b||^2 + c^2) - c per image, c = 0.00054 sqrt(dimensions):
    like L2 near 0, like L1 far from it, so a few bad targets do not dominate."""
    dims = a[0].numel()
    c = 0.00054 * math.sqrt(dims)
    return ((a - b).float().pow(2).flatten(1).sum(1) + c * c).sqrt() - c


def teacher_step(solver: str, teacher: Denoise, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The teacher's step of the probability-flow ODE from t to s (per image, (B, 1, 1, 1)), with
    the samplers' own steps (``samplers.euler_step``, ``samplers.heun_step``: EDM Algorithm 1)."""
    def model(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return teacher(x, sigma.flatten())  # the teacher takes one sigma per image, (B,)

    denoised = model(x, t)
    return euler_step(x, denoised, t, s) if solver == "euler" else heun_step(model, x, denoised, t, s)


SOLVERS = ("euler", "heun")  # Euler is DDIM here; Heun (2 teacher calls) is Song et al.'s


@dataclass(frozen=True)
class ConsistencyLoss:
    """Song et al. 2023, Algorithm 2, one step's loss; the caller owns the networks and the
    optimiser. ``teacher``, ``student`` and ``target`` are ``(x, sigma) -> denoised`` with the
    prompt (and, for the teacher, the guidance) already bound."""

    t: torch.Tensor  # (N,) the increasing discretisation, t[0] = sigma_min
    solver: str = "heun"

    def __call__(self, x0: torch.Tensor, teacher: Denoise, student: Denoise, target: Denoise, *,
                 generator: torch.Generator) -> torch.Tensor:
        """The weighted loss of each image, (B,)."""
        b = x0.shape[0]
        t = self.t.to(x0.device)
        # n ~ U{1, ..., N-1}: the pair (t_n, t_{n+1}) is (t[n-1], t[n]) in 0-based indexing
        n = torch.randint(1, len(t), (b,), generator=generator, device=generator.device).to(x0.device)
        t_next, t_cur = t[n].view(b, 1, 1, 1), t[n - 1].view(b, 1, 1, 1)  # t_{n+1} > t_n
        z = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0.device)
        x_next = x0 + t_next * z  # x_{t_{n+1}} on the forward process
        with torch.no_grad():
            x_cur = teacher_step(self.solver, teacher, x_next, t_next, t_cur)  # the teacher's ODE step back to t_n
            aim = target(x_cur, t_cur.flatten())  # f_target(x_n, t_n): the target, no gradient
        pred = student(x_next, t_next.flatten())  # f_theta(x_{n+1}, t_{n+1})
        weight = 1 / (t_next - t_cur).flatten()  # iCT's lambda(t_n)
        return weight * pseudo_huber(pred, aim)
