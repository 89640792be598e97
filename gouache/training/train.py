"""Training: supervised denoising of captioned images.

Each step (Karras et al. 2022, section 5):
  1. draw a batch of images and, per image, one caption variant; replace about
     10% of captions by "" so the model also learns the unconditional case that
     classifier-free guidance needs;
  2. draw a noise level per image, ln(sigma) ~ N(P_mean, P_std^2), and noise the
     image: x = x0 + sigma n;
  3. ask the preconditioned denoiser for x0 given x, sigma and the caption, and
     take the EDM-weighted squared error per image (``Denoiser.loss``);
  4. AdamW with linear warm-up, gradient clipping, and an EMA copy of the
     weights, which is what sampling uses.

Prompt embeddings are computed once per unique caption before the first step
(or read from ``prompt_embeddings.safetensors`` beside the data).
All randomness comes from two generators (data, noise) seeded from the config
and saved in every checkpoint, so a resumed run repeats an uninterrupted one.

Data comes from a batch source (``data/sources.py``): an imagefolder in memory,
or WebDataset shards streamed when ``--data`` names .tar files (a resumed
streamed run sees freshly shuffled data, not exactly the uninterrupted run's).

Several processes (``torchrun --nproc-per-node N -m gouache train ...``): each
rank trains on its share of every global batch and DDP averages the gradients,
so a step equals one process's step on the whole batch; only rank 0 writes
checkpoints, samples and logs (see ``distributed.py``).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gouache import distributed as dist
from gouache.data.imagefolder import CaptionedImages, balanced_weights, load_imagefolder
from gouache.data.prompts import CaptionTable
from gouache.data.recolour import RecolourOptions, RecolourSource
from gouache.data.resident import ResidentSource, fits_on, resident_bytes
from gouache.data.shards import is_shard_spec
from gouache.data.sources import BatchSource, MemorySource, StreamSource
from gouache.device import pick_device
from gouache.errors import GouacheError
from gouache.images import grid, save_png
from gouache.model.denoiser import Denoiser
from gouache.model.text import TextEncoder
from gouache.model.unet import UNet
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.store.checkpoint import (
    clear_partial_checkpoints,
    load_train_state,
    load_weights,
    read_model_config,
    resolve_model_dir,
    save_checkpoint,
)
from gouache.store.files import check_output_folder, write_json
from gouache.training.compiling import CompiledNet, compile_mode
from gouache.training.config import TrainConfig
from gouache.training.ema import update_ema
from gouache.training.heldout import HeldOut
from gouache.training.log import StopSignal, TrainLog
from gouache.training.lora_run import LoRARun
from gouache.training.lr_schedule import TimeBudget, lr_at
from gouache.training.prior import (
    PRIOR_FILE,
    PriorOptions,
    PriorSource,
    paint_prior,
    prior_loss_weights,
    with_prior,
)

__all__ = ["train", "TrainResult"]


@dataclass
class TrainResult:
    run: Path  # the run folder
    step: int  # the last step done
    losses: list[float]  # the training loss of every step of this call (read back at each log row)
    images_per_second: float
    stopped: bool = False  # ended early by Ctrl-C or SIGTERM (a checkpoint was written)


def _resident(cfg: TrainConfig, data: CaptionedImages, table: CaptionTable, device: torch.device) -> bool:
    """Whether the images and prompt states go to the device (``TrainConfig.resident_data``)."""
    if cfg.resident_data == "on" and cfg.recolour > 0:
        raise GouacheError("resident_data = \"on\" cannot recolour: recolouring works on the CPU's images")
    if cfg.resident_data == "off" or cfg.recolour > 0:
        return False
    return cfg.resident_data == "on" or fits_on(device, resident_bytes(data, table))


class Trainer:
    """Holds the pieces of one run; ``step`` does one optimiser step."""

    def __init__(self, cfg: TrainConfig, data: CaptionedImages | BatchSource, table: CaptionTable | None,
                 device: torch.device, *, prior: int = 0) -> None:
        """``data`` is in-memory images with their ``table``, or any batch source (table None).
        ``prior``: the last this many images are the base's own (``lora_prior.py``): each batch
        then holds as many of them as of the others, weighted by ``cfg.lora_prior_weight``."""
        self.cfg, self.data, self.table, self.device = cfg, data, table, device
        if isinstance(data, CaptionedImages):
            new = len(data) - prior
            weights = balanced_weights(data.records[:new], cfg.balance_by) if cfg.balance_by else None
            self.source: BatchSource = PriorSource(data, table, new, weights) if prior else \
                MemorySource(data, table, weights)
            if not prior and _resident(cfg, data, table, device):  # the same draws, gathered on the device
                self.source = ResidentSource(self.source, device)
        elif cfg.balance_by or prior:  # a stream decides itself which images come
            raise GouacheError(f"{'balance_by' if cfg.balance_by else 'lora_prior'} needs the images in memory "
                               "(an imagefolder), not streamed shards")
        elif cfg.resident_data == "on":
            raise GouacheError("resident_data = \"on\" needs the images in memory (an imagefolder), "
                               "not streamed shards")
        else:
            self.source = data
        # per-row loss weights of a batch with the base's pictures (None: the plain mean)
        self.row_weights = prior_loss_weights(cfg.batch_size, cfg.lora_prior_weight) if prior else None
        torch.manual_seed(cfg.seed)  # the network's initial weights
        net = UNet(cfg.model.unet).set_grad_checkpointing(cfg.grad_checkpointing)
        self.lora = LoRARun(cfg) if cfg.lora else None
        if self.lora:  # the base's weights, frozen, and a trainable adapter on them
            self.lora.prepare(net)
        if cfg.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net.to(device)  # the weights that are trained and saved
        self.ema = copy.deepcopy(self.net).eval().requires_grad_(False)
        # several ranks: DistributedDataParallel wraps the network and the denoiser stays
        # outside it, as k-diffusion does, so the loss is the denoiser's whatever the wrapping
        self.ddp = dist.data_parallel(self.net, device)
        # compiled on CUDA by default; self.net stays the plain module, so its keys are saved
        self.runner = CompiledNet(self.ddp, compile_mode(cfg.compile, device), quiet=not dist.is_main())
        self.denoiser = Denoiser(self.runner, sigma_data=cfg.model.schedule.sigma_data)
        # a compiled network sees one prompt length: no recompiling for each batch's longest caption
        self.prompt_length = (cfg.model.text_max_length if self.runner.active
                              and not isinstance(self.source, ResidentSource) else 0)
        # fused: one kernel for all parameters; on a 2-core CPU 13 ms a step against 50 ms (cpu64)
        trained = [p for p in self.net.parameters() if p.requires_grad]  # all, or a LoRA's adapter only
        self.opt = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        self.gen = {"data": torch.Generator().manual_seed(cfg.seed),
                    "noise": torch.Generator(device).manual_seed(cfg.seed + 1)}
        self.step_no = 0
        self.autocast = cfg.bf16 if device.type == "cuda" else device.type == "cpu" and cfg.cpu_bf16

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One global batch, this rank's share: images in [-1, 1] on the device and caption ids
        (where the source keeps its prompt states: ``source.cond`` takes them)."""
        images, ids = self.source.draw(self.cfg.batch_size, generator=self.gen["data"],
                                       dropout=self.cfg.caption_dropout, step=self.step_no)
        if images.device.type == "cpu" and self.device.type == "cuda":
            images = images.pin_memory()  # copied while the previous step still runs
        return images.to(self.device, non_blocking=True).float() / 127.5 - 1, ids

    def cond(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """The prompt inputs of caption ids, padded to ``prompt_length`` when that is set."""
        cond = self.source.cond(ids, self.device)
        pad = self.prompt_length - cond["tokens"].shape[1]
        if pad > 0:
            cond["tokens"] = torch.nn.functional.pad(cond["tokens"], (0, 0, 0, pad))  # (B, L, D)
            cond["mask"] = torch.nn.functional.pad(cond["mask"], (0, pad), value=False)  # (B, L)
        return cond

    def step(self) -> torch.Tensor:
        """One optimiser step; its loss (averaged over this rank's batch) as a tensor on the
        device, not read back: NaN where the loss or the gradient was not finite.

        The first step of a compiled network compiles it; if compiling fails, the step is
        redone eagerly from the same random state (``CompiledNet`` says so in one line)."""
        if not self.runner.active or self.runner.tried:
            return self._step()
        self.runner.tried = True
        states = {name: g.get_state() for name, g in self.gen.items()}
        try:
            return self._step()
        except Exception as e:  # noqa: BLE001 - whatever failed, the eager step decides
            self.runner.fall_back(e)
            self.opt.zero_grad(set_to_none=True)
            for name, g in self.gen.items():
                g.set_state(states[name])
            return self._step()

    def _step(self) -> torch.Tensor:
        cfg = self.cfg
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step_no, cfg)
        self.runner.begin_step()
        x0, ids = self.batch()
        b = x0.shape[0]  # this rank's share of the global batch
        rows = cfg.batch_size if self.row_weights is None else len(self.row_weights)  # with the base's pictures
        g = self.gen["noise"]  # drawn for the global batch, so any number of ranks agrees
        sigma = dist.shard(cfg.model.schedule.sample_training_sigmas(rows, generator=g, device=self.device))
        noise = dist.shard(torch.randn((rows, *x0.shape[1:]), generator=g, device=self.device))
        if self.row_weights is not None:  # x world size: DDP averages the ranks' gradients
            weights = dist.shard(self.row_weights.to(self.device)) * dist.world_size()
        total = torch.zeros((), device=self.device)
        m = b // cfg.grad_accum  # images per micro-batch (the batch divides, train() checks)
        for k in range(cfg.grad_accum):
            part = slice(k * m, (k + 1) * m)
            # gradients are averaged over ranks on the last micro-batch only
            with dist.sync_gradients(self.ddp, k == cfg.grad_accum - 1), \
                    torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
                losses = self.denoiser.loss(x0[part], noise[part], sigma[part], **self.cond(ids[part]))
                # mean over this rank's batch, or DreamBooth's new + weight x prior
                loss = losses.sum() / b if self.row_weights is None else (losses * weights[part]).sum()
            loss.backward()
            total += loss.detach()
        norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)  # a tensor: no sync
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        update_ema(self.ema, self.net, self.step_no, cfg.ema_decay)
        self.step_no += 1
        # a non-finite gradient makes the loss NaN (0 * inf is NaN): the weights it reached
        # are broken even where the loss itself was still finite
        return (total + 0 * norm).detach()

    def save(self) -> Path:
        if self.lora:
            return self.lora.save(self)
        return save_checkpoint(Path(self.cfg.out), step=self.step_no, model_config=self.cfg.model,
                               net=self.net, ema=self.ema, optimizer=self.opt, generators=self.gen,
                               train_config=self.cfg.to_dict(), keep=self.cfg.keep_checkpoints)

    def init_from(self, model: Path | str) -> None:
        """Fine-tuning: this run's network and EMA start as ``model``'s weights (a model folder,
        e.g. the shipped one, or a run); the optimiser, step and schedule start fresh."""
        folder = resolve_model_dir(model)
        theirs = read_model_config(folder).unet
        if theirs != self.cfg.model.unet:
            diff = ", ".join(f"{k} {v} against {getattr(self.cfg.model.unet, k)}"
                             for k, v in theirs.to_dict().items() if getattr(self.cfg.model.unet, k) != v)
            raise GouacheError(f"--init {model}: another network shape ({diff}); "
                               "use its [model] preset")
        trained = folder / "model.safetensors"  # a run's raw weights; an exported model has only the EMA
        load_weights(self.net, trained if trained.exists() else folder / "ema.safetensors")
        load_weights(self.ema, folder / "ema.safetensors")

    def resume(self, run: Path) -> None:
        folder = resolve_model_dir(run)
        if self.lora:
            self.step_no = self.lora.resume(self, folder)
            return
        load_weights(self.net, folder / "model.safetensors")
        load_weights(self.ema, folder / "ema.safetensors")
        self.step_no = load_train_state(folder, self.opt, self.gen)


def train(cfg: TrainConfig, *, resume: Path | None = None, progress: bool = True,
          data: CaptionedImages | None = None, text_encoder: TextEncoder | None = None) -> TrainResult:
    """Train (or continue training) a model as ``cfg`` says; return the run's summary.

    ``data`` and ``text_encoder``, when given, replace loading ``cfg.data`` and
    the configured encoder. Under torchrun every rank calls this.
    """
    recolour = RecolourOptions.from_config(cfg)  # validated before any data is loaded
    prior = PriorOptions.from_config(cfg)
    cfg = copy.deepcopy(cfg)  # the caller's stays as it was: a time budget may shorten this one
    check_output_folder(cfg.out, what="the run folder")  # before an hour of work, not after
    if resume is not None or cfg.init:
        resolve_model_dir(resume if resume is not None else cfg.init)  # refused before the data loads
    device = pick_device(cfg.device)  # under torchrun: this rank's GPU
    dist.init(device)
    if cfg.batch_size % (dist.world_size() * cfg.grad_accum):
        raise GouacheError(f"batch size {cfg.batch_size} must divide by processes x grad_accum "
                           f"({dist.world_size()} x {cfg.grad_accum})")
    lead = dist.is_main()
    if cfg.lora:  # the model is the base's
        cfg.model = LoRARun(cfg).model_config()
    text_encoder = text_encoder or TextEncoder(cfg.model.text_model, max_length=cfg.model.text_max_length)
    if text_encoder.dim != cfg.model.unet.text_dim:
        raise GouacheError(f"text encoder {cfg.model.text_model!r} gives {text_encoder.dim}-d states "
                           f"but the model expects text_dim={cfg.model.unet.text_dim}")
    if data is None and cfg.data and is_shard_spec(cfg.data):
        source = StreamSource(cfg.data, size=cfg.model.unet.image_size, encoder=text_encoder,
                              split=cfg.split, num_workers=cfg.num_workers, seed=cfg.seed,
                              pin_memory=device.type == "cuda")
        trainer = Trainer(cfg, source, None, device, prior=prior.count)
    else:
        if data is None:
            data = load_imagefolder(Path(cfg.data), size=cfg.model.unet.image_size, split=cfg.split,
                                    progress=progress and lead)
        if prior.count:  # the base's own pictures, painted before tuning (or read from the run folder)
            data = with_prior(data, paint_prior(resolve_model_dir(cfg.init), prior, encoder=text_encoder,
                                                device=device, cache=Path(cfg.out) / PRIOR_FILE,
                                                progress=progress and lead))
        table = CaptionTable.build(data, text_encoder, progress=progress and lead,
                                   folder=Path(cfg.data) if cfg.data else None)
        trainer = Trainer(cfg, data, table, device, prior=prior.count)
    if recolour.prob > 0:  # where a training image gets its caption: recoloured and recaptioned
        trainer.source = RecolourSource(trainer.source, recolour, text_encoder)
    run = Path(cfg.out)
    if resume is not None:
        trainer.resume(resume)
    elif cfg.init and not cfg.lora:
        trainer.init_from(cfg.init)
    if lead:
        run.mkdir(parents=True, exist_ok=True)
        clear_partial_checkpoints(run)  # a save cut short by a crash
        write_json(cfg.to_dict(), run / "train_config.json")
    heldout = HeldOut.from_folder(cfg, text_encoder, device) if lead and cfg.eval_every else None
    log = TrainLog(run / "log.csv", step=trainer.step_no) if lead else None
    return _loop(trainer, text_encoder, heldout, log, lead=lead, progress=progress and lead)


def _loop(trainer: Trainer, text_encoder: TextEncoder, heldout: "HeldOut | None",
          log: "TrainLog | None", *, lead: bool, progress: bool) -> TrainResult:
    """Train to ``cfg.steps``. ``lead`` (rank 0) writes the log, samples and checkpoints;
    ``heldout`` and ``log`` are None on the other ranks."""
    cfg, run = trainer.cfg, Path(trainer.cfg.out)
    losses: list[float] = []
    pending: list[torch.Tensor] = []  # the losses of the steps since the last read-back, on the device
    start, seen, stopped, out_of_time = time.perf_counter(), 0, False, False
    bar = tqdm(total=cfg.steps, initial=trainer.step_no, desc="training", unit="step", disable=not progress)
    budget = TimeBudget(cfg, trainer.step_no)
    with StopSignal() as stop:
        while trainer.step_no < cfg.steps:
            pending.append(trainer.step())  # queued on the device: nothing here waits for it
            seen += cfg.batch_size
            step = trainer.step_no
            elapsed = time.perf_counter() - start
            scheduled = any(_due(step, n) for n in (cfg.checkpoint_every, cfg.sample_every, cfg.eval_every))
            logs = _due(step, cfg.log_every)
            # the shared decisions: every step in one process; with several, each is a collective
            # that waits for the device, so every _DECIDE_EVERY steps and wherever the loop writes
            if not dist.is_distributed() or _due(step, _DECIDE_EVERY) or scheduled or logs or step == cfg.steps:
                # rank 0's clock decides for all (a rank shortening alone would hang the others)
                if budget.open(step) and budget.update(step, dist.broadcast_float(elapsed)):
                    if bar.total == budget.planned and progress:
                        tqdm.write(f"time budget: about {cfg.steps} of {budget.planned} steps fit in "
                                   f"{cfg.max_minutes:g} minutes at this pace; the cool-down is shortened to match")
                    bar.total = cfg.steps
                out_of_time = cfg.max_minutes > 0 and dist.any_rank(elapsed > 60 * cfg.max_minutes)  # unanimous
                stopped = dist.any_rank(stop.requested)
            ips = seen / elapsed
            bar.update(1)
            last = step == cfg.steps or out_of_time
            # rank 0's slow work below: every rank knows when it happens, and waits for it
            writes = last or stopped or scheduled
            if writes or logs:  # the one host sync: the losses so far, checked before anything is saved
                losses += _read_back(trainer, pending)
                pending.clear()
                bar.set_postfix(loss=f"{losses[-1]:.4f}", img_s=f"{ips:.1f}")
            if lead and not stopped:
                if _due(step, cfg.log_every) or last:
                    recent = losses[-cfg.log_every:]
                    log.write(step=step, loss=sum(recent) / len(recent), lr=lr_at(step - 1, cfg),
                              images_per_second=ips)
                if heldout is not None and (_due(step, cfg.eval_every) or last):
                    log.write(step=step, heldout_loss=heldout.loss(trainer.ema))
            if lead and (_due(step, cfg.checkpoint_every) or last or stopped):
                trainer.save()  # before the grid: a failure there must not cost the step's weights
            if lead and not stopped and cfg.sample_every and (_due(step, cfg.sample_every) or last):
                _sample_grid(trainer, text_encoder, run / "samples" / f"step-{step:08d}.png")
            if writes:
                dist.barrier()
            if out_of_time or stopped:
                break
    bar.close()
    return TrainResult(run, trainer.step_no, losses, seen / max(1e-9, time.perf_counter() - start),
                       stopped=stopped)


def _read_back(trainer: Trainer, pending: list[torch.Tensor]) -> list[float]:
    """The pending steps' losses as numbers, averaged over ranks (the same on every rank):
    one copy from the device. A non-finite one stops training before anything of it is saved."""
    values = dist.mean(torch.stack(pending)).tolist() if pending else []
    first = trainer.step_no - len(values) + 1  # the step of values[0]
    for k, loss in enumerate(values):
        if not math.isfinite(loss):
            raise GouacheError(_diverged(trainer, first + k, loss))
    return values


def _diverged(trainer: Trainer, step: int, loss: float) -> str:
    """What to tell the user when training has diverged at ``step``; nothing since the last
    read-back is saved, so the last checkpoint is from before that step."""
    cfg = trainer.cfg
    latest = Path(cfg.out) / "latest.txt"
    kept = (f"the last checkpoint, {latest.read_text().strip()}, is kept" if latest.exists()
            else "no checkpoint was written")
    return (f"training diverged at step {step}: the loss (or its gradient) is {loss}; {kept}. "
            f"Lower lr (now {cfg.lr:g}) or grad_clip (now {cfg.grad_clip:g}), or raise warmup "
            f"(now {cfg.warmup})")


_DECIDE_EVERY = 10  # steps between the shared decisions (time, stop) of several processes


def _due(step: int, every: int) -> bool:
    """Whether a task done every ``every`` steps (0 = never) falls on ``step``."""
    return every > 0 and step % every == 0


def _sample_grid(trainer: Trainer, text_encoder: TextEncoder, path: Path) -> None:
    pipe = Pipeline(trainer.ema, text_encoder, trainer.cfg.model, trainer.device)
    prompts = list(trainer.cfg.sample_prompts)
    options = SamplingOptions(steps=trainer.cfg.sample_steps)
    images = pipe.generate(prompts, options, seed=0, progress=False).images
    save_png(grid(images, cols=min(5, len(images)), labels=prompts, scale=2), path)
