"""Training recipes: every file in configs/ loads, and the [model] table is applied strictly."""
from pathlib import Path

import pytest

from gouache.errors import GouacheError
from gouache.model.config import model_config_from_table
from gouache.model.unet import PRESETS
from gouache.training.config import TrainConfig, load_train_config

ROOT = Path(__file__).resolve().parents[2]
DISTILL = sorted((ROOT / "configs").glob("distill-*.toml"))  # gouache distill's recipes
CONFIGS = sorted(set((ROOT / "configs").glob("*.toml")) - set(DISTILL))
EXAMPLES = sorted((ROOT / "examples").rglob("*.toml"))  # recipes of documented experiments


def test_the_recipes_are_few():
    assert 1 <= len(CONFIGS) <= 8  # the recipes a user runs and the shipped models' runs as they ran


@pytest.mark.parametrize("path", CONFIGS + EXAMPLES, ids=lambda p: p.name)
def test_every_recipe_loads(path):
    cfg = load_train_config(path)
    assert isinstance(cfg, TrainConfig) and cfg.steps > 0 and cfg.out
    assert cfg.model.unet.image_size % cfg.model.unet.divisor == 0


@pytest.mark.parametrize("path", DISTILL, ids=lambda p: p.name)
def test_every_distillation_recipe_loads(path):
    from gouache.training.distill import load_distill_config

    cfg = load_distill_config(path, teacher="a-model", data="a-folder")  # the command line names them
    assert cfg.steps > 0 and cfg.out and cfg.sample_prompts


def test_preset_overrides_and_schedule():
    model = model_config_from_table({"preset": "tiny", "channels": [8, 16], "schedule": {"p_mean": 0.7}})
    assert model.unet.channels == (8, 16)
    assert model.unet.image_size == PRESETS["tiny"].image_size  # the rest is the preset's
    assert model.schedule.p_mean == 0.7 and model.schedule.p_std == 1.2


@pytest.mark.parametrize("table, message", [
    ({"preset": "huge"}, "unknown model preset 'huge'"),
    ({"preset": "tiny", "chanels": [8, 16]}, "bad \\[model\\] table"),
    ({"preset": "tiny", "schedule": {"p_mena": 1.0}}, "bad \\[model.schedule\\] table"),
])
def test_model_table_refuses_what_it_does_not_know(table, message):
    with pytest.raises(GouacheError, match=message):
        model_config_from_table(table)


def test_unknown_training_option_is_refused(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('stepz = 3\n[model]\npreset = "tiny"\n')
    with pytest.raises(GouacheError, match="unknown training option\\(s\\): stepz"):
        load_train_config(recipe)
