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

Data comes from a batch source (``data/batches.py`` chooses it): an imagefolder in
memory, or WebDataset shards streamed when ``--data`` names .tar files (a resumed
streamed run sees freshly shuffled data, not exactly the uninterrupted run's).
The loop around the steps (logs, checkpoints, samples, time budget) is ``loop.py``'s,
shared with distillation.

Several processes (``torchrun --nproc-per-node N -m gouache train ...``): each
rank trains on its share of every global batch and DDP averages the gradients,
so a step equals one process's step on the whole batch; only rank 0 writes
checkpoints, samples and logs (see ``distributed.py``).
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from gouache import distributed as dist
from gouache.data.batches import batch_source
from gouache.data.imagefolder import CaptionedImages, load_imagefolder
from gouache.data.prompts import CaptionTable
from gouache.data.recolour import RecolourOptions
from gouache.data.resident import ResidentSource
from gouache.data.shards import is_shard_spec
from gouache.data.sources import BatchSource, StreamSource
from gouache.device import pick_device
from gouache.errors import GouacheError
from gouache.images import grid
from gouache.model.denoiser import Denoiser
from gouache.model.noinit import no_initial_weights
from gouache.model.text import TextEncoder
from gouache.model.unet import UNet
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline
from gouache.store.checkpoint import (
    check_model_folder,
    check_weights,
    load_weights,
    read_model_config,
    resolve_model_dir,
    text_model_of,
    write_model_weights,
)
from gouache.store.files import save_png
from gouache.store.train_state import check_train_state
from gouache.training import loop
from gouache.training.compiling import CompiledNet, compile_mode
from gouache.training.config import TrainConfig
from gouache.training.ema import update_ema
from gouache.training.heldout import HeldOut
from gouache.training.loop import RunResult, open_run, run_generators, run_loop
from gouache.training.lora_run import LoRARun
from gouache.training.lr_schedule import lr_at
from gouache.training.prior import (
    PRIOR_FILE,
    PriorOptions,
    paint_prior,
    prior_loss_weights,
    with_prior,
)

__all__ = ["train", "Trainer"]


class Trainer:
    """Holds the pieces of one run; ``step`` does one optimiser step (``loop.Run``)."""

    def __init__(self, cfg: TrainConfig, data: CaptionedImages | BatchSource, table: CaptionTable | None,
                 device: torch.device, *, prior: int = 0, lora: LoRARun | None = None,
                 encoder: TextEncoder | None = None) -> None:
        """``data`` is in-memory images with their ``table``, or any batch source (table None).
        ``prior``: the last this many images are the base's own (``prior.py``): each batch
        then holds as many of them as of the others, weighted by ``cfg.lora_prior_weight``.
        ``lora``: a LoRA run's base and adapter (made from ``cfg`` when not given); ``encoder``
        encodes recoloured captions."""
        self.cfg, self.device = cfg, device
        self.source = batch_source(data, table, device, balance_by=cfg.balance_by, resident=cfg.resident_data,
                                   prior=prior, recolour=RecolourOptions.from_config(cfg), encoder=encoder)
        # per-row loss weights of a batch with the base's pictures (None: the plain mean)
        self.row_weights = prior_loss_weights(cfg.batch_size, cfg.lora_prior_weight) if prior else None
        torch.manual_seed(cfg.seed)  # the network's initial weights
        net = UNet(cfg.model.unet).set_grad_checkpointing(cfg.grad_checkpointing)
        self.lora = lora or (LoRARun(cfg) if cfg.lora else None)
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
        self.gen = run_generators(cfg.seed, device)
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

    def write_weights(self, folder: Path) -> None:
        """A checkpoint's weights: the model's config, EMA and trained weights, or a LoRA's adapters."""
        if self.lora:
            self.lora.write_weights(folder, net=self.net, ema=self.ema)
            return
        write_model_weights(folder, model_config=self.cfg.model, net=self.net, ema=self.ema)

    def read_weights(self, folder: Path) -> None:
        if self.lora:
            self.lora.read_weights(folder, net=self.net, ema=self.ema)
            return
        load_weights(self.net, folder / "model.safetensors")
        load_weights(self.ema, folder / "ema.safetensors")

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


def train(cfg: TrainConfig, *, resume: Path | None = None, progress: bool = True,
          data: CaptionedImages | None = None, text_encoder: TextEncoder | None = None) -> RunResult:
    """Train (or continue training) a model as ``cfg`` says; return the run's summary.

    ``data`` and ``text_encoder``, when given, replace loading ``cfg.data`` and
    the configured encoder. Under torchrun every rank calls this.
    """
    RecolourOptions.from_config(cfg)  # validated before any data is loaded
    prior = PriorOptions.from_config(cfg)
    cfg = copy.deepcopy(cfg)  # the caller's stays as it was: a time budget may shorten this one
    loop.check_run_folder(cfg, "train_config.json", resume=resume,  # before an hour of work, not after
                          inputs=[("the --init model", cfg.init or None), ("the --data", cfg.data or None),
                                  ("the --resume run", resume)])
    if resume is not None:
        resolve_model_dir(resume)  # refused before the data loads
    if cfg.init:
        check_model_folder(resolve_model_dir(cfg.init), values=True)  # its config and weights too
    device = pick_device(cfg.device)  # under torchrun: this rank's GPU
    dist.init(device)
    if cfg.batch_size % (dist.world_size() * cfg.grad_accum):
        raise GouacheError(f"batch size {cfg.batch_size} must divide by processes x grad_accum "
                           f"({dist.world_size()} x {cfg.grad_accum})")
    lead = dist.is_main()
    lora = LoRARun(cfg) if cfg.lora else None  # the base, resolved and hashed once
    if lora:  # the model is the base's
        cfg.model = lora.model_config()
    encoder = text_model_of(lora.base, cfg.model) if lora else cfg.model.text_model  # a recipe's: the user's
    if resume is not None:
        _check_checkpoint(cfg, resolve_model_dir(resume), device, lora)  # before the lock and the data
    with loop.claim_run(cfg, lead=lead):  # one process at a time writes the run folder
        text_encoder = text_encoder or TextEncoder(encoder, max_length=cfg.model.text_max_length)
        if text_encoder.dim != cfg.model.unet.text_dim:
            raise GouacheError(f"text encoder {cfg.model.text_model!r} gives {text_encoder.dim}-d states "
                               f"but the model expects text_dim={cfg.model.unet.text_dim}")
        data, table = _load_data(cfg, data, text_encoder, device, prior, lora, progress=progress and lead)
        trainer = Trainer(cfg, data, table, device, prior=prior.count, lora=lora, encoder=text_encoder)
        if resume is not None:
            loop.resume(trainer, resolve_model_dir(resume))
        elif cfg.init and not cfg.lora:
            trainer.init_from(cfg.init)
        log = open_run(cfg, "train_config.json", step=trainer.step_no) if lead else None
        heldout = HeldOut.from_folder(cfg, text_encoder, device) if lead and cfg.eval_every else None
        return run_loop(trainer, log=log, sample=lambda path: _sample_grid(trainer, text_encoder, path),
                        heldout=None if heldout is None else lambda: heldout.loss(trainer.ema),
                        eval_every=cfg.eval_every, lead=lead, progress=progress and lead)


def _check_checkpoint(cfg: TrainConfig, folder: Path, device: torch.device, lora: LoRARun | None) -> None:
    """The checkpoint to resume, checked whole against the network this run trains: its weights
    (or adapters) and their values, its optimiser state and generators. The network is built
    without weights or random draws."""
    with torch.random.fork_rng(devices=[]), no_initial_weights():
        net = UNet(cfg.model.unet)
        if lora:
            lora.prepare(net, load=False)
    if lora:
        lora.check_weights(folder, net)
    else:
        for name in ("model", "ema"):
            check_weights(net, folder / f"{name}.safetensors", values=True)
    check_train_state(folder, [p for p in net.parameters() if p.requires_grad], run_generators(cfg.seed, device))


def _load_data(cfg: TrainConfig, data: CaptionedImages | None, encoder: TextEncoder, device: torch.device,
               prior: PriorOptions, lora: LoRARun | None, *,
               progress: bool) -> tuple[CaptionedImages | StreamSource, CaptionTable | None]:
    """The run's data: WebDataset shards streamed, or an imagefolder in memory (with the base's
    own pictures, for prior preservation) and its caption table."""
    if data is None and cfg.data and is_shard_spec(cfg.data):
        return StreamSource(cfg.data, size=cfg.model.unet.image_size, encoder=encoder, split=cfg.split,
                            num_workers=cfg.num_workers, seed=cfg.seed, pin_memory=device.type == "cuda"), None
    if data is None:
        data = load_imagefolder(Path(cfg.data), size=cfg.model.unet.image_size, split=cfg.split, progress=progress)
    if prior.count:  # the base's own pictures, painted before tuning (or read from the run folder)
        data = with_prior(data, paint_prior(lora.base, prior, encoder=encoder, device=device,
                                            cache=Path(cfg.out) / PRIOR_FILE, progress=progress,
                                            base_sha256=lora.info.base_sha256))
    return data, CaptionTable.build(data, encoder, progress=progress, folder=Path(cfg.data) if cfg.data else None)


def _sample_grid(trainer: Trainer, text_encoder: TextEncoder, path: Path) -> None:
    pipe = Pipeline(trainer.ema, text_encoder, trainer.cfg.model, trainer.device)
    prompts = list(trainer.cfg.sample_prompts)
    options = SamplingOptions(steps=trainer.cfg.sample_steps)
    images = pipe.generate(prompts, options, seed=0, progress=False).images
    save_png(grid(images, cols=min(5, len(images)), labels=prompts, scale=2), path)
