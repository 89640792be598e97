"""What the JSON API accepts and returns (pydantic models; FastAPI turns them into OpenAPI).

A request holds text and numbers only: no file paths, no model names, nothing
that could make the server read or write a file or reach the network (an adapter is
chosen by the name the server gave it, among those it was started with). Every
field is checked here, so that a bad request is answered 422 naming the field
before it ever reaches the queue.
"""
from __future__ import annotations

from typing import Literal

from PIL import Image
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from gouache.errors import GouacheError
from gouache.sampling.options import AUTO, SamplingOptions
from gouache.sampling.options import Limits as SamplingLimits
from gouache.sampling.samplers import SAMPLERS
from gouache.sampling.start import check_start
from gouache.serve.pictures import MAX_UPLOAD_BYTES, decode_picture

__all__ = ["GenerateRequest", "GeneratedImage", "GenerateResponse", "ProgressEvent", "InfoResponse",
           "HealthResponse", "SamplerInfo", "AdapterOption", "Limits", "SERVER_LIMITS", "MAX_PROMPT_CHARS",
           "MAX_REQUEST_IMAGES", "MAX_REQUEST_SEED"]

# The server's policy: stricter than the library's limits, so one request cannot hold the worker long.
SERVER_LIMITS = SamplingLimits(max_steps=200, max_guidance=20.0)
DEFAULTS = SamplingOptions()
MAX_PROMPT_CHARS = 300
MAX_REQUEST_IMAGES = 8  # pictures one request may ask for
MAX_REQUEST_SEED = 2**31 - 1  # the seeds a request may give, and the range a random one is drawn from
MAX_PICTURE_CHARS = 4 * -(-MAX_UPLOAD_BYTES // 3) + 30  # a start picture or mask, base64, and a data: prefix
MAX_LORA_SCALE = 2.0  # an adapter's scale from 0 (off) to this (1 = as trained)
MAX_NAME_CHARS = 100  # an adapter's name

SamplerName = Literal[(AUTO, *SAMPLERS)]  # type: ignore[valid-type]  # an enum in the OpenAPI schema


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
    sampler: SamplerName = Field(DEFAULTS.sampler, description="the sampling method; auto: the model's few-step "
                                 "student when it has one and the settings allow, else dpmpp_2m")
    seed: int | None = Field(None, ge=0, le=MAX_REQUEST_SEED, strict=True,
                             description="image k uses seed+k; null: a random seed (returned)")
    num_images: int = Field(1, ge=1, le=MAX_REQUEST_IMAGES, strict=True, description="pictures to paint")
    _image: Image.Image | None = PrivateAttr(None)
    _mask: Image.Image | None = PrivateAttr(None)
    image: str | None = Field(None, max_length=MAX_PICTURE_CHARS,
                              description="start from this picture (a PNG, JPEG or WebP, base64 or a data: URL): "
                                          "image-to-image")
    mask: str | None = Field(None, max_length=MAX_PICTURE_CHARS,
                             description="with image: repaint only where this picture, of the image's size, is white "
                                         "(as image)")
    strength: float | None = Field(None, ge=0, le=1, strict=False, allow_inf_nan=False,
                                   description="with image: how far to noise it, 0 (keep) to 1 (from pure noise); "
                                               "null: 0.75, or 1 with a mask")

    lora: str | None = Field(None, max_length=MAX_NAME_CHARS,
                             description="an adapter this server was started with, by its name in "
                                         "GET /api/info's adapters; null: none (the base model)")
    lora_scale: float | None = Field(None, ge=0, le=MAX_LORA_SCALE, strict=False, allow_inf_nan=False,
                                     description="with lora: its scale, 0 (off) to 2 (1 = as trained); "
                                                 "null: the scale the server was started with")

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

    @model_validator(mode="after")
    def _scale_needs_adapter(self) -> "GenerateRequest":
        if self.lora_scale is not None and self.lora is None:
            raise ValueError("lora_scale needs lora: name the adapter to scale")
        return self

    @model_validator(mode="after")
    def _start_picture(self) -> "GenerateRequest":
        """Decode the start picture and mask once, here, so a bad one is a 422 naming its field
        before the queue; a mask must be the picture's size (it is never stretched to fit)."""
        try:
            check_start(self.image, self.mask, self.strength)
        except GouacheError as e:
            raise ValueError(str(e)) from None  # pydantic answers 422 for a ValueError
        for name in ("image", "mask"):
            text = getattr(self, name)
            try:
                setattr(self, f"_{name}", None if text is None else decode_picture(text))
            except ValueError as e:
                raise _field_error(name, str(e), text) from None
        if self._mask is not None and self._mask.size != self._image.size:
            (mw, mh), (iw, ih) = self._mask.size, self._image.size
            raise _field_error("mask", f"{mw}x{mh} pixels, but the image is {iw}x{ih}: "
                                       "send a mask the size of the image", self.mask)
        return self

    def start_pictures(self) -> tuple[Image.Image | None, Image.Image | None]:
        """The decoded start picture and mask (None where not given)."""
        return self._image, self._mask

    def sampling_options(self) -> SamplingOptions:
        """The sampling options, already within SERVER_LIMITS (the fields above say so)."""
        return SamplingOptions(sampler=self.sampler, steps=self.steps, guidance=float(self.guidance),
                               negative_prompt=self.negative_prompt)


def _field_error(field: str, message: str, value: object) -> ValidationError:
    """A validation error of one field, raised from a model validator (FastAPI answers 422, its loc naming
    the field, as for the fields' own checks)."""
    error = PydanticCustomError("value_error", "{message}", {"message": message})
    return ValidationError.from_exception_data(
        "GenerateRequest", [InitErrorDetails(type=error, loc=(field,), input=value)])


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
    strength: float | None = Field(None, description="how far the start picture was noised (null: none)")
    lora: str | None = Field(None, description="the adapter it was painted with (null: none)")
    lora_scale: float | None = Field(None, description="that adapter's scale (null: none)")
    num_images: int
    elapsed_s: float = Field(description="seconds from queueing to the last step")


class ProgressEvent(BaseModel):
    """A ``progress`` event of the stream: the predicted clean pictures at a step."""

    step: int = Field(description="steps done, 1-based")
    total: int
    images: list[str] = Field(description="PNG files, base64-encoded, one per picture")


class SamplerInfo(BaseModel):
    name: str
    default_steps: int = Field(description="steps when none are given (for auto: with the default settings)")


class Limits(BaseModel):
    max_prompt_chars: int = MAX_PROMPT_CHARS
    max_steps: int = SERVER_LIMITS.max_steps
    max_guidance: float = SERVER_LIMITS.max_guidance
    max_images: int = MAX_REQUEST_IMAGES
    max_seed: int = MAX_REQUEST_SEED
    max_lora_scale: float = MAX_LORA_SCALE


class AdapterOption(BaseModel):
    name: str = Field(description="what a request sends as lora")
    default_scale: float = Field(description="the scale it was started with (lora_scale null)")


class InfoResponse(BaseModel):
    image_size: int = Field(description="side of the square pictures, in pixels")
    samplers: list[SamplerInfo]
    default_sampler: str = DEFAULTS.sampler
    default_guidance: float = DEFAULTS.guidance
    limits: Limits = Limits()
    queue_size: int
    max_batch: int = Field(description="most pictures painted in one batch")
    device: str
    adapters: list[AdapterOption] = Field([], description="the low-rank adapters a request may choose")


class HealthResponse(BaseModel):
    status: Literal["ok", "stopped"]
    queued: int
    running: int
    served: int
    cancelled: int
    failed: int
    rejected: int
    batches: int = Field(description="generate calls so far; served / batches = jobs per batch")
