"""Timing helpers of the benchmarks: CUDA-synchronised wall clocks, medians, interleaved A/B runs,
the matmul peak that MFU is measured against, and the process's memory."""
from __future__ import annotations

import contextlib
import statistics
import time

import torch


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
