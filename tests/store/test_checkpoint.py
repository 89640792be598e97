"""Exporting model folders: one checkpoint as is, several averaged (a model soup)."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gouache.cli.main import main
from gouache.errors import GouacheError
from gouache.model.config import ModelConfig
from gouache.model.unet import PRESETS, UNet
from gouache.store.checkpoint import export_model
from gouache.store.files import write_json


def model_folder(path: Path, net: UNet, config: ModelConfig | None = None) -> Path:
    path.mkdir(parents=True)
    write_json((config or ModelConfig(unet=net.cfg)).to_dict(), path / "config.json")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path / "ema.safetensors")
    return path


def fine_tuned(parent: UNet, seed: int) -> UNet:
    """A copy of ``parent`` with every weight moved a little, as training from it would."""
    child = UNet(parent.cfg)
    child.load_state_dict(parent.state_dict())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in child.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return child


@pytest.fixture
def family(tmp_path) -> list[Path]:
    torch.manual_seed(0)
    parent = UNet(PRESETS["tiny"])
    return [model_folder(tmp_path / f"m{k}", fine_tuned(parent, k)) for k in range(3)]


def test_one_checkpoint_exports_unchanged_and_several_average(family, tmp_path):
    one = load_file(export_model(family[0], tmp_path / "one", dtype=torch.float32) / "ema.safetensors")
    assert all(torch.equal(v, load_file(family[0] / "ema.safetensors")[k]) for k, v in one.items())

    main(["export", *map(str, family), "--out", str(tmp_path / "soup"), "--fp32"])
    soup = load_file(tmp_path / "soup" / "ema.safetensors")
    members = [load_file(f / "ema.safetensors") for f in family]
    for key in ("stem.weight", "out.bias", "noise_embed.freqs"):
        mean = sum(m[key].double() for m in members) / 3
        torch.testing.assert_close(soup[key].double(), mean, rtol=0, atol=1e-6)
    assert not torch.equal(soup["stem.weight"], members[0]["stem.weight"])
    net = UNet(PRESETS["tiny"])
    net.load_state_dict(soup)  # a network the pipeline can load
    half = load_file(export_model(family, tmp_path / "half") / "ema.safetensors")
    assert half["stem.weight"].dtype == torch.float16


def test_unrelated_or_different_networks_are_not_averaged(family, tmp_path):
    torch.manual_seed(1)  # another initialisation: other Fourier frequencies
    stranger = model_folder(tmp_path / "stranger", UNet(PRESETS["tiny"]))
    with pytest.raises(GouacheError, match="fixed buffer noise_embed.freqs"):
        export_model([family[0], stranger], tmp_path / "bad")
    wider = UNet(PRESETS["tiny"].__class__.from_dict(PRESETS["tiny"].to_dict() | {"channels": [16, 48]}))
    with pytest.raises(GouacheError, match="different networks"):
        export_model([family[0], model_folder(tmp_path / "wider", wider)], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_exported_weights_get_the_permissions_of_any_new_file(family, tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        out = export_model(family[0], tmp_path / "shared")
        assert (out / "ema.safetensors").stat().st_mode & 0o777 == 0o644  # safetensors alone: 0600
        assert (out / "config.json").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
