"""gouache vs huggingface diffusers: the same work, timed in the same process.

    python benchmarks/speed.py                       # the full run (see benchmarks/README.md)
    python benchmarks/speed.py --quick --threads 1   # a smoke test: small sizes, few repeats

The two systems are timed in turn (A, B, A, B...) so that machine drift hits both;
each figure is the median of ``--repeats`` timings after warm-up. Prints one
markdown table (gouache, diffusers, gouache/diffusers) and writes ``--json``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from gouache.model.config import ModelConfig
from gouache.model.text import PromptEmbedding, TextEncoder
from gouache.model.unet import PRESETS, UNet, UNetConfig, count_flops
from gouache.sampling.options import SamplingOptions
from gouache.sampling.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).parent))
import gpu_table  # noqa: E402  (the GPU table; it imports nothing of this file)
from timing import (  # noqa: E402  (the equal-work pair stays importable from here: quality_per_minute.py)
    PAIRS,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    NetTimer,
    autocast,
    diffusers,
    diffusers_unet,
    equal_work,
    forward_flops,
    interleaved,
    matmul_peak,
    median_time,
    numpy_to_pil,
    proc_status_mib,
    train_step,
)

PROMPT, GUIDANCE = "red apple", SamplingOptions().guidance  # gouache generate's default
SYSTEMS = ("gouache", "diffusers")


def train_memory(system: str, pair: str, size: int, batch: int, args) -> dict:
    """Training's memory high-water mark over the built state: a fresh subprocess (CPU) or CUDA's stats."""
    device = torch.device(args.device)
    if device.type == "cpu":
        cmd = [sys.executable, __file__, "--threads", str(args.threads), "--memory-child",
               f"{system},{pair},{size},{batch}"]
        return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    step = train_step(system, PAIRS[pair][system], size, batch, device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step(), step()
    peak = torch.cuda.max_memory_allocated(device)
    return {"peak_mib": peak / 2 ** 20, "delta_mib": (peak - base) / 2 ** 20}


def memory_child(spec: str) -> None:
    """In a fresh process that has imported both libraries: Linux's VmHWM, reset once the model is built
    (ru_maxrss cannot be reset, and a child's starts at its parent's peak, inherited across exec)."""
    system, pair, size, batch = spec.split(",")
    step = train_step(system, PAIRS[pair][system], int(size), int(batch), torch.device("cpu"))
    base = proc_status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    step(), step()  # the second step holds the optimiser state too
    peak = proc_status_mib("VmHWM")
    print(json.dumps({"peak_mib": peak, "delta_mib": peak - base}))


def gouache_sampler(cfg: UNetConfig, encoder: TextEncoder, device: torch.device, n: int, sampler: str,
                    variant: str = ""):
    """``run(steps) -> network seconds`` through gouache's own Pipeline.generate. ``variant`` (CPU):
    "channels_last" converts the network's weights (so every convolution runs channels-last),
    "bf16" samples under CPU bf16 autocast; gouache itself is unchanged."""
    net = UNet(cfg).to(memory_format=torch.channels_last if variant == "channels_last" else torch.contiguous_format)
    timer = NetTimer(net, device)
    pipe = Pipeline(timer, encoder, ModelConfig(unet=cfg), device)

    def run(steps: int) -> float:
        timer.seconds = 0.0
        with autocast(device, cpu_bf16=variant == "bf16"):
            pipe.generate(PROMPT, SamplingOptions(sampler=sampler, steps=steps, guidance=GUIDANCE),
                          num_images=n, batch_size=n, progress=False)
        return timer.seconds
    return run


def diffusers_sampler(widths, size: int, encoder: TextEncoder, device: torch.device, n: int, sampler: str):
    """The usual diffusers loop: CFG as one batched call, scheduler.step, images to PIL."""
    timer = NetTimer(diffusers_unet(widths, size).to(device).eval(), device)
    scheduler = (DPMSolverMultistepScheduler() if sampler == "dpmpp_2m" else DDPMScheduler())
    emb = PromptEmbedding.cat([encoder([""] * n), encoder([PROMPT] * n)]).to(device)  # as gouache

    @torch.no_grad()
    def run(steps: int) -> float:
        timer.seconds = 0.0
        scheduler.set_timesteps(steps, device=device)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(n, 3, size, size, generator=gen).to(device) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            inp = scheduler.scale_model_input(torch.cat([x, x]), t)
            with autocast(device):
                eps = timer(inp, t, encoder_hidden_states=emb.tokens, encoder_attention_mask=emb.mask).sample
            uncond, cond = eps.float().chunk(2)
            x = scheduler.step(uncond + GUIDANCE * (cond - uncond), t, x, generator=gen).prev_sample
        numpy_to_pil((x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy())
        return timer.seconds
    return run


def time_sampling(runs: dict, steps: int, n: int, repeats: int, device: torch.device) -> dict:
    """Seconds per image and the share of time outside the network, interleaved."""
    for run in runs.values():
        run(2)  # warm-up: a short run
    net = {name: [] for name in runs}
    fns = {name: (lambda r=run, name=name: net[name].append(r(steps))) for name, run in runs.items()}
    total = interleaved(fns, repeats, 0, device)
    return {name: {"s_per_image": statistics.median(total[name]) / n,
                   "outside_net": statistics.median(1 - a / b for a, b in zip(net[name], total[name]))}
            for name in runs}


def settings(args) -> dict:
    """What is run: the full benchmark, or small sizes and few repeats with ``--quick``."""
    q, repeats = args.quick, args.repeats or (2 if args.quick else 5)
    return dict(pair=args.pair, repeats=repeats, sample_repeats=max(1, (repeats + 1) // 2), warmup=2 if q else 3,
                sizes=(32,) if q else (32, 64), batch=args.batch or (2 if q else 32), sample_size=32 if q else 64,
                images=2 if q else 4, dpm_steps=4 if q else 20, ddpm_steps=8 if q else 100,
                cpu64_steps=4 if q else 20, matmul_n=512 if q else 2048, compile=args.compile)


def run(args) -> dict:
    device, st = torch.device(args.device), settings(args)
    res = {"env": env_info(device), "settings": st}
    peak = matmul_peak(device, st["matmul_n"], st["repeats"] + 2)
    res["env"]["matmul_peak_gflops"] = peak / 1e9
    res["equal_work"] = equal_work(st["pair"], tuple(sorted({*st["sizes"], 64})))
    log(f"matmul peak {peak / 1e9:.1f} GFLOP/s; equal work: {res['equal_work']['ratio_params']:.3f} params, "
        f"{res['equal_work']['ratio_flops_64']:.3f} FLOPs")

    tags = ("", "compiled_") if st["compile"] else ("",)  # eager, then under torch.compile
    for size in st["sizes"]:
        for tag in tags:
            steps = {s: train_step(s, PAIRS[st["pair"]][s], size, st["batch"], device, compile=bool(tag))
                     for s in SYSTEMS}
            times = interleaved(steps, st["repeats"], st["warmup"], device)  # warm-up compiles
            for s, t in times.items():
                res.setdefault(s, {})[f"{tag}train_ips_{size}"] = st["batch"] / statistics.median(t)
            log(f"training {size}x{size} {tag}: " + ", ".join(
                f"{s} {res[s][f'{tag}train_ips_{size}']:.2f} img/s" for s in times))
            del steps
    # the peak again, after the training rows: MFU is taken against the higher of the two
    # medians (the peak drifts by several % over minutes on a shared 2-core machine)
    peak = max(peak, matmul_peak(device, st["matmul_n"], st["repeats"] + 2))
    res["env"]["matmul_peak_gflops"] = peak / 1e9
    for s, size, tag in itertools.product(SYSTEMS, st["sizes"], tags):
        flops = res["equal_work"][s][f"flops_{size}"]
        res[s][f"{tag}train_mfu_{size}"] = 3 * flops * res[s][f"{tag}train_ips_{size}"] / peak
    for s in SYSTEMS:
        res[s]["train_mem"] = train_memory(s, st["pair"], st["sizes"][-1], st["batch"], args)

    encoder, size, n = TextEncoder().to(device), st["sample_size"], st["images"]
    for sampler, steps in (("dpmpp_2m", st["dpm_steps"]), ("ddpm", st["ddpm_steps"])):
        cfg = dataclasses.replace(PAIRS[st["pair"]]["gouache"], image_size=size)
        runs = {"gouache": gouache_sampler(cfg, encoder, device, n, sampler),
                "diffusers": diffusers_sampler(PAIRS[st["pair"]]["diffusers"], size, encoder, device, n, sampler)}
        for s, r in time_sampling(runs, steps, n, st["sample_repeats"], device).items():
            res[s][sampler] = r
        log(f"sampling {sampler}: " + ", ".join(f"{s} {res[s][sampler]['s_per_image']:.3f} s/img" for s in runs))

    res["cpu64"] = shipped(st, encoder, device, peak)
    return res


def shipped(st: dict, encoder: TextEncoder, device: torch.device, peak: float) -> dict:
    """The shipped configuration alone: FLOPs, training at 64x64, one image with guidance
    (on the CPU also with channels-last weights and with bf16 autocast, timed in turn)."""
    cfg, net = PRESETS["cpu64"], UNet(PRESETS["cpu64"])
    flops = forward_flops(net.to("meta"), "gouache", 64)
    out = {"params": sum(p.numel() for p in net.parameters()), "flops_64": flops,
           "count_flops_cpu": count_flops(UNet(cfg))}  # gouache's own count, on the CPU: no attention
    step = train_step("gouache", cfg, 64, st["batch"], device)
    ips = st["batch"] / median_time(step, st["repeats"], st["warmup"], device)
    out.update(train_ips_64=ips, train_mfu_64=3 * flops * ips / peak)
    if device.type == "cpu":
        step = train_step("gouache", cfg, 64, st["batch"], device, cpu_bf16=True)
        out["train_ips_64_bf16"] = st["batch"] / median_time(step, st["repeats"], st["warmup"], device)
    variants = ("", "channels_last", "bf16") if device.type == "cpu" else ("",)
    runs = {v: gouache_sampler(cfg, encoder, device, 1, "dpmpp_2m", v) for v in variants}
    out["sampling"] = time_sampling(runs, st["cpu64_steps"], 1, st["sample_repeats"], device)
    log(f"cpu64: {ips:.2f} train img/s, {out['sampling']['']['s_per_image']:.3f} s/img")
    return out


def env_info(device: torch.device) -> dict:
    names = []
    with contextlib.suppress(OSError):
        names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
    return dict(torch=torch.__version__, diffusers=getattr(diffusers, "__version__", None), threads=torch.get_num_threads(),
                cpu=names[0] if names else platform.processor(), cpus=os.cpu_count(), device=str(device),
                gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None)


def table(res: dict) -> str:
    st, ew, c64 = res["settings"], res["equal_work"], res["cpu64"]
    g, d = {**ew["gouache"], **res["gouache"]}, {**ew["diffusers"], **res["diffusers"]}
    rows = [("parameters (M)", g["params"] / 1e6, d["params"] / 1e6),
            ("forward GFLOP / image, 64x64", g["flops_64"] / 1e9, d["flops_64"] / 1e9)]
    for s in st["sizes"]:
        rows += [(f"train images/s, {s}x{s}, batch {st['batch']}", g[f"train_ips_{s}"], d[f"train_ips_{s}"]),
                 (f"train MFU %, {s}x{s}", 100 * g[f"train_mfu_{s}"], 100 * d[f"train_mfu_{s}"])]
        if st.get("compile"):
            rows += [(f"torch.compile: train images/s, {s}x{s}", g[f"compiled_train_ips_{s}"],
                      d[f"compiled_train_ips_{s}"]),
                     (f"torch.compile: train MFU %, {s}x{s}", 100 * g[f"compiled_train_mfu_{s}"],
                      100 * d[f"compiled_train_mfu_{s}"])]
    s = st["sizes"][-1]
    rows.append((f"train peak memory, MiB over the built model, {s}x{s}", g["train_mem"]["delta_mib"],
                 d["train_mem"]["delta_mib"]))
    for key, name, steps in (("dpmpp_2m", "DPM-Solver++(2M)", st["dpm_steps"]), ("ddpm", "DDPM", st["ddpm_steps"])):
        what = f"{name} {steps} steps, CFG, {st['images']} images {st['sample_size']}x{st['sample_size']}"
        rows += [(f"{what}: s / image", g[key]["s_per_image"], d[key]["s_per_image"]),
                 (f"{what}: % outside the network", 100 * g[key]["outside_net"], 100 * d[key]["outside_net"])]
    base = c64["sampling"][""]
    rows += [("cpu64 (shipped): parameters (M)", c64["params"] / 1e6, None),
             ("cpu64: forward GFLOP / image, 64x64", c64["flops_64"] / 1e9, None),
             (f"cpu64: train images/s, 64x64, batch {st['batch']}", c64["train_ips_64"], None),
             ("cpu64: train MFU %", 100 * c64["train_mfu_64"], None),
             *([(f"cpu64: train images/s, bf16 autocast (cpu_bf16; speed-up x"
                 f"{c64['train_ips_64_bf16'] / c64['train_ips_64']:.2f})", c64["train_ips_64_bf16"], None)]
               if "train_ips_64_bf16" in c64 else []),
             (f"cpu64: s / image, {st['cpu64_steps']} steps, CFG, batch 1", base["s_per_image"], None),
             ("cpu64: % of sampling outside the network", 100 * base["outside_net"], None)]
    rows += [(f"cpu64: s / image, {v.replace('_', '-')} (speed-up x{base['s_per_image'] / r['s_per_image']:.2f})",
              r["s_per_image"], None) for v, r in c64["sampling"].items() if v]
    fmt = lambda v: "–" if v is None else f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"  # noqa: E731
    lines = ["| measurement | gouache | diffusers | gouache/diffusers |", "|---|---:|---:|---:|"]
    return "\n".join(lines + [f"| {n} | {fmt(a)} | {fmt(b)} | {'–' if not b else f'{a / b:.2f}'} |"
                              for n, a, b in rows])


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats: a smoke test")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda: bf16 autocast, bf16 matmul peak)")
    ap.add_argument("--repeats", type=int, default=0, help="timed repeats per figure (default 5, quick 2)")
    ap.add_argument("--pair", choices=sorted(PAIRS), default="small", help="which equal-work pair")
    ap.add_argument("--batch", type=int, default=0,
                    help="images per training step (default 32, the shipped recipes' batch; quick 2)")
    ap.add_argument("--compile", action="store_true",
                    help="also time training with both networks under torch.compile")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--table", choices=("auto", "cpu", "gpu"), default="auto",
                    help="which table: auto = gpu on CUDA (gpu_table.py), else cpu")
    gpu_table.add_args(ap)
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if diffusers is not None:
        diffusers.utils.logging.set_verbosity_error()
    if args.memory_child:
        return memory_child(args.memory_child)
    if args.table == "gpu" or (args.table == "auto" and args.device.startswith("cuda")):
        res = gpu_table.run(args)
        print(f"torch {res['env']['torch']}, device {res['env']['device']} {res['env']['gpu'] or ''}\n")
        return print(gpu_table.table(res))
    res = run(args)
    e, ew = res["env"], res["equal_work"]
    print(f"torch {e['torch']}, diffusers {e['diffusers']}, {e['threads']} threads, CPU: {e['cpu']} "
          f"({e['cpus']} cores), device {e['device']}{' ' + e['gpu'] if e['gpu'] else ''}, matmul peak {e['matmul_peak_gflops']:.1f} "
          f"GFLOP/s\nequal work ({ew['pair']}): " + "; ".join(
              f"{s} {ew[s]['params'] / 1e6:.2f}M params {ew[s]['flops_64'] / 1e9:.2f} GFLOP" for s in SYSTEMS)
          + f"; gouache/diffusers {ew['ratio_params']:.3f} params, {ew['ratio_flops_64']:.3f} FLOPs\n")
    print(table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
