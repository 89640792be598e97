"""Prior preservation: the base's own pictures are painted once from a fixed seed and cached,
every batch holds them beside the new pictures, a step minimises the new pictures' mean loss
plus the weight times the base pictures', and a run with them resumes exactly. (Whether it
keeps the base better is measured at full size in docs/lora.md: at this tiny size, 8 or 16
steps on a random network, it drifted less on the base's prompts for 9 of 10 seeds and
steps tried, not for all.)"""
import copy
from pathlib import Path

import pytest
import torch

from gouache.data.imagefolder import load_imagefolder
from gouache.data.prompts import CaptionTable
from gouache.data.sources import PriorSource
from gouache.errors import GouacheError
from gouache.images import to_uint8
from gouache.model.denoiser import Denoiser
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.training.config import TrainConfig
from gouache.training.lora_run import LoRARun
from gouache.training.prior import (
    PriorOptions,
    paint_prior,
    prior_loss_weights,
    with_prior,
)
from gouache.training.train import Trainer, train

PROMPTS = ("blue square", "green triangle")


def test_the_base_paints_its_pictures_from_a_fixed_seed_once_and_they_are_cached(tiny_model_dir, tmp_path,
                                                                                 text_encoder):
    options = PriorOptions(count=3, prompts=PROMPTS, steps=2, seed=5)
    cache = tmp_path / "run" / "prior.safetensors"
    first = paint_prior(tiny_model_dir, options, encoder=text_encoder, device=torch.device("cpu"), cache=cache)
    assert first.captions == ["blue square", "green triangle", "blue square"]  # the prompts cycle
    pipe = Pipeline.load(tiny_model_dir, device="cpu", text_encoder=text_encoder)
    alone = pipe.generate("green triangle", SamplingOptions(steps=2), seed=6, progress=False).final
    assert torch.equal(first.images[1], to_uint8(alone)[0])  # picture k from seed + k, whatever the batch
    stamp = cache.stat().st_mtime_ns
    again = paint_prior(tiny_model_dir, options, encoder=text_encoder, device=torch.device("cpu"), cache=cache)
    assert torch.equal(again.images, first.images) and cache.stat().st_mtime_ns == stamp  # read, not painted
    more = paint_prior(tiny_model_dir, PriorOptions(count=4, prompts=PROMPTS, steps=2, seed=5),
                       encoder=text_encoder, device=torch.device("cpu"), cache=cache)
    assert len(more) == 4 and torch.equal(more.images[:3], first.images)  # other options: painted again


def test_every_batch_holds_the_new_pictures_then_as_many_of_the_base(shapes_dir, text_encoder):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    g = torch.Generator().manual_seed(0)
    prior_images = torch.randint(0, 256, (5, 3, 16, 16), generator=g, dtype=torch.uint8)
    from gouache.data.imagefolder import CaptionedImages

    prior = CaptionedImages(images=prior_images, variants=[["blue square"]] * 5, probs=[[1.0]] * 5)
    mixed = with_prior(data, prior)
    table = CaptionTable.build(mixed, text_encoder)
    source = PriorSource(mixed, table, len(data))
    images, ids = source.draw(6, generator=g, dropout=0.0)
    assert images.shape == (12, 3, 16, 16)
    new_captions = {c for v in data.variants for c in v}
    assert all(table.captions[i] in new_captions for i in ids[:6])
    assert all(table.captions[i] == "blue square" for i in ids[6:])
    assert all(any(torch.equal(im, p) for p in prior_images) for im in images[6:])
    w = prior_loss_weights(6, 0.5)
    assert torch.allclose(w[:6].sum(), torch.tensor(1.0)) and torch.allclose(w[6:].sum(), torch.tensor(0.5))


def test_prior_options_are_checked_once(tiny_model_dir, shapes_dir):
    with pytest.raises(GouacheError, match="lora_prior needs lora"):
        TrainConfig(data=str(shapes_dir), lora_prior=8)
    with pytest.raises(GouacheError, match="lora_prior_weight"):
        TrainConfig(data=str(shapes_dir), init=str(tiny_model_dir), lora=2, lora_prior=8, lora_prior_weight=-1)
    with pytest.raises(GouacheError, match="prompts"):
        PriorOptions(count=4, prompts=())


def _cfg(shapes_dir: Path, out: Path, init: Path, **kw) -> TrainConfig:
    base = dict(data=str(shapes_dir), out=str(out), init=str(init), lora=2, steps=8, batch_size=8, lr=3e-2,
                warmup=0, log_every=2, checkpoint_every=4, sample_every=0, eval_every=0, ema_decay=0.0,
                lora_prior_prompts=PROMPTS)
    return TrainConfig.from_dict(base | kw)


def test_a_run_with_the_prior_resumes_exactly(shapes_dir, tiny_model_dir, tmp_path, text_encoder):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    run = dict(data=data, text_encoder=text_encoder, progress=False)
    full = train(_cfg(shapes_dir, tmp_path / "full", tiny_model_dir, lora_prior=8), **run)
    assert (tmp_path / "full" / "prior.safetensors").exists()
    first = train(_cfg(shapes_dir, tmp_path / "cut", tiny_model_dir, lora_prior=8, steps=4), **run)
    rest = train(_cfg(shapes_dir, tmp_path / "cut", tiny_model_dir, lora_prior=8), resume=tmp_path / "cut", **run)
    assert first.losses + rest.losses == full.losses
    name = "checkpoints/step-00000008/adapter.safetensors"
    assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "cut" / name).read_bytes()


def test_a_step_trains_on_the_new_mean_plus_weight_times_the_prior_mean(shapes_dir, tiny_model_dir, tmp_path,
                                                                         text_encoder):
    """The loss a step minimises, recomputed by hand from the same draws: DreamBooth's sum."""
    cfg = _cfg(shapes_dir, tmp_path / "run", tiny_model_dir, lora_prior=6, lora_prior_weight=0.3, batch_size=4)
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    options = PriorOptions.from_config(cfg)
    mixed = with_prior(data, paint_prior(tiny_model_dir, options, encoder=text_encoder,
                                         device=torch.device("cpu"), cache=tmp_path / "prior.safetensors"))
    cfg.model = LoRARun(cfg).model_config()
    trainer = Trainer(cfg, mixed, CaptionTable.build(mixed, text_encoder), torch.device("cpu"), prior=6)
    net = copy.deepcopy(trainer.net)  # the step's loss is the network's before its update
    gens = {k: g.get_state() for k, g in trainer.gen.items()}
    loss = trainer.step()
    for k, state in gens.items():
        trainer.gen[k].set_state(state)
    images, ids = trainer.source.draw(4, generator=trainer.gen["data"], dropout=cfg.caption_dropout)
    assert images.shape[0] == 8 and (ids[4:] > 0).any()
    sigma = cfg.model.schedule.sample_training_sigmas(8, generator=trainer.gen["noise"])
    noise = torch.randn((8, 3, 16, 16), generator=trainer.gen["noise"])
    with torch.no_grad():
        losses = Denoiser(net, sigma_data=cfg.model.schedule.sigma_data).loss(
            images.float() / 127.5 - 1, noise, sigma, **trainer.source.cond(ids, torch.device("cpu")))
    assert loss == pytest.approx(float(losses[:4].mean() + 0.3 * losses[4:].mean()), rel=1e-5)


def test_a_run_hashes_its_base_once(shapes_dir, tiny_model_dir, tmp_path, text_encoder, monkeypatch):
    import gouache.training.lora_run as lora_run
    import gouache.training.prior as prior

    hashed = []
    for module in (lora_run, prior):
        real = module.weights_fingerprint
        monkeypatch.setattr(module, "weights_fingerprint", lambda folder, real=real: hashed.append(folder) or real(folder))
    cfg = _cfg(shapes_dir, tmp_path / "run", tiny_model_dir, lora_prior=2, steps=1)
    train(cfg, data=load_imagefolder(shapes_dir, size=16, progress=False), text_encoder=text_encoder,
          progress=False)
    assert len(hashed) == 1 and (tmp_path / "run" / "prior.safetensors").exists()
