"""Arguments that more than one command takes: the sampling options and the adapters."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gouache.sampling.options import SamplingOptions

__all__ = ["HELP", "add_sampling_arguments", "sampling_options", "add_lora_argument"]

HELP = argparse.ArgumentDefaultsHelpFormatter


def add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    """--sampler, --steps, --guidance, --negative-prompt, with ``SamplingOptions``' defaults;
    read them back with ``sampling_options``."""
    from gouache.sampling.options import AUTO, SamplingOptions
    from gouache.sampling.samplers import SAMPLERS

    d = SamplingOptions()
    p.add_argument("--sampler", default=d.sampler, choices=[AUTO, *sorted(SAMPLERS)],
                   help="auto: the model's few-step student (consistency) when it has one and the settings "
                        "allow, else dpmpp_2m; dpmpp_2m/heun/euler: fast deterministic solvers; ddpm: the "
                        "classic 100-step sampler; heun_stochastic (EDM's) and ddpm add fresh noise each "
                        "step, which mends shapes, at 2 to 5 times the calls (docs/understanding.md)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the sampler's own, "
                   + ", ".join(f"{s.name} {s.default_steps}" for s in SAMPLERS.values()) + ")")
    p.add_argument("--guidance", type=float, default=d.guidance, help="classifier-free guidance scale (1 = none)")
    p.add_argument("--negative-prompt", default=d.negative_prompt, help="what to steer away from")


def sampling_options(a: argparse.Namespace) -> "SamplingOptions":
    """The options that ``add_sampling_arguments`` parsed: checked here, once."""
    from gouache.sampling.options import SamplingOptions

    return SamplingOptions(sampler=a.sampler, steps=a.steps, guidance=a.guidance, negative_prompt=a.negative_prompt)


def add_lora_argument(p: argparse.ArgumentParser, flag: str = "--lora") -> None:
    p.add_argument(flag, action="append", default=[], metavar="FILE[:SCALE]",
                   help="a low-rank adapter (its .safetensors, or its run folder) on the model, at SCALE "
                        "(default 1); repeat for several")
