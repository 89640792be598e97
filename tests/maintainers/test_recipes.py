"""The recipes kept beside the maintainers' jobs load as ``gouache train`` reads them (tests/test_config.py
checks configs/ and examples/)."""
from pathlib import Path

import pytest

from gouache.training.config import TrainConfig, load_train_config

RECIPES = sorted((Path(__file__).resolve().parents[2] / "maintainers").glob("*.toml"))


def test_there_is_a_recipe():
    assert RECIPES


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_maintainers_recipe_loads(path):
    cfg = load_train_config(path)
    assert isinstance(cfg, TrainConfig) and cfg.steps > 0 and cfg.out
    assert cfg.model.unet.image_size % cfg.model.unet.divisor == 0
