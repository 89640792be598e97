"""Load test of ``gouache serve``: many concurrent clients on loopback, for a bounded time.

    python benchmarks/load_test.py                   # the tiny random test model, 50 clients, 30 s
    python benchmarks/load_test.py --model runs/x    # a real model folder

Starts the real server (``python -m gouache serve``) on a free 127.0.0.1 port,
runs ``--clients`` asyncio+httpx clients until ``--duration`` seconds or
``--max-requests`` requests, and prints a table: requests served, 503s, other
errors, latency percentiles and the server's resident memory when ready, after
the load and at its peak (VmRSS, VmRSS, VmHWM).
Exits 1 if the server answered any 5xx other than 503, a request failed at the
transport level, or the server died.

``--oversized 8`` first sends 8 chunked bodies of ``--oversized-mib`` MiB at once
(no Content-Length, so only counting the bytes as they arrive can stop them) and
reports their answers and the server's memory after them.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PROMPTS = ["red apple", "a smiling sun", "blue whale", "green frog", "yellow star", "pizza slice",
           "a cat face", "snowman", "rocket", "rainbow", "red heart", "banana"]


def build_tiny_model(folder: Path) -> Path:
    """A random 16x16 model folder, as the test suite's ``tiny_model_dir`` fixture builds it."""
    import torch
    from safetensors.torch import save_file

    from gouache.model.config import ModelConfig
    from gouache.model.unet import PRESETS, UNet
    from gouache.store.files import write_json

    cfg = ModelConfig(unet=PRESETS["tiny"])
    torch.manual_seed(0)
    net = UNet(cfg.unet)
    for p in net.parameters():  # zero-initialised output layers would paint flat grey
        p.data.add_(0.02 * torch.randn_like(p))
    folder.mkdir(parents=True, exist_ok=True)
    write_json(cfg.to_dict(), folder / "config.json")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / "ema.safetensors")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int, field: str = "VmHWM") -> float | None:
    """The process's peak (VmHWM) or current (VmRSS) resident set, from /proc: no psutil needed."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def oversized_upload(port: int, mib: int) -> str:
    """POST ``mib`` MiB of JSON-ish body, chunked, until the server answers; return its status line.

    A blocking socket, so that a write the server refused (it closes once it has answered)
    still leaves the answer to be read.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b'Transfer-Encoding: chunked\r\n\r\n3\r\n{"p\r\n')
        frame = b"10000\r\n" + b"a" * 65_536 + b"\r\n"
        try:
            for _ in range(mib * 16):
                if select.select([sock], [], [], 0)[0]:
                    break  # the answer is there
                sock.sendall(frame)
            else:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server stopped listening: read what it said
        try:
            return sock.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace") or "closed without an answer"
        except OSError as e:
            return type(e).__name__


def oversized_uploads(port: int, count: int, mib: int) -> Counter:
    with ThreadPoolExecutor(count) as pool:
        return Counter(pool.map(oversized_upload, [port] * count, [mib] * count))


@dataclass
class Tally:
    sent: int = 0
    served: int = 0
    streamed: int = 0
    images: int = 0
    busy: int = 0
    status: Counter = field(default_factory=Counter)  # unexpected HTTP statuses
    transport: Counter = field(default_factory=Counter)  # exceptions
    ok_latency: list[float] = field(default_factory=list)
    busy_latency: list[float] = field(default_factory=list)


async def one_request(http: httpx.AsyncClient, body: dict, stream: bool) -> tuple[int, dict, int]:
    """POST one job; return (status, headers, pictures received)."""
    if not stream:
        r = await http.post("/api/generate", json=body)
        return r.status_code, dict(r.headers), len(r.json()["images"]) if r.status_code == 200 else 0
    async with http.stream("POST", "/api/generate/stream", json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return r.status_code, dict(r.headers), 0
        event = None
        async for line in r.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("result", "error"):
                data = json.loads(line[5:])
                return (200, dict(r.headers), len(data["images"])) if event == "result" else (data["status"], {}, 0)
    return 599, {}, 0  # the stream ended without a result


async def client(http: httpx.AsyncClient, tally: Tally, deadline: float, max_requests: int,
                 rng: random.Random, steps: int | None) -> None:
    while time.monotonic() < deadline and tally.sent < max_requests:
        body = {"prompt": rng.choice(PROMPTS), "seed": rng.randrange(10_000),
                "num_images": rng.choice((1, 1, 1, 2))}
        if steps is not None:
            body["steps"] = steps
        stream = rng.random() < 0.25
        tally.sent += 1
        start = time.perf_counter()
        try:
            status, headers, n = await one_request(http, body, stream)
        except httpx.HTTPError as e:
            tally.transport[type(e).__name__] += 1
            await asyncio.sleep(0.2)
            continue
        took = time.perf_counter() - start
        if status == 200:
            tally.served += 1
            tally.streamed += stream
            tally.images += n
            tally.ok_latency.append(took)
        elif status == 503:
            tally.busy += 1
            tally.busy_latency.append(took)
            retry = float(headers.get("retry-after", 1))
            await asyncio.sleep(min(retry, 1.0) * rng.uniform(0.5, 1.0))  # back off, a little
        else:
            tally.status[status] += 1


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


async def run_clients(url: str, args: argparse.Namespace) -> tuple[Tally, float]:
    tally = Tally()
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits, trust_env=False) as http:
        start = time.monotonic()
        deadline = start + args.duration
        tasks = [client(http, tally, deadline, args.max_requests, random.Random(k), args.steps)
                 for k in range(args.clients)]
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.duration + args.timeout + 10)
        return tally, time.monotonic() - start


def start_server(args: argparse.Namespace, model: Path, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gouache", "serve", "--model", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--device", "cpu", "--queue-size", str(args.queue_size),
           "--max-batch", str(args.max_batch), "--threads", str(args.threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode} before it was ready")
        try:
            return httpx.get(url + "/api/info", timeout=2, trust_env=False).raise_for_status().json()
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit(f"the server was not ready after {timeout:.0f} s")


def report(args, info, tally: Tally, elapsed: float, health: dict, rss: dict, alive: bool) -> None:
    ms = lambda v: f"{v * 1000:8.0f} ms"  # noqa: E731
    mib = lambda v: f"{v:.0f} MiB" if v is not None else "unknown"  # noqa: E731
    batches = health.get("batches", 0)
    rows = [
        ("clients / duration", f"{args.clients} / {elapsed:.1f} s"),
        ("model", f"{info['image_size']}x{info['image_size']}, queue {args.queue_size}, "
                  f"max batch {args.max_batch}, {args.threads} thread(s)"),
        ("requests sent", tally.sent),
        ("served (200)", f"{tally.served} ({tally.streamed} streamed), {tally.images} pictures"),
        ("throughput", f"{tally.served / elapsed:.1f} req/s, {tally.images / elapsed:.1f} pictures/s"),
        ("busy (503)", tally.busy),
        ("other HTTP errors", dict(tally.status) or 0),
        ("transport errors", dict(tally.transport) or 0),
        ("latency p50 (200)", ms(percentile(tally.ok_latency, 50))),
        ("latency p90 (200)", ms(percentile(tally.ok_latency, 90))),
        ("latency p99 (200)", ms(percentile(tally.ok_latency, 99))),
        ("latency p50 / p99 (503)", f"{ms(percentile(tally.busy_latency, 50)).strip()} / "
                                    f"{ms(percentile(tally.busy_latency, 99)).strip()}"),
        ("server batches", f"{batches} ({health.get('served', 0) / max(1, batches):.2f} jobs/batch)"),
        *([(f"{args.oversized} chunked {args.oversized_mib} MiB bodies", dict(rss["oversized"])),
           ("server RSS after them", mib(rss["after_oversized"]))] if args.oversized else []),
        ("server RSS ready / after load", f"{mib(rss['ready'])} / {mib(rss['after'])}"),
        ("server peak RSS (VmHWM)", mib(rss["peak"])),
        ("server alive afterwards", "yes" if alive else "NO"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n{'metric'.ljust(width)} | value\n{'-' * width}-+-{'-' * 40}")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="model folder (default: a tiny random one)")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    p.add_argument("--max-requests", type=int, default=20_000, help="stop after this many requests")
    p.add_argument("--steps", type=int, default=None, help="sampling steps per request (default: sampler's)")
    p.add_argument("--queue-size", type=int, default=16)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="server torch threads")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a request may take")
    p.add_argument("--startup-timeout", type=float, default=300.0)
    p.add_argument("--oversized", type=int, default=0, help="first send this many chunked oversized bodies")
    p.add_argument("--oversized-mib", type=int, default=200, help="MiB in each oversized body")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="gouache-load-") as tmp:
        model = args.model or build_tiny_model(Path(tmp) / "tiny")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "server.log"
        proc = start_server(args, model, port, log)
        try:
            info = wait_ready(url, proc, args.startup_timeout)
            rss = {"ready": rss_mib(proc.pid, "VmRSS")}
            if args.oversized:
                rss["oversized"] = oversized_uploads(port, args.oversized, args.oversized_mib)
                rss["after_oversized"] = rss_mib(proc.pid, "VmRSS")
            print(f"server {url} ready (pid {proc.pid}); {args.clients} clients for {args.duration:.0f} s", flush=True)
            tally, elapsed = asyncio.run(run_clients(url, args))
            alive = proc.poll() is None
            health = httpx.get(url + "/api/health", timeout=10, trust_env=False).json() if alive else {}
            rss.update(after=rss_mib(proc.pid, "VmRSS"), peak=rss_mib(proc.pid, "VmHWM"))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        report(args, info, tally, elapsed, health, rss, alive)
        failures = []
        if any(s >= 500 for s in tally.status):
            failures.append(f"5xx other than 503: {dict(tally.status)}")
        if tally.transport:
            failures.append(f"transport errors: {dict(tally.transport)}")
        if not alive:
            failures.append("the server died")
        if tally.served == 0:
            failures.append("nothing was served")
        if failures:
            print("\nFAILED: " + "; ".join(failures) + "\n--- server log (tail) ---\n"
                  + "\n".join(log.read_text().splitlines()[-30:]), file=sys.stderr)
            return 1
        print("\nOK: no 5xx other than 503, no transport errors, the server stayed up")
        return 0


if __name__ == "__main__":
    sys.exit(main())
