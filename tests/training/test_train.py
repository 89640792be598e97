"""A real (tiny) training run on real pictures: it learns, it resumes exactly, it survives crashes."""
import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gouache.data.imagefolder import load_imagefolder
from gouache.data.prompts import CaptionTable
from gouache.errors import GouacheError
from gouache.model.config import ModelConfig
from gouache.model.unet import PRESETS, UNet
from gouache.sampling.options import SamplingOptions
from gouache.store.checkpoint import load_weights, resolve_model_dir
from gouache.training.config import TrainConfig
from gouache.training.heldout import HeldOut
from gouache.training.train import Trainer, train


def tiny_cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), model=ModelConfig(unet=PRESETS["tiny"]), steps=6,
                batch_size=8, lr=1e-3, warmup=2, log_every=2, checkpoint_every=3, sample_every=0,
                eval_every=0, sample_steps=2)
    return TrainConfig.from_dict(base | kw)


def test_a_run_out_of_time_ends_cooled_down(shapes_dir, tmp_path, text_encoder, monkeypatch):
    import types

    import gouache.training.loop as loop_module

    clock = iter(0.1 * k for k in range(10**6))  # a step takes 0.1 s whatever else the machine does
    monkeypatch.setattr(loop_module, "time", types.SimpleNamespace(perf_counter=lambda: next(clock),
                                                                    time=time.time))
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    cfg = tiny_cfg(shapes_dir, tmp_path / "run", steps=10**6, cooldown=5 * 10**5, max_minutes=0.05,
                   log_every=1, checkpoint_every=10**6)
    result = train(cfg, data=data, text_encoder=text_encoder, progress=False)
    assert 10 < result.step < 30 and cfg.steps == 10**6  # 3 s of 0.1 s steps; the caller's config as it was
    last_lr = float((tmp_path / "run" / "log.csv").read_text().splitlines()[-1].split(",")[3])
    assert last_lr < 0.2 * cfg.lr  # not stopped at the peak rate by the time limit


def test_loss_falls_on_real_pictures(emoji_fixture, tmp_path, text_encoder):
    data = load_imagefolder(emoji_fixture, size=16, split="train", progress=False)
    cfg = tiny_cfg(emoji_fixture, tmp_path / "run", steps=80, lr=2e-3, warmup=10, ema_decay=0.9,
                   checkpoint_every=1000)
    probe = HeldOut(data, text_encoder, torch.device("cpu"))  # fixed noise: comparable numbers
    torch.manual_seed(0)
    before = probe.loss(UNet(cfg.model.unet))
    train(cfg, data=data, text_encoder=text_encoder, progress=False)
    net = UNet(cfg.model.unet)
    load_weights(net, resolve_model_dir(tmp_path / "run") / "ema.safetensors")
    after = probe.loss(net)
    assert after < 0.8 * before, (before, after)
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("time,step,loss") and len(log) > 5


def test_cpu_bf16_runs_the_network_in_bf16_and_follows_the_fp32_run(shapes_dir, tmp_path, text_encoder):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    table = CaptionTable.build(data, text_encoder)
    dtypes: dict[bool, set] = {}
    losses = {}
    for on in (False, True):
        trainer = Trainer(tiny_cfg(shapes_dir, tmp_path / str(on), cpu_bf16=on), data, table,
                          torch.device("cpu"))
        seen = dtypes.setdefault(on, set())
        trainer.net.stem.register_forward_hook(lambda m, i, o, seen=seen: seen.add(o.dtype))
        losses[on] = [float(trainer.step()) for _ in range(4)]
    assert dtypes == {False: {torch.float32}, True: {torch.bfloat16}}
    # the same draws, so bf16 rounding is the only difference: close, and not equal
    assert losses[True] != losses[False]
    assert losses[True] == pytest.approx(losses[False], rel=0.05)
    assert TrainConfig().cpu_bf16 is False  # slow on CPUs without bf16 instructions


def test_resume_repeats_an_uninterrupted_run(shapes_dir, tmp_path, text_encoder):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    full = train(tiny_cfg(shapes_dir, tmp_path / "full"), data=data, text_encoder=text_encoder,
                 progress=False)
    first = train(tiny_cfg(shapes_dir, tmp_path / "cut", steps=3), data=data, text_encoder=text_encoder,
                  progress=False)
    rest = train(tiny_cfg(shapes_dir, tmp_path / "cut"), resume=tmp_path / "cut", data=data,
                 text_encoder=text_encoder, progress=False)
    assert rest.step == 6
    assert first.losses + rest.losses == full.losses
    a = (tmp_path / "full" / "checkpoints" / "step-00000006" / "ema.safetensors").read_bytes()
    b = (tmp_path / "cut" / "checkpoints" / "step-00000006" / "ema.safetensors").read_bytes()
    assert a == b


@pytest.mark.slow
def test_compiled_training_matches_eager_and_saves_the_same_keys(shapes_dir, tmp_path, text_encoder, capsys):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    eager = train(tiny_cfg(shapes_dir, tmp_path / "eager", steps=3), data=data, text_encoder=text_encoder,
                  progress=False)
    compiled = train(tiny_cfg(shapes_dir, tmp_path / "compiled", steps=3, compile="default"), data=data,
                     text_encoder=text_encoder, progress=False)
    assert "torch.compile" not in capsys.readouterr().err  # it compiled: no fallback to eager
    assert compiled.losses == pytest.approx(eager.losses, rel=1e-3)
    net = UNet(PRESETS["tiny"])  # a plain network loads the compiled run's weights: same keys
    load_weights(net, tmp_path / "compiled" / "checkpoints" / "step-00000003" / "model.safetensors")


def test_ctrl_c_stops_after_the_step_with_a_checkpoint(shapes_dir, tmp_path, text_encoder, monkeypatch):
    import os
    import signal

    from gouache.training.train import Trainer

    step = Trainer.step

    def interrupted_at_4(self):
        loss = step(self)
        if self.step_no == 4:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends
        return loss

    monkeypatch.setattr(Trainer, "step", interrupted_at_4)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under a shell's background job
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    result = train(tiny_cfg(shapes_dir, tmp_path / "run", steps=100, checkpoint_every=1000), data=data,
                   text_encoder=text_encoder, progress=False)
    assert result.stopped and result.step == 4
    assert resolve_model_dir(tmp_path / "run").name == "step-00000004"
    assert signal.getsignal(signal.SIGINT) is before  # the handler restored


def test_checkpoint_round_trip_and_crash_safety(shapes_dir, tmp_path, text_encoder):
    run = tmp_path / "run"
    train(tiny_cfg(shapes_dir, run), text_encoder=text_encoder, progress=False)
    folder = resolve_model_dir(run)
    assert folder.name == "step-00000006"
    assert json.loads((folder / "config.json").read_text())["unet"]["channels"] == [16, 32]
    # A crash in the middle of the next checkpoint leaves a temp folder: latest is untouched.
    (run / "checkpoints" / ".tmp-step-00000009").mkdir()
    (run / "checkpoints" / ".tmp-step-00000009" / "ema.safetensors").write_bytes(b"half")
    assert resolve_model_dir(run) == folder
    from gouache.sampling.pipeline import Pipeline

    pipe = Pipeline.load(run, device="cpu", text_encoder=text_encoder)
    assert pipe.generate("red circle", SamplingOptions(steps=2), progress=False).images[0].size == (16, 16)


def test_checkpoint_of_another_shape_is_refused(shapes_dir, tmp_path, text_encoder):
    run = tmp_path / "run"
    train(tiny_cfg(shapes_dir, run, steps=3), text_encoder=text_encoder, progress=False)
    folder = resolve_model_dir(run)
    other = UNet(PRESETS["small"])
    with pytest.raises(GouacheError, match="weights of another model shape"):
        load_weights(other, folder / "ema.safetensors")
    (folder / "ema.safetensors").unlink()
    with pytest.raises(GouacheError, match="ema.safetensors is missing"):
        load_weights(other, folder / "ema.safetensors")


def test_bad_data_gets_a_message_naming_it(tmp_path, shapes_dir, text_encoder):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GouacheError, match="no images found in .*empty"):
        train(tiny_cfg(empty, tmp_path / "r1"), text_encoder=text_encoder, progress=False)

    side = tmp_path / "sidecar"
    side.mkdir()
    shutil.copy(next((shapes_dir / "images").glob("*.png")), side / "a.png")
    with pytest.raises(GouacheError, match="a.png: image has no caption"):
        train(tiny_cfg(side, tmp_path / "r2"), text_encoder=text_encoder, progress=False)

    (side / "a.txt").write_text("red circle")
    (side / "b.png").write_bytes((side / "a.png").read_bytes()[:60])  # truncated
    (side / "b.txt").write_text("blue square")
    with pytest.raises(GouacheError, match="cannot read image .*b.png"):
        train(tiny_cfg(side, tmp_path / "r3"), text_encoder=text_encoder, progress=False)


def test_resolution_the_network_cannot_divide():
    with pytest.raises(GouacheError, match="image_size 15 is not divisible by 2"):
        PRESETS["tiny"].from_dict(PRESETS["tiny"].to_dict() | {"image_size": 15})


def test_divergence_stops_with_the_last_finite_checkpoint(shapes_dir, tmp_path, text_encoder, monkeypatch):
    from gouache.model.denoiser import Denoiser

    loss, calls = Denoiser.loss, []

    def blows_up_at_step_5(self, *args, **kwargs):
        calls.append(1)
        out = loss(self, *args, **kwargs)
        return out * float("nan") if len(calls) >= 5 else out

    monkeypatch.setattr(Denoiser, "loss", blows_up_at_step_5)
    run = tmp_path / "run"
    with pytest.raises(GouacheError, match="training diverged at step 5: .*nan.*step-00000004.* is kept.*lr"):
        train(tiny_cfg(shapes_dir, run, steps=10, checkpoint_every=2, log_every=1), text_encoder=text_encoder,
              progress=False)
    folder = resolve_model_dir(run)
    assert folder.name == "step-00000004"
    assert all(torch.isfinite(t).all() for t in load_file(folder / "ema.safetensors").values())
    rows = (run / "log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[1]) for r in rows] == [1, 2, 3, 4] and "nan" not in "".join(rows)


def test_a_non_finite_gradient_counts_as_divergence(shapes_dir, tmp_path, text_encoder, monkeypatch):
    """The loss of the step can still be finite when its gradient is not: the weights are broken."""
    import gouache.training.train as train_module

    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(train_module.torch.nn.utils, "clip_grad_norm_",
                        lambda params, max_norm: clip(params, max_norm) * float("inf"))
    with pytest.raises(GouacheError, match="training diverged at step 1: .*no checkpoint was written"):
        train(tiny_cfg(shapes_dir, tmp_path / "run"), text_encoder=text_encoder, progress=False)


def test_the_checkpoint_comes_before_the_sample_grid(shapes_dir, tmp_path, text_encoder, monkeypatch):
    import gouache.training.train as train_module

    def grid_fails(*args, **kwargs):
        raise RuntimeError("the grid failed")

    monkeypatch.setattr(train_module, "_sample_grid", grid_fails)
    with pytest.raises(RuntimeError, match="the grid failed"):
        train(tiny_cfg(shapes_dir, tmp_path / "run", steps=4, checkpoint_every=2, sample_every=2),
              text_encoder=text_encoder, progress=False)
    assert resolve_model_dir(tmp_path / "run").name == "step-00000002"  # the step's weights are safe


def test_init_fine_tunes_from_a_model(shapes_dir, tmp_path, text_encoder):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    train(tiny_cfg(shapes_dir, tmp_path / "base", steps=3), data=data, text_encoder=text_encoder,
          progress=False)
    from gouache.store.checkpoint import export_model

    model = export_model(tmp_path / "base", tmp_path / "model")  # fp16 EMA only, as shipped
    ft = train(tiny_cfg(shapes_dir, tmp_path / "ft", steps=2, seed=1, init=str(model)), data=data,
               text_encoder=text_encoder, progress=False)
    assert ft.step == 2  # a fresh run: steps count from 0
    start = load_file(model / "ema.safetensors")["stem.weight"].float()
    after = load_file(resolve_model_dir(tmp_path / "ft") / "ema.safetensors")["stem.weight"]
    torch.manual_seed(1)  # what seed 1 alone would have started from
    fresh = UNet(PRESETS["tiny"]).stem.weight.detach()
    assert (after - start).abs().max() < 1e-2 < (fresh - start).abs().max()
    with pytest.raises(GouacheError, match="another network shape"):
        other = ModelConfig(unet=PRESETS["tiny"].__class__.from_dict(PRESETS["tiny"].to_dict() | {"channels": [8, 16]}))
        train(tiny_cfg(shapes_dir, tmp_path / "bad", steps=1, init=str(model), model=other), data=data,
              text_encoder=text_encoder, progress=False)


def test_balance_by_reaches_the_draws_and_a_missing_column_is_refused(emoji_fixture, tmp_path, text_encoder):
    data = load_imagefolder(emoji_fixture, size=16, split="train", progress=False)
    data.records = [r | {"base": "one"} if k < 10 else r for k, r in enumerate(data.records)]
    groups = len({r["base"] for r in data.records})
    table = CaptionTable.build(data, text_encoder)
    trainer = Trainer(tiny_cfg(emoji_fixture, tmp_path, balance_by="base"), data, table, torch.device("cpu"))
    idx = torch.multinomial(trainer.source.weights, 20_000, replacement=True,
                            generator=torch.Generator().manual_seed(0))
    share = float((idx < 10).float().mean())
    assert abs(share - 1 / groups) < 0.01, (share, groups)  # ten images, one group (uniform: 1/3)
    with pytest.raises(GouacheError, match="cannot balance by 'colour'"):
        Trainer(tiny_cfg(emoji_fixture, tmp_path, balance_by="colour"), data, table, torch.device("cpu"))


def test_a_resumed_run_logs_each_step_once_and_clears_stale_temp_folders(shapes_dir, tmp_path, text_encoder):
    """Killed after logging steps 4-6 but before their checkpoint, and after a checkpoint write
    began: the resume redoes 4-6, and log.csv and the checkpoints folder show each step once."""
    import csv

    data = load_imagefolder(shapes_dir, size=16, progress=False)
    run = tmp_path / "run"
    train(tiny_cfg(shapes_dir, run, log_every=1), data=data, text_encoder=text_encoder, progress=False)
    shutil.rmtree(run / "checkpoints" / "step-00000006")  # the crash: step 3 is the last checkpoint
    (run / "latest.txt").write_text("checkpoints/step-00000003\n")
    for stale in (".tmp-step-00000006", ".tmp-step-00000042"):  # a half-written checkpoint
        (run / "checkpoints" / stale).mkdir()
        (run / "checkpoints" / stale / "ema.safetensors").write_bytes(b"half")
    train(tiny_cfg(shapes_dir, run, log_every=1, steps=3), resume=run, data=data, text_encoder=text_encoder,
          progress=False)  # resumed at its last step: nothing to do but start
    assert not list((run / "checkpoints").glob(".tmp-*"))  # cleared when the run starts
    (run / "checkpoints" / ".tmp-step-00000042").mkdir()
    train(tiny_cfg(shapes_dir, run, log_every=1), resume=run, data=data, text_encoder=text_encoder,
          progress=False)
    assert not list((run / "checkpoints").glob(".tmp-*"))  # and when a checkpoint is saved
    with open(run / "log.csv", newline="") as f:
        steps = [int(row["step"]) for row in csv.DictReader(f)]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_compiler_that_fails_in_the_first_step_falls_back_to_the_eager_run(shapes_dir, tmp_path,
                                                                             text_encoder, monkeypatch, capsys):
    """Compiling happens at the first call: a failure there costs one line, not the run, and the
    step is redone from the same random state, so the run is the eager run."""
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    eager = train(tiny_cfg(shapes_dir, tmp_path / "eager", steps=3), data=data, text_encoder=text_encoder,
                  progress=False)
    calls = []

    def compile_that_fails_when_run(module, **kwargs):
        def run(*args, **kw):
            calls.append(kwargs)
            raise RuntimeError("inductor: lowering failed")
        return run

    monkeypatch.setattr(torch, "compile", compile_that_fails_when_run)
    capsys.readouterr()
    forced = train(tiny_cfg(shapes_dir, tmp_path / "forced", steps=3, compile="default"), data=data,
                   text_encoder=text_encoder, progress=False)
    assert calls == [{"mode": "default", "dynamic": False}]  # tried once, then never again
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "torch.compile" in ln]
    assert len(warned) == 1 and "training eagerly" in warned[0] and "lowering failed" in warned[0]
    assert forced.step == 3 and forced.losses == eager.losses


def test_compile_and_resident_data_are_off_on_the_cpu_unless_asked(shapes_dir, tmp_path, text_encoder):
    from gouache.data.resident import ResidentSource
    from gouache.data.sources import MemorySource

    data = load_imagefolder(shapes_dir, size=16, progress=False)
    table = CaptionTable.build(data, text_encoder)
    plain = Trainer(tiny_cfg(shapes_dir, tmp_path), data, table, torch.device("cpu"))
    assert (plain.cfg.compile, plain.cfg.resident_data) == ("auto", "auto")
    assert not plain.runner.active and isinstance(plain.source, MemorySource)
    forced = Trainer(tiny_cfg(shapes_dir, tmp_path, resident_data="on"), data, table, torch.device("cpu"))
    assert isinstance(forced.source, ResidentSource)
    with pytest.raises(GouacheError, match="cannot recolour"):
        Trainer(tiny_cfg(shapes_dir, tmp_path, resident_data="on", recolour=0.5), data, table, torch.device("cpu"))
    with pytest.raises(GouacheError, match='compile must be "auto" or "off"'):
        tiny_cfg(shapes_dir, tmp_path, compile="fast")
    assert tiny_cfg(shapes_dir, tmp_path, compile=True).compile == "default"  # a recipe from before the modes
    assert tiny_cfg(shapes_dir, tmp_path, compile=False).compile == "off"


def test_a_step_never_reads_a_number_back_from_the_device(shapes_dir, tmp_path, text_encoder, monkeypatch):
    """Inside a step nothing waits for the device: no .item(), float(), int(), bool() or .tolist()
    of a tensor (each one a host sync on CUDA); the loss comes back as a tensor."""
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    table = CaptionTable.build(data, text_encoder)
    trainer = Trainer(tiny_cfg(shapes_dir, tmp_path, resident_data="on"), data, table, torch.device("cpu"))
    trainer.step()  # first steps may set things up
    reads = []
    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "__index__"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _n=name, _r=real: reads.append(_n) or _r(self, *a))
    loss = trainer.step()
    monkeypatch.undo()
    assert reads == [] and isinstance(loss, torch.Tensor) and loss.shape == () and not loss.requires_grad


def test_losses_are_read_back_at_log_rows_only(shapes_dir, tmp_path, text_encoder, monkeypatch):
    import gouache.training.loop as loop_module

    read, real = [], loop_module._read_back
    monkeypatch.setattr(loop_module, "_read_back", lambda run, pending: read.append(len(pending))
                        or real(run, pending))
    result = train(tiny_cfg(shapes_dir, tmp_path / "run", steps=8, log_every=4, checkpoint_every=8),
                   text_encoder=text_encoder, progress=False)
    assert read == [4, 4] and len(result.losses) == 8 and all(isinstance(x, float) for x in result.losses)


def test_divergence_between_log_rows_keeps_the_checkpoint_from_before_it(shapes_dir, tmp_path, text_encoder,
                                                                         monkeypatch):
    """NaN at step 5 is read back at step 8: the error names step 5, and the checkpoint of step 4
    is the one kept (steps 5 to 8 are never saved)."""
    from gouache.model.denoiser import Denoiser

    loss, calls = Denoiser.loss, []

    def blows_up_at_step_5(self, *args, **kwargs):
        calls.append(1)
        out = loss(self, *args, **kwargs)
        return out * float("nan") if len(calls) == 5 else out

    monkeypatch.setattr(Denoiser, "loss", blows_up_at_step_5)
    run = tmp_path / "run"
    with pytest.raises(GouacheError, match="training diverged at step 5: .*nan.*step-00000004.* is kept"):
        train(tiny_cfg(shapes_dir, run, steps=12, checkpoint_every=4, log_every=4), text_encoder=text_encoder,
              progress=False)
    assert len(calls) == 8  # it ran on to the read-back, and saved nothing of those steps
    assert resolve_model_dir(run).name == "step-00000004"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000004"]
    rows = (run / "log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[1]) for r in rows] == [4]


def test_resident_data_trains_as_in_memory_and_resumes_exactly(shapes_dir, tmp_path, text_encoder):
    data = load_imagefolder(shapes_dir, size=16, progress=False)
    loader = train(tiny_cfg(shapes_dir, tmp_path / "loader"), data=data, text_encoder=text_encoder, progress=False)
    on = dict(resident_data="on")
    full = train(tiny_cfg(shapes_dir, tmp_path / "full", **on), data=data, text_encoder=text_encoder,
                 progress=False)
    # the same images, captions and noise: only the prompts' padding (masked out) differs
    assert full.losses == pytest.approx(loader.losses, rel=1e-4)
    first = train(tiny_cfg(shapes_dir, tmp_path / "cut", steps=3, **on), data=data, text_encoder=text_encoder,
                  progress=False)
    rest = train(tiny_cfg(shapes_dir, tmp_path / "cut", **on), resume=tmp_path / "cut", data=data,
                 text_encoder=text_encoder, progress=False)
    assert first.losses + rest.losses == full.losses
    a = (tmp_path / "full" / "checkpoints" / "step-00000006" / "ema.safetensors").read_bytes()
    b = (tmp_path / "cut" / "checkpoints" / "step-00000006" / "ema.safetensors").read_bytes()
    assert a == b
