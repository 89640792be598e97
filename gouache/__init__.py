"""gouache: text-to-image diffusion you train on your own captioned pictures.

    from gouache import Pipeline, SamplingOptions
    pipe = Pipeline.load()                                   # the shipped emoji model
    pipe.generate("red apple", SamplingOptions(sampler="heun")).images[0].save("apple.png")

    from gouache import TrainConfig, train
    train(TrainConfig(data="data/shapes", out="runs/shapes"))

The names below are imported when first used, so that ``import gouache`` (and the
``gouache`` command's start-up) does not pay for torch until it needs it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gouache.errors import GouacheError
    from gouache.sampling.options import SamplingOptions
    from gouache.sampling.pipeline import Generation, Pipeline
    from gouache.training.config import TrainConfig
    from gouache.training.train import train

__all__ = ["Pipeline", "SamplingOptions", "Generation", "GouacheError", "train", "TrainConfig", "__version__"]
__version__ = "0.1.0"

_HOMES = {  # public name -> the module that defines it
    "Pipeline": "gouache.sampling.pipeline",
    "Generation": "gouache.sampling.pipeline",
    "SamplingOptions": "gouache.sampling.options",
    "GouacheError": "gouache.errors",
    "train": "gouache.training.train",
    "TrainConfig": "gouache.training.config",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
