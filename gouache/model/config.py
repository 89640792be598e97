"""What a model is: the network's sizes, the noise schedule and the prompt encoder, saved
beside the weights as ``config.json``. A recipe's ``[model]`` table names a preset of
``unet.PRESETS`` and may override any ``UNetConfig`` field, its ``[schedule]`` table any
``NoiseSchedule`` field.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gouache.checks import between, check_fields, non_blank
from gouache.errors import GouacheError
from gouache.model.schedule import NoiseSchedule
from gouache.model.text import DEFAULT_TEXT_MODEL
from gouache.model.unet import PRESETS, UNetConfig

__all__ = ["ModelConfig", "model_config_from_table"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a trained model from its weights."""

    unet: UNetConfig = field(default_factory=UNetConfig)  # the network's sizes
    schedule: NoiseSchedule = field(default_factory=NoiseSchedule)  # sigma range and sigma_data
    text_model: str = DEFAULT_TEXT_MODEL  # the frozen prompt encoder: package name, folder or hub name
    text_max_length: int = 32  # prompts are cut to this many tokens

    def __post_init__(self) -> None:
        check_fields(self, {"text_model": (non_blank, "a package, folder or name"),
                            "text_max_length": (between(1, 512), "from 1 to 512")}, what="model config")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(unet=UNetConfig.from_dict(d["unet"]), schedule=NoiseSchedule(**d.get("schedule", {})),
                   text_model=d.get("text_model", DEFAULT_TEXT_MODEL),
                   text_max_length=d.get("text_max_length", 32))


def model_config_from_table(table: dict) -> ModelConfig:
    """A ``[model]`` TOML table: ``preset`` plus any UNetConfig field; ``text_model`` etc."""
    if not isinstance(table, dict):
        raise GouacheError(f"[model] must be a table (preset = ...), got {table!r}")
    table = dict(table)
    preset = table.pop("preset", "base")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise GouacheError(f"unknown model preset {preset!r}; choose from {', '.join(PRESETS)}")
    top = {k: table.pop(k) for k in ("text_model", "text_max_length") if k in table}
    try:
        schedule = NoiseSchedule(**table.pop("schedule", {}))
    except TypeError as e:
        raise GouacheError(f"bad [model.schedule] table: {e}") from None
    unet = PRESETS[preset].to_dict() | table
    try:
        return ModelConfig(unet=UNetConfig.from_dict(unet), schedule=schedule, **top)
    except TypeError as e:
        raise GouacheError(f"bad [model] table: {e}") from None
