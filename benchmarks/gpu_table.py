"""The GPU table of ``speed.py`` (``--device cuda``): training speed at the machine's pace.

Rows, each timed alone (median of ``--repeats`` steps after warm-up, the device synchronised
around each step) and written to ``--json`` as soon as it is done, so a run cut off by its
time limit keeps what it measured:

* ``peak``: the bf16 matmul peak that MFU is measured against (an n x n x n product);
* ``base-B-MODE``: gouache's own ``Trainer.step`` (bf16 autocast, channels-last, fused AdamW,
  clipping, EMA, data resident on the device) for the ``base`` network at batch B, eager or
  under ``torch.compile`` in MODE (default, reduce-overhead);
* ``wide-512-default``: the same step for ``base`` 4x wider (channels 128/256/320, about
  14.5 GFLOP a forward), compiled;
* ``pair-SYSTEM-MODE``: the equal-work pair (``--pair``), each library's own training step
  (``timing.train_step``), eager and compiled;
* ``loop``: the real loop, ``gouache train`` in a subprocess with a recipe and data
  (``--loop-config``, ``--loop-data``) under ``--max-minutes`` (``--loop-minutes``: the time
  budget fits the recipe's cool-down in), its steady pace read from log.csv after the first
  (compiling) row, with GPU utilisation sampled every 200 ms (pynvml, else nvidia-smi).

On the CPU (``--quick``) every row runs at a tiny size, so that the table is tested here.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch
from timing import PAIRS, equal_work, forward_flops, matmul_peak, timed, train_step  # noqa: E402  (benchmarks/ is on the path)

from gouache.data.imagefolder import CaptionedImages
from gouache.data.prompts import CaptionTable
from gouache.model.config import ModelConfig
from gouache.model.text import PromptEmbedding
from gouache.model.unet import PRESETS, UNet, UNetConfig
from gouache.training.config import TrainConfig
from gouache.training.train import Trainer

WIDE = replace(PRESETS["base"], channels=(128, 256, 320))
ROWS = ("peak", "loop", "base-1024-eager", "base-256-eager", "pair-gouache-eager", "pair-diffusers-eager",
        "base-1024-default", "pair-gouache-default", "pair-diffusers-default", "wide-512-default",
        "base-1024-reduce-overhead", "base-256-default", "base-256-reduce-overhead", "pair-gouache-reduce-overhead",
        "pair-diffusers-reduce-overhead")


def add_args(ap) -> None:
    ap.add_argument("--rows", default=",".join(ROWS), help="the GPU table's rows, in order (see gpu_table.py)")
    ap.add_argument("--warm-only", action="store_true", help="only compile the rows (fills the on-disk caches)")
    ap.add_argument("--loop-config", type=Path, default=Path("configs/emoji64-fast.toml"))
    ap.add_argument("--loop-data", type=Path, default=None, help="the real loop's data (no data: no loop row)")
    ap.add_argument("--loop-minutes", type=float, default=1.5, help="the real loop's --max-minutes")
    ap.add_argument("--loop-out", type=Path, default=None, help="the real loop's run folder (default: temporary)")


def synthetic(n: int, size: int, device: torch.device) -> tuple[CaptionedImages, CaptionTable]:
    """Random uint8 images and 64 random 16-token prompts (padded to 32), seeded."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    data = CaptionedImages(images, [["x"]] * n, [[1.0]] * n, [{}] * n)
    u, length = 64, 32
    mask = torch.zeros(u, length, dtype=torch.bool)
    mask[:, :16] = True
    tokens = torch.randn(u, length, 384, generator=g).half() * mask[..., None]
    pooled = torch.nn.functional.normalize(torch.randn(u, 384, generator=g), dim=-1)
    ids = torch.randint(1, u, (n, 1), generator=g)
    table = CaptionTable([""] + [f"c{k}" for k in range(1, u)], PromptEmbedding(tokens, mask, pooled), ids,
                         torch.ones(n, 1))
    return data, table


def trainer_step(unet: UNetConfig, batch: int, mode: str, device: torch.device, out: Path):
    """``Trainer.step`` as the GPU recipe runs it, on synthetic data resident on the device."""
    size = unet.image_size
    cfg = TrainConfig(out=str(out), model=ModelConfig(unet=unet), batch_size=batch, lr=1e-4, warmup=10,
                      device=str(device), channels_last=True, bf16=True, resident_data="on",
                      compile="off" if mode == "eager" else mode, sample_every=0, eval_every=0)
    data, table = synthetic(max(4 * batch, 64), size, device)
    trainer = Trainer(cfg, data, table, device)
    return trainer.step


def forward_gflops(unet: UNetConfig) -> float:
    with torch.device("meta"):
        net = UNet(unet)
    return forward_flops(net, "gouache", unet.image_size) / 1e9


def time_steps(step, repeats: int, warmup: int, device: torch.device) -> dict:
    """Median seconds a step, the first (compiling) step's seconds, and the peak memory."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    first = timed(step, device)
    for _ in range(warmup - 1):
        step()
    times = [timed(step, device) for _ in range(repeats)]
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    return {"first_step_s": first, "step_s": statistics.median(times), "peak_gib": peak}


def row(name: str, args, device: torch.device, peak: float, tmp: Path) -> dict:
    """One row of the table, measured."""
    q = args.quick
    repeats, warmup = args.repeats or (2 if q else 10), 2 if q else 3
    kind, *rest = name.split("-", 1)
    if kind == "peak":
        return {"peak_tflops": peak / 1e12}
    if kind == "loop":
        return real_loop(args, device, tmp)
    if kind in ("base", "wide"):
        batch, mode = rest[0].split("-", 1)
        unet = PRESETS["base"] if kind == "base" else WIDE
        if q:  # a tiny network at a tiny size: the same code path
            unet, batch = PRESETS["tiny"], "2"
        step = trainer_step(unet, int(batch), mode, device, tmp / name)
        images, flops = int(batch), forward_gflops(unet)
    else:  # pair-SYSTEM-MODE
        system, mode = rest[0].split("-", 1)
        pair, images = args.pair, 2 if q else (args.batch or 256)
        size = 32 if q else 64
        step = train_step(system, PAIRS[pair][system], size, images, device,
                          compile=False if mode == "eager" else mode)
        flops = equal_work(pair, (size,))[system][f"flops_{size}"] / 1e9
    if args.warm_only:
        step(), step()
        return {"warmed": True}
    out = time_steps(step, repeats, warmup, device)
    ips = images / out["step_s"]
    return out | {"batch": images, "images_per_s": ips, "gflop_forward": flops, "mfu": 3 * flops * 1e9 * ips / peak}


class Utilisation:
    """GPU utilisation (%) sampled every ``every`` seconds in a thread: pynvml, else nvidia-smi."""

    def __init__(self, every: float = 0.2) -> None:
        self.every, self.samples, self._stop = every, [], threading.Event()
        self._read = None
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._read = lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
        except Exception:  # noqa: BLE001 - no NVML: nvidia-smi, or no samples
            if shutil.which("nvidia-smi"):
                self._read = lambda: int(subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                    capture_output=True, text=True, timeout=5).stdout.split()[0])
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.samples.append((time.time(), float(self._read())))
            except Exception:  # noqa: BLE001 - a missed sample
                pass

    def __enter__(self) -> "Utilisation":
        if self._read is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def mean(self, t0: float, t1: float) -> float | None:
        inside = [u for t, u in self.samples if t0 <= t <= t1]
        return statistics.mean(inside) if inside else None


def steady_pace(log: Path, batch: int) -> dict:
    """Images/s between the first and the last log row (the first step's compiling left out):
    each row's images_per_second is over the whole run so far, so elapsed = images / that."""
    import csv

    with open(log, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["images_per_second"]]
    first, last = rows[0], rows[-1]
    seen = lambda r: int(r["step"]) * batch  # noqa: E731 - images since the (fresh) run began
    elapsed = lambda r: seen(r) / float(r["images_per_second"])  # noqa: E731
    pace = (seen(last) - seen(first)) / max(1e-9, elapsed(last) - elapsed(first)) if last is not first else None
    return {"steady_images_per_s": pace, "whole_images_per_s": float(last["images_per_second"]),
            "rows": len(rows), "t0": float(first["time"]), "t1": float(last["time"]),
            "last_loss": float(last["loss"])}


def real_loop(args, device: torch.device, tmp: Path) -> dict:
    """``gouache train`` with the recipe, as a user runs it; paced from its log."""
    if args.loop_data is None:
        return {"skipped": "no --loop-data"}
    from gouache.training.config import load_train_config

    cfg = load_train_config(args.loop_config)
    run = args.loop_out or tmp / "loop-run"
    cmd = [sys.executable, "-m", "gouache", "train", "--config", str(args.loop_config), "--data",
           str(args.loop_data), "--out", str(run), "--max-minutes", str(args.loop_minutes), "--device", str(device)]
    t0 = time.time()
    with Utilisation() as util:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    out = {"command": " ".join(cmd[1:]), "exit": proc.returncode, "wall_s": time.time() - t0,
           "batch": cfg.batch_size, "compile": cfg.compile, "stderr_tail": proc.stderr[-1500:]}
    if proc.returncode == 0:
        out |= steady_pace(run / "log.csv", cfg.batch_size)
        out["gpu_util_mean"] = util.mean(out["t0"], out["t1"])
        out["gpu_util_samples"] = len(util.samples)
        pace = out["steady_images_per_s"]
        out["mfu"] = 3 * forward_gflops(cfg.model.unet) * 1e9 * pace / args.peak if pace else None
    return out


def run(args) -> dict:
    device = torch.device(args.device)
    q = args.quick
    res = {"env": {"torch": torch.__version__, "device": str(device),
                   "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
           "rows": {}}
    args.peak = matmul_peak(device, 512 if q else 8192, 3 if q else 10)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.rows.split(","):
            t0 = time.perf_counter()
            try:
                res["rows"][name] = row(name, args, device, args.peak, Path(tmp))
            except Exception as e:  # noqa: BLE001 - a failed row is a result too; the others go on
                res["rows"][name] = {"error": f"{type(e).__name__}: {str(e)[:500]}"}
            res["rows"][name]["row_s"] = time.perf_counter() - t0
            print(f"{name}: {json.dumps(res['rows'][name], default=str)[:400]}", file=sys.stderr, flush=True)
            if args.json:  # after every row: a run cut short keeps what it measured
                args.json.write_text(json.dumps(res, indent=2, default=str))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return res


def table(res: dict) -> str:
    """The markdown table of the measured rows."""
    fmt = lambda v, spec: "–" if v is None else format(v, spec)  # noqa: E731
    lines = ["| row | batch | images/s | MFU % | step ms | first step s | peak GiB | note |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in res["rows"].items():
        if name == "peak":
            lines.append(f"| bf16 matmul peak | | | | | | | {r['peak_tflops']:.3g} TFLOP/s |")
            continue
        if "error" in r or "skipped" in r or "warmed" in r:
            lines.append(f"| {name} | | | | | | | {r.get('error') or r.get('skipped') or 'warmed'} |")
            continue
        if name == "loop":
            util = r.get("gpu_util_mean")
            lines.append(f"| real loop (`gouache train`, {r['compile']}) | {r['batch']} | "
                         f"{fmt(r.get('steady_images_per_s'), ',.0f')} | {fmt(r.get('mfu') and 100 * r['mfu'], '.1f')} "
                         f"| | | | whole run {r.get('whole_images_per_s', 0):,.0f} img/s, GPU util "
                         f"{fmt(util, '.0f')}%, exit {r['exit']} |")
            continue
        lines.append(f"| {name} | {r['batch']} | {r['images_per_s']:,.0f} | {100 * r['mfu']:.1f} | "
                     f"{1000 * r['step_s']:.1f} | {r['first_step_s']:.1f} | {fmt(r['peak_gib'], '.1f')} | "
                     f"{r['gflop_forward']:.2f} GFLOP/fwd |")
    return "\n".join(lines)
