"""What the JSON API accepts and returns (pydantic models; FastAPI turns them into OpenAPI).

A request holds text and numbers only: no file paths, no model names, nothing
that could make the server read or write a file or reach the network. Every
field is checked here, so that a bad request is answered 422 naming the field
before it ever reaches the queue.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..options import Limits as SamplingLimits
from ..options import SamplingOptions
from ..samplers import SAMPLERS

__all__ = ["GenerateRequest", "GeneratedImage", "GenerateResponse", "ProgressEvent", "InfoResponse",
           "HealthResponse", "SamplerInfo", "Limits", "SERVER_LIMITS", "MAX_PROMPT_CHARS", "MAX_IMAGES",
           "MAX_SEED"]

# The server's policy: stricter than the library's limits, so one request cannot hold the worker long.
SERVER_LIMITS = SamplingLimits(max_steps=200, max_guidance=20.0)
DEFAULTS = SamplingOptions()
MAX_PROMPT_CHARS = 300
MAX_IMAGES = 8
MAX_SEED = 2**31 - 1

SamplerName = Literal[tuple(SAMPLERS)]  # type: ignore[valid-type]  # an enum in the OpenAPI schema


class GenerateRequest(BaseModel):
    """One painting job: a prompt and the sampling settings."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"prompt": "red apple", "negative_prompt": DEFAULTS.negative_prompt, "steps": DEFAULTS.steps,
         "guidance": DEFAULTS.guidance, "sampler": DEFAULTS.sampler, "seed": 42, "num_images": 1}]})

    prompt: str = Field(max_length=MAX_PROMPT_CHARS, description="what to paint, e.g. \"red apple\"")
    negative_prompt: str = Field(DEFAULTS.negative_prompt, max_length=MAX_PROMPT_CHARS, description="what to steer away from")
    steps: int | None = Field(None, ge=1, le=SERVER_LIMITS.max_steps, strict=True,
                              description="sampling steps; null: the sampler's default")
    guidance: float = Field(DEFAULTS.guidance, ge=0, le=SERVER_LIMITS.max_guidance, strict=True, allow_inf_nan=False,
                            description="classifier-free guidance scale (1 = none)")
    sampler: SamplerName = Field(DEFAULTS.sampler, description="the sampling method")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, strict=True,
                             description="image k uses seed+k; null: a random seed (returned)")
    num_images: int = Field(1, ge=1, le=MAX_IMAGES, strict=True, description="pictures to paint")

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the prompt is empty: say what to paint, e.g. \"red apple\"")
        return value

    @field_validator("negative_prompt")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    def sampling_options(self) -> SamplingOptions:
        """The sampling options, already within SERVER_LIMITS (the fields above say so)."""
        return SamplingOptions(sampler=self.sampler, steps=self.steps, guidance=float(self.guidance),
                               negative_prompt=self.negative_prompt)


class GeneratedImage(BaseModel):
    seed: int = Field(description="the seed of this picture")
    png: str = Field(description="the PNG file, base64-encoded")
    width: int
    height: int


class GenerateResponse(BaseModel):
    """The pictures and every setting used to paint them (enough to paint them again)."""

    images: list[GeneratedImage]
    prompt: str
    negative_prompt: str
    sampler: str
    steps: int
    guidance: float
    seed: int = Field(description="the seed of the first picture")
    num_images: int
    elapsed_s: float = Field(description="seconds from queueing to the last step")


class ProgressEvent(BaseModel):
    """A ``progress`` event of the stream: the predicted clean pictures at a step."""

    step: int = Field(description="steps done, 1-based")
    total: int
    images: list[str] = Field(description="PNG files, base64-encoded, one per picture")


class SamplerInfo(BaseModel):
    name: str
    default_steps: int


class Limits(BaseModel):
    max_prompt_chars: int = MAX_PROMPT_CHARS
    max_steps: int = SERVER_LIMITS.max_steps
    max_guidance: float = SERVER_LIMITS.max_guidance
    max_images: int = MAX_IMAGES
    max_seed: int = MAX_SEED


class InfoResponse(BaseModel):
    image_size: int = Field(description="side of the square pictures, in pixels")
    samplers: list[SamplerInfo]
    default_sampler: str = DEFAULTS.sampler
    default_guidance: float = DEFAULTS.guidance
    limits: Limits = Limits()
    queue_size: int
    max_batch: int = Field(description="most pictures painted in one batch")
    device: str


class HealthResponse(BaseModel):
    status: Literal["ok", "stopped"]
    queued: int
    running: int
    served: int
    cancelled: int
    failed: int
    rejected: int
    batches: int = Field(description="generate calls so far; served / batches = jobs per batch")
