"""Quality per minute: gouache's recipe against diffusers' text-to-image recipe.

Both systems train on the same emoji train split, with the same frozen MiniLM prompt
states, for the same wall time on the same machine, one after the other; every
``--minutes / --points`` minutes of training each is paused and measured on the
held-out split with the same code as ``gouache eval`` (KID, FID, top-1/top-5 prompt
fidelity), the same prompts, seeds, sampler (DPM-Solver++(2M), 20 steps) and guidance.

(a) gouache: ``configs/emoji64-cpu.toml`` from scratch: the CPU network
    ``cpu64`` (18.7M parameters), AdamW lr 6e-4 after 300 warm-up steps, batch 32, EMA,
    and the noise levels the CPU models ended on (ln sigma ~ N(0.7, 1.5^2)).
(b) diffusers: ``UNet2DConditionModel`` of about the same parameter count and
    ``DDPMScheduler()`` (1000 linear betas, epsilon prediction, MSE), with the defaults of
    diffusers' ``examples/text_to_image/train_text_to_image.py``: AdamW lr 1e-4, betas
    (0.9, 0.999), weight decay 1e-2, eps 1e-8, batch 16, constant learning rate after
    500 warm-up steps, gradient norm clipped to 1, no EMA. One addition: 10% of captions
    dropped to "" as in (a), without which classifier-free guidance has no unconditional
    model to push away from.

To sample (b) with gouache's solvers, its epsilon network is wrapped as a denoiser
``D(x, sigma)`` (Karras et al. 2022, "Elucidating the Design Space...", Table 1, VP
column): x_t = x / sqrt(1 + sigma^2), t is the (fractional) timestep whose DDPM sigma
sqrt((1 - abar_t) / abar_t) equals sigma, and D = x - sigma * eps(x_t, t).

    python benchmarks/quality_per_minute.py --data data/emoji64 --minutes 12 --points 2 \
        --num-images 50 --threads 2 --json runs/qpm.json --plot runs/qpm.png
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

from gouache.cli.arguments import add_sampling_arguments, sampling_options
from gouache.data.imagefolder import CaptionedImages, load_imagefolder
from gouache.data.prompts import CaptionTable
from gouache.data.sources import MemorySource
from gouache.evaluate.context import (
    EvalContext,
    eval_prompts,
    generate_images,
    load_context,
)
from gouache.evaluate.features import InceptionV3TF
from gouache.evaluate.sweeps import plot_sweep
from gouache.model.config import ModelConfig
from gouache.model.text import TextEncoder
from gouache.model.unet import UNet
from gouache.sampling.pipeline import Pipeline
from gouache.training.config import load_train_config
from gouache.training.train import train

sys.path.insert(0, str(Path(__file__).parent))
import speed  # noqa: E402  (the speed table's diffusers network and FLOP count)

RECIPE = Path(__file__).resolve().parent.parent / "configs" / "emoji64-cpu-stage3.toml"
DIFFUSERS_WIDTHS = (56, 112, 224)  # 19.6M parameters against cpu64's 18.7M (+5%)
DIFFUSERS_GROUPS = 8  # 56 channels do not divide into diffusers' default 32 groups


def diffusers_unet(size: int) -> nn.Module:
    """The speed table's diffusers network (same blocks), at cpu64's parameter count."""
    return speed.diffusers_unet(DIFFUSERS_WIDTHS, size, groups=DIFFUSERS_GROUPS)


class EpsDenoiser(nn.Module):
    """A DDPM epsilon network as ``model(x, sigma, tokens, mask, pooled) -> denoised``."""

    def __init__(self, unet: nn.Module, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.unet = unet
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod).sqrt()  # (T,) increasing with t
        self.register_buffer("log_sigmas", sigmas.log())

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The fractional t whose DDPM sigma is ``sigma`` (log-linear between steps, clamped)."""
        ls = self.log_sigmas
        log_s = sigma.log().clamp(ls[0], ls[-1])
        hi = torch.searchsorted(ls, log_s).clamp(1, len(ls) - 1)
        w = (log_s - ls[hi - 1]) / (ls[hi] - ls[hi - 1])
        return hi - 1 + w

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, *, tokens: torch.Tensor, mask: torch.Tensor,
                pooled: torch.Tensor | None = None) -> torch.Tensor:
        sigma = sigma.reshape(-1).expand(x.shape[0]).to(x.dtype)  # (B,)
        s = sigma[:, None, None, None]  # (B, 1, 1, 1)
        eps = self.unet(x / (1 + s ** 2).sqrt(), self.timestep(sigma), encoder_hidden_states=tokens,
                        encoder_attention_mask=mask).sample
        return x - s * eps


def diffusers_pipeline(unet: nn.Module, alphas: torch.Tensor, encoder: TextEncoder,
                       config: ModelConfig) -> Pipeline:
    """gouache's Pipeline (prompts, guidance, solvers, seeds) around the wrapped network."""
    pipe = Pipeline(nn.Identity(), encoder, config)
    pipe.denoiser = EpsDenoiser(unet, alphas).eval()  # what every sampler calls
    return pipe


class DiffusersRun:
    """diffusers' text-to-image training loop, on gouache's in-memory batches and prompt states."""

    def __init__(self, data: CaptionedImages, table: CaptionTable, size: int, *, batch: int = 16,
                 lr: float = 1e-4, warmup: int = 500, dropout: float = 0.1, seed: int = 0) -> None:
        from diffusers import DDPMScheduler

        torch.manual_seed(seed)
        self.unet = diffusers_unet(size).train()
        self.scheduler = DDPMScheduler()  # 1000 steps, betas linear 1e-4..0.02, epsilon
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=1e-2,
                                     eps=1e-8)
        self.lr, self.warmup, self.batch, self.dropout = lr, warmup, batch, dropout
        self.source = MemorySource(data, table)
        self.gen = torch.Generator().manual_seed(seed)
        self.step_no = 0

    def step(self) -> float:
        for group in self.opt.param_groups:  # get_scheduler("constant_with_warmup")
            group["lr"] = self.lr * min(1.0, (self.step_no + 1) / self.warmup)
        images, ids = self.source.draw(self.batch, generator=self.gen, dropout=self.dropout, step=self.step_no)
        x0 = images.float() / 127.5 - 1
        cond = self.source.cond(ids, torch.device("cpu"))
        noise = torch.randn(x0.shape, generator=self.gen)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(x0),), generator=self.gen)
        xt = self.scheduler.add_noise(x0, noise, t)
        eps = self.unet(xt, t, encoder_hidden_states=cond["tokens"], encoder_attention_mask=cond["mask"]).sample
        loss = nn.functional.mse_loss(eps.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step_no += 1
        return loss.item()

    def train_for(self, seconds: float) -> float:
        """Steps until ``seconds`` of wall time have passed; returns the seconds taken."""
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.step()
        return time.perf_counter() - start


def measure(pipe: Pipeline, ctx: EvalContext, prompts: list[str], args) -> dict:
    images = generate_images(pipe, prompts, sampling_options(args), seed=0, batch_size=16, progress=False)
    feats = ctx.extractor.extract(images, batch_size=16, progress=False)
    return ctx.score(feats, prompts)


def run_gouache(args, data, encoder, ctx, prompts) -> list[dict]:
    cfg = load_train_config(RECIPE, out=str(args.out / "gouache"), data=str(args.data),
                            max_minutes=args.minutes / args.points, sample_every=0, eval_every=0)
    cfg.checkpoint_every = cfg.steps  # only the checkpoint at each pause
    run = Path(cfg.out)
    points, minutes, images = [], 0.0, 0
    for k in range(args.points):
        result = train(cfg, resume=run if k else None, progress=False, data=data, text_encoder=encoder)
        n = len(result.losses) * cfg.batch_size
        minutes += n / result.images_per_second / 60
        images += n
        pipe = Pipeline.load(run, device="cpu", text_encoder=encoder)
        points.append({"minutes": minutes, "steps": result.step, "images": images,
                       **measure(pipe, ctx, prompts, args)})
        log(f"gouache   {minutes:5.1f} min {result.step:6d} steps  KID {1e3 * points[-1]['kid_mean']:.1f}")
    return points


def run_diffusers(args, data, table, encoder, ctx, prompts, config: ModelConfig) -> list[dict]:
    run = DiffusersRun(data, table, config.unet.image_size)
    alphas = run.scheduler.alphas_cumprod
    points, minutes = [], 0.0
    for _ in range(args.points):
        seconds = run.train_for(60 * args.minutes / args.points)
        minutes += seconds / 60
        run.unet.eval()
        with torch.inference_mode():
            row = measure(diffusers_pipeline(run.unet, alphas, encoder, config), ctx, prompts, args)
        run.unet.train()
        points.append({"minutes": minutes, "steps": run.step_no, "images": run.step_no * run.batch, **row})
        log(f"diffusers {minutes:5.1f} min {run.step_no:6d} steps  KID {1e3 * row['kid_mean']:.1f}")
    return points


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def table_md(res: dict) -> str:
    lines = ["| system | minutes | steps | images seen | KID x1e3 | FID | top-1 | top-5 |",
             "|---|---|---|---|---|---|---|---|"]
    for name in ("gouache", "diffusers"):
        for p in res[name]:
            lines.append(f"| {name} | {p['minutes']:.1f} | {p['steps']} | {p['images']} | "
                         f"{1e3 * p['kid_mean']:.1f} ± {1e3 * p['kid_std']:.1f} | {p['fid']:.1f} | "
                         f"{p['top1']:.3f} | {p['top5']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the built emoji dataset (gouache data emoji)")
    ap.add_argument("--minutes", type=float, default=15.0, help="training wall time per system")
    ap.add_argument("--points", type=int, default=3, help="measurements along the way (evenly spaced)")
    ap.add_argument("--num-images", type=int, default=100, help="pictures per measurement")
    add_sampling_arguments(ap)  # the same sampler for both systems; gouache generate's defaults
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=Path("runs/qpm"), help="gouache's run folder goes here")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--plot", type=Path, help="KID and prompt fidelity against minutes (PNG)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    encoder = TextEncoder()
    config = load_train_config(RECIPE).model
    size = config.unet.image_size
    data = load_imagefolder(args.data, size=size, split="train", progress=False)
    table = CaptionTable.build(data, encoder, progress=False, folder=args.data)
    ctx = load_context(args.data, "test", size, InceptionV3TF("cpu"), progress=False)
    prompts = eval_prompts(ctx.split.labels, args.num_images)  # as gouache eval: the held-out labels
    with torch.device("meta"):
        nets = {"gouache": UNet(config.unet), "diffusers": diffusers_unet(size)}
    res: dict = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                 "threads": torch.get_num_threads(),
                 "networks": {n: {"params": sum(p.numel() for p in m.parameters()),
                                  "gflop_64": speed.forward_flops(m, n, size) / 1e9} for n, m in nets.items()}}
    log(f"networks: {res['networks']}")
    res["gouache"] = run_gouache(args, data, encoder, ctx, prompts)  # train() builds its own table
    res["diffusers"] = run_diffusers(args, data, table, encoder, ctx, prompts, config)
    print(table_md(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    if args.plot:
        series = {n: [(p["minutes"], p) for p in res[n]] for n in ("gouache", "diffusers")}
        plot_sweep(series, "training minutes (2-core CPU)", args.plot,
                   title=f"held-out emoji, {args.num_images} images, {args.sampler} "
                         f"{sampling_options(args).steps} steps, "
                         f"guidance {args.guidance}")


if __name__ == "__main__":
    main()
