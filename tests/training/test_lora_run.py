"""A real (tiny) LoRA run: only the adapter trains, a resumed run repeats an uninterrupted one,
and what it writes loads onto its base and no other."""
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gouache.data.imagefolder import load_imagefolder
from gouache.errors import GouacheError
from gouache.model.lora import LoRALayer
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.store.adapters import read_adapter
from gouache.store.fingerprint import weights_fingerprint
from gouache.training.config import LORA_DEFAULTS, TrainConfig, load_train_config
from gouache.training.train import train


def lora_cfg(data: Path, out: Path, init: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), init=str(init), lora=2, steps=6, batch_size=8, lr=1e-2, warmup=2,
                log_every=2, checkpoint_every=3, sample_every=0, eval_every=0, sample_steps=2)
    return TrainConfig.from_dict(base | kw)


def _run(cfg: TrainConfig, data, text_encoder, **kw):
    return train(cfg, data=data, text_encoder=text_encoder, progress=False, **kw)


def test_only_the_adapter_trains_and_the_base_stays_as_it_was(shapes_dir, tiny_model_dir, tmp_path, text_encoder,
                                                               monkeypatch):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    seen = {}
    import gouache.training.train as train_module

    class Spy(train_module.Trainer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            seen["trainer"] = self

    monkeypatch.setattr(train_module, "Trainer", Spy)
    result = _run(lora_cfg(shapes_dir, tmp_path / "run", tiny_model_dir), data, text_encoder)
    assert result.step == 6
    t = seen["trainer"]
    trainable = {n for n, p in t.net.named_parameters() if p.requires_grad}
    assert trainable and all(".down." in n or ".up." in n for n in trainable)
    optimised = {id(p) for g in t.opt.param_groups for p in g["params"]}
    assert optimised == {id(p) for p in t.net.parameters() if p.requires_grad}
    base = load_file(tiny_model_dir / "ema.safetensors")
    for name, module in t.net.named_modules():  # every base weight, wrapped or not, is the base's
        if isinstance(module, LoRALayer):
            assert torch.equal(module.base.weight, base[f"{name}.weight"].float())
    assert torch.equal(t.net.stem.weight, base["stem.weight"].float())
    info, tensors = read_adapter(tmp_path / "run")  # the run folder leads to its latest adapter
    assert info.rank == 2 and info.base_sha256 == weights_fingerprint(tiny_model_dir)
    assert any(v.abs().max() > 0 for k, v in tensors.items() if k.endswith(".up"))  # it learned something
    assert not (tmp_path / "run" / "checkpoints" / "step-00000006" / "ema.safetensors").exists()


def test_resume_of_a_lora_run_repeats_an_uninterrupted_one(shapes_dir, tiny_model_dir, tmp_path, text_encoder):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    full = _run(lora_cfg(shapes_dir, tmp_path / "full", tiny_model_dir), data, text_encoder)
    first = _run(lora_cfg(shapes_dir, tmp_path / "cut", tiny_model_dir, steps=3), data, text_encoder)
    rest = _run(lora_cfg(shapes_dir, tmp_path / "cut", tiny_model_dir), data, text_encoder, resume=tmp_path / "cut")
    assert rest.step == 6
    assert first.losses + rest.losses == full.losses
    for name in ("adapter.safetensors", "adapter_raw.safetensors"):
        a = (tmp_path / "full" / "checkpoints" / "step-00000006" / name).read_bytes()
        b = (tmp_path / "cut" / "checkpoints" / "step-00000006" / name).read_bytes()
        assert a == b


def test_the_tuned_adapter_paints_on_its_base_and_is_refused_by_another(shapes_dir, tiny_model_dir, tmp_path,
                                                                         text_encoder):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    _run(lora_cfg(shapes_dir, tmp_path / "run", tiny_model_dir, steps=3), data, text_encoder)
    opts = SamplingOptions(steps=3)
    plain = Pipeline.load(tiny_model_dir, device="cpu", text_encoder=text_encoder)
    tuned = Pipeline.load(tiny_model_dir, device="cpu", text_encoder=text_encoder, lora=[tmp_path / "run"])
    a, b = (p.generate("red circle", opts, seed=0, progress=False).final for p in (plain, tuned))
    assert not torch.allclose(a, b)
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    weights = load_file(other / "ema.safetensors")
    weights["out.bias"] = weights["out.bias"] + 0.01
    save_file(weights, other / "ema.safetensors")
    with pytest.raises(GouacheError, match="was made for base model"):
        Pipeline.load(other, device="cpu", text_encoder=text_encoder, lora=[tmp_path / "run"])
    with pytest.raises(GouacheError, match="not this run's"):  # resuming onto another base
        _run(lora_cfg(shapes_dir, tmp_path / "run", other), data, text_encoder, resume=tmp_path / "run")


def test_lora_needs_a_base_and_brings_its_own_defaults(shapes_dir, tiny_model_dir):
    with pytest.raises(GouacheError, match="lora needs init"):
        TrainConfig(data=str(shapes_dir), lora=4)
    cfg = load_train_config(None, data=str(shapes_dir), lora=4, init=str(tiny_model_dir), steps=40)
    assert cfg.lr == LORA_DEFAULTS["lr"] and cfg.max_minutes == LORA_DEFAULTS["max_minutes"]
    assert cfg.steps == 40 and cfg.cooldown == 8  # what is given wins; the cool-down follows it
    assert load_train_config(None, data=str(shapes_dir)).lr == TrainConfig().lr  # no LoRA: as before
