"""The pipeline: a trained network, the text encoder and a sampler, joined.

    pipe = Pipeline.load()                       # the shipped emoji model
    result = pipe.generate("red apple", num_images=4, seed=0)
    result.images[0].save("apple.png")
    pipe.generate("rocket", SamplingOptions(sampler="heun", guidance=5))   # how to sample

A model folder may carry a few-step student (``student.py``); the default sampler,
``auto``, paints with it when the settings allow (see ``options.py``).

Image k of a call uses seed ``seed + k`` for all its randomness, so it is the
same picture whatever the batch size.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from PIL import Image
from tqdm.auto import tqdm

from gouache.device import pick_device
from gouache.errors import GouacheError
from gouache.images import to_pil
from gouache.model.config import ModelConfig
from gouache.model.denoiser import Denoiser
from gouache.model.lora import LoraSpec, set_scale
from gouache.model.text import PromptEmbedding, TextEncoder
from gouache.sampling.guidance import guided
from gouache.sampling.options import SamplingOptions
from gouache.sampling.rng import PerSampleNoise
from gouache.sampling.start import Picture, StartPicture, check_start
from gouache.store.adapters import apply_adapters, find_adapter, parse_lora_spec
from gouache.store.checkpoint import (
    check_model_folder,
    default_model_dir,
    load_network,
    resolve_model_dir,
    text_model_of,
)
from gouache.store.student import StudentInfo, load_student, refuse_bare_student

__all__ = ["Pipeline", "LoadedAdapter", "Generation", "Frame", "check_prompts", "check_seeds",
           "MAX_GENERATOR_SEED"]

PROMPT_CACHE_SIZE = 512  # prompts whose embeddings a pipeline keeps


@dataclass
class Frame:
    """One recorded sampling step: the current noisy images and the model's clean estimate."""

    step: int
    sigma: float
    x: torch.Tensor  # (B, 3, H, W) the noisy images entering the step
    denoised: torch.Tensor  # (B, 3, H, W) the predicted clean images at this step


@dataclass
class Generation:
    images: list[Image.Image]
    prompts: list[str]  # the prompt of each image
    seeds: list[int]  # the seed of each image
    frames: list[Frame] = field(default_factory=list)  # recorded steps (see ``record``)
    final: torch.Tensor | None = None  # (N, 3, H, W) in [-1, 1]
    source: torch.Tensor | None = None  # (3, H, W) in [-1, 1]: the picture it started from, if any
    options: SamplingOptions | None = None  # how they were painted, the sampler named (not "auto")


@dataclass(frozen=True)
class LoadedAdapter:
    """A low-rank adapter on a pipeline's network, not merged."""

    path: Path  # its .safetensors file
    scale: float  # what it is applied at now


class Pipeline:
    def __init__(self, net: torch.nn.Module | Callable[[], torch.nn.Module], text_encoder: TextEncoder,
                 config: ModelConfig, device: torch.device | str = "cpu", *,
                 student: tuple[torch.nn.Module, StudentInfo] | None = None) -> None:
        """``net``: the diffusion model, or a function that loads it when it is first needed
        (``load`` defers it when a student paints by default); ``student``: its few-step student
        and how it was made."""
        self.device = torch.device(device)
        self.config = config
        self._net = net
        self._denoiser: Denoiser | None = None
        if isinstance(net, torch.nn.Module):
            self._denoiser = Denoiser(net, sigma_data=config.schedule.sigma_data).to(self.device).eval()
        self.student = None if student is None else \
            Denoiser(student[0], sigma_data=config.schedule.sigma_data).to(self.device).eval()
        self.student_info = None if student is None else student[1]
        self.text_encoder = text_encoder.to(self.device)
        self._prompt_cache: OrderedDict[str, PromptEmbedding] = OrderedDict()  # least recent first
        self.adapters: dict[str, LoadedAdapter] = {}  # adapter name on the network -> what it is (``load``'s lora)

    @classmethod
    def load(cls, model: Path | str | None = None, *, device: str = "auto",
             text_encoder: TextEncoder | None = None, lora: Sequence[LoraSpec] = ()) -> "Pipeline":
        """A model folder or run folder (default: the shipped emoji model), with the low-rank
        adapters ``lora`` on it: each ``"FILE[:SCALE]"`` or ``(FILE, SCALE)``, not merged.
        The folder's few-step student comes too, unless adapters are given (they were trained
        on the diffusion model, so it paints with them)."""
        folder = resolve_model_dir(model if model is not None else default_model_dir())
        refuse_bare_student(folder)
        specs = [(find_adapter(path), scale) for path, scale in map(parse_lora_spec, lora)]  # before loading
        found = None if specs else load_student(folder)
        if found is None:
            net, config = load_network(folder)
        else:  # the student paints by default: the diffusion model is read when first needed
            net, config = (lambda: load_network(folder)[0]), check_model_folder(folder)  # its header checked now
        names = apply_adapters(net, folder, specs) if specs else []
        dev = pick_device(device)
        encoder = text_encoder or TextEncoder(text_model_of(folder, config), max_length=config.text_max_length)
        pipe = cls(net, encoder, config, dev, student=found)
        pipe.adapters = {name: LoadedAdapter(path, scale) for name, (path, scale) in zip(names, specs)}
        return pipe

    @property
    def denoiser(self) -> Denoiser:
        """The diffusion model with its EDM preconditioning (read on first use when deferred)."""
        if self._denoiser is None:
            net = self._net()  # type: ignore[operator]
            self._denoiser = Denoiser(net, sigma_data=self.config.schedule.sigma_data).to(self.device).eval()
        return self._denoiser

    def resolve(self, options: SamplingOptions) -> SamplingOptions:
        """``options`` with the sampler named: ``auto`` becomes the student's ``consistency`` or
        ``dpmpp_2m``; settings the student cannot paint are refused (``SamplingOptions.resolve``)."""
        return options.resolve(None if self.student_info is None else self.student_info.guidance)

    def set_adapter_scales(self, scales: Mapping[str, float]) -> None:
        """Set each named adapter's scale (0 turns it off: the base's output bit for bit)."""
        for name, scale in scales.items():
            if name not in self.adapters:
                raise GouacheError(f"no adapter {name!r} on this pipeline (it has: {', '.join(self.adapters) or 'none'})")
            set_scale(self.denoiser.net, name, scale)
            self.adapters[name] = replace(self.adapters[name], scale=float(scale))

    @property
    def image_size(self) -> int:
        return self.config.unet.image_size

    def encode(self, prompts: Sequence[str]) -> PromptEmbedding:
        """Encode prompts, each unique prompt once per pipeline.

        Each prompt is encoded on its own: padded in a batch with longer prompts its
        states would shift by rounding, and the same prompt must give the same picture.
        """
        cache = self._prompt_cache
        for p in dict.fromkeys(prompts):
            if p in cache:
                cache.move_to_end(p)
            else:
                cache[p] = self.text_encoder([p])
        embs = [cache[p] for p in prompts]
        while len(cache) > PROMPT_CACHE_SIZE:  # a long-lived server sees endless new prompts
            cache.popitem(last=False)
        return PromptEmbedding.cat(embs).to(self.device)

    @torch.inference_mode()
    def generate(self, prompt: str | Sequence[str], options: SamplingOptions = SamplingOptions(), *,
                 num_images: int = 1, seed: int = 0, seeds: Sequence[int] | None = None,
                 image: Picture | None = None, mask: Picture | None = None, strength: float | None = None,
                 batch_size: int = 16, record: Sequence[int] = (),
                 callback: Callable[[int, int, torch.Tensor], None] | None = None,
                 progress: bool = True) -> Generation:
        """Paint ``num_images`` pictures per prompt as ``options`` say, from pure noise or
        from ``image`` (see ``start.py``).

        Image k uses seed ``seed + k``, or ``seeds[k]`` when ``seeds`` is given (one per
        image: a server batching several requests keeps each request's own seeds).
        ``image``: start from this picture, noised ``strength`` of the way (0 to 1; default
        0.75, or 1 with a mask); ``mask`` (white = repaint): keep the picture's pixels
        elsewhere. ``record`` lists step indices whose noisy and predicted images are kept
        (for trajectory strips); ``callback(step, total, denoised)`` sees every step.
        """
        options = self.resolve(options)
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        check_prompts(prompts, num_images)
        prompts = [p for p in prompts for _ in range(num_images)]
        if seeds is None:
            seeds = [seed + k for k in range(len(prompts))]
        elif len(seeds) != len(prompts):
            raise GouacheError(f"{len(seeds)} seeds for {len(prompts)} images")
        check_seeds(seeds)
        check_start(image, mask, strength)
        start = None if image is None else StartPicture.load(image, size=self.image_size, mask=mask,
                                                             strength=strength)
        sigmas = options.spec.sigmas(options.steps, self.config.schedule)
        sigmas = (sigmas if start is None else start.sigmas(sigmas)).to(self.device)
        bar = tqdm(total=(len(sigmas) - 1) * math.ceil(len(prompts) / batch_size), desc="sampling",
                   unit="step", disable=not progress)
        finals, frames = [], []
        for first in range(0, len(prompts), batch_size):
            part = slice(first, first + batch_size)
            x, fr = self._sample(prompts[part], seeds[part], options, sigmas, start, set(record), callback, bar)
            finals.append(x)
            frames.append(fr)
        bar.close()
        final = torch.cat(finals)
        merged = [Frame(f[0].step, f[0].sigma, torch.cat([g.x for g in f]), torch.cat([g.denoised for g in f]))
                  for f in zip(*frames)]
        source = None if start is None else start.image
        return Generation([to_pil(img) for img in final], prompts, seeds, merged, final, source, options)

    def _sample(self, prompts: list[str], seeds: list[int], options: SamplingOptions, sigmas: torch.Tensor,
                start: StartPicture | None, record: set[int], callback, bar) -> tuple:
        size = self.image_size
        noise = PerSampleNoise(seeds, device=self.device)
        x = noise.randn((3, size, size))  # (B, 3, H, W) unit noise: every pixel at random
        if len(sigmas) < 2:  # strength 0: nothing to repaint
            return start.image.expand(len(prompts), -1, -1, -1).clone(), []
        x = x * sigmas[0] if start is None else start.noised(x, sigmas[0])
        cond = self.encode(prompts)
        if options.spec.student:  # guidance folded in: one call a step, no unconditional half
            model = guided(self.student, cond, None, 1.0)
        else:
            negative = self.encode([options.negative_prompt] * len(prompts))
            model = guided(self.denoiser, cond, negative, options.guidance)
        if start is not None:
            model = start.keep_known(model)
        frames: list[Frame] = []
        total = len(sigmas) - 1

        def on_step(i: int, x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor) -> None:
            if i in record:
                frames.append(Frame(i, float(sigma), x.cpu(), denoised.cpu()))
            if callback is not None:
                callback(i, total, denoised)
            bar.update(1)

        x = options.spec.sample(model, x, sigmas, noise=noise, callback=on_step)
        if start is not None:
            x = start.paste(x)  # the kept pixels exactly the picture's
        return x.clamp(-1, 1).cpu(), frames


MAX_GENERATOR_SEED = 2**63 - 1  # torch generators take 64-bit seeds; seed + k must stay below this


def check_prompts(prompts: Sequence[str], num_images: int = 1) -> None:
    """Refuse an empty prompt or a number of pictures below one."""
    if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise GouacheError("the prompt is empty: say what to paint, e.g. \"red apple\"")
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise GouacheError(f"number of images must be at least 1, got {num_images!r}")


def check_seeds(seeds: Sequence[int]) -> None:
    """Refuse a seed that a generator cannot take."""
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_GENERATOR_SEED:
            raise GouacheError(f"a seed must be a whole number from 0 to 2^63 - 1, got {s!r}")
