"""Scale-out: DDP over 2 Gloo processes, gradient accumulation, gradient checkpointing.

The 2-process run is checked against one process with the same global batch:
DDP averages the ranks' gradients, so the two must agree to float rounding.
"""
from __future__ import annotations

import math
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gouache.data.imagefolder import CaptionedImages, load_imagefolder
from gouache.data.prompts import CaptionTable
from gouache.model.config import ModelConfig
from gouache.model.text import PromptEmbedding
from gouache.model.unet import PRESETS, UNet
from gouache.training.config import TrainConfig
from gouache.training.train import Trainer, train

SAMPLE_PROMPTS = ("red circle", "blue square")


pytestmark = pytest.mark.usefixtures("one_thread")


class FrozenEncoder(torch.nn.Module):
    """The real MiniLM states of a fixed set of prompts, looked up: cheap to ship to workers."""

    def __init__(self, real, prompts: list[str]) -> None:
        super().__init__()
        self.name, self.max_length, self.dim = real.name, real.max_length, real.dim
        unique = sorted(set(prompts))
        emb = real.encode_many(unique)
        self.rows = {p: emb.index(slice(k, k + 1)) for k, p in enumerate(unique)}

    def forward(self, prompts: list[str]) -> PromptEmbedding:
        return PromptEmbedding.cat([self.rows[p] for p in prompts])

    def encode_many(self, prompts: list[str], **_) -> PromptEmbedding:
        return self(prompts)


def _config(out: Path, **kw) -> TrainConfig:
    base = dict(out=str(out), model=ModelConfig(unet=PRESETS["tiny"]), steps=4, batch_size=8,
                lr=2e-3, warmup=1, log_every=1, checkpoint_every=2, sample_every=0, eval_every=0,
                sample_prompts=SAMPLE_PROMPTS, sample_steps=2, device="cpu", seed=0)
    return TrainConfig(**(base | kw))


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()]).clone()


def _recording(trainer_cls=Trainer) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Patch ``Trainer.step`` to keep (weights, EMA weights) after every step."""
    snaps: list[tuple[torch.Tensor, torch.Tensor]] = []
    step = trainer_cls.step

    def recorded(self) -> float:
        loss = step(self)
        snaps.append((_flat(self.net), _flat(self.ema)))
        return loss

    trainer_cls.step = recorded
    return snaps


def _torchrun_env(rank: int, world: int, port: int) -> None:
    """The variables torchrun sets for one rank."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))


def _worker(rank: int, world: int, port: int, cfg: TrainConfig, data: CaptionedImages,
            encoder: FrozenEncoder, out: str) -> None:
    """One torchrun-style rank: env vars, then the ordinary ``train``."""
    _torchrun_env(rank, world, port)
    torch.set_num_threads(1)
    snaps = _recording()
    result = train(cfg, progress=False, data=data, text_encoder=encoder)
    torch.save({"snaps": snaps, "losses": result.losses, "step": result.step}, Path(out) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory, text_encoder) -> tuple[CaptionedImages, FrozenEncoder]:
    from gouache.data.build.shapes import build_shapes_dataset

    folder = tmp_path_factory.mktemp("dist") / "shapes"
    build_shapes_dataset(folder, size=16, per_caption=4, seed=0, progress=False)
    data = load_imagefolder(folder, size=16, progress=False)
    prompts = [c for v in data.variants for c in v] + ["", *SAMPLE_PROMPTS]
    return data, FrozenEncoder(text_encoder, prompts)


def test_two_gloo_processes_match_one(shapes_data, tmp_path: Path, monkeypatch) -> None:
    data, encoder = shapes_data
    # 2 ranks x grad_accum 2: each rank does two micro-batches of 2 images (the no_sync path),
    # and rank 0 alone draws sample grids and writes checkpoints and the log at steps 2 and 4.
    two = _config(tmp_path / "two", grad_accum=2, sample_every=2)
    mp.spawn(_worker, args=(2, _free_port(), two, data, encoder, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    import gouache.training.train as gt
    monkeypatch.setattr(gt.Trainer, "step", gt.Trainer.step)  # undone after the test
    snaps = _recording(gt.Trainer)
    one = train(_config(tmp_path / "one", steps=6), progress=False, data=data, text_encoder=encoder)

    for k in range(4):
        for a, b in zip(ranks[0]["snaps"][k], ranks[1]["snaps"][k]):
            assert torch.equal(a, b), f"ranks differ after step {k + 1}"
    diffs = [max(float((a - b).abs().max()) for a, b in zip(ranks[0]["snaps"][k], snaps[k]))
             for k in range(4)]
    moved = float((snaps[3][0] - snaps[0][0]).abs().max())
    print(f"\nmax |w_2proc - w_1proc| after steps 1-4: {['%.2e' % d for d in diffs]} "
          f"(weights moved up to {moved:.2e})")
    assert max(diffs) < 1e-5 < moved
    assert ranks[0]["losses"] == ranks[1]["losses"]  # the mean over ranks
    assert all(math.isclose(a, b, rel_tol=1e-4) for a, b in zip(ranks[0]["losses"], one.losses))

    run = tmp_path / "two"
    assert (run / "latest.txt").read_text().strip() == "checkpoints/step-00000004"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000002.png", "step-00000004.png"]
    assert len((run / "log.csv").read_text().splitlines()) == 1 + 4  # one writer: header + a row a step

    # Resume the 2-process run in 1 process: it continues where it stopped, as the 1-process run did.
    final = snaps[5][0]
    snaps.clear()
    more = train(_config(run, steps=6), resume=run, progress=False, data=data, text_encoder=encoder)
    assert more.step == 6 and len(more.losses) == 2 and all(math.isfinite(x) for x in more.losses)
    assert all(math.isclose(a, b, rel_tol=1e-4) for a, b in zip(more.losses, one.losses[4:]))
    resumed = float((snaps[-1][0] - final).abs().max())
    print(f"max |w| difference at step 6, resumed 2->1 process vs uninterrupted 1 process: {resumed:.2e}")
    assert resumed < 1e-5


def _decision_worker(rank: int, world: int, port: int, out: str) -> None:
    from gouache import distributed as dist

    _torchrun_env(rank, world, port)
    dist.init(torch.device("cpu"))
    # each rank's own clock reads differently; the time budget must take one of them on all
    shared = [dist.broadcast_float(10.0 + rank + 0.25), dist.any_rank(rank == 1)]
    torch.save(shared, Path(out) / f"decision{rank}.pt")


def test_ranks_share_rank_0s_clock_and_any_ranks_flag(tmp_path: Path) -> None:
    mp.spawn(_decision_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    assert [torch.load(tmp_path / f"decision{r}.pt") for r in range(2)] == [[10.25, True]] * 2


def _trainer(data: CaptionedImages, encoder, **kw) -> Trainer:
    cfg = _config(Path("unused"), **kw)
    return Trainer(cfg, data, CaptionTable.build(data, encoder), torch.device("cpu"))


def test_grad_accumulation_matches_one_batch(shapes_data) -> None:
    data, encoder = shapes_data
    whole, parts = _trainer(data, encoder), _trainer(data, encoder, grad_accum=4)
    for _ in range(3):
        assert math.isclose(whole.step(), parts.step(), rel_tol=1e-5)
    diff = float((_flat(whole.net) - _flat(parts.net)).abs().max())
    assert diff < 1e-5 < float((_flat(whole.net) - _flat(_trainer(data, encoder).net)).abs().max())


def test_grad_checkpointing_gives_the_same_gradients(monkeypatch) -> None:
    import gouache.model.unet as unet

    torch.manual_seed(0)
    net = UNet(replace(PRESETS["tiny"], dropout=0.1))
    for p in net.parameters():  # wake the zero-initialised layers so every gradient is non-zero
        p.data.add_(0.05 * torch.randn_like(p))
    x, c = torch.randn(3, 3, 16, 16), torch.randn(3)
    cond = dict(tokens=torch.randn(3, 5, 384), mask=torch.ones(3, 5, dtype=torch.bool),
                pooled=torch.randn(3, 384))
    calls = []
    real = unet.checkpoint
    monkeypatch.setattr(unet, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))

    def grads(enabled: bool) -> list[torch.Tensor]:
        net.set_grad_checkpointing(enabled).zero_grad()
        torch.manual_seed(1)  # the same dropout masks (checkpoint replays the RNG state)
        net(x, c, **cond).square().mean().backward()
        return [p.grad.clone() for p in net.parameters()]

    plain, checkpointed = grads(False), grads(True)
    assert calls, "checkpointing was not used"
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    with torch.no_grad():  # off in inference
        calls.clear()
        net(x, c, **cond)
        assert not calls


def test_trainer_turns_checkpointing_on(shapes_data) -> None:
    data, encoder = shapes_data
    assert _trainer(data, encoder, grad_checkpointing=True).net.grad_checkpointing
    assert not _trainer(data, encoder).net.grad_checkpointing
