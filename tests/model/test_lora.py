"""Low-rank adapters: off means untouched bit for bit, merged means the same network, the wrong
base is refused, and the default adapter on the shipped network stays small."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gouache.errors import GouacheError
from gouache.model.lora import (
    DEFAULT_RANK,
    LoRALayer,
    adapter_tensors,
    add_adapter,
    merge,
    set_scale,
)
from gouache.model.unet import PRESETS, UNet
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.store.adapters import (
    AdapterInfo,
    apply_adapters,
    parse_lora_spec,
    read_adapter,
    save_adapter,
)
from gouache.store.checkpoint import export_model, load_network
from gouache.store.fingerprint import weights_fingerprint

OPTIONS = SamplingOptions(steps=3)


def _random_unet() -> UNet:
    """A tiny network whose zero-initialised output layers are made non-zero, so it paints something."""
    torch.manual_seed(0)
    net = UNet(PRESETS["tiny"]).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return net


def _inputs(net: UNet, batch: int = 2, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    cfg = net.cfg
    x = torch.randn(batch, 3, cfg.image_size, cfg.image_size, generator=g)
    cond = dict(tokens=torch.randn(batch, 5, cfg.text_dim, generator=g), mask=torch.ones(batch, 5, dtype=torch.bool),
                pooled=torch.randn(batch, cfg.text_dim, generator=g))
    return x, torch.rand(batch, generator=g), cond


def _trained_like(net: torch.nn.Module, name: str, seed: int) -> None:
    """Give adapter ``name`` non-zero B matrices, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in adapter_tensors(net, name).items():
            t.copy_(0.05 * torch.randn(t.shape, generator=g))


def _adapter_file(model: Path, folder: Path, *, seed: int = 0, rank: int = 4) -> Path:
    net, _ = load_network(model)
    add_adapter(net, "a", rank=rank, alpha=rank, convs=True)
    _trained_like(net, "a", seed)
    info = AdapterInfo(rank=rank, alpha=float(rank), convs=True, base_model=model.name,
                       base_sha256=weights_fingerprint(model))
    folder.mkdir(parents=True, exist_ok=True)
    return save_adapter(net, "a", info, folder / f"adapter{seed}.safetensors")


def test_adapters_sit_on_attention_and_convolutions_and_start_as_no_change():
    net = _random_unet()
    x, c, cond = _inputs(net)
    before = net(x, c, **cond)
    names = add_adapter(net, "a", rank=2, alpha=2)
    assert any(n.endswith(".attn.0.qkv") for n in names) and any(n.endswith(".conv2") for n in names)
    assert all(isinstance(net.get_submodule(n), LoRALayer) for n in names)
    assert len(add_adapter(UNet(PRESETS["tiny"]), "a", rank=2, alpha=2, convs=False)) < len(names)
    assert torch.equal(net(x, c, **cond), before)  # B starts at zero
    _trained_like(net, "a", 0)
    assert not torch.allclose(net(x, c, **cond), before)


def test_scale_zero_gives_the_base_bit_for_bit(tiny_model_dir, tiny_pipeline, text_encoder, tmp_path):
    adapter = _adapter_file(tiny_model_dir, tmp_path)
    base = tiny_pipeline.generate("red circle", OPTIONS, num_images=2, seed=3, progress=False).final
    off = Pipeline.load(tiny_model_dir, device="cpu", text_encoder=text_encoder, lora=[f"{adapter}:0"])
    on = Pipeline.load(tiny_model_dir, device="cpu", text_encoder=text_encoder, lora=[adapter])
    assert torch.equal(off.generate("red circle", OPTIONS, num_images=2, seed=3, progress=False).final, base)
    assert not torch.allclose(on.generate("red circle", OPTIONS, num_images=2, seed=3, progress=False).final, base)


def test_merged_equals_unmerged_with_several_adapters_and_scales():
    net = _random_unet()
    add_adapter(net, "a", rank=2, alpha=4)
    add_adapter(net, "b", rank=3, alpha=3, convs=False)
    _trained_like(net, "a", 1)
    _trained_like(net, "b", 2)
    set_scale(net, "a", 0.7)
    set_scale(net, "b", -0.5)
    x, c, cond = _inputs(net)
    with torch.no_grad():
        unmerged = net(x, c, **cond)
        merged = merge(net)(x, c, **cond)
    assert not any(isinstance(m, LoRALayer) for m in net.modules())
    assert set(net.state_dict()) == set(UNet(PRESETS["tiny"]).state_dict())
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)


def test_export_merge_lora_writes_the_adapted_model(tiny_model_dir, text_encoder, tmp_path):
    a, b = _adapter_file(tiny_model_dir, tmp_path, seed=0), _adapter_file(tiny_model_dir, tmp_path, seed=1)
    specs = [f"{a}:0.5", (b, 1.5)]
    merged = export_model(tiny_model_dir, tmp_path / "merged", dtype=torch.float32, lora=specs)
    assert set(load_file(merged / "ema.safetensors")) == set(load_file(tiny_model_dir / "ema.safetensors"))
    on_top = Pipeline.load(tiny_model_dir, device="cpu", text_encoder=text_encoder, lora=specs)
    folded = Pipeline.load(merged, device="cpu", text_encoder=text_encoder)
    one, two = (p.generate("blue square", OPTIONS, seed=0, progress=False).final for p in (on_top, folded))
    torch.testing.assert_close(one, two, rtol=1e-4, atol=1e-4)
    with pytest.raises(GouacheError, match="name one run or model folder"):
        export_model([tiny_model_dir, tiny_model_dir], tmp_path / "two", lora=specs)


def test_an_adapter_for_other_weights_is_refused_by_name(tiny_model_dir, tmp_path):
    adapter = _adapter_file(tiny_model_dir, tmp_path)
    other = tmp_path / "other_model"
    shutil.copytree(tiny_model_dir, other)
    weights = load_file(other / "ema.safetensors")
    weights["stem.weight"] = weights["stem.weight"] + 1e-3  # the same shape, other weights
    save_file(weights, other / "ema.safetensors")
    net, _ = load_network(other)
    with pytest.raises(GouacheError, match=f"made for base model '{tiny_model_dir.name}'.*not for .*other_model"):
        apply_adapters(net, other, [adapter])


def test_damaged_or_foreign_adapter_files_are_one_line_errors(tiny_model_dir, tmp_path):
    adapter = _adapter_file(tiny_model_dir, tmp_path)
    with pytest.raises(GouacheError, match="no such adapter"):
        read_adapter(tmp_path / "missing.safetensors")
    adapter.with_suffix(".json").write_text("{not json")
    with pytest.raises(GouacheError, match="adapter config .*adapter0.json: not valid JSON"):
        read_adapter(adapter)
    adapter.with_suffix(".json").unlink()
    with pytest.raises(GouacheError, match="needs its .json beside it"):
        read_adapter(adapter)
    info = {"rank": 0, "alpha": 1.0, "convs": True, "base_model": "m", "base_sha256": "0" * 64}
    adapter.with_suffix(".json").write_text(json.dumps(info))
    with pytest.raises(GouacheError, match="rank must be at least 1"):
        read_adapter(adapter)


def test_lora_specs_read_a_scale_after_the_last_colon():
    assert parse_lora_spec("runs/a/adapter.safetensors:0.5") == (Path("runs/a/adapter.safetensors"), 0.5)
    assert parse_lora_spec("adapter.safetensors") == (Path("adapter.safetensors"), 1.0)
    assert parse_lora_spec("odd:name.safetensors") == (Path("odd:name.safetensors"), 1.0)
    assert parse_lora_spec(("a.safetensors", -1)) == (Path("a.safetensors"), -1.0)
    for bad in ("a.safetensors:11", "a.safetensors:nan", ("a", True)):
        with pytest.raises(GouacheError, match="scale must be a number from -10 to 10"):
            parse_lora_spec(bad)


def test_the_default_adapter_on_the_shipped_network_is_under_5_mb(tmp_path):
    net = UNet(PRESETS["base"])  # the shipped emoji model's network
    add_adapter(net, "a", rank=DEFAULT_RANK, alpha=DEFAULT_RANK)
    info = AdapterInfo(rank=DEFAULT_RANK, alpha=float(DEFAULT_RANK), convs=True, base_model="emoji64",
                       base_sha256="0" * 64)
    path = save_adapter(net, "a", info, tmp_path / "adapter.safetensors")
    size = path.stat().st_size
    assert 1e6 < size < 5e6, size
    assert sum(p.numel() for p in adapter_tensors(net, "a").values()) < 0.06 * sum(
        p.numel() for n, p in net.named_parameters() if ".down." not in n and ".up." not in n)


def test_the_commands_take_adapters(tiny_model_dir, tmp_path, capsys):
    from gouache.cli.main import main

    adapter = _adapter_file(tiny_model_dir, tmp_path)
    main(["generate", "red circle", "--model", str(tiny_model_dir), "--steps", "2", "--out", str(tmp_path / "out"),
          "--lora", f"{adapter}:0.5", "--lora", str(adapter)])
    assert (tmp_path / "out" / "red-circle-seed0.png").exists()
    main(["export", str(tiny_model_dir), "--out", str(tmp_path / "merged"), "--merge-lora", f"{adapter}:0.5"])
    merged = load_file(tmp_path / "merged" / "ema.safetensors")
    base = load_file(tiny_model_dir / "ema.safetensors")
    assert merged["stem.weight"].dtype == torch.float16
    key = "down.0.res.0.conv1.weight"
    assert not torch.equal(merged[key].float(), base[key].half().float())
