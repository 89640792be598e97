"""How to sample: one frozen record from the command line, the API, the server or the
evaluation down to the sampler loop.

Modelled on whisper's ``DecodingOptions``: the defaults are written here once; a
record is checked against the library's limits when it is made, so a record that
exists is valid and nothing on the way re-checks it; a caller with a stricter
policy (the web server) checks it against its own ``Limits``; variants are made
with ``dataclasses.replace`` (a sweep over samplers names the steps too, since
``steps`` is filled in from the sampler when the record is made).

    opts = SamplingOptions(sampler="heun", guidance=5)
    pipe.generate("red apple", opts)

The default sampler, ``auto``, is the model's fastest way to these settings: its few-step
student (``consistency``, 4 steps) when the model folder carries one distilled at this
guidance with no negative prompt, else the diffusion model with ``dpmpp_2m`` (20 steps).
The pipeline turns it into a named sampler (``resolve``) before sampling.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from gouache.errors import GouacheError
from gouache.sampling.samplers import SAMPLERS, Sampler

__all__ = ["SamplingOptions", "Limits", "LIBRARY_LIMITS", "AUTO", "TEACHER_SAMPLER"]

AUTO = "auto"  # the model's fastest sampler for the settings (see the module's docstring)
TEACHER_SAMPLER = "dpmpp_2m"  # what ``auto`` uses without a student


@dataclass(frozen=True)
class Limits:
    """The largest settings a caller accepts."""

    max_steps: int = 1000
    max_guidance: float = 50.0


LIBRARY_LIMITS = Limits()  # what the library itself accepts; the server passes stricter ones


@dataclass(frozen=True)
class SamplingOptions:
    """The sampler and its settings (which prompt and seeds are the call's, not the options')."""

    sampler: str = AUTO  # a name of samplers.SAMPLERS, or "auto"
    steps: int = None  # type: ignore[assignment]  # sampling steps; None: the sampler's default, filled in
    # (for "auto", when it is resolved)
    guidance: float = 3.0  # classifier-free guidance scale (1 = none, 0 = unconditional)
    negative_prompt: str = ""  # what guidance steers away from ("" = away from no prompt at all)

    def __post_init__(self) -> None:
        if self.sampler != AUTO and self.sampler not in SAMPLERS:
            raise GouacheError(f"unknown sampler {self.sampler!r}; choose from {AUTO}, {', '.join(SAMPLERS)}")
        if self.steps is None and self.sampler != AUTO:
            object.__setattr__(self, "steps", SAMPLERS[self.sampler].default_steps)
        if not isinstance(self.negative_prompt, str):
            raise GouacheError(f"the negative prompt must be text, got {self.negative_prompt!r}")
        self.check(LIBRARY_LIMITS)

    def check(self, limits: Limits) -> "SamplingOptions":
        """Raise GouacheError unless these settings are within ``limits``; return self."""
        steps, guidance = self.steps, self.guidance
        if steps is None and self.sampler == AUTO:
            pass  # the resolved sampler's default, within every limit
        elif isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= limits.max_steps:
            raise GouacheError(f"steps must be a whole number from 1 to {limits.max_steps}, got {steps!r}")
        if (isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance)
                or not 0 <= guidance <= limits.max_guidance):
            raise GouacheError(f"guidance must be a number from 0 to {limits.max_guidance:g}, got {guidance!r}")
        return self

    @property
    def spec(self) -> Sampler:
        """The sampler function, its noise levels and default steps (not for "auto": resolve it)."""
        if self.sampler == AUTO:
            raise ValueError("resolve the sampler 'auto' for a model first (SamplingOptions.resolve)")
        return SAMPLERS[self.sampler]

    def resolve(self, student_guidance: float | None) -> "SamplingOptions":
        """These options with a named sampler, for a model whose few-step student paints at
        ``student_guidance`` (None: it has none). Refuses settings the student cannot paint."""
        usable = student_guidance is not None and self.guidance == student_guidance and not self.negative_prompt
        if self.sampler == AUTO:
            return dataclasses.replace(self, sampler="consistency" if usable else TEACHER_SAMPLER)
        if self.spec.student and not usable:
            if student_guidance is None:
                raise GouacheError(f"the sampler {self.sampler!r} needs a model with a few-step student "
                                   "(gouache distill); this one has none: use dpmpp_2m")
            why = (f"guidance {self.guidance:g}" if self.guidance != student_guidance
                   else "a negative prompt")
            raise GouacheError(f"the few-step student paints at guidance {student_guidance:g} with no negative "
                               f"prompt (folded in when it was distilled), not with {why}: use --sampler "
                               f"{TEACHER_SAMPLER}, the diffusion model, for that")
        return self
