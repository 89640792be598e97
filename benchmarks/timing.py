"""What the speed tables share (``speed.py``'s CPU table and ``gpu_table.py``), below both: timing
helpers (CUDA-synchronised wall clocks, medians, interleaved A/B runs, the matmul peak that MFU is
measured against, the process's memory) and the equal-work pair of gouache and diffusers networks
with each library's own training step and forward FLOP count."""
from __future__ import annotations

import contextlib
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from gouache.model.denoiser import Denoiser
from gouache.model.schedule import NoiseSchedule
from gouache.model.unet import UNet, UNetConfig

try:  # the GPU table's gouache rows run without it (a machine with no network may lack it)
    import diffusers
    from diffusers import (
        DDPMScheduler,
        DPMSolverMultistepScheduler,
        UNet2DConditionModel,
    )
    from diffusers.utils import numpy_to_pil
except Exception as e:  # noqa: BLE001 - an import that fails in any way: the diffusers rows say why
    diffusers, DIFFUSERS_ERROR = None, f"diffusers does not import: {type(e).__name__}: {e}"
    DDPMScheduler = DPMSolverMultistepScheduler = UNet2DConditionModel = numpy_to_pil = None

TEXT_DIM, TOKENS = 384, 16  # the prompt encoder's width; tokens per prompt for counting and training

# Equal work: diffusers block widths -> the gouache config that matches its parameters and
# forward FLOPs within 10% (both counted by ``equal_work``). diffusers: layers_per_block 2,
# ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D") and mirrored up blocks.
PAIRS: dict[str, dict] = {
    "small": {"diffusers": (32, 64, 128), "gouache": UNetConfig(
        patch=1, channels=(32, 72, 144), blocks_per_level=2, attn_levels=(1, 2), head_dim=16, emb_dim=128, groups=8)},
    "reference": {"diffusers": (64, 128, 256), "gouache": UNetConfig(
        patch=1, channels=(72, 144, 288), blocks_per_level=2, attn_levels=(1, 2), head_dim=32, emb_dim=256, groups=24)},
}


def diffusers_unet(widths: tuple[int, ...], size: int = 64, groups: int = 32) -> "UNet2DConditionModel":
    """``groups``: group-norm groups (diffusers' default 32; widths must divide by it)."""
    if diffusers is None:
        raise RuntimeError(DIFFUSERS_ERROR)
    return UNet2DConditionModel(
        sample_size=size, in_channels=3, out_channels=3, block_out_channels=widths, layers_per_block=2,
        norm_num_groups=groups,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM)


def text_cond(batch: int, device="cpu") -> dict[str, torch.Tensor]:
    return dict(tokens=torch.randn(batch, TOKENS, TEXT_DIM, device=device),
                mask=torch.ones(batch, TOKENS, dtype=torch.bool, device=device),
                pooled=F.normalize(torch.randn(batch, TEXT_DIM, device=device), dim=-1))


def forward_flops(model: torch.nn.Module, system: str, size: int) -> int:
    """FLOPs of one forward pass, batch 1, counted on the meta device (no arithmetic is done).

    There attention runs as two batched matmuls and is counted; on the CPU FlopCounterMode
    has no formula for the flash kernel and leaves it out (as ``gouache.model.unet.count_flops`` does)."""
    x, t, cond = torch.zeros(1, 3, size, size, device="meta"), torch.zeros(1, device="meta"), text_cond(1, "meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        if system == "gouache":
            model(x, t, **cond)
        else:
            model(x, t, encoder_hidden_states=cond["tokens"], encoder_attention_mask=cond["mask"])
    return counter.get_total_flops()


def equal_work(pair: str = "small", sizes: tuple[int, ...] = (64,)) -> dict:
    """Parameters and forward FLOPs of both networks of a pair, and gouache/diffusers ratios."""
    widths, cfg = PAIRS[pair]["diffusers"], PAIRS[pair]["gouache"]
    with torch.device("meta"):
        nets = {"gouache": UNet(cfg), "diffusers": diffusers_unet(widths)}
    out = {"pair": pair, "gouache_config": cfg.to_dict(), "diffusers_block_out_channels": list(widths)}
    for name, net in nets.items():
        out[name] = {"params": sum(p.numel() for p in net.parameters()),
                     **{f"flops_{s}": forward_flops(net, name, s) for s in sizes}}
    for key in out["gouache"]:
        out[f"ratio_{key}"] = out["gouache"][key] / out["diffusers"][key]
    return out


def train_step(system: str, net_spec, size: int, batch: int, device: torch.device, compile: bool | str = False,
               cpu_bf16: bool = False):
    """One optimiser step as each library trains: noise, forward, loss, backward, AdamW.
    ``compile``: the network under ``torch.compile`` (gouache's ``TrainConfig.compile``), True or
    a mode ("default", "reduce-overhead"); ``cpu_bf16``: bf16 autocast on the CPU (``TrainConfig.cpu_bf16``)."""
    mode = "default" if compile is True else compile or None
    torch.manual_seed(0)
    x0 = (0.5 * torch.randn(batch, 3, size, size, device=device)).clamp(-1, 1)
    cond = text_cond(batch, device)
    if system == "gouache":
        net = UNet(net_spec)
        if mode:
            net.compile(dynamic=False, mode=mode)  # as the Trainer: each size compiles its own graph
        model, schedule = Denoiser(net).to(device).train(), NoiseSchedule()

        def loss():
            sigma = schedule.sample_training_sigmas(batch, device=device)
            return model.loss(x0, torch.randn_like(x0), sigma, **cond).mean()
    else:
        model, ddpm = diffusers_unet(net_spec, size).to(device).train(), DDPMScheduler(num_train_timesteps=1000)
        if mode:
            model.compile(dynamic=False, mode=mode)

        def loss():  # epsilon prediction, as diffusers' train_text_to_image.py
            noise = torch.randn_like(x0)
            t = torch.randint(0, ddpm.config.num_train_timesteps, (batch,), device=device)
            pred = model(ddpm.add_noise(x0, noise, t), t, encoder_hidden_states=cond["tokens"],
                         encoder_attention_mask=cond["mask"]).sample
            return F.mse_loss(pred.float(), noise.float())
    # each library's own optimiser: gouache's Trainer uses fused AdamW, diffusers' training
    # example the default (foreach) AdamW
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=system == "gouache")

    def step():
        if mode == "reduce-overhead":  # CUDA graphs: the previous step's outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        with autocast(device, cpu_bf16):
            value = loss()
        value.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step



def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Wall seconds of one call (CUDA synchronised on both sides)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median_time(fn, repeats: int, warmup: int, device=torch.device("cpu")) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn, device) for _ in range(repeats))


def interleaved(fns: dict, repeats: int, warmup: int, device: torch.device) -> dict[str, list[float]]:
    """Warm every function up, then time them in turn, A, B, A, B...: all the timings per name."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, device))
    return times


def matmul_peak(device: torch.device, n: int, repeats: int) -> float:
    """Median FLOP/s of an n x n matmul: float32 on the CPU, bfloat16 on CUDA."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return 2 * n ** 3 / median_time(lambda: a @ b, repeats, 2, device)


class NetTimer(torch.nn.Module):
    """Wraps a network and adds up the seconds spent inside its calls."""

    def __init__(self, net: torch.nn.Module, device: torch.device) -> None:
        super().__init__()
        self.net, self.device, self.seconds = net, device, 0.0

    def forward(self, *args, **kwargs):
        out = []
        self.seconds += timed(lambda: out.append(self.net(*args, **kwargs)), self.device)
        return out[0]


def autocast(device: torch.device, cpu_bf16: bool = False):
    """bf16 autocast on CUDA always, on the CPU only with ``cpu_bf16``."""
    if device.type == "cuda" or cpu_bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def proc_status_mib(field: str) -> float:  # VmRSS, VmHWM...
    return next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith(field + ":")) / 1024
